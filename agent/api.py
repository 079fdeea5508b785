"""HTTP surface on one listener: /metrics, health, reload, the JSON API and the status page.

Reads are open (they expose only what /metrics already does, redacted);
writes (reload included) need `Authorization: Bearer <agent.api_token>`
compared in constant time, and are refused (403) when no token is configured:
never open. SIGHUP reloads without a token.

API work must never starve the checks: at most `MAX_HANDLERS` requests are
handled at once (the rest wait up to `QUEUE_WAIT`, then get 503), and
/metrics is rendered on the API's own two threads, not the pool checks use.
/healthz and /readyz skip the queue (and have a few connections of their own past
the connection cap) so probes answer under load. The
listener's own limits (connections, header and idle timeouts) are in
`agent.web`.
"""

from __future__ import annotations

import asyncio
import time
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

from aiohttp import web

from agent.metrics import Piece, piece_bytes
from agent.statuspage.routes import add_routes as add_status_page
from agent.web import (
    AGENT_KEY,
    PROBE_PATHS,
    AgentView,
    ConnectionGuard,
    Handler,
    error,
    json_response,
    require_token,
)

MAX_HANDLERS = 16
QUEUE_WAIT = 5.0
UNQUEUED = PROBE_PATHS
SLOTS_KEY: web.AppKey[asyncio.Semaphore] = web.AppKey("handler-slots")
RENDER_KEY: web.AppKey[ThreadPoolExecutor] = web.AppKey("render-executor")
GUARD_KEY: web.AppKey[ConnectionGuard] = web.AppKey("connection-guard")

#: bytes per write of a streamed /metrics body
STREAM_BATCH = 1 << 18

__all__ = ["AGENT_KEY", "build_app", "error", "json_response", "require_token"]


async def metrics(request: web.Request) -> web.StreamResponse:
    agent = request.app[AGENT_KEY]
    accept, encoding = request.headers.get("Accept"), request.headers.get("Accept-Encoding", "")
    gzipped = "gzip" in encoding.lower()
    loop = asyncio.get_running_loop()
    executor = request.app[RENDER_KEY]
    # Off the event loop (collectors are thread-safe): per-check lines come cached, the rest is rendered.
    pieces, content_type = await loop.run_in_executor(executor, agent.metrics.exposition_pieces, accept)
    headers = {"Content-Type": content_type, "Vary": "Accept, Accept-Encoding"}
    if gzipped:
        headers["Content-Encoding"] = "gzip"
        return web.Response(body=await loop.run_in_executor(executor, _gzip, pieces), headers=headers)
    # Streamed in batches: the whole body (25 MB for 10,000 checks) is never one more copy in memory.
    response = web.StreamResponse(headers=headers)
    response.content_length = sum(map(len, pieces))
    await response.prepare(request)
    if request.method != "HEAD":  # HEAD: the headers (and length) only
        for batch in _batches(pieces):
            await response.write(batch)
    await response.write_eof()
    return response


def _batches(pieces: list[Piece], size: int = STREAM_BATCH) -> Iterator[bytes]:
    """The pieces joined into runs of about `size` bytes (formatted ones formatted here, a run at a time)."""
    run: list[bytes] = []
    length = 0
    for piece in pieces:
        run.append(piece_bytes(piece))
        length += len(piece)
        if length >= size:
            yield b"".join(run)
            run, length = [], 0
    if run:
        yield b"".join(run)


def _gzip(pieces: list[Piece]) -> bytes:
    # Level 1: a 10,000-check exposition is tens of MB; higher levels cost more CPU than they save in bytes.
    compressor = zlib.compressobj(1, zlib.DEFLATED, 31)  # wbits 31: the gzip container
    out = [compressor.compress(batch) for batch in _batches(pieces)]
    out.append(compressor.flush())
    return b"".join(out)


async def healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok\n")


async def readyz(request: web.Request) -> web.Response:
    agent = request.app[AGENT_KEY]
    if not agent.ready:
        return web.Response(status=503, text="not ready: config not loaded or scheduler not running\n")
    if not getattr(agent, "has_lease", True):
        return web.Response(status=503, text="not ready: lost the replica lease (the state store is unreachable); "
                            "running the checks it had, taking no new ones\n")
    store = agent.store
    if store is not None and store.failing_since is not None:
        since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(store.failing_since))
        return web.Response(status=503, text=f"not ready: the state store cannot be written since {since} "
                                             f"({store.last_error}); checks run and alerts are sent from memory\n")
    return web.Response(text="ready\n")


@require_token
async def reload(request: web.Request) -> web.Response:
    agent = request.app[AGENT_KEY]
    ok, errors = await agent.reload()
    if ok:
        return json_response({"status": "reloaded", "checks": len(agent.scheduler.checks) if agent.scheduler else 0})
    return json_response({"status": "failed", "errors": errors}, status=400)


async def list_checks(request: web.Request) -> web.Response:
    agent = request.app[AGENT_KEY]
    latest = agent.metrics.results.latest()
    out = []
    wanted = request.query.get("name")  # alerts link here as ?name=<check>
    for name, check in sorted((agent.scheduler.checks if agent.scheduler else {}).items()):
        if wanted is not None and name != wanted:
            continue
        r = latest.get(name)
        nxt = agent.scheduler.next_run(name) if agent.scheduler else None
        out.append({"name": name, "type": check.config.type, "labels": check.config.labels,
                    "next_run": nxt.isoformat() if nxt else None, "last_result": r.to_dict() if r else None})
    return json_response({"checks": out})


@require_token
async def run_check(request: web.Request) -> web.Response:
    agent = request.app[AGENT_KEY]
    name = request.match_info["name"]
    check = agent.scheduler.checks.get(name) if agent.scheduler else None
    if check is None:
        return error(404, f"no check named {name!r}")
    result = await agent.scheduler.run_now(check)  # type: ignore[union-attr]
    return json_response(result.to_dict())


@web.middleware
async def bounded(request: web.Request, handler: Handler) -> web.StreamResponse:
    """At most MAX_HANDLERS requests in their handlers at once; health probes skip the queue.

    A connection the guard admitted past its cap (`ConnectionGuard.probe_only`) serves the probes alone.
    """
    guard = request.app.get(GUARD_KEY)
    over_cap = guard is not None and guard.probe_only(request.transport)
    if request.path in UNQUEUED:
        answer = await handler(request)
        if over_cap:
            answer.force_close()
        return answer
    if over_cap:
        request.app[AGENT_KEY].metrics.api_rejected.labels("limit").inc()
        refused = error(503, "too many connections to the agent's API; retry shortly")
        refused.headers["Retry-After"] = "1"
        refused.force_close()
        return refused
    slots = request.app[SLOTS_KEY]
    try:
        async with asyncio.timeout(QUEUE_WAIT):
            await slots.acquire()
    except TimeoutError:
        request.app[AGENT_KEY].metrics.api_rejected.labels("busy").inc()
        response = error(503, "the agent's API is busy; retry shortly")
        response.headers["Retry-After"] = "1"
        return response
    try:
        return await handler(request)
    finally:
        slots.release()


async def _stop_rendering(app: web.Application) -> None:
    app[RENDER_KEY].shutdown(wait=False, cancel_futures=True)


def build_app(agent: AgentView, guard: ConnectionGuard | None = None) -> web.Application:
    app = web.Application(middlewares=[bounded])
    app[AGENT_KEY] = agent
    if guard is not None:
        app[GUARD_KEY] = guard
    app[SLOTS_KEY] = asyncio.Semaphore(MAX_HANDLERS)
    app[RENDER_KEY] = ThreadPoolExecutor(max_workers=2, thread_name_prefix="sre-agent-api")
    app.on_cleanup.append(_stop_rendering)
    app.add_routes([
        web.get("/metrics", metrics),
        web.get("/healthz", healthz),
        web.get("/readyz", readyz),
        web.post("/-/reload", reload),
        web.get("/api/v1/checks", list_checks),
        web.post("/api/v1/checks/{name}/run", run_check),
    ])
    add_status_page(app)
    for component in agent.components:
        add = getattr(component, "add_routes", None)
        if add is not None:
            add(app)
    return app
