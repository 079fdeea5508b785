"""HTTP surface on one listener: /metrics, health, reload and the JSON API.

Reads are open (they expose only what /metrics already does, redacted);
writes (reload included) need `Authorization: Bearer <agent.api_token>`
compared in constant time, and are refused (403) when no token is configured:
never open. SIGHUP reloads without a token.
"""

from __future__ import annotations

import asyncio

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from agent.web import AGENT_KEY, AgentView, error, json_response, require_token

__all__ = ["AGENT_KEY", "build_app", "error", "json_response", "require_token"]


async def metrics(request: web.Request) -> web.Response:
    agent = request.app[AGENT_KEY]
    # Rendering thousands of series takes tens of ms: do it off the event loop (collectors are thread-safe).
    body = await asyncio.get_running_loop().run_in_executor(None, generate_latest, agent.metrics.registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok\n")


async def readyz(request: web.Request) -> web.Response:
    agent = request.app[AGENT_KEY]
    if agent.ready:
        return web.Response(text="ready\n")
    return web.Response(status=503, text="not ready: config not loaded or scheduler not running\n")


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


def build_app(agent: AgentView) -> web.Application:
    app = web.Application()
    app[AGENT_KEY] = agent
    app.add_routes([
        web.get("/metrics", metrics),
        web.get("/healthz", healthz),
        web.get("/readyz", readyz),
        web.post("/-/reload", reload),
        web.get("/api/v1/checks", list_checks),
        web.post("/api/v1/checks/{name}/run", run_check),
    ])
    for component in agent.components:
        add = getattr(component, "add_routes", None)
        if add is not None:
            add(app)
    return app
