"""Throwaway PKI for TLS tests: a CA, server and client certificates, in a tmp dir.

Tests need certificates that are valid, expire soon, have expired, or name
the wrong host, signed by a CA the probe is told to trust. EC P-256 keys keep
generation at about a millisecond per certificate.
"""

from __future__ import annotations

import ipaddress
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DEFAULT_SANS = ("localhost", "127.0.0.1")


@dataclass
class Issued:
    """A certificate and its key, in memory and as PEM files."""

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey
    cert_file: Path
    key_file: Path

    @property
    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)


def _write(directory: Path, stem: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> Issued:
    directory.mkdir(parents=True, exist_ok=True)
    cert_file, key_file = directory / f"{stem}.crt", directory / f"{stem}.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return Issued(cert, key, cert_file, key_file)


def _window(days: float, expired_days_ago: float | None) -> tuple[datetime, datetime]:
    now = datetime.now(UTC)
    if expired_days_ago is not None:
        return now - timedelta(days=expired_days_ago + 30), now - timedelta(days=expired_days_ago)
    return now - timedelta(hours=1), now + timedelta(days=days)


def make_ca(directory: Path, name: str = "Test CA", *, days: float = 3650,
            expired_days_ago: float | None = None) -> Issued:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    not_before, not_after = _window(days, expired_days_ago)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject).issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before).not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return _write(directory, name.lower().replace(" ", "-"), cert, key)


def make_leaf(directory: Path, ca: Issued, name: str = "localhost", *, sans: tuple[str, ...] = DEFAULT_SANS,
              days: float = 365, expired_days_ago: float | None = None, client: bool = False) -> Issued:
    """A server (or, with `client=True`, client) certificate signed by `ca`."""
    key = ec.generate_private_key(ec.SECP256R1())
    alt: list[x509.GeneralName] = []
    for san in sans:
        try:
            alt.append(x509.IPAddress(ipaddress.ip_address(san)))
        except ValueError:
            alt.append(x509.DNSName(san))
    not_before, not_after = _window(days, expired_days_ago)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before).not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH if client
                                              else ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False)
    )
    if alt:
        builder = builder.add_extension(x509.SubjectAlternativeName(alt), critical=False)
    cert = builder.sign(ca.key, hashes.SHA256())
    stem = f"{'client' if client else 'server'}-{name}-{x509.random_serial_number() % 10**6}"
    return _write(directory, stem, cert, key)


def server_context(leaf: Issued, *, chain: tuple[Issued, ...] = (), client_ca: Issued | None = None) -> ssl.SSLContext:
    """A server-side context serving `leaf` (plus `chain`), optionally requiring client certificates."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    bundle = leaf.cert_file
    if chain:
        bundle = leaf.cert_file.with_suffix(".chain.pem")
        bundle.write_bytes(leaf.pem + b"".join(c.pem for c in chain))
    ctx.load_cert_chain(bundle, leaf.key_file)
    if client_ca is not None:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(cafile=str(client_ca.cert_file))
    return ctx
