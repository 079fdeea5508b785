"""The dns check against a small authoritative UDP server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest

from agent.config import ConfigError, load_config
from agent.context import CheckContext
from agent.core import Status
from checks.dns import DnsCheck, DnsConfig, normalize, parse_server

ZONE: dict[tuple[str, str], list[str]] = {
    ("api.example.internal.", "A"): ["10.0.0.1", "10.0.0.2"],
    ("api.example.internal.", "AAAA"): ["2001:db8::1"],
    ("www.example.internal.", "CNAME"): ["API.example.internal."],
    ("example.internal.", "MX"): ["10 mail.example.internal."],
    ("example.internal.", "TXT"): ['"v=spf1 -all"'],
    ("example.internal.", "NS"): ["ns1.example.internal."],
    ("example.internal.", "SOA"): ["ns1.example.internal. admin.example.internal. 1 3600 600 86400 60"],
    ("example.internal.", "CAA"): ['0 issue "letsencrypt.org"'],
    ("_sip._tcp.example.internal.", "SRV"): ["0 5 5060 sip.example.internal."],
    ("1.0.0.10.in-addr.arpa.", "PTR"): ["api.example.internal."],
    ("lag.example.internal.", "A"): ["10.0.0.7"],
    ("empty.example.internal.", "TXT"): ['"only txt here"'],
}


class _DnsServer(asyncio.DatagramProtocol):
    """Answers from ZONE; `slow.` never answers, `lag.` answers late, `broken.` SERVFAILs."""

    def __init__(self) -> None:
        self.queries: list[tuple[str, str]] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.DatagramTransport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        query = dns.message.from_wire(data)
        question = query.question[0]
        name, rdtype = question.name.to_text().lower(), dns.rdatatype.to_text(question.rdtype)
        self.queries.append((name, rdtype))
        if name.startswith("slow."):
            return
        response = dns.message.make_response(query)
        known = {n for n, _ in ZONE}
        if name.startswith("broken."):
            response.set_rcode(dns.rcode.SERVFAIL)
        elif name not in known:
            response.set_rcode(dns.rcode.NXDOMAIN)
        elif (name, rdtype) in ZONE:
            response.answer.append(dns.rrset.from_text(name, 300, "IN", rdtype, *ZONE[(name, rdtype)]))
        wire = response.to_wire()
        if name.startswith("lag."):
            asyncio.get_running_loop().call_later(0.15, self.transport.sendto, wire, addr)
        else:
            self.transport.sendto(wire, addr)


@pytest.fixture
async def server():
    transport, protocol = await asyncio.get_running_loop().create_datagram_endpoint(
        _DnsServer, local_addr=("127.0.0.1", 0))
    protocol.port = transport.get_extra_info("sockname")[1]
    yield protocol
    transport.close()


def make(server: _DnsServer, query: str, record: str = "A", **kw) -> DnsCheck:
    kw.setdefault("timeout", "2s")
    config = DnsConfig(name="t", type="dns", query=query, record=record, server=f"127.0.0.1:{server.port}", **kw)
    return DnsCheck(config, CheckContext())


async def test_a_records_ok(server):
    result = await make(server, "api.example.internal", expect={"contains": ["10.0.0.1"]}).run()
    assert result.status is Status.OK, result.summary
    assert result.summary.startswith("A api.example.internal: 10.0.0.1, 10.0.0.2 in ")
    assert result.observations["answers"] == 2 and result.observations["ttl_seconds"] == 300
    assert 0 < result.observations["query_seconds"] < 2
    assert result.details["answers"] == ["10.0.0.1", "10.0.0.2"]
    assert server.queries == [("api.example.internal.", "A")]  # no search domains, one query


async def test_contains_missing_is_critical(server):
    result = await make(server, "api.example.internal", expect={"contains": ["10.0.0.1", "10.0.0.9"]}).run()
    assert result.status is Status.CRITICAL
    assert "missing 10.0.0.9" in result.summary


async def test_equals(server):
    same = await make(server, "api.example.internal", expect={"equals": ["10.0.0.2", "10.0.0.1"]}).run()
    assert same.status is Status.OK, same.summary
    other = await make(server, "api.example.internal", expect={"equals": ["10.0.0.1"]}).run()
    assert other.status is Status.CRITICAL and "expected exactly 10.0.0.1" in other.summary


async def test_min_answers(server):
    result = await make(server, "api.example.internal", expect={"min_answers": 3}).run()
    assert result.status is Status.CRITICAL and "2 answers, expected at least 3" in result.summary


async def test_nxdomain_is_critical(server):
    result = await make(server, "gone.example.internal").run()
    assert result.status is Status.CRITICAL
    assert "NXDOMAIN" in result.summary and result.observations["answers"] == 0


async def test_servfail_is_critical(server):
    result = await make(server, "broken.example.internal").run()
    assert result.status is Status.CRITICAL and "SERVFAIL" in result.summary


async def test_no_answer(server):
    empty = await make(server, "empty.example.internal").run()
    assert empty.status is Status.CRITICAL and "0 answers, expected at least 1" in empty.summary
    allowed = await make(server, "empty.example.internal", expect={"min_answers": 0}).run()
    assert allowed.status is Status.OK and "no A records" in allowed.summary


async def test_timeout_is_critical_and_fast(server):
    started = time.perf_counter()
    result = await make(server, "slow.example.internal", timeout="300ms").run()
    assert time.perf_counter() - started < 1.5
    assert result.status is Status.CRITICAL
    assert result.summary.startswith("A slow.example.internal: timed out after 300ms querying 127.0.0.1:")


async def test_server_not_listening_is_critical():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = DnsConfig(name="t", type="dns", query="a.example", server=f"127.0.0.1:{port}", timeout="500ms")
    result = await DnsCheck(config, CheckContext()).run()
    assert result.status is Status.CRITICAL


async def test_latency_thresholds(server):
    warn = await make(server, "lag.example.internal", latency={"warning": "50ms", "critical": "5s"}).run()
    assert warn.status is Status.WARNING and "query time" in warn.summary, warn.summary
    crit = await make(server, "lag.example.internal", latency={"critical": "100ms"}).run()
    assert crit.status is Status.CRITICAL and "over critical threshold 100ms" in crit.summary


@pytest.mark.parametrize(("query", "record", "expected"), [
    ("api.example.internal", "AAAA", "2001:DB8:0::1"),
    ("www.example.internal", "CNAME", "api.example.internal."),
    ("example.internal", "MX", "10 MAIL.example.internal"),
    ("example.internal", "TXT", "v=spf1 -all"),
    ("example.internal", "NS", "ns1.example.internal"),
    ("example.internal", "SOA", "ns1.example.internal admin.example.internal 1 3600 600 86400 60"),
    ("example.internal", "CAA", '0 issue "letsencrypt.org"'),
    ("_sip._tcp.example.internal", "SRV", "0 5 5060 sip.example.internal"),
    ("10.0.0.1", "PTR", "api.example.internal"),
])
async def test_record_types_normalized(server, query, record, expected):
    result = await make(server, query, record, expect={"equals": [expected]}).run()
    assert result.status is Status.OK, result.summary
    assert result.observations["answers"] == 1


def test_normalize_and_server_parsing():
    assert normalize("CNAME", "Api.Example.COM.") == "api.example.com"
    assert normalize("TXT", '"Case Kept"') == "Case Kept"
    assert normalize("AAAA", "2001:0db8::0001") == "2001:db8::1"
    assert parse_server("10.0.0.2") == ("10.0.0.2", 53)
    assert parse_server("127.0.0.1:5353") == ("127.0.0.1", 5353)
    assert parse_server("[fd00::1]:54") == ("fd00::1", 54)
    assert parse_server("fd00::1") == ("fd00::1", 53)


@pytest.mark.parametrize(("snippet", "path", "words"), [
    ("query: a.example\n    record: AXFR", "checks[0].record", "allowed: A, AAAA"),
    ("query: a.example\n    server: dns.example.com", "checks[0].server", "must be an IP address"),
    ("query: a.example\n    server: 10.0.0.1:99999", "checks[0].server", "1-65535"),
    ("query: a.example\n    expect: {contains: [not-an-ip]}", "checks[0].expect", "not an IPv4 address"),
    ("query: a.example\n    expect: {min_answers: -1}", "checks[0].expect.min_answers", "greater than or equal to 0"),
])
def test_config_errors_name_the_field(tmp_path: Path, snippet, path, words):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"checks:\n  - name: d\n    type: dns\n    {snippet}\n")
    with pytest.raises(ConfigError) as err:
        load_config(cfg, env={})
    assert f"{path}:" in str(err.value) and words in str(err.value), str(err.value)


def test_config_from_yaml(tmp_path: Path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("checks:\n  - {name: api-dns, type: dns, query: example.internal, record: mx,\n"
                   "     expect: {contains: [10 mail.example.internal]}, server: '[::1]:5353'}\n")
    check = load_config(cfg, env={}).all_checks()[0]
    assert isinstance(check, DnsConfig) and check.record == "MX" and check.server == "[::1]:5353"
