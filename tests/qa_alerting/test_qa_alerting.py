"""Regressions found by trying the agent's alerting as an SRE would: bad input and reloads."""

from __future__ import annotations

import aiohttp
import pytest
from prometheus_client import CollectorRegistry
from pydantic import ValidationError

from agent.alerting.silences import Silence
from agent.config import ConfigError
from agent.core import Status
from agent.daemon import Agent
from agent.notify.base import Outcome
from agent.notify.http import transport_failure
from agent.notify.slack import SlackSettings
from agent.notify.webhook import WebhookSettings
from tests.alerting.helpers import T0, config, feed, make_engine, wait, write_config

C = Status.CRITICAL
TOKEN = "qa-token-for-silences"

ONE_CHECK = """
agent: {{listen: "127.0.0.1:0"}}
checks:
  - name: api
    type: command
    command: ["true"]
    {extra}
    alert: {{after: 1}}
alerting:
  route: {{receiver: chat, group_wait: 0s, group_interval: 1m, repeat_interval: 1h}}
  receivers:
    - {{name: chat, log: {{}}}}
"""


async def test_disabling_a_firing_check_resolves_it_instead_of_repeating_forever(tmp_path, store, clock, receivers):
    engine = await make_engine(config(tmp_path, ONE_CHECK.format(extra="")), store, clock, receivers)
    await feed(engine, clock, "api", [C])
    await wait(engine, clock, 1)
    assert receivers["chat"].events() == [("api", "firing", "critical")]

    await engine.reconfigure(config(tmp_path, ONE_CHECK.format(extra="enabled: false")))
    await wait(engine, clock, 1)
    await wait(engine, clock, 3 * 3600)  # three repeat intervals: no more pages for a check that no longer runs
    assert receivers["chat"].events() == [("api", "firing", "critical"), ("api", "resolved", "critical")]
    assert receivers["chat"].received[-1].alerts[0].summary == "check disabled in the config"
    assert engine.alerts({"firing", "pending"}) == []


async def test_expiring_a_silence_that_has_not_started_lists_it_as_expired(tmp_path, store, clock, receivers):
    engine = await make_engine(config(tmp_path, ONE_CHECK.format(extra="")), store, clock, receivers)
    future = Silence(id="s1", matchers={"check": "api"}, starts_at=T0 + 86400, ends_at=T0 + 90000,
                     comment="tomorrow's deploy", created_at=T0)
    await engine.add_silence(future)
    expired = await engine.expire_silence("s1")
    assert expired is not None and expired.status(clock.now) == "expired"
    assert engine.silences() == []


def test_a_config_silence_ending_past_year_9999_is_a_config_error_not_a_crash(tmp_path):
    path = write_config(tmp_path, """
        checks: [{name: api, type: command, command: ["true"]}]
        alerting:
          silences:
            - {matchers: {service: api}, starts_at: 2026-01-01T00:00:00Z, duration: 100000000d}
        """)
    with pytest.raises(ConfigError) as exc:
        config(tmp_path, path.read_text())
    [issue] = exc.value.issues
    # durations are capped (36500d) before the year-9999 check can be reached
    assert "silences[0].duration" in str(issue) and "too long: at most 36500d" in issue.message
    path.write_text(path.read_text().replace("duration: 100000000d", "ends_at: 9999-12-31T00:00:00Z"))
    with pytest.raises(ConfigError) as exc:
        config(tmp_path, path.read_text())
    [issue] = exc.value.issues
    assert "silences[0]" in str(issue) and "ends_at" in issue.message and "9999" in issue.message


@pytest.mark.parametrize("key", ["repeat_interval", "group_interval"])
def test_a_zero_repeat_or_group_interval_is_refused(tmp_path, key):
    with pytest.raises(ConfigError) as exc:
        config(tmp_path, f"""
            checks: [{{name: api, type: command, command: ["true"]}}]
            alerting:
              route: {{receiver: chat, {key}: 0s}}
              receivers: [{{name: chat, log: {{}}}}]
            """)
    [issue] = exc.value.issues
    assert f"alerting.route.{key}" in str(issue) and "more than 0" in issue.message


def test_a_zero_receiver_timeout_is_refused():
    with pytest.raises(ValueError, match="timeout must be more than 0"):
        WebhookSettings.model_validate({"url": "http://127.0.0.1:1/hook", "timeout": "0s"})


def test_a_slack_webhook_url_without_scheme_is_refused_without_echoing_it():
    secret = "hooks.slack.com/services/T0/B0/qaSecretPath"
    with pytest.raises(ValidationError) as exc:
        SlackSettings.model_validate({"webhook_url": secret})
    [error] = exc.value.errors()
    assert error["loc"] == ("webhook_url",) and "must start with https://" in error["msg"]
    assert "qaSecretPath" not in error["msg"]


def test_a_non_http_url_is_a_permanent_failure_not_a_retry():
    delivery = transport_failure(aiohttp.NonHttpUrlClientError("ftp://x"), what="slack s", timeout=1)
    assert delivery.outcome == Outcome.FAILED


async def test_a_silence_ending_past_year_9999_is_a_400_not_a_500(tmp_path):
    path = write_config(tmp_path, f"""
        agent: {{listen: "127.0.0.1:0", state_dir: {tmp_path / "state"}, api_token: {TOKEN}}}
        checks: [{{name: api, type: command, command: ["true"], interval: 1h}}]
        """)
    agent = Agent(path, registry=CollectorRegistry())
    await agent.start()
    try:
        url = f"http://127.0.0.1:{agent.port}/api/v1/silences"
        auth = {"Authorization": f"Bearer {TOKEN}"}
        async with aiohttp.ClientSession() as http:
            body = {"matchers": {"service": "api"}, "duration": "100000000d", "comment": "forever"}
            async with http.post(url, json=body, headers=auth) as r:
                assert r.status == 400
                answer = await r.json()
                assert "duration" in answer["error"] or any("duration" in p for p in answer.get("problems", []))
            body = {"matchers": {"service": "api"}, "ends_at": "2020-01-01T00:00:00Z", "comment": "past"}
            async with http.post(url, json=body, headers=auth) as r:
                assert r.status == 400
                assert "already be over" in (await r.json())["error"]
            async with http.get(url) as r:
                assert (await r.json())["silences"] == []
    finally:
        await agent.stop()
