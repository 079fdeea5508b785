"""The status page's routes: `GET /`, `GET /status`, `GET /status.css`, `GET /api/v2/summary.json`.

All answer 404 until `status_page.enabled: true` (read on each request, so a
reload turns the page on or off). The view is built (and the HTML rendered)
at most once per `CACHE_SECONDS` and shared by the HTML and JSON routes: a
page polled by many browsers costs the store a few queries every few seconds,
not per visit.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from aiohttp import web

from agent.alerting.api import ENGINE_KEY
from agent.statuspage.config import StatusPageConfig
from agent.statuspage.page import PageView, build, render_html, stylesheet, summary_json
from agent.web import AGENT_KEY, error, json_response

CACHE_SECONDS = 5.0
DISABLED = "status page disabled: set status_page.enabled: true in the agent's config"


@dataclass
class _Cache:
    view: PageView | None = None
    built_at: float = 0.0
    lock: asyncio.Lock | None = None
    html: str | None = None


CACHE_KEY: web.AppKey[_Cache] = web.AppKey("status_page_cache", _Cache)


def _config(request: web.Request) -> StatusPageConfig | None:
    agent = request.app[AGENT_KEY]
    page = getattr(agent.config, "status_page", None) if agent.config is not None else None
    return page if isinstance(page, StatusPageConfig) and page.enabled else None


async def _view(request: web.Request, page: StatusPageConfig) -> PageView:
    cache = request.app[CACHE_KEY]
    if cache.lock is None:
        cache.lock = asyncio.Lock()
    async with cache.lock:
        now = time.time()
        if cache.view is None or now - cache.built_at >= CACHE_SECONDS or cache.view.title != page.title:
            agent = request.app[AGENT_KEY]
            assert agent.config is not None
            external = agent.config.agent.external_url
            cache.view = await build(page, agent.config.all_checks(), agent.metrics.results.latest(),
                                     request.app.get(ENGINE_KEY), agent.store, now,
                                     url=external.rstrip("/") + "/" if external else "")
            cache.built_at = now
            cache.html = None
        return cache.view


async def status_html(request: web.Request) -> web.StreamResponse:
    page = _config(request)
    if page is None:
        return web.Response(status=404, text=DISABLED + "\n")
    view = await _view(request, page)
    cache = request.app[CACHE_KEY]
    if cache.html is None or cache.view is not view:
        cache.html = render_html(view)  # a few ms, once per CACHE_SECONDS: not worth a thread of the checks' pool
    body = cache.html
    return web.Response(text=body, content_type="text/html", charset="utf-8",
                        headers={"Cache-Control": f"public, max-age={int(CACHE_SECONDS)}",
                                 "Content-Security-Policy": "default-src 'none'; style-src 'self' 'unsafe-inline'; "
                                                            "img-src 'self' data:; base-uri 'none'; form-action 'none'",
                                 "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"})


async def status_css(request: web.Request) -> web.StreamResponse:
    if _config(request) is None:
        return web.Response(status=404, text=DISABLED + "\n")
    return web.Response(body=stylesheet(), content_type="text/css", charset="utf-8",
                        headers={"Cache-Control": "public, max-age=300"})


async def summary(request: web.Request) -> web.StreamResponse:
    page = _config(request)
    if page is None:
        return error(404, DISABLED)
    response = json_response(summary_json(await _view(request, page)))
    response.headers["Access-Control-Allow-Origin"] = "*"  # status widgets on other sites read it
    return response


def add_routes(app: web.Application) -> None:
    app[CACHE_KEY] = _Cache()
    app.add_routes([
        web.get("/", status_html),
        web.get("/status", status_html),
        web.get("/status.css", status_css),
        web.get("/api/v2/summary.json", summary),
    ])
