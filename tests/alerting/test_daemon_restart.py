"""The real daemon, killed with SIGKILL mid-outage: every notification still arrives exactly once.

`sre-agent run` runs as a subprocess with a failing command check and a
webhook receiver pointing at an aiohttp server in this test, which answers 503
until told otherwise. The agent is killed (-9) while the trigger is queued,
restarted, and then the server accepts: the trigger arrives once, with the
idempotency key of the row written before the kill, and the later resolve
arrives once too.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from aiohttp import web

from tests.alerting.helpers import write_config

ROOT = Path(__file__).resolve().parents[2]
DEADLINE = 25.0


class Endpoint:
    def __init__(self) -> None:
        self.accepting = False
        self.requests: list[dict] = []

    async def handle(self, request: web.Request) -> web.Response:
        body = json.loads(await request.text())
        self.requests.append({"key": request.headers.get("Idempotency-Key"), "accepted": self.accepting, "body": body})
        return web.Response(status=200 if self.accepting else 503, text="{}")

    def accepted(self) -> list[dict]:
        return [r for r in self.requests if r["accepted"]]


def start_agent(config: Path, log: Path) -> subprocess.Popen[bytes]:
    sre_agent = Path(sys.executable).parent / "sre-agent"
    argv = [str(sre_agent)] if sre_agent.exists() else [sys.executable, "-m", "agent.cli"]
    with log.open("ab") as out:
        return subprocess.Popen([*argv, "run", "-c", str(config)], cwd=ROOT, stdout=out, stderr=out,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})


async def until(condition, what: str, log: Path) -> None:
    deadline = time.monotonic() + DEADLINE
    while not condition():
        if time.monotonic() > deadline:
            tail = (await asyncio.to_thread(log.read_text))[-3000:]
            raise AssertionError(f"timed out waiting for {what}; agent log:\n{tail}")
        await asyncio.sleep(0.05)


async def test_kill_9_mid_outage_then_everything_is_delivered_exactly_once(tmp_path):
    endpoint = Endpoint()
    app = web.Application()
    app.router.add_post("/alerts", endpoint.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    healthy = tmp_path / "healthy"
    config = write_config(tmp_path, f"""
agent: {{listen: "127.0.0.1:0", state_dir: {tmp_path / "state"}}}
checks:
  - name: payments-api
    type: command
    command: [test, -e, {healthy}]
    interval: 200ms
    timeout: 2s
    labels: {{service: payments}}
    alert: {{after: 2, resolve_after: 1}}
alerting:
  route: {{receiver: hook, group_wait: 0s, group_interval: 500ms, repeat_interval: 1h}}
  outbox: {{initial_backoff: 100ms, max_backoff: 300ms, max_age: 1h}}
  receivers:
    - name: hook
      webhook: {{url: "http://127.0.0.1:{port}/alerts", timeout: 2s}}
""")
    log = tmp_path / "agent.log"
    agent = start_agent(config, log)
    try:
        await until(lambda: len(endpoint.requests) >= 3, "the trigger to be retried", log)
        agent.send_signal(signal.SIGKILL)
        agent.wait(timeout=10)
        before_kill = list(endpoint.requests)
        assert {r["body"]["status"] for r in before_kill} == {"firing"}
        assert len({r["key"] for r in before_kill}) == 1  # one row, retried with one key

        agent = start_agent(config, log)
        await until(lambda: len(endpoint.requests) > len(before_kill), "the restarted agent to retry", log)
        endpoint.accepting = True
        await until(lambda: len(endpoint.accepted()) >= 1, "the trigger to be accepted", log)
        healthy.touch()
        await until(lambda: len(endpoint.accepted()) >= 2, "the resolve to be accepted", log)
        await asyncio.sleep(1.0)  # room for any duplicate to show up
    finally:
        if agent.poll() is None:
            agent.send_signal(signal.SIGTERM)
            try:
                agent.wait(timeout=10)
            except subprocess.TimeoutExpired:
                agent.kill()
                agent.wait()
        await runner.cleanup()

    accepted = endpoint.accepted()
    assert [r["body"]["status"] for r in accepted] == ["firing", "resolved"], accepted
    trigger, resolve = (r["body"]["alerts"][0] for r in accepted)
    assert trigger["dedup_key"] == resolve["dedup_key"]
    assert trigger["state"] == "firing" and resolve["state"] == "resolved" and resolve["ends_at"] is not None
    assert accepted[0]["key"] == before_kill[0]["key"]  # the row written before the kill, not a new page
    assert len({r["key"] for r in endpoint.requests}) == 2  # one trigger row and one resolve row, ever
    assert trigger["labels"]["service"] == "payments" and trigger["check"] == "payments-api"
    assert agent.returncode == 0
