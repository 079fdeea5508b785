"""PagerDuty receiver against a local server that validates Events API v2 events."""

from __future__ import annotations

import pytest
from pydantic import SecretStr, ValidationError

from agent.core import AlertState, Severity
from agent.notify.base import Outcome
from agent.notify.pagerduty import PagerDutyReceiver, PagerDutySettings
from agent.secrets import REDACTOR
from tests.notify.conftest import make_alert, make_notification
from tests.notify.fakes import Answer, FakePagerDuty

KEY = "e93facc04764012d7bfb002500d5d1a6"


def receiver(server: FakePagerDuty, clock, **kw) -> PagerDutyReceiver:
    settings = PagerDutySettings.model_validate(
        {"routing_key": KEY, "url": server.url + "/v2/enqueue", "source": "agent-1.example.com", **kw})
    return PagerDutyReceiver("pd-oncall", settings, clock=clock)


async def test_trigger_event_has_the_documented_shape(pd_server, clock, closing):
    r = closing(receiver(pd_server, clock))
    delivery = await r.send(make_notification(make_alert()))
    assert delivery.outcome == Outcome.SENT, delivery
    assert "HTTP 202" in delivery.detail
    [event] = pd_server.events
    assert event == {
        "routing_key": KEY,
        "event_action": "trigger",
        "dedup_key": "api-health:down",
        "payload": {
            "summary": "[CRITICAL] api-health: GET https://api.example.com/healthz returned 503 (expected 200)",
            "source": "agent-1.example.com",
            "severity": "error",
            "timestamp": "2023-11-14T22:01:20.000Z",
            "component": "api-health",
            "group": "api",
            "class": "http",
            "custom_details": {
                "status": "CRITICAL",
                "observations": {"latency": "2.3s", "status code": "503"},
                "observations_raw": {"latency_seconds": 2.345, "status_code": 503.0},
                "labels": {"service": "api", "env": "prod"},
                "firing_since": "2023-11-14T22:01:20.000Z",
            },
        },
        "client": "sre-agent",
        "client_url": "https://sre-agent.example.com/checks/api-health",
        "links": [{"href": "https://runbooks.example.com/http-endpoint-down.md", "text": "Runbook"},
                  {"href": "https://sre-agent.example.com/checks/api-health", "text": "Check"}],
    }


async def test_resolve_needs_only_key_dedup_and_action(pd_server, clock, closing):
    r = closing(receiver(pd_server, clock))
    assert (await r.send(make_notification(make_alert(state=AlertState.RESOLVED)))).outcome == Outcome.SENT
    assert pd_server.events == [{"routing_key": KEY, "dedup_key": "api-health:down", "event_action": "resolve"}]


async def test_one_event_per_alert_with_mapped_severities(pd_server, clock, closing):
    r = closing(receiver(pd_server, clock, severity_map={"warning": "info"}))
    alerts = [make_alert(f"c-{s.value}", severity=s) for s in Severity]
    assert (await r.send(make_notification(*alerts))).outcome == Outcome.SENT
    assert [(e["dedup_key"], e["payload"]["severity"]) for e in pd_server.events] == [
        ("c-info:down", "info"), ("c-warning:down", "info"), ("c-critical:down", "error"),
        ("c-emergency:down", "critical")]


async def test_templates_and_long_fields(pd_server, clock, closing):
    r = closing(receiver(pd_server, clock, component="{label_service}/{check}", group="{labels[env]}",
                         **{"class": "{type}-{severity}"}))
    alert = make_alert(summary="s" * 5000, dedup_key="k" * 300)
    assert (await r.send(make_notification(alert))).outcome == Outcome.SENT
    [event] = pd_server.events
    payload = event["payload"]
    assert (payload["component"], payload["group"], payload["class"]) == ("api/api-health", "prod", "http-critical")
    assert len(payload["summary"]) == 1024 and payload["summary"].endswith("…")
    assert len(event["dedup_key"]) <= 255
    again = make_alert(summary="other", dedup_key="k" * 300)
    await r.send(make_notification(again))
    assert pd_server.events[1]["dedup_key"] == event["dedup_key"]  # stable across sends


async def test_invalid_event_is_failed_with_pagerdutys_reason(pd_server, clock, closing, caplog):
    # The config refuses such a key (test_routing_key_must_have_32_characters); PagerDuty's answer
    # to one is still handled, e.g. for settings built in code.
    settings = PagerDutySettings.model_validate({"routing_key": KEY, "url": pd_server.url + "/v2/enqueue"})
    short = settings.model_copy(update={"routing_key": SecretStr("short-key-not-32-chars")})
    REDACTOR.add("short-key-not-32-chars")
    r = closing(PagerDutyReceiver("pd-oncall", short, clock=clock))
    delivery = await r.send(make_notification())
    assert delivery.outcome == Outcome.FAILED
    assert "HTTP 400 invalid event: Event object is invalid; Length of 'routing_key' is incorrect" in delivery.detail
    assert "short-key-not-32-chars" not in delivery.detail
    assert "PagerDuty rejected an event" in caplog.text


async def test_400_echoing_the_key_is_scrubbed(pd_server, clock, closing):
    r = closing(receiver(pd_server, clock))
    pd_server.answer(Answer(400, {"status": "invalid event", "message": "Event object is invalid",
                                  "errors": [f"unknown routing_key {KEY}"]}))
    delivery = await r.send(make_notification())
    assert delivery.outcome == Outcome.FAILED
    assert KEY not in delivery.detail and "unknown routing_key <redacted>" in delivery.detail


@pytest.mark.parametrize(("answer", "retry_after"), [
    (Answer(429, ""), None),                        # PagerDuty sends no Retry-After
    (Answer(429, "", {"Retry-After": "12"}), 12.0),  # ...but honour one if present
    (Answer(500, "oops"), None),
    (Answer(502, "bad gateway"), None),
    (Answer(503, "", {"Retry-After": "Tue, 14 Nov 2023 22:14:20 GMT"}), 60.0),
])
async def test_throttling_and_server_errors_are_retried(pd_server, clock, closing, answer, retry_after):
    r = closing(receiver(pd_server, clock))
    pd_server.answer(answer)
    delivery = await r.send(make_notification(make_alert("a"), make_alert("b")))
    assert (delivery.outcome, delivery.retry_after) == (Outcome.RETRY, retry_after)
    assert len(pd_server.requests) == 1  # the rest of the group waits for the outbox's retry


async def test_http_date_retry_after_uses_the_clock(pd_server, clock, closing):
    r = closing(receiver(pd_server, clock))
    pd_server.answer(Answer(429, "", {"Retry-After": "Tue, 14 Nov 2023 22:14:20 GMT"}))
    clock.now = 1_699_999_960.0  # 100 s before that date
    delivery = await r.send(make_notification())
    assert delivery.retry_after == 100.0


async def test_retry_is_reported_after_earlier_events_were_accepted(pd_server, clock, closing):
    r = closing(receiver(pd_server, clock))
    pd_server.answer(Answer(202, {"status": "success"}), Answer(429, ""))
    delivery = await r.send(make_notification(make_alert("a"), make_alert("b"), make_alert("c")))
    assert delivery.outcome == Outcome.RETRY
    assert [e["dedup_key"] for e in pd_server.events] == ["a:down", "b:down"]


async def test_no_answer_is_retried_after_the_timeout(pd_server, clock, closing):
    r = closing(receiver(pd_server, clock, timeout="300ms"))
    pd_server.answer(Answer(hang=True))
    delivery = await r.send(make_notification())
    assert delivery.outcome == Outcome.RETRY
    assert delivery.detail == "pagerduty pd-oncall trigger api-health: no answer within 0.3s"


async def test_send_resolved_off_sends_no_resolve(pd_server, clock, closing):
    r = closing(receiver(pd_server, clock, send_resolved=False))
    mixed = make_notification(make_alert("a"), make_alert("b", state=AlertState.RESOLVED))
    assert (await r.send(mixed)).outcome == Outcome.SENT
    assert [e["event_action"] for e in pd_server.events] == ["trigger"]


def test_settings(tmp_path):
    key_file = tmp_path / "pd-key"
    key_file.write_text(KEY + "\n")
    settings = PagerDutySettings.model_validate({"routing_key_file": str(key_file)})
    assert settings.routing_key.get_secret_value() == KEY
    assert KEY not in repr(settings)
    assert settings.url == "https://events.pagerduty.com/v2/enqueue"
    assert settings.severity_map == {Severity.EMERGENCY: "critical", Severity.CRITICAL: "error",
                                     Severity.WARNING: "warning", Severity.INFO: "info"}
    with pytest.raises(ValidationError, match="severity_map"):
        PagerDutySettings.model_validate({"routing_key": KEY, "severity_map": {"critical": "page-me"}})
    with pytest.raises(ValidationError, match="routing_key"):
        PagerDutySettings.model_validate({})
    with pytest.raises(ValidationError, match="invalid template"):
        PagerDutySettings.model_validate({"routing_key": KEY, "component": "{check!r:>10}"})


@pytest.mark.parametrize("key", ["short-key-not-32-chars", KEY + "0", "", " " + KEY[1:] + "  "])
def test_routing_key_must_have_32_characters(key):
    with pytest.raises(ValidationError) as exc:
        PagerDutySettings.model_validate({"routing_key": key})
    [error] = exc.value.errors(include_url=False)
    assert "routing_key must be the 32-character integration key" in error["msg"]
    assert f"got {len(key)} characters" in error["msg"]
    assert not key.strip() or key.strip() not in error["msg"]  # the key itself is never echoed
