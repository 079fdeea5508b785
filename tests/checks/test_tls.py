"""The tls check against asyncio TLS servers on 127.0.0.1 with generated certificates."""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from agent.config import ConfigError, load_config
from agent.context import CheckContext
from agent.core import Status
from checks import _tlsinfo
from checks.tls import TlsCheck, TlsConfig
from tests.checks.certs import Issued, make_ca, make_leaf, server_context


@pytest.fixture
async def serve():
    servers: list[asyncio.AbstractServer] = []

    async def start(ctx: ssl.SSLContext | None, protocol: type[asyncio.Protocol] = asyncio.Protocol) -> int:
        server = await asyncio.get_running_loop().create_server(protocol, "127.0.0.1", 0, ssl=ctx)
        servers.append(server)
        return int(server.sockets[0].getsockname()[1])

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


@pytest.fixture
def ca(tmp_path: Path) -> Issued:
    return make_ca(tmp_path)


def make(port: int, ca: Issued | None = None, **kw) -> TlsCheck:
    kw.setdefault("timeout", "2s")
    if ca is not None:
        kw.setdefault("ca_file", str(ca.cert_file))
    return TlsCheck(TlsConfig(name="t", type="tls", host="127.0.0.1", port=port, **kw), CheckContext())


async def test_valid_certificate(serve, ca, tmp_path):
    port = await serve(server_context(make_leaf(tmp_path, ca, days=90)))
    result = await make(port, ca).run()
    assert result.status is Status.OK, result.summary
    assert result.summary.startswith("certificate valid for 90 days (until ")
    obs = result.observations
    assert 89.9 < obs["cert_expiry_days"] <= 90
    assert obs["handshake_seconds"] > 0 and obs["connect_seconds"] > 0
    details = result.details
    assert details["verified"] is True and details["hostname_match"] is True
    assert details["tls_version"].startswith("TLS")
    assert details["chain"][0]["subject"] == "CN=localhost"
    assert details["chain"][0]["dns_names"] == ["localhost"] and details["chain"][0]["ip_addresses"] == ["127.0.0.1"]


async def test_expiring_soon_warns_then_goes_critical(serve, ca, tmp_path):
    port = await serve(server_context(make_leaf(tmp_path, ca, days=10)))
    warn = await make(port, ca).run()  # defaults: warning 21d, critical 7d
    assert warn.status is Status.WARNING
    assert warn.summary.startswith("certificate expires in 10 days")
    crit = await make(port, ca, cert_expiry={"warning": "30d", "critical": "14d"}).run()
    assert crit.status is Status.CRITICAL


async def test_expired_keeps_reporting_negative_days(serve, ca, tmp_path):
    port = await serve(server_context(make_leaf(tmp_path, ca, expired_days_ago=3)))
    result = await make(port, ca).run()
    assert result.status is Status.CRITICAL
    assert result.summary.startswith("certificate expired 3 days ago")
    assert -3.1 < result.observations["cert_expiry_days"] < -2.9
    assert result.details["verified"] is False
    assert result.details["verify_error"] == "certificate has expired"
    assert "not trusted" not in result.summary  # the expiry is the reason, said once


async def test_hostname_mismatch(serve, ca, tmp_path):
    port = await serve(server_context(make_leaf(tmp_path, ca)))
    result = await make(port, ca, server_name="api.example.com").run()
    assert result.status is Status.CRITICAL
    assert result.summary == "certificate does not match 'api.example.com' (it names localhost, 127.0.0.1)"
    assert result.details["hostname_match"] is False
    assert result.observations["cert_expiry_days"] > 300


async def test_server_name_is_sent_as_sni(serve, ca, tmp_path):
    seen: list[str | None] = []
    ctx = server_context(make_leaf(tmp_path, ca))
    ctx.sni_callback = lambda _sock, name, _ctx: seen.append(name)
    port = await serve(ctx)
    result = await make(port, ca, server_name="localhost").run()
    assert result.status is Status.OK, result.summary
    assert seen == ["localhost"]


async def test_untrusted_issuer(serve, ca, tmp_path):
    port = await serve(server_context(make_leaf(tmp_path, ca, days=200)))
    result = await make(port).run()  # the system store does not know the test CA
    assert result.status is Status.CRITICAL
    assert result.summary.startswith("certificate not trusted: ")
    assert 199 < result.observations["cert_expiry_days"] <= 200


async def test_verify_false_reports_expiry_only(serve, ca, tmp_path):
    port = await serve(server_context(make_leaf(tmp_path, ca, "other", sans=("other.example",), days=100)))
    result = await make(port, verify=False).run()
    assert result.status is Status.OK, result.summary
    assert result.details["verified"] is False and result.details["hostname_match"] is False


async def test_earliest_expiry_across_served_chain(serve, tmp_path):
    ca = make_ca(tmp_path, "Short CA", days=10)
    port = await serve(server_context(make_leaf(tmp_path, ca, days=300), chain=(ca,)))
    result = await make(port, ca).run()
    assert len(result.details["chain"]) == 2
    assert result.status is Status.WARNING
    assert result.summary.startswith("certificate CN=Short CA in the chain expires in 10 days")
    assert result.details["earliest_expiry"] == "CN=Short CA"


async def test_connection_refused():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = await make(port).run()
    assert result.status is Status.CRITICAL
    assert result.summary == f"connection refused (127.0.0.1:{port})"


async def test_silent_server_times_out_fast(serve):
    port = await serve(None)  # accepts TCP, never speaks TLS
    started = time.perf_counter()
    result = await make(port, timeout="300ms").run()
    assert time.perf_counter() - started < 1.5
    assert result.status is Status.CRITICAL
    assert result.summary == f"timed out after 300ms during the TLS handshake to 127.0.0.1:{port}"
    assert "connect_seconds" in result.observations


async def test_plaintext_server_fails_handshake(serve):
    class Http(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            transport.write(b"HTTP/1.1 400 Bad Request\r\n\r\n")  # type: ignore[attr-defined]
            transport.close()

    port = await serve(None, Http)
    result = await make(port).run()
    assert result.status is Status.CRITICAL
    assert "TLS handshake" in result.summary or "connection lost" in result.summary, result.summary


def test_chain_reading_uses_full_served_chain():
    """Python 3.11's SSLObject has no public chain API; the C object must provide it."""
    ssl_object = ssl.create_default_context().wrap_bio(ssl.MemoryBIO(), ssl.MemoryBIO(), server_hostname="x")
    assert hasattr(ssl_object, "get_unverified_chain") or hasattr(ssl_object._sslobj, "get_unverified_chain")
    assert _tlsinfo.peer_chain_der(None) == []


def test_hostname_matching(ca, tmp_path):
    cert = _tlsinfo.parse_der(make_leaf(tmp_path, ca, "svc", sans=("*.example.com", "api.example.org", "10.1.2.3"))
                              .cert.public_bytes(serialization.Encoding.DER))
    assert _tlsinfo.matches_hostname(cert, "www.example.com")
    assert not _tlsinfo.matches_hostname(cert, "a.b.example.com")
    assert not _tlsinfo.matches_hostname(cert, "example.com")
    assert _tlsinfo.matches_hostname(cert, "API.example.org.")
    assert _tlsinfo.matches_hostname(cert, "10.1.2.3") and not _tlsinfo.matches_hostname(cert, "10.1.2.4")


@pytest.mark.parametrize(("snippet", "path", "words"), [
    ("host: api.example.com\n    port: 0", "checks[0].port", "1-65535"),
    ("host: https://api.example.com", "checks[0].host", "no scheme"),
    ("host: api.example.com\n    cert_expiry: {warning: 3 weeks}", "checks[0].cert_expiry.warning", "invalid duration"),
])
def test_config_errors_name_the_field(tmp_path: Path, snippet, path, words):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"checks:\n  - name: t\n    type: tls\n    {snippet}\n")
    with pytest.raises(ConfigError) as err:
        load_config(cfg, env={})
    assert f"{path}:" in str(err.value) and words in str(err.value), str(err.value)


def test_config_defaults(tmp_path: Path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("checks:\n  - {name: api-tls, type: tls, host: api.example.com}\n")
    check = load_config(cfg, env={}).all_checks()[0]
    assert isinstance(check, TlsConfig) and check.port == 443 and check.verify
    assert check.cert_expiry.warning is not None and check.cert_expiry.warning.days == 21
