"""The tcp check against asyncio servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from agent.config import ConfigError, load_config
from agent.context import CheckContext
from agent.core import Status
from checks.tcp import TcpCheck, TcpConfig


class _Scripted(asyncio.Protocol):
    """Answers each received chunk with `reply(data)`; no tasks, so nothing can leak."""

    def __init__(self, reply: Callable[[bytes], bytes | None], greeting: bytes | None) -> None:
        self.reply, self.greeting = reply, greeting

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        if self.greeting is not None:
            transport.write(self.greeting)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        answer = self.reply(data)
        if answer is not None:
            self.transport.write(answer)  # type: ignore[attr-defined]
            if answer.endswith(b"BYE\n"):
                self.transport.close()


@pytest.fixture
async def serve():
    servers: list[asyncio.AbstractServer] = []

    async def start(reply: Callable[[bytes], bytes | None] = lambda d: None, greeting: bytes | None = None) -> int:
        server = await asyncio.get_running_loop().create_server(lambda: _Scripted(reply, greeting), "127.0.0.1", 0)
        servers.append(server)
        return int(server.sockets[0].getsockname()[1])

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


def make(port: int, **kw) -> TcpCheck:
    kw.setdefault("timeout", "2s")
    return TcpCheck(TcpConfig(name="t", type="tcp", host="127.0.0.1", port=port, **kw), CheckContext())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_connect_ok(serve):
    port = await serve()
    result = await make(port).run()
    assert result.status is Status.OK, result.summary
    assert result.summary.startswith(f"connected to 127.0.0.1:{port} in ")
    assert 0 < result.observations["connect_seconds"] < 2


async def test_refused_is_critical():
    result = await make(free_port()).run()
    assert result.status is Status.CRITICAL
    assert result.summary == "connection refused"
    assert "connect_seconds" not in result.observations


async def test_send_and_expect(serve):
    port = await serve(lambda d: b"+PONG\r\n" if d == b"PING\r\n" else b"-ERR\r\n")
    ok = await make(port, send="PING\r\n", expect="PONG").run()
    assert ok.status is Status.OK, ok.summary
    assert "got 'PONG'" in ok.summary
    assert ok.details["received"] == "+PONG\r\n"
    assert ok.observations["latency_seconds"] >= ok.observations["connect_seconds"]


async def test_expect_banner_without_send(serve):
    port = await serve(greeting=b"SSH-2.0-Test\r\n")
    assert (await make(port, expect="SSH-2.0").run()).status is Status.OK


async def test_expect_never_arrives_times_out(serve):
    port = await serve(lambda d: b"-ERR\r\n")
    started = time.perf_counter()
    result = await make(port, send="PING\r\n", expect="PONG", timeout="300ms").run()
    assert time.perf_counter() - started < 1.5
    assert result.status is Status.CRITICAL
    assert result.summary == "timed out after 300ms waiting for 'PONG' (got 6 bytes)"
    assert "connect_seconds" in result.observations


async def test_closed_before_expect(serve):
    port = await serve(lambda d: b"nope BYE\n")
    result = await make(port, send="hi\n", expect="PONG").run()
    assert result.status is Status.CRITICAL
    assert result.summary == "connection closed before 'PONG' was received (got 9 bytes)"


async def test_latency_thresholds(serve):
    loop = asyncio.get_running_loop()

    class Slow(asyncio.Protocol):
        """Answers 150ms after each request."""

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport

        def data_received(self, data: bytes) -> None:
            loop.call_later(0.15, self.transport.write, b"PONG")  # type: ignore[attr-defined]

    server = await loop.create_server(Slow, "127.0.0.1", 0)
    try:
        port = server.sockets[0].getsockname()[1]
        warn = await make(port, send="x", expect="PONG", latency={"warning": "50ms", "critical": "5s"}).run()
        crit = await make(port, send="x", expect="PONG", latency={"warning": "10ms", "critical": "100ms"}).run()
    finally:
        server.close()
        await server.wait_closed()
    assert warn.status is Status.WARNING, warn.summary
    assert "over warning threshold 50ms" in warn.summary
    assert crit.status is Status.CRITICAL and "over critical threshold 100ms" in crit.summary


async def test_unresolvable_host_is_critical():
    check = TcpCheck(TcpConfig(name="t", type="tcp", host="no-such-host.invalid", port=80, timeout="2s"),
                     CheckContext())
    result = await check.run()
    assert result.status is Status.CRITICAL
    assert "no-such-host.invalid" in result.summary


@pytest.mark.parametrize(("snippet", "path", "words"), [
    ("host: 127.0.0.1\n    port: 70000", "checks[0].port", "port must be 1-65535, got 70000"),
    ("host: 127.0.0.1\n    port: 0", "checks[0].port", "1-65535"),
    ("host: tcp://db\n    port: 5432", "checks[0].host", "no scheme"),
    ("host: db", "checks[0].port", "required"),
])
def test_config_errors_name_the_field(tmp_path: Path, snippet, path, words):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"checks:\n  - name: db\n    type: tcp\n    {snippet}\n")
    with pytest.raises(ConfigError) as err:
        load_config(cfg, env={})
    assert f"{path}:" in str(err.value) and words in str(err.value), str(err.value)


def test_config_from_yaml(tmp_path: Path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("checks:\n  - {name: db-port, type: tcp, host: 127.0.0.1, port: 5432, send: \"PING\\r\\n\"}\n")
    check = load_config(cfg, env={}).all_checks()[0]
    assert isinstance(check, TcpConfig) and check.port == 5432 and check.send == "PING\r\n"
