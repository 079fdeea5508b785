"""TLS probe: days left on the certificate chain a server presents, and whether it is trusted.

An expired or mis-issued certificate takes a service down as surely as a
crash, with weeks of warning that nobody read. This check connects, times
the TCP connect and the handshake separately (`StreamWriter.start_tls`),
and reports the earliest expiry across the served chain. It keeps working
after the expiry: when the verifying handshake fails it reconnects without
verification, reads the chain anyway and says how long ago it expired.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from datetime import timedelta
from typing import Any, Literal

from pydantic import Field

from agent.core import CheckResult, Status
from agent.secrets import redact
from checks import _tlsinfo
from checks.base import Check, CheckConfig, DurationThresholds, named_levels
from checks.tcp import Host, Port, close_writer, connect_error, seconds_text

_EXPIRED = 10  # X509_V_ERR_CERT_HAS_EXPIRED
_NOT_YET_VALID = 9  # X509_V_ERR_CERT_NOT_YET_VALID
_HOSTNAME_MISMATCH = 62  # X509_V_ERR_HOSTNAME_MISMATCH
_IP_MISMATCH = 64  # X509_V_ERR_IP_ADDRESS_MISMATCH


class TlsConfig(CheckConfig):
    type: Literal["tls"]
    host: Host = Field(description="host name or IP address to connect to")
    port: Port = Field(default=443, description="TCP port, 1-65535")
    server_name: str | None = Field(default=None, description="SNI and name to verify; default: host")
    cert_expiry: DurationThresholds = Field(
        default_factory=lambda: DurationThresholds(warning=timedelta(days=21), critical=timedelta(days=7)),
        description="time left on the earliest-expiring certificate of the chain")
    verify: bool = Field(default=True, description="verify trust and host name; false reports expiry only")
    ca_file: str | None = Field(default=None, description="PEM bundle of CAs to trust instead of the system store")

    def observation_thresholds(self) -> dict[str, dict[str, float]]:
        return named_levels(cert_expiry_days=self.cert_expiry.levels(timedelta(days=1)))


class _Handshake:
    """One connection's outcome: timings, TLS facts and the served chain."""

    def __init__(self) -> None:
        self.connect_seconds: float | None = None
        self.handshake_seconds: float | None = None
        self.chain: list[_tlsinfo.CertInfo] = []
        self.version: str | None = None
        self.cipher: str | None = None


class TlsCheck(Check):
    type = "tls"
    runbooks = {"": "runbooks/tls-certificate-expiring.md"}
    Config = TlsConfig
    timeout_status = Status.CRITICAL
    config: TlsConfig

    @property
    def server_name(self) -> str:
        return self.config.server_name or self.config.host

    async def _connect(self, ctx: ssl.SSLContext, shake: _Handshake, phase: list[str]) -> None:
        cfg = self.config
        started = time.perf_counter()
        phase[0] = "connecting"
        _reader, writer = await asyncio.open_connection(cfg.host, cfg.port)
        try:
            shake.connect_seconds = time.perf_counter() - started
            phase[0] = "during the TLS handshake"
            started = time.perf_counter()
            await writer.start_tls(ctx, server_hostname=self.server_name)
            shake.handshake_seconds = time.perf_counter() - started
            ssl_object = writer.get_extra_info("ssl_object")
            shake.chain = _tlsinfo.parse_chain(_tlsinfo.peer_chain_der(ssl_object))
            shake.version = ssl_object.version()
            shake.cipher = (ssl_object.cipher() or (None,))[0]
        except BaseException:
            # A handshake cut short (timeout, cancel, TLS error): a graceful close would wait
            # for a close_notify from a peer that is not talking, past the check's deadline.
            writer.transport.abort()
            raise
        await close_writer(writer)

    async def run(self) -> CheckResult:
        cfg = self.config
        target = f"{cfg.host}:{cfg.port}"
        details: dict[str, Any] = {"host": cfg.host, "port": cfg.port, "server_name": self.server_name}
        shake = _Handshake()
        phase = ["connecting"]
        verify_error: ssl.SSLCertVerificationError | None = None
        try:
            async with asyncio.timeout(self.timeout):
                try:
                    await self._connect(self.context.ssl_context(verify=cfg.verify, ca_file=cfg.ca_file), shake, phase)
                except ssl.SSLCertVerificationError as exc:
                    # keep reporting after expiry (or any trust problem): read the chain unverified
                    verify_error, shake = exc, _Handshake()
                    await self._connect(self.context.ssl_context(verify=False), shake, phase)
        except TimeoutError:
            return self._fail(f"timed out after {seconds_text(self.timeout)} {phase[0]} "
                              f"to {target}", shake, details)
        except ssl.SSLError as exc:
            return self._fail(f"TLS handshake with {target} failed: {exc.reason or exc}", shake, details)
        except OSError as exc:
            if phase[0] == "connecting":
                return self._fail(f"{connect_error(exc, cfg.host)} ({target})", shake, details)
            return self._fail(f"connection lost {phase[0]}: {exc.strerror or exc}", shake, details)
        if not shake.chain:
            return self._fail(f"{target} presented no certificate", shake, details)
        return self._evaluate(shake, verify_error, details)

    def _observations(self, shake: _Handshake) -> dict[str, float]:
        obs = {"connect_seconds": shake.connect_seconds, "handshake_seconds": shake.handshake_seconds}
        if shake.chain:
            obs["cert_expiry_days"] = _tlsinfo.expiry_days(shake.chain)
        return {k: v for k, v in obs.items() if v is not None}

    def _fail(self, summary: str, shake: _Handshake, details: dict[str, Any]) -> CheckResult:
        return self.result(Status.CRITICAL, redact(summary), self._observations(shake), **details)

    def _evaluate(self, shake: _Handshake, verify_error: ssl.SSLCertVerificationError | None,
                  details: dict[str, Any]) -> CheckResult:
        leaf = shake.chain[0]
        hostname_match = _tlsinfo.matches_hostname(leaf, self.server_name)
        details.update(
            verified=self.config.verify and verify_error is None, hostname_match=hostname_match,
            tls_version=shake.version, cipher=shake.cipher,
            chain=[c.to_dict() for c in shake.chain], earliest_expiry=_tlsinfo.earliest(shake.chain)[1].label,
        )
        findings: list[tuple[Status, str]] = []
        expiry = _tlsinfo.expiry_finding(shake.chain, self.config.cert_expiry)
        if verify_error is not None:
            details["verify_error"] = verify_error.verify_message
            code = verify_error.verify_code
            if code in (_HOSTNAME_MISMATCH, _IP_MISMATCH) or not hostname_match:
                findings.append((Status.CRITICAL, f"certificate does not match {self.server_name!r} "
                                                  f"(it names {_tlsinfo.names_of(leaf)})"))
            if code not in (_HOSTNAME_MISMATCH, _IP_MISMATCH) and not (
                    code in (_EXPIRED, _NOT_YET_VALID) and expiry[0] is Status.CRITICAL):
                findings.append((Status.CRITICAL, f"certificate not trusted: {verify_error.verify_message}"))
        if expiry[0] is not Status.OK:
            findings.insert(0, expiry)
        obs = self._observations(shake)
        if not findings:
            return self.result(Status.OK, redact(expiry[1]), obs, **details)
        status = Status.worst([s for s, _ in findings])
        return self.result(status, redact("; ".join(m for _, m in findings)), obs, **details)
