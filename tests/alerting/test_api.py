"""The alerting API and CLI against a real in-process agent on 127.0.0.1 (port 0)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
import pytest
from click.testing import CliRunner
from prometheus_client import CollectorRegistry

from agent.cli import main
from agent.daemon import Agent
from tests.alerting.helpers import write_config

TOKEN = "s3cret-token-for-tests"
ROOT = Path(__file__).resolve().parents[2]


def agent_config(tmp_path, token: bool) -> str:
    return f"""
agent:
  listen: 127.0.0.1:0
  state_dir: {tmp_path / "state"}
  {"api_token: " + TOKEN if token else ""}
checks:
  - name: api
    type: command
    command: ["false"]
    interval: 100ms
    labels: {{service: api}}
    runbook: runbooks/api.md
    alert: {{after: 1}}
alerting:
  route: {{receiver: log, group_wait: 0s}}
  silences:
    - {{matchers: {{service: db}}, starts_at: 2026-01-01T00:00:00Z, duration: 1000d, comment: db migration}}
  receivers:
    - {{name: log, log: {{}}}}
"""


@pytest.fixture
async def running(tmp_path):
    started: list[Agent] = []

    async def start(token: bool = True) -> tuple[Agent, str]:
        (tmp_path / "runbooks").mkdir(exist_ok=True)
        (tmp_path / "runbooks" / "api.md").write_text("# API down\n\n1. Check the load balancer.\n")
        agent = Agent(write_config(tmp_path, agent_config(tmp_path, token)), registry=CollectorRegistry())
        await agent.start()
        started.append(agent)
        return agent, f"http://127.0.0.1:{agent.port}"

    yield start
    for agent in started:
        await agent.stop()


async def eventually(fn, within=5.0):
    deadline = time.monotonic() + within
    while True:
        value = await fn()
        if value or time.monotonic() > deadline:
            return value
        await asyncio.sleep(0.05)


async def test_writes_are_refused_without_a_configured_token(running):
    _, url = await running(token=False)
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{url}/api/v1/silences", json={"matchers": {"service": "api"}, "duration": "1h",
                                                              "comment": "x"}) as r:
            assert r.status == 403
        async with http.get(f"{url}/api/v1/silences") as r:
            assert r.status == 200
            assert [s["comment"] for s in (await r.json())["silences"]] == ["db migration"]


async def test_silence_lifecycle_through_the_api(running):
    _, url = await running()
    body = {"matchers": {"service": "api"}, "duration": "2h", "comment": "deploy", "created_by": "alice"}
    async with aiohttp.ClientSession() as http:
        async def firing():
            async with http.get(f"{url}/api/v1/alerts?state=firing") as r:
                return (await r.json())["alerts"]

        [alert] = await eventually(firing)
        assert alert["check"] == "api" and alert["suppressed_by"] is None
        assert alert["runbook_url"] == f"{url}/api/v1/runbooks/api"
        async with http.get(alert["runbook_url"]) as r:
            assert r.status == 200 and "Check the load balancer" in await r.text()
        async with http.get(alert["generator_url"]) as r:
            assert [c["name"] for c in (await r.json())["checks"]] == ["api"]

        async with http.post(f"{url}/api/v1/silences", json=body) as r:
            assert r.status == 401
        async with http.post(f"{url}/api/v1/silences", json=body, headers={"Authorization": "Bearer wrong"}) as r:
            assert r.status == 401
        auth = {"Authorization": f"Bearer {TOKEN}"}
        async with http.post(f"{url}/api/v1/silences", json={"matchers": {}, "comment": ""}, headers=auth) as r:
            assert r.status == 400
            problems = (await r.json())["problems"]
            assert any(p.startswith("comment:") for p in problems)
        async with http.post(f"{url}/api/v1/silences", json=body, headers=auth) as r:
            assert r.status == 201
            silence_id = (await r.json())["id"]

        async def silenced():
            alerts = await firing()
            return alerts and alerts[0]["suppressed_by"] == f"silence:{silence_id}"

        assert await eventually(silenced)
        async with http.get(f"{url}/api/v1/silences") as r:
            listed = {s["id"]: s for s in (await r.json())["silences"]}
        assert listed[silence_id]["status"] == "active" and listed[silence_id]["created_by"] == "alice"

        async with http.delete(f"{url}/api/v1/silences/{silence_id}", headers=auth) as r:
            assert r.status == 200 and (await r.json())["silence"]["status"] == "expired"
        async with http.delete(f"{url}/api/v1/silences/nope", headers=auth) as r:
            assert r.status == 404
        config_silence = next(k for k in listed if k.startswith("cfg-"))
        async with http.delete(f"{url}/api/v1/silences/{config_silence}", headers=auth) as r:
            assert r.status == 409

        async def unsilenced():
            alerts = await firing()
            return alerts and alerts[0]["suppressed_by"] is None

        assert await eventually(unsilenced)
        async with http.get(f"{url}/api/v1/alerts?state=bogus") as r:
            assert r.status == 400
        async with http.get(f"{url}/metrics") as r:
            text = await r.text()
        assert 'sre_agent_alerts_suppressed_total{reason="silenced"} 1.0' in text
        assert TOKEN not in text


async def test_cli_talks_to_the_running_agent(running, tmp_path, monkeypatch):
    _, url = await running()
    runner = CliRunner()

    def cli(*args: str):
        return asyncio.to_thread(runner.invoke, main, list(args), catch_exceptions=False)

    out = await cli("silence", "add", "--url", url, "--token", TOKEN, "-m", "service=api", "--duration", "2h",
                    "--comment", "deploy")
    assert out.exit_code == 0, out.output
    silence_id = out.output.split()[1]
    out = await cli("silence", "list", "--url", url)
    assert silence_id in out.output and "service=api" in out.output and "deploy" in out.output
    out = await cli("silence", "add", "--url", url, "--token", "wrong", "-m", "service=api", "-d", "1h", "--comment", "x")
    assert out.exit_code == 1 and "401" in out.output
    monkeypatch.setenv("SRE_AGENT_API_TOKEN", TOKEN)
    out = await cli("silence", "expire", "--url", url, silence_id)
    assert out.exit_code == 0 and "expired" in out.output
    out = await cli("silence", "list", "--url", url)
    assert silence_id not in out.output

    async def alerts_table():
        out = await cli("alerts", "--url", url)
        return out.output if "firing" in out.output else ""

    table = await eventually(alerts_table)
    assert "api" in table and "warning" in table and "api is" not in table.splitlines()[0]
    out = await cli("alerts", "--url", "http://127.0.0.1:1")
    assert out.exit_code == 1 and "cannot reach the agent" in out.output


def test_runbook_command(tmp_path):
    (tmp_path / "runbooks").mkdir()
    (tmp_path / "runbooks" / "api.md").write_text("# API down\n")
    cfg = write_config(tmp_path, agent_config(tmp_path, token=False).replace("alerting:", """\
  - {name: nobook, type: command, command: ["true"]}
  - {name: missing, type: command, command: ["true"], runbook: runbooks/nope.md}
  - {name: online, type: command, command: ["true"], runbook: "https://wiki.example.com/o"}
alerting:"""))
    (tmp_path / "runbooks" / "nope.md").write_text("# soon gone\n")
    runner = CliRunner()
    out = runner.invoke(main, ["runbook", "-c", str(cfg), "api"])
    assert out.exit_code == 0 and out.output == "# API down\n"
    (tmp_path / "runbooks" / "nope.md").unlink()  # the config names a runbook that does not exist: refused
    out = runner.invoke(main, ["runbook", "-c", str(cfg), "missing"])
    assert out.exit_code == 2 and "checks[2].runbook: runbook 'runbooks/nope.md' not found" in out.output
    cfg.write_text(cfg.read_text().replace("runbook: runbooks/nope.md", ""))
    out = runner.invoke(main, ["runbook", "-c", str(cfg), "nobook"])  # no runbook: its type's default
    default = (ROOT / "runbooks" / "command-check-failed.md").read_text(encoding="utf-8")
    assert out.exit_code == 0 and out.output == default
    out = runner.invoke(main, ["runbook", "-c", str(cfg), "online"])
    assert out.exit_code == 0 and "https://wiki.example.com/o" in out.output
    out = runner.invoke(main, ["runbook", "-c", str(cfg), "ghost"])
    assert out.exit_code == 1 and "unknown check 'ghost'" in out.output
