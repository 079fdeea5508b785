"""`sre-agent notify test RECEIVER`: a marked test alert through the real receiver, and its answer printed."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import yaml

from tests.checks.certs import make_ca, make_leaf, server_context
from tests.notify.fakes import Answer, FakePagerDuty, FakeServer, FakeSlack
from tests.notify.smtpserver import SmtpServer

PD_KEY = "e93facc04764012d7bfb002500d5d1a6"
HOOK_TOKEN = "hook-t0ken-s3cret-value"


def write_config(tmp_path: Path, receivers: list[dict[str, object]]) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({
        "agent": {"state_dir": str(tmp_path / "state")},
        "alerting": {"route": {"receiver": receivers[0]["name"]}, "receivers": receivers}}))
    return path


async def sre(*args: str) -> tuple[int, str, str]:
    """The CLI in a subprocess, awaited, so fake servers on this event loop keep answering."""
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "agent.cli", *args, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE, env=dict(os.environ))
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_slack_gets_a_marked_test_alert_and_the_answer_is_printed(slack_server: FakeSlack, tmp_path: Path) -> None:
    cfg = write_config(tmp_path, [{"name": "slack-ops", "slack": {"webhook_url": slack_server.webhook_url}}])
    code, out, err = await sre("notify", "test", "-c", str(cfg), "slack-ops")
    assert code == 0, out + err
    assert "test alert -> slack-ops (slack): accepted" in out
    assert "answer: slack slack-ops: HTTP 200" in out
    [request] = slack_server.requests
    message = request.json
    assert message["blocks"][0]["text"]["text"] == "🟠 WARNING: sre-agent-test"
    assert message["text"].startswith("🟠 [WARNING sre-agent-test] [TEST] sre-agent test alert for receiver 'slack-ops'")
    assert slack_server.webhook_path not in out + err  # the webhook URL is a secret
    assert not (tmp_path / "state").exists()  # no store, no outbox: nothing queued


async def test_a_refusing_receiver_exits_1_with_what_it_said(tmp_path: Path) -> None:
    async with FakeServer() as hook:
        hook.answer(Answer(503, f"upstream down, token {HOOK_TOKEN}"), Answer(400, "bad payload"))
        cfg = write_config(tmp_path, [{"name": "hook", "webhook": {"url": hook.url + "/alerts",
                                                                   "headers": {"X-Token": HOOK_TOKEN}}}])
        code, out, err = await sre("notify", "test", "-c", str(cfg), "hook")
        assert code == 1
        assert "test alert -> hook (webhook): not accepted (would be retried)" in out
        assert "answer: webhook hook: HTTP 503: upstream down, token <redacted>" in out
        assert HOOK_TOKEN not in out + err
        code, out, _ = await sre("notify", "test", "-c", str(cfg), "hook")
        assert code == 1 and "refused (permanent)" in out and "HTTP 400: bad payload" in out
        assert [r.headers.get("X-Token") for r in hook.requests] == [HOOK_TOKEN, HOOK_TOKEN]


async def test_pagerduty_trigger_and_resolve_share_one_test_incident(pd_server: FakePagerDuty, tmp_path: Path) -> None:
    cfg = write_config(tmp_path, [{"name": "pd", "pagerduty": {"routing_key": PD_KEY, "url": pd_server.url + "/v2/enqueue"}}])
    code, out, err = await sre("notify", "test", "-c", str(cfg), "pd", "--severity", "info", "--resolve")
    assert code == 0, out + err
    trigger, resolve = pd_server.events
    assert (trigger["event_action"], resolve["event_action"]) == ("trigger", "resolve")
    assert trigger["dedup_key"] == resolve["dedup_key"] and trigger["dedup_key"].startswith("sre-agent-test-")
    assert trigger["payload"]["severity"] == "info" and "[TEST]" in trigger["payload"]["summary"]
    assert "resolve -> pd (pagerduty): accepted" in out
    code, out, _ = await sre("notify", "test", "-c", str(cfg), "pd")
    assert code == 0 and "stays open in pagerduty until resolved there; --resolve sends the resolve" in out
    assert PD_KEY not in out


async def test_email_test_through_a_real_smtp_server(tmp_path: Path) -> None:
    ca = make_ca(tmp_path / "pki")
    with SmtpServer(server_context(make_leaf(tmp_path / "pki", ca))) as smtp:
        cfg = write_config(tmp_path, [{"name": "email-sre", "email": {
            "to": ["oncall@example.com"], "from": "alerts@example.com",
            "smtp": {"host": "127.0.0.1", "port": smtp.port, "ca_file": str(ca.cert_file)}}}])
        code, out, err = await sre("notify", "test", "-c", str(cfg), "email-sre")
        assert code == 0, out + err
        assert "accepted" in out and "queued as 4711" in out
        assert smtp.received[0].message["Subject"].startswith("[sre-agent] WARNING sre-agent-test: [TEST]")


async def test_unknown_receiver_lists_the_configured_ones(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, [{"name": "log", "log": {}}, {"name": "ops", "log": {}}])
    code, _, err = await sre("notify", "test", "-c", str(cfg), "slack-ops")
    assert code == 2 and "unknown receiver 'slack-ops'; configured receivers: log, ops" in err
    code, out, err = await sre("notify", "test", "-c", str(cfg), "ops")
    assert code == 0 and "test alert -> ops (log): accepted" in out
    assert "[TEST] sre-agent test alert" in err  # the log receiver's line
