"""Freshness from files, from a Prometheus query API and from a JSON field over HTTP (local servers)."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from agent.config import AgentSettings
from agent.context import CheckContext
from agent.core import Status
from tests.freshness.util import HOUR, freshness_check, run


class Api:
    """A local HTTP server whose answers the test sets; records the queries it got."""

    def __init__(self) -> None:
        self.answer: Any = {}
        self.status = 200
        self.queries: list[str] = []
        self.auth: list[str | None] = []
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.queries.append(request.query.get("query", ""))
        self.auth.append(request.headers.get("Authorization"))
        return web.json_response(self.answer, status=self.status)


@pytest.fixture
async def api() -> AsyncIterator[Api]:
    state = Api()
    app = web.Application()
    app.router.add_get("/api/v1/query", state.handle)
    app.router.add_get("/status", state.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    state.url = f"http://127.0.0.1:{port}"
    try:
        yield state
    finally:
        await runner.cleanup()


def vector(*values: float) -> dict[str, Any]:
    return {"status": "success", "data": {"resultType": "vector",
                                          "result": [{"metric": {"job": f"etl{i}"}, "value": [time.time(), str(v)]}
                                                     for i, v in enumerate(values)]}}


async def test_file_source_newest_mtime(tmp_path: Path):
    for name, age in (("a.parquet", 8 * HOUR), ("b.parquet", 7 * HOUR), ("c.csv", 0)):
        (tmp_path / name).write_bytes(b"x")
        os.utime(tmp_path / name, (time.time() - age, time.time() - age))
    src = {"kind": "file", "path": str(tmp_path), "pattern": "*.parquet"}
    result = await run(freshness_check(name="exports-fresh", source=src, warn_after="6h"))
    assert result.status == Status.WARNING
    assert result.observations["age_seconds"] == pytest.approx(7 * HOUR, abs=10)
    assert result.details["read"] == f"newest file {tmp_path / 'b.parquet'}"
    none = await run(freshness_check(source={"kind": "file", "path": str(tmp_path), "pattern": "*.json"}, warn_after="6h"))
    assert none.status == Status.CRITICAL
    assert none.summary.startswith("no data")


async def test_prometheus_timestamp_the_stalest_series_decides(api: Api):
    now = time.time()
    api.answer = vector(now - 600, now - 3 * HOUR)
    src = {"kind": "prometheus", "url": api.url, "query": "etl_last_success_timestamp_seconds", "bearer_token": "tok-123456"}
    result = await run(freshness_check(source=src, warn_after="1h", error_after="4h"), now)
    assert result.status == Status.WARNING
    assert result.observations["age_seconds"] == pytest.approx(3 * HOUR, abs=1)
    assert api.queries == ["etl_last_success_timestamp_seconds"]
    assert api.auth == ["Bearer tok-123456"]


async def test_prometheus_url_defaults_to_the_agent_setting(api: Api):
    from agent.config import config_model

    api.answer = {"status": "success", "data": {"resultType": "scalar", "result": [time.time(), str(time.time() - 60)]}}
    config = config_model()(agent=AgentSettings(prometheus_url=api.url))
    check = freshness_check(CheckContext(config=config), source={"kind": "prometheus", "query": "time() - 60"},
                            error_after="1h")
    result = await run(check)
    assert result.status == Status.OK, result.summary


async def test_prometheus_empty_error_and_down(api: Api):
    api.answer = vector()
    src = {"kind": "prometheus", "url": api.url, "query": "max(etl_last_success_timestamp_seconds)"}
    empty = await run(freshness_check(source=src, error_after="1h"))
    assert empty.status == Status.CRITICAL
    assert empty.summary == "no data: max(etl_last_success_timestamp_seconds) returned no series"
    api.status, api.answer = 400, {"status": "error", "errorType": "bad_data", "error": "parse error at char 4"}
    bad = await run(freshness_check(source=src, error_after="1h"))
    assert bad.status == Status.UNKNOWN
    assert "bad_data: parse error at char 4" in bad.summary
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}"
    down = await run(freshness_check(source={**src, "url": closed}, error_after="1h"))
    assert down.status == Status.UNKNOWN
    assert down.summary.startswith("Prometheus unreachable: ConnectError")


async def test_http_json_field_iso8601_and_epoch(api: Api):
    api.answer = {"data": {"items": [{"updated": "2024-05-01T10:00:00+02:00"}], "epoch": 1714550400}}
    now = 1714550400 + 2 * HOUR  # 2024-05-01T08:00:00Z + 2h
    iso = {"kind": "http", "url": api.url + "/status", "json_path": "data.items[0].updated"}
    result = await run(freshness_check(source=iso, warn_after="1h", error_after="3h"), now)
    assert result.status == Status.WARNING
    assert result.observations["age_seconds"] == 2 * HOUR
    assert result.details["last_update"] == "2024-05-01T08:00:00+00:00"
    epoch = {"kind": "http", "url": api.url + "/status", "json_path": "$.data.epoch"}
    assert (await run(freshness_check(source=epoch, error_after="1h"), now)).status == Status.CRITICAL


async def test_http_missing_field_and_error_status(api: Api):
    api.answer = {"data": {}}
    src = {"kind": "http", "url": api.url + "/status", "json_path": "data.updated"}
    missing = await run(freshness_check(source=src, error_after="1h"))
    assert missing.status == Status.CRITICAL
    assert missing.summary == "no data: data.updated not found in the answer"
    api.answer = {"data": {"updated": "yesterday-ish"}}
    garbled = await run(freshness_check(source=src, error_after="1h"))
    assert garbled.status == Status.UNKNOWN
    assert garbled.summary == "data.updated is not a timestamp: got str 'yesterday-ish'"
    api.status = 503
    failing = await run(freshness_check(source=src, error_after="1h"))
    assert failing.status == Status.CRITICAL
    assert failing.summary.endswith("answered HTTP 503")
