"""Alertmanager receiver: payload shape on a local fake, then a real Alertmanager on 127.0.0.1."""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from agent.core import AlertState
from agent.notify.alertmanager import AlertmanagerReceiver, AlertmanagerSettings
from agent.notify.base import Outcome
from tests.notify.conftest import NOW, make_alert, make_notification
from tests.notify.fakes import Answer

ALERTMANAGER = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
AMTOOL = shutil.which("amtool")


def receiver(url: str, clock=time.time, **kw) -> AlertmanagerReceiver:
    return AlertmanagerReceiver("am", AlertmanagerSettings.model_validate({"url": url, **kw}), clock=clock)


async def test_firing_and_resolved_bodies(am_server, clock, closing):
    r = closing(receiver(am_server.url, clock))
    firing, resolved = make_alert("api-health"), make_alert("db-ping", state=AlertState.RESOLVED)
    assert (await r.send(make_notification(firing, resolved))).outcome == Outcome.SENT
    [request] = am_server.requests
    assert (request.method, request.path) == ("POST", "/api/v2/alerts")
    assert request.json == [
        {
            "labels": {"service": "api", "env": "prod", "alertname": "api-health", "check": "api-health",
                       "type": "http", "severity": "critical"},
            "annotations": {
                "summary": "GET https://api.example.com/healthz returned 503 (expected 200)",
                "description": "GET https://api.example.com/healthz returned 503 (expected 200) | "
                               "latency 2.3s, status code 503 | firing for 12m",
                "runbook_url": "https://runbooks.example.com/http-endpoint-down.md",
            },
            "startsAt": "2023-11-14T22:01:20.000Z",
            "generatorURL": "https://sre-agent.example.com/checks/api-health",
        },
        {
            "labels": {"service": "api", "env": "prod", "alertname": "db-ping", "check": "db-ping",
                       "type": "http", "severity": "critical"},
            "annotations": {
                "summary": "GET https://api.example.com/healthz returned 503 (expected 200)",
                "description": "GET https://api.example.com/healthz returned 503 (expected 200) | "
                               "latency 2.3s, status code 503 | resolved, lasted 11m",
                "runbook_url": "https://runbooks.example.com/http-endpoint-down.md",
            },
            "startsAt": "2023-11-14T22:01:20.000Z",
            "endsAt": "2023-11-14T22:12:20.000Z",
            "generatorURL": "https://sre-agent.example.com/checks/db-ping",
        },
    ]


async def test_firing_ttl_and_alertname_override(am_server, clock, closing):
    r = closing(receiver(am_server.url, clock, firing_ttl="15m"))
    alert = make_alert(labels={"alertname": "ApiDown", "bad-label": "x", "empty": ""})
    await r.send(make_notification(alert))
    [body] = am_server.requests[0].json
    assert body["labels"] == {"alertname": "ApiDown", "check": "api-health", "type": "http", "severity": "critical"}
    assert body["endsAt"] == "2023-11-14T22:28:20.000Z"  # NOW + 15m


async def test_auth_headers_are_sent_and_never_reported(am_server, clock, closing):
    bearer = closing(receiver(am_server.url, clock, bearer_token="am-bearer-s3cret"))
    am_server.answer(Answer(401, "bad token am-bearer-s3cret"))
    delivery = await bearer.send(make_notification())
    assert delivery.outcome == Outcome.FAILED
    assert "am-bearer-s3cret" not in delivery.detail and "HTTP 401" in delivery.detail
    assert am_server.requests[0].headers["Authorization"] == "Bearer am-bearer-s3cret"
    basic = closing(receiver(am_server.url, clock, basic_auth={"username": "agent", "password": "pw-s3cret-1"}))
    assert (await basic.send(make_notification())).outcome == Outcome.SENT
    expected = "Basic " + base64.b64encode(b"agent:pw-s3cret-1").decode()
    assert am_server.requests[1].headers["Authorization"] == expected
    assert "pw-s3cret-1" not in repr(basic.settings)


@pytest.mark.parametrize(("answer", "outcome", "retry_after"), [
    (Answer(400, "start time must be before end time"), Outcome.FAILED, None),
    (Answer(500, "internal"), Outcome.RETRY, None),
    (Answer(503, "", {"Retry-After": "5"}), Outcome.RETRY, 5.0),
    (Answer(429, "", {"Retry-After": "9"}), Outcome.RETRY, 9.0),
])
async def test_answers_are_classified(am_server, clock, closing, answer, outcome, retry_after):
    r = closing(receiver(am_server.url, clock))
    am_server.answer(answer)
    delivery = await r.send(make_notification())
    assert (delivery.outcome, delivery.retry_after) == (outcome, retry_after)


async def test_no_answer_is_retried_after_the_timeout(am_server, clock, closing):
    r = closing(receiver(am_server.url, clock, timeout="300ms"))
    am_server.answer(Answer(hang=True))
    delivery = await r.send(make_notification())
    assert (delivery.outcome, delivery.detail) == (Outcome.RETRY, "alertmanager am: no answer within 0.3s")


def test_settings_refuse_two_auth_methods():
    with pytest.raises(ValidationError, match="basic_auth or bearer_token"):
        AlertmanagerSettings.model_validate(
            {"bearer_token": "t0k3n", "basic_auth": {"username": "u", "password": "p4ss"}})
    with pytest.raises(ValidationError, match="http:// or https://"):
        AlertmanagerSettings.model_validate({"url": "127.0.0.1:9093"})
    with pytest.raises(ValidationError, match="password \\(or password_file\\) is required"):
        AlertmanagerSettings.model_validate({"basic_auth": {"username": "u"}})


def test_basic_auth_password_from_file(tmp_path):
    secret = tmp_path / "am-password"
    secret.write_text("am-file-pa55\n")
    settings = AlertmanagerSettings.model_validate({"basic_auth": {"username": "u", "password_file": str(secret)}})
    assert settings.basic_auth.password.get_secret_value() == "am-file-pa55"
    assert "am-file-pa55" not in repr(settings)


# A real Alertmanager ------------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[str]:
    if ALERTMANAGER is None:
        pytest.skip("prometheus-alertmanager binary not installed (Debian package prometheus-alertmanager)")
    config = tmp_path / "alertmanager.yml"
    config.write_text('route:\n  receiver: "null"\nreceivers:\n  - name: "null"\n')
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = (tmp_path / "alertmanager.log").open("wb")
    proc = subprocess.Popen(
        [ALERTMANAGER, f"--config.file={config}", f"--storage.path={tmp_path / 'data'}",
         "--cluster.listen-address=", f"--web.listen-address=127.0.0.1:{port}"],
        stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 15
        while True:
            if proc.poll() is not None:
                pytest.fail(f"alertmanager exited: {(tmp_path / 'alertmanager.log').read_text()[-2000:]}")
            try:
                if httpx.get(f"{url}/-/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("alertmanager not ready within 15s")
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


async def _active(url: str) -> list[dict]:
    async with httpx.AsyncClient(timeout=5) as client:
        return (await client.get(f"{url}/api/v2/alerts", params={"active": "true"})).json()


async def _amtool_query(url: str, matcher: str) -> list[dict]:
    proc = await asyncio.create_subprocess_exec(
        AMTOOL, "alert", "query", f"--alertmanager.url={url}", "-o", "json", matcher,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), timeout=15)
    assert proc.returncode == 0, err.decode()
    return json.loads(out)


@pytest.mark.integration
async def test_real_alertmanager_shows_then_forgets_the_alert(alertmanager, closing):
    r = closing(receiver(alertmanager))
    now = time.time()
    firing = make_alert("api-health", starts_at=now - 120, generator_url="http://127.0.0.1:9108/checks/api-health")
    delivery = await r.send(make_notification(firing))
    assert delivery.outcome == Outcome.SENT, delivery.detail

    [seen] = await _active(alertmanager)
    assert seen["labels"] == {"alertname": "api-health", "check": "api-health", "type": "http",
                              "severity": "critical", "service": "api", "env": "prod"}
    assert seen["annotations"]["runbook_url"] == "https://runbooks.example.com/http-endpoint-down.md"
    assert seen["generatorURL"] == "http://127.0.0.1:9108/checks/api-health"
    assert seen["status"]["state"] == "active"
    if AMTOOL:
        queried = await _amtool_query(alertmanager, "check=api-health")
        assert [a["labels"]["alertname"] for a in queried] == ["api-health"]

    resolved = make_alert("api-health", state=AlertState.RESOLVED, starts_at=now - 120, ends_at=time.time(),
                          generator_url="http://127.0.0.1:9108/checks/api-health")
    assert (await r.send(make_notification(resolved))).outcome == Outcome.SENT
    assert await _active(alertmanager) == []  # endsAt in the past: no longer active, at once


@pytest.mark.integration
async def test_real_alertmanager_accepts_a_resolve_from_a_skewed_clock(alertmanager, closing):
    """Alertmanager answers 400 when endsAt < startsAt; the receiver clamps rather than lose the resolve."""
    r = closing(receiver(alertmanager))
    backwards = make_alert(state=AlertState.RESOLVED, starts_at=NOW, ends_at=NOW - 3600)
    delivery = await r.send(make_notification(backwards))
    assert delivery.outcome == Outcome.SENT, delivery.detail
    assert await _active(alertmanager) == []
