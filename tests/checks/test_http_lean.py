"""The http check's lean path (`checks._http1`) against raw servers on 127.0.0.1.

Byte-level servers give the responses a library server would not: chunked
and close-delimited bodies, garbage, a connection dropped before or inside
the response. The same probes through aiohttp's path must read the same.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from agent.context import CheckContext
from agent.core import Status
from checks import _http1
from checks.http import SESSION_KEY, HttpCheck, HttpConfig

Reply = Callable[[bytes], bytes | None]  # request bytes -> raw response (None: close without answering)


@pytest.fixture
async def raw() -> AsyncIterator[Callable[[Reply], Any]]:
    servers: list[asyncio.Server] = []
    seen: list[bytes] = []

    async def start(reply: Reply) -> int:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            request = await reader.readuntil(b"\r\n\r\n")
            seen.append(request)
            answer = reply(request)
            if answer:
                writer.write(answer)
                await writer.drain()
            writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        servers.append(server)
        return int(server.sockets[0].getsockname()[1])

    start.seen = seen  # type: ignore[attr-defined]
    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


@pytest.fixture
async def ctx() -> AsyncIterator[CheckContext]:
    context = CheckContext()
    yield context
    await HttpCheck.close_shared(context)


def make(ctx: CheckContext, url: str, **kw: Any) -> HttpCheck:
    kw.setdefault("timeout", "2s")
    return HttpCheck(HttpConfig(name="t", type="http", url=url, **kw), ctx)


CHUNKED = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: text/plain; charset=latin-1\r\n\r\n" \
          b"3\r\nall\r\n4\r\n is \r\n4\r\nwell\r\n0\r\n\r\n"
UNTIL_CLOSE = b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nok until close"


@pytest.mark.parametrize(("response", "body"), [(CHUNKED, "all is well"), (UNTIL_CLOSE, "ok until close")])
async def test_chunked_and_close_delimited_bodies_read_whole_on_both_paths(ctx, raw, response, body,
                                                                          monkeypatch) -> None:
    port = await raw(lambda _req: response)
    check = make(ctx, f"http://127.0.0.1:{port}/x", expect={"body_contains": body})
    lean = await check.run()
    assert lean.status is Status.OK and lean.observations["body_bytes"] == len(body) and SESSION_KEY not in ctx.shared
    monkeypatch.setattr(_http1, "eligible", lambda *_a: False)
    library = await make(ctx, f"http://127.0.0.1:{port}/x", expect={"body_contains": body}).run()
    assert SESSION_KEY in ctx.shared
    assert (library.status, library.observations["body_bytes"]) == (lean.status, lean.observations["body_bytes"])
    assert set(library.observations) == set(lean.observations)


async def test_head_reads_no_body(ctx, raw) -> None:
    port = await raw(lambda _req: b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
    result = await make(ctx, f"http://127.0.0.1:{port}/", method="HEAD").run()
    assert result.status is Status.OK and result.observations["body_bytes"] == 0
    assert raw.seen[-1].startswith(b"HEAD / HTTP/1.1\r\n")


@pytest.mark.parametrize(("response", "sentence"), [
    (b"garbage\r\n\r\n", "invalid HTTP response"),
    (None, "server closed the connection without a complete response"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten b", "response body incomplete"),
])
async def test_broken_responses_are_named(ctx, raw, response, sentence) -> None:
    port = await raw(lambda _req: response)
    result = await make(ctx, f"http://127.0.0.1:{port}/").run()
    assert result.status is Status.CRITICAL and result.summary.startswith(sentence), result.summary


async def test_informational_answers_are_skipped_and_no_content_has_no_body(ctx, raw) -> None:
    early = b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"
    port = await raw(lambda _req: early + b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Final: yes\r\n\r\nok")
    result = await make(ctx, f"http://127.0.0.1:{port}/", expect={"body_contains": "ok", "headers": {"X-Final": "yes"}}).run()
    assert result.status is Status.OK and result.observations["status_code"] == 200, result.summary
    port = await raw(lambda _req: b"HTTP/1.1 204 No Content\r\n\r\n")
    result = await make(ctx, f"http://127.0.0.1:{port}/", expect={"status": [204]}).run()
    assert result.status is Status.OK and result.observations["body_bytes"] == 0, result.summary


async def test_a_head_over_the_limit_and_a_bad_request_header_are_named(ctx, raw) -> None:
    huge = b"HTTP/1.1 200 OK\r\n" + b"".join(b"X-Pad-%d: %s\r\n" % (i, b"x" * 1000) for i in range(80)) + b"\r\n"
    port = await raw(lambda _req: huge)
    result = await make(ctx, f"http://127.0.0.1:{port}/").run()
    assert result.status is Status.CRITICAL and result.summary.startswith("invalid HTTP response: status line and headers over 64 KiB")
    result = await make(ctx, f"http://127.0.0.1:{port}/", headers={"X-Token": "a\r\nInjected: 1"}).run()
    assert result.status is Status.CRITICAL and "control character" in result.summary
    assert "Injected" not in result.summary


async def test_redirects_keep_credentials_on_their_origin_only(ctx, raw) -> None:
    final = await raw(lambda _req: b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    same: dict[str, int] = {}

    def hop(req: bytes) -> bytes:
        if req.startswith(b"GET /start"):
            return b"HTTP/1.1 302 Found\r\nLocation: /next\r\nContent-Length: 0\r\n\r\n"
        return f"HTTP/1.1 301 Moved\r\nLocation: http://localhost:{final}/end\r\nContent-Length: 0\r\n\r\n".encode()

    same["port"] = await raw(hop)
    result = await make(ctx, f"http://127.0.0.1:{same['port']}/start", headers={"Authorization": "Bearer s3cr3t-t0ken"},
                        expect={"body_contains": "ok"}).run()
    assert result.status is Status.OK, result.summary
    assert result.details["redirects"] == 2 and result.details["final_url"] == f"http://localhost:{final}/end"
    start, nxt, end = raw.seen[-3:]
    assert b"Authorization: Bearer" in start and b"Authorization: Bearer" in nxt  # same origin
    assert b"Authorization" not in end and b"Host: localhost:" in end  # another origin
    assert "dns_seconds" in result.observations  # localhost was resolved


async def test_a_redirect_the_probe_cannot_follow_and_a_loop(ctx, raw) -> None:
    port = await raw(lambda _req: b"HTTP/1.1 302 Found\r\nLocation: ftp://127.0.0.1/file\r\nContent-Length: 0\r\n\r\n")
    result = await make(ctx, f"http://127.0.0.1:{port}/").run()
    assert result.status is Status.CRITICAL and "cannot follow the redirect" in result.summary
    loop = await raw(lambda _req: b"HTTP/1.1 302 Found\r\nLocation: /again\r\nContent-Length: 0\r\n\r\n")
    result = await make(ctx, f"http://127.0.0.1:{loop}/", max_redirects=2).run()
    assert result.summary == "too many redirects (more than 2)"


async def test_a_probe_leaves_no_cycle_for_the_garbage_collector(ctx, raw, monkeypatch) -> None:
    import gc
    import weakref

    made: list[weakref.ref[Any]] = []
    real = _http1._Protocol

    class Recorded(real):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any) -> None:
            super().__init__(*args)
            made.append(weakref.ref(self))

    monkeypatch.setattr(_http1, "_Protocol", Recorded)
    port = await raw(lambda _req: b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    gc.disable()
    try:
        result = await make(ctx, f"http://127.0.0.1:{port}/").run()
        for _ in range(3):
            await asyncio.sleep(0)  # the transport's connection_lost callbacks
        assert result.status is Status.OK and made
        assert made[0]() is None, "the protocol is only freed by a garbage collection"
    finally:
        gc.enable()


def test_what_the_lean_path_takes() -> None:
    assert _http1.eligible("GET", "http://127.0.0.1:8080/healthz?a=1", None)
    assert _http1.eligible("HEAD", "https://api.example.com/", None)
    assert not _http1.eligible("POST", "http://127.0.0.1/", "x")
    assert not _http1.eligible("GET", "http://user:pw@127.0.0.1/", None)
    assert not _http1.eligible("GET", "http://127.0.0.1/a b", None)
    assert not _http1.eligible("GET", "http://127.0.0.1:99999/", None)


def test_the_lean_path_on_uvloop() -> None:
    uvloop = pytest.importorskip("uvloop")

    async def probe() -> tuple[Status, str]:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        ctx = CheckContext()
        try:
            result = await make(ctx, f"http://127.0.0.1:{port}/", expect={"body_contains": "ok"}).run()
        finally:
            server.close()
            await HttpCheck.close_shared(ctx)
        return result.status, result.summary

    status, summary = uvloop.run(probe())
    assert status is Status.OK, summary
