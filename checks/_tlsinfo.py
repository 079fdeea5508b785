"""Certificates as a probe sees them: the served chain, parsed, and time left.

The http and tls checks both report `cert_expiry_days` for the earliest
expiring certificate the server sends, and both must keep doing so after
that certificate has expired (a verifying handshake then fails). This module
holds what they share: reading the peer chain from an `ssl.SSLObject`,
parsing DER with `cryptography`, RFC 6125 host name matching for reports,
the wording of expiry findings, and the `tls:` client options model.
`cryptography` is imported by the first parse, not with this module.
"""

from __future__ import annotations

import contextvars
import ipaddress
import ssl
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import model_validator

from agent.core import Status
from agent.durations import human
from checks.base import DurationThresholds, Model

_DER = 2  # _ssl.ENCODING_DER: `Certificate.public_bytes` format for DER


class TlsOptions(Model):
    """Client side TLS for a probe: trust, and an optional client certificate."""

    verify: bool = True
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None

    @model_validator(mode="after")
    def _pair(self) -> TlsOptions:
        if self.key_file and not self.cert_file:
            raise ValueError("key_file needs cert_file (the client certificate it belongs to)")
        return self


@dataclass(frozen=True)
class CertInfo:
    """What a report needs from one certificate."""

    subject: str
    issuer: str
    common_name: str | None
    not_before: datetime
    not_after: datetime
    dns_names: tuple[str, ...]
    ip_addresses: tuple[str, ...]
    serial: str

    def seconds_left(self, now: datetime | None = None) -> float:
        return (self.not_after - (now or datetime.now(UTC))).total_seconds()

    @property
    def label(self) -> str:
        return f"CN={self.common_name}" if self.common_name else self.subject

    def to_dict(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "issuer": self.issuer,
            "not_before": self.not_before.isoformat(),
            "not_after": self.not_after.isoformat(),
            "dns_names": list(self.dns_names),
            "ip_addresses": list(self.ip_addresses),
            "serial": self.serial,
        }


def parse_der(der: bytes) -> CertInfo:
    from cryptography import x509  # here: a config without https or tls checks never loads it
    from cryptography.x509.oid import NameOID

    cert = x509.load_der_x509_certificate(der)
    cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        san = x509.SubjectAlternativeName([])
    dns_names = [str(n) for n in san.get_values_for_type(x509.DNSName)]
    ips = [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
    return CertInfo(
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        common_name=str(cns[0].value) if cns else None,
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        dns_names=tuple(dns_names),
        ip_addresses=tuple(ips),
        serial=format(cert.serial_number, "x"),
    )


def peer_chain_der(ssl_object: ssl.SSLObject | ssl.SSLSocket | None) -> list[bytes]:
    """The chain as the server sent it, leaf first, in DER.

    Python 3.13 has the public `get_unverified_chain()`. The C object behind
    3.10-3.12's `SSLObject` already has the same method (`_sslobj`), returning
    `_ssl.Certificate` objects. Where neither exists only the leaf is known.
    """
    if ssl_object is None:
        return []
    public = getattr(ssl_object, "get_unverified_chain", None)
    if public is not None:
        return [bytes(c) if isinstance(c, bytes | bytearray) else c.public_bytes(_DER) for c in public() or []]
    inner = getattr(getattr(ssl_object, "_sslobj", None), "get_unverified_chain", None)
    if inner is not None:
        chain = inner()
        if chain:
            return [c.public_bytes(_DER) for c in chain]
    leaf = ssl_object.getpeercert(binary_form=True)
    return [leaf] if leaf else []


@dataclass
class HandshakeRecord:
    """What `RecordingSSLObject` saw of the last handshake in this context."""

    #: perf_counter of the first handshake step, i.e. when the TCP connection was up
    started: float | None = None
    chain: list[bytes] = field(default_factory=list)


RECORDING: contextvars.ContextVar[HandshakeRecord | None] = contextvars.ContextVar("tls_handshake", default=None)


class RecordingSSLObject(ssl.SSLObject):
    """Records into `RECORDING` (when set) the handshake start and the served chain.

    asyncio's SSL protocol calls `do_handshake` from callbacks that run in the
    context of the task that opened the connection, so a probe sees its own
    handshakes even when a library (aiohttp) opens the connection for it. The
    chain is kept when verification fails too: an expired certificate still
    has days to report.
    """

    def do_handshake(self) -> None:
        record = RECORDING.get()
        if record is None:
            super().do_handshake()
            return
        if record.started is None:
            record.started = time.perf_counter()
        try:
            super().do_handshake()
        except ssl.SSLCertVerificationError:
            record.chain = peer_chain_der(self)
            raise
        record.chain = peer_chain_der(self)


def recording(ctx: ssl.SSLContext) -> ssl.SSLContext:
    """Make connections from `ctx` record into `RECORDING` (documented `sslobject_class` hook)."""
    if ctx.sslobject_class is not RecordingSSLObject:
        ctx.sslobject_class = RecordingSSLObject
    return ctx


def parse_chain(ders: list[bytes]) -> list[CertInfo]:
    return [parse_der(d) for d in ders]


def earliest(chain: list[CertInfo]) -> tuple[int, CertInfo]:
    """Index and certificate that expires first (the chain is only as good as it)."""
    index = min(range(len(chain)), key=lambda i: chain[i].not_after)
    return index, chain[index]


def expiry_days(chain: list[CertInfo], now: datetime | None = None) -> float:
    return round(earliest(chain)[1].seconds_left(now) / 86400, 4)


def matches_hostname(cert: CertInfo, host: str) -> bool:
    """RFC 6125 matching, for reports: SANs (CN only without DNS SANs), one left-most wildcard."""
    try:
        ip = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        ip = None
    if ip is not None:
        return any(ipaddress.ip_address(a) == ip for a in cert.ip_addresses)
    name = host.lower().rstrip(".")
    patterns = cert.dns_names or ((cert.common_name,) if cert.common_name else ())
    for pattern in (p.lower().rstrip(".") for p in patterns):
        if pattern.startswith("*."):
            suffix = pattern[1:]
            head = name[: -len(suffix)]
            if name.endswith(suffix) and head and "." not in head:
                return True
        elif pattern == name:
            return True
    return False


def _span(seconds: float) -> str:
    days = abs(seconds) / 86400
    if days >= 1.5:
        return f"{round(days)} days"
    return human(abs(seconds))


def expiry_finding(chain: list[CertInfo], thresholds: DurationThresholds | None,
                   now: datetime | None = None) -> tuple[Status, str]:
    """Status and sentence for the earliest expiry in the chain.

    Without thresholds only an expired (or not yet valid) certificate counts.
    """
    index, cert = earliest(chain)
    now = now or datetime.now(UTC)
    left = cert.seconds_left(now)
    what = "certificate" if index == 0 else f"certificate {cert.label} in the chain"
    date = cert.not_after.strftime("%Y-%m-%d %H:%M UTC")
    not_yet = [c for c in chain if c.not_before > now]
    if left <= 0:
        return Status.CRITICAL, f"{what} expired {_span(left)} ago ({date})"
    if not_yet:
        return Status.CRITICAL, f"certificate {not_yet[0].label} is not valid before {not_yet[0].not_before:%Y-%m-%d %H:%M} UTC"
    status = thresholds.evaluate_remaining(left) if thresholds is not None else Status.OK
    if status is Status.OK and index == 0:
        return status, f"certificate valid for {_span(left)} (until {date})"
    if status is Status.OK:
        return status, f"certificate chain valid for {_span(left)} ({cert.label} expires {date})"
    return status, f"{what} expires in {_span(left)} ({date})"


def names_of(cert: CertInfo) -> str:
    names = [*cert.dns_names, *cert.ip_addresses] or ([cert.common_name] if cert.common_name else [])
    shown = ", ".join(names[:8])
    return shown + (f" and {len(names) - 8} more" if len(names) > 8 else "")
