"""The silence API under hostile input (issue 14.19): 400 naming the field, 415, a cap, pages.

Against a real in-process agent on 127.0.0.1 (port 0), like tests/alerting/test_api.py.
"""

from __future__ import annotations

import asyncio
import json
import logging

import aiohttp
import pytest
from click.testing import CliRunner
from prometheus_client import CollectorRegistry

from agent.alerting import api as alerting_api
from agent.cli import alerting as cli_alerting
from agent.cli import main
from agent.config import ConfigError, load_config
from agent.daemon import Agent
from tests.alerting.helpers import write_config

TOKEN = "s3cret-token-for-hardening-tests"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def agent_config(tmp_path, max_silences: int | None = None) -> str:
    cap = f"\n  max_silences: {max_silences}" if max_silences is not None else ""
    return f"""
agent:
  listen: 127.0.0.1:0
  state_dir: {tmp_path / "state"}
  api_token: {TOKEN}
checks:
  - {{name: api, type: command, command: ["true"], interval: 1h, labels: {{service: api}}}}
alerting:{cap}
  route: {{receiver: log}}
  receivers:
    - {{name: log, log: {{}}}}
"""


@pytest.fixture
async def running(tmp_path):
    started: list[Agent] = []

    async def start(max_silences: int | None = None) -> str:
        agent = Agent(write_config(tmp_path, agent_config(tmp_path, max_silences)), registry=CollectorRegistry())
        await agent.start()
        started.append(agent)
        return f"http://127.0.0.1:{agent.port}"

    yield start
    for agent in started:
        await agent.stop()


def silence(n: int = 0, **extra) -> dict:
    return {"matchers": {"service": f"svc-{n}"}, "duration": "2h", "comment": f"silence {n}", **extra}


async def post(http: aiohttp.ClientSession, url: str, body: dict | None = None, *, data: str | None = None,
               content_type: str = "application/json") -> tuple[int, dict]:
    payload = data if data is not None else json.dumps(body)
    async with http.post(f"{url}/api/v1/silences", data=payload,
                         headers={**AUTH, "Content-Type": content_type}) as r:
        return r.status, await r.json()


def tracebacks(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.exc_info or "Traceback" in r.getMessage()]


async def test_overflowing_duration_is_a_400_naming_the_field(running, caplog):
    url = await running()
    caplog.set_level(logging.INFO)
    async with aiohttp.ClientSession() as http:
        status, body = await post(http, url, silence(duration="99999999999d"))
    assert status == 400, body
    [problem] = body["problems"]
    assert problem.startswith("duration: ") and "too long" in problem
    assert not tracebacks(caplog)
    rejected = [r for r in caplog.records if "rejected (400)" in r.getMessage()]
    assert len(rejected) == 1 and "duration" in rejected[0].getMessage()


async def test_deeply_nested_json_is_a_400_naming_the_field(running, caplog):
    url = await running()
    deep = '{"comment": "x", "matchers": ' + "[" * 100_000 + "]" * 100_000 + "}"
    async with aiohttp.ClientSession() as http:
        status, body = await post(http, url, data=deep)
        assert status == 400, body
        assert body["problems"] == ["matchers: nested more than 64 levels deep; a silence is a flat object"]
        status, body = await post(http, url, data="[" * 100_000)
        assert status == 400 and body["problems"][0].startswith("<body>: nested")
        # Moderately nested input parses and is refused by the schema, still naming the field.
        status, body = await post(http, url, data='{"matchers": {"a": ' + "[" * 50 + "]" * 50 + '}, "comment": "x"}')
        assert status == 400 and any(p.startswith("matchers.a: ") for p in body["problems"]), body
    assert not tracebacks(caplog)


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded"])
async def test_a_body_that_is_not_declared_json_is_refused(running, content_type):
    url = await running()
    async with aiohttp.ClientSession() as http:
        status, body = await post(http, url, silence(), content_type=content_type)
        assert status == 415
        assert "Content-Type must be application/json" in body["error"]
        async with http.get(f"{url}/api/v1/silences") as r:
            assert (await r.json())["silences"] == []
        status, _ = await post(http, url, silence(), content_type="application/json; charset=utf-8")
        assert status == 201


async def test_malformed_bodies_are_400_without_traceback(running, caplog):
    url = await running()
    async with aiohttp.ClientSession() as http:
        for data in ("{not json", "[]", '"a string"', '{"matchers": {"a": "b"}, "duration": 5, "comment": "x"}',
                     '{"matchers": {"a": "b"}, "ends_at": "99999-01-01", "comment": "x"}'):
            status, body = await post(http, url, data=data)
            assert status == 400, (data, body)
    assert not tracebacks(caplog)


async def test_silences_are_capped(running):
    url = await running(max_silences=3)
    async with aiohttp.ClientSession() as http:
        for n in range(3):
            status, _ = await post(http, url, silence(n))
            assert status == 201
        status, body = await post(http, url, silence(3))
        assert status == 409
        assert "alerting.max_silences is 3" in body["error"]
        async with http.get(f"{url}/api/v1/silences") as r:
            data = await r.json()
        assert data["total"] == 3
        # Expiring one makes room again.
        async with http.delete(f"{url}/api/v1/silences/{data['silences'][0]['id']}", headers=AUTH) as r:
            assert r.status == 200
        status, _ = await post(http, url, silence(4))
        assert status == 201


async def test_concurrent_creates_do_not_overshoot_the_cap(running):
    url = await running(max_silences=5)
    async with aiohttp.ClientSession() as http:
        statuses = await asyncio.gather(*(post(http, url, silence(n)) for n in range(12)))
        async with http.get(f"{url}/api/v1/silences") as r:
            total = (await r.json())["total"]
    assert sorted(s for s, _ in statuses) == [201] * 5 + [409] * 7
    assert total == 5


def test_max_silences_default_and_config_check(tmp_path):
    assert load_config(write_config(tmp_path, agent_config(tmp_path))).alerting.max_silences == 1000
    too_many = agent_config(tmp_path, max_silences=1).replace("  route:", """\
  silences:
    - {matchers: {a: b}, starts_at: 2026-01-01T00:00:00Z, duration: 1h}
    - {matchers: {a: c}, starts_at: 2026-01-01T00:00:00Z, duration: 1h}
  route:""")
    with pytest.raises(ConfigError) as info:
        load_config(write_config(tmp_path, too_many))
    assert "alerting.silences: 2 silences configured, more than alerting.max_silences (1)" in str(info.value)


async def test_the_silence_list_is_paginated(running):
    url = await running()
    async with aiohttp.ClientSession() as http:
        for n in range(5):
            assert (await post(http, url, silence(n)))[0] == 201

        async def page(query: str) -> tuple[int, dict]:
            async with http.get(f"{url}/api/v1/silences{query}") as r:
                return r.status, await r.json()

        status, everything = await page("")
        assert status == 200 and everything["total"] == 5 and len(everything["silences"]) == 5
        assert (everything["limit"], everything["offset"]) == (alerting_api.DEFAULT_PAGE, 0)
        ids = [s["id"] for s in everything["silences"]]
        _, first = await page("?limit=2")
        _, second = await page("?limit=2&offset=2")
        _, last = await page("?limit=2&offset=4")
        _, beyond = await page("?limit=2&offset=10")
        assert [s["id"] for s in first["silences"] + second["silences"] + last["silences"]] == ids
        assert beyond["silences"] == [] and beyond["total"] == 5
        for query, name in (("?limit=0", "limit"), ("?limit=1001", "limit"), ("?limit=abc", "limit"),
                            ("?offset=-1", "offset")):
            status, body = await page(query)
            assert status == 400 and body["error"].startswith(f"{name} must be an integer"), (query, body)


async def test_cli_silence_list_follows_the_pages(running, monkeypatch):
    url = await running()
    monkeypatch.setattr(alerting_api, "DEFAULT_PAGE", 2)  # an old client asks without limit: gets 2
    monkeypatch.setattr(cli_alerting, "SILENCE_PAGE", 2)
    async with aiohttp.ClientSession() as http:
        for n in range(5):
            assert (await post(http, url, silence(n)))[0] == 201
    runner = CliRunner()
    out = await asyncio.to_thread(runner.invoke, main, ["silence", "list", "--url", url], catch_exceptions=False)
    assert out.exit_code == 0, out.output
    assert all(f"service=svc-{n}" in out.output for n in range(5)), out.output
    out = await asyncio.to_thread(runner.invoke, main, ["silence", "list", "--url", url, "-o", "json"],
                                  catch_exceptions=False)
    assert len(json.loads(out.output)) == 5


async def test_malformed_http_logs_one_line_without_traceback(running, caplog):
    url = await running()
    port = int(url.rsplit(":", 1)[1])
    caplog.set_level(logging.INFO)
    for _ in range(3):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /api/v1/silences HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n")
        async with asyncio.timeout(5):
            assert (await reader.read()).startswith(b"HTTP/1.0 400")
        writer.close()
    await asyncio.sleep(0.1)
    assert not tracebacks(caplog)
    lines = [r for r in caplog.records if r.name == "aiohttp.server"]
    assert len(lines) == 3 and all(r.levelno == logging.INFO for r in lines)
    assert "bad HTTP request from 127.0.0.1: 400 Invalid character in Content-Length" in lines[0].getMessage()
