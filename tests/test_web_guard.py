"""The listener's guard in-process (agent.web): the cap, eviction, 503, slow heads, accept errors."""

from __future__ import annotations

import asyncio
import errno
import logging

import pytest
from aiohttp import web

from agent.web import AcceptErrorReporter, ConnectionGuard, GuardedSite, connection_cap


@pytest.fixture
async def serve():
    runners: list[web.AppRunner] = []
    release = asyncio.Event()

    async def start(cap: int, header_timeout: float = 5.0,
                    probe_slots: int = 0) -> tuple[int, ConnectionGuard, list[str]]:
        rejected: list[str] = []
        guard = ConnectionGuard(cap, header_timeout, on_reject=rejected.append, probe_slots=probe_slots)

        async def slow(request: web.Request) -> web.Response:
            await release.wait()
            return web.Response(text="slow\n")

        async def fast(request: web.Request) -> web.Response:
            return web.Response(text="fast\n")

        async def who(request: web.Request) -> web.Response:
            return web.Response(text="probe-only\n" if guard.probe_only(request.transport) else "regular\n")

        app = web.Application()
        app.add_routes([web.get("/slow", slow), web.get("/fast", fast), web.get("/healthz", who)])
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.5)
        await runner.setup()
        runners.append(runner)
        site = GuardedSite(runner, "127.0.0.1", 0, guard)
        await site.start()
        return site.sockets[0].getsockname()[1], guard, rejected

    yield start
    release.set()
    for runner in runners:
        await runner.cleanup()


async def request(port: int, path: str) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    try:
        async with asyncio.timeout(5):
            return await reader.read()
    finally:
        writer.close()


async def test_over_the_cap_with_every_connection_busy_is_503(serve):
    port, guard, rejected = await serve(cap=2)
    busy = [asyncio.ensure_future(request(port, "/slow")) for _ in range(2)]
    for _ in range(100):
        if guard.open == 2 and not guard.waiting:
            break
        await asyncio.sleep(0.01)
    assert guard.open == 2 and not guard.waiting
    answer = await request(port, "/fast")
    assert answer.startswith(b"HTTP/1.1 503"), answer
    assert rejected == ["limit"]
    for task in busy:
        task.cancel()
    await asyncio.gather(*busy, return_exceptions=True)


async def test_past_the_cap_a_few_connections_are_kept_for_probes(serve):
    port, guard, rejected = await serve(cap=1, probe_slots=1)
    busy = asyncio.ensure_future(request(port, "/slow"))
    for _ in range(100):
        if guard.open == 1 and not guard.waiting:
            break
        await asyncio.sleep(0.01)
    assert (await request(port, "/healthz")).endswith(b"probe-only\n")
    assert (await request(port, "/healthz")).endswith(b"probe-only\n")  # the probe slot was given back
    assert rejected == []
    assert (await request(port, "/fast")).startswith(b"HTTP/1.1 503")  # probe slots serve probes only
    assert rejected == ["limit"]
    busy.cancel()
    await asyncio.gather(busy, return_exceptions=True)
    for _ in range(100):
        if guard.open == 0:
            break
        await asyncio.sleep(0.01)
    assert (await request(port, "/healthz")).endswith(b"regular\n")


async def test_a_new_connection_takes_the_place_of_the_oldest_idle_one(serve):
    port, guard, rejected = await serve(cap=2)
    idle = [await asyncio.open_connection("127.0.0.1", port) for _ in range(2)]
    for _ in range(100):
        if guard.open == 2:
            break
        await asyncio.sleep(0.01)
    answer = await request(port, "/fast")
    assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"fast\n")
    assert rejected == ["evicted"]
    oldest_reader, _ = idle[0]
    async with asyncio.timeout(5):
        assert (await oldest_reader.read()).startswith(b"HTTP/1.1 503")
    for _, writer in idle:
        writer.close()


async def test_a_slow_request_head_is_answered_408_and_closed(serve):
    port, guard, rejected = await serve(cap=10, header_timeout=0.3)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /fast HTTP/1.1\r\nHost:")
    async with asyncio.timeout(5):
        answer = await reader.read()
    assert answer.startswith(b"HTTP/1.1 408")
    assert rejected == ["header_timeout"]
    writer.close()
    # A complete head in time is served, and its connection does not count as waiting any more.
    assert (await request(port, "/fast")).endswith(b"fast\n")
    assert guard.waiting == {}


def test_connection_cap_keeps_descriptors_for_checks(caplog):
    assert connection_cap(256, 1024) == 256
    assert connection_cap(256, 524288) == 256
    with caplog.at_level(logging.WARNING):
        lowered = connection_cap(256, 512)
    assert lowered == (512 - 128 - 128) // 2
    assert "lowered to 128" in caplog.text and "LimitNOFILE" in caplog.text
    assert connection_cap(256, 100) == 8


def test_accept_errors_are_counted_and_logged_once_per_interval(caplog):
    loop = asyncio.new_event_loop()
    try:
        counted: list[int] = []
        others: list[dict] = []
        reporter = AcceptErrorReporter(lambda: counted.append(1), interval=3600,
                                       fallback=lambda lp, ctx: others.append(ctx))
        context = {"message": AcceptErrorReporter.MESSAGE,
                   "exception": OSError(errno.EMFILE, "Too many open files")}
        with caplog.at_level(logging.ERROR):
            for _ in range(50):
                reporter(loop, context)
            reporter(loop, {"message": "something else"})
        lines = [r for r in caplog.records if "cannot accept API connections" in r.getMessage()]
        assert len(counted) == 50
        assert len(lines) == 1 and "Too many open files" in lines[0].getMessage()
        assert not any(r.exc_info for r in caplog.records)
        assert others == [{"message": "something else"}]
    finally:
        loop.close()


def test_bad_request_log_is_one_line_and_bounded():
    from aiohttp.http_exceptions import BadHttpMessage

    from agent.web import BadRequestLog

    quiet = BadRequestLog(burst=2, interval=3600)

    def record(exc: BaseException) -> logging.LogRecord:
        return logging.LogRecord("aiohttp.server", logging.ERROR, __file__, 1, "Error handling request from %s",
                                 ("127.0.0.1",), (type(exc), exc, None))

    first = record(BadHttpMessage("Invalid character in Content-Length:\n\n  b'abc'"))
    assert quiet.filter(first)
    assert (first.levelno, first.exc_info) == (logging.INFO, None)
    assert first.getMessage() == "bad HTTP request from 127.0.0.1: 400 Invalid character in Content-Length:"
    assert quiet.filter(record(BadHttpMessage("x")))
    assert not quiet.filter(record(BadHttpMessage("x")))  # past the burst: dropped, and counted
    bug = record(RuntimeError("a bug in a handler"))
    assert quiet.filter(bug) and bug.exc_info is not None and bug.levelno == logging.ERROR
