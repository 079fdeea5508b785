"""Slack receiver against a local server speaking the webhook and chat.postMessage formats."""

from __future__ import annotations

import json
import socket
import time

import pytest
from pydantic import ValidationError

from agent.core import AlertState, Severity
from agent.notify.base import Outcome
from agent.notify.slack import SlackReceiver, SlackSettings, build_message
from tests.notify.conftest import NOW, make_alert, make_notification
from tests.notify.fakes import Answer, FakeSlack, block_kit_problems


def webhook_receiver(server: FakeSlack, clock, **kw) -> SlackReceiver:
    settings = SlackSettings.model_validate({"webhook_url": server.webhook_url, **kw})
    return SlackReceiver("slack-ops", settings, clock=clock)


def bot_receiver(server: FakeSlack, clock, **kw) -> SlackReceiver:
    settings = SlackSettings.model_validate(
        {"token": server.token, "channel": "#ops", "base_url": server.url + "/api/", **kw})
    return SlackReceiver("slack-bot", settings, clock=clock)


async def test_firing_alert_is_an_incident_message(slack_server, clock, closing):
    r = closing(webhook_receiver(slack_server, clock))
    delivery = await r.send(make_notification(make_alert()))
    assert delivery.outcome == Outcome.SENT, delivery
    [message] = slack_server.messages
    assert message["text"].startswith("🔴 [CRITICAL api-health] GET https://api.example.com/healthz returned 503")
    header, summary, fields, actions, context = message["blocks"]
    assert header == {"type": "header", "text": {"type": "plain_text", "text": "🔴 CRITICAL: api-health", "emoji": True}}
    assert summary["text"] == {"type": "mrkdwn",
                               "text": "GET https://api.example.com/healthz returned 503 (expected 200)"}
    assert [f["text"] for f in fields["fields"]] == [
        "*Severity*\ncritical", "*Status*\nCRITICAL", "*latency*\n2.3s", "*status code*\n503",
        "*env*\nprod", "*service*\napi"]
    assert [(b["text"]["text"], b["url"]) for b in actions["elements"]] == [
        ("📖 Runbook", "https://runbooks.example.com/http-endpoint-down.md"),
        ("🔎 Check", "https://sre-agent.example.com/checks/api-health")]
    texts = [e["text"] for e in context["elements"]]
    assert texts[0] == "Firing for 12m"
    assert texts[1] == "check `api-health` (http)"
    assert texts[2].startswith(f"since <!date^{int(NOW - 720)}^")
    assert block_kit_problems(message) == []


async def test_resolved_alert_says_resolved_and_how_long_it_lasted(slack_server, clock, closing):
    r = closing(webhook_receiver(slack_server, clock))
    resolved = make_alert(state=AlertState.RESOLVED, starts_at=NOW - 3 * 3600 - 5 * 60, ends_at=NOW - 60)
    assert (await r.send(make_notification(resolved))).outcome == Outcome.SENT
    [message] = slack_server.messages
    assert message["blocks"][0]["text"]["text"] == "✅ Resolved: api-health"
    assert message["blocks"][-1]["elements"][0]["text"] == "Resolved, lasted 3h4m"
    assert message["text"].startswith("✅ [RESOLVED api-health]")


async def test_group_lists_each_alert_worst_first(slack_server, clock, closing):
    r = closing(webhook_receiver(slack_server, clock))
    alerts = [make_alert("db-ping", severity=Severity.WARNING),
              make_alert("api-health", state=AlertState.RESOLVED),
              make_alert("web-health", severity=Severity.EMERGENCY)]
    assert (await r.send(make_notification(*alerts))).outcome == Outcome.SENT
    [message] = slack_server.messages
    blocks = message["blocks"]
    assert blocks[0]["text"]["text"] == "🚨 [FIRING:2, RESOLVED:1] service=api"
    sections = [b["text"]["text"] for b in blocks[1:-1]]
    assert [s.split("\n")[0] for s in sections] == [
        "*🚨 EMERGENCY: web-health* · _firing for 12m_",
        "*🟠 WARNING: db-ping* · _firing for 12m_",
        "*✅ Resolved: api-health* · _resolved, lasted 11m_"]
    assert "<https://runbooks.example.com/http-endpoint-down.md|Runbook>" in sections[0]
    assert "<https://sre-agent.example.com/checks/web-health|Check>" in sections[0]
    assert "latency 2.3s, status code 503" in sections[0]
    assert blocks[-1]["type"] == "context"


async def test_group_header_reflects_what_still_fires(slack_server, clock, closing):
    r = closing(webhook_receiver(slack_server, clock))
    await r.send(make_notification(make_alert("db", severity=Severity.WARNING),
                                   make_alert("api", severity=Severity.EMERGENCY, state=AlertState.RESOLVED)))
    await r.send(make_notification(make_alert("db", state=AlertState.RESOLVED),
                                   make_alert("api", state=AlertState.RESOLVED)))
    headers = [m["blocks"][0]["text"]["text"] for m in slack_server.messages]
    assert headers == ["🟠 [FIRING:1, RESOLVED:1] service=api", "✅ [RESOLVED:2] service=api"]


async def test_huge_inputs_stay_within_block_kit_limits(slack_server, clock, closing):
    r = closing(webhook_receiver(slack_server, clock))
    big = "x" * 100_000 + " <&> "
    long_name = "c" * 500
    single = make_alert(long_name, summary=big, observations={f"obs_{i}_seconds": i for i in range(30)},
                        labels={f"label_{i}": "v" * 5000 for i in range(20)},
                        runbook_url="https://runbooks.example.com/" + "r" * 3100)
    assert (await r.send(make_notification(single))).outcome == Outcome.SENT
    many = [make_alert(f"check-{i:03d}-" + "n" * 500, summary=big) for i in range(200)]
    assert (await r.send(make_notification(*many))).outcome == Outcome.SENT
    first, second = slack_server.messages
    for message in (first, second):
        assert block_kit_problems(message) == []
        assert len(message["blocks"]) <= 50
        assert len(message["text"]) <= 3000
    assert first["blocks"][0]["text"]["text"].endswith("…")
    assert len(first["blocks"][0]["text"]["text"]) == 150
    assert first["blocks"][2]["fields"][-1]["text"] == "*More*\n+43 not shown"
    assert all(e["url"].startswith("https://sre-agent") for e in first["blocks"][3]["elements"])  # runbook URL too long
    assert len(second["blocks"]) == 50
    assert second["blocks"][-2]["text"]["text"].startswith("…and 153 more: check-047-")
    # 100k-character summaries are cut per alert: the whole message stays small
    cut = second["blocks"][1]["text"]["text"]
    assert "x" * 10 + "…" in cut and "x" * 1000 not in cut
    assert len(json.dumps(second)) < 60_000


def test_escaping_never_leaves_half_an_entity():
    alert = make_alert(summary="&" * 5000)
    message = build_message(make_notification(alert), [alert], NOW)
    text = message["blocks"][1]["text"]["text"]
    assert len(text) <= 3000
    assert text.endswith("&amp;…")
    assert block_kit_problems(message) == []


@pytest.mark.parametrize(("answer", "outcome", "retry_after"), [
    (Answer(429, "rate_limited", {"Retry-After": "7"}), Outcome.RETRY, 7.0),
    (Answer(503, "service_unavailable"), Outcome.RETRY, None),
    (Answer(500, "rollup_error"), Outcome.RETRY, None),
    (Answer(400, "invalid_payload"), Outcome.FAILED, None),
    (Answer(404, "no_service"), Outcome.FAILED, None),
    (Answer(410, "channel_is_archived"), Outcome.FAILED, None),
])
async def test_webhook_answers_are_classified(slack_server, clock, closing, answer, outcome, retry_after):
    r = closing(webhook_receiver(slack_server, clock))
    slack_server.answer(answer)
    delivery = await r.send(make_notification())
    assert (delivery.outcome, delivery.retry_after) == (outcome, retry_after)
    assert str(answer.status) in delivery.detail and str(answer.body) in delivery.detail
    assert "s3cr3tW3bh00kPath" not in delivery.detail
    assert len(slack_server.requests) == 1  # classified, never retried by the receiver


async def test_webhook_that_never_answers_is_retried_after_the_timeout(slack_server, clock, closing):
    r = closing(webhook_receiver(slack_server, clock, timeout="300ms"))
    slack_server.answer(Answer(hang=True))
    started = time.monotonic()
    delivery = await r.send(make_notification())
    assert time.monotonic() - started < 2
    assert delivery.outcome == Outcome.RETRY
    assert delivery.detail == "slack slack-ops: no answer within 0.3s"


async def test_unreachable_webhook_is_retried_without_leaking_the_url(clock, closing):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/services/T1/B1/unr3achableS3cret"
    r = closing(SlackReceiver("s", SlackSettings(webhook_url=url, timeout="1s"), clock=clock))
    delivery = await r.send(make_notification())
    assert delivery.outcome == Outcome.RETRY
    assert "unr3achableS3cret" not in delivery.detail and "unr3achableS3cret" not in repr(r.settings)


async def test_bot_token_posts_to_the_channel(slack_server, clock, closing):
    r = closing(bot_receiver(slack_server, clock))
    delivery = await r.send(make_notification())
    assert delivery.outcome == Outcome.SENT
    assert delivery.detail == "slack slack-bot: posted to #ops (ts 1700000000.000100)"
    [request] = slack_server.requests
    assert request.path == "/api/chat.postMessage"
    assert request.headers["Authorization"] == f"Bearer {slack_server.token}"
    body = request.json
    assert body["channel"] == "#ops" and body["unfurl_links"] is False
    assert body["blocks"][0]["text"]["text"] == "🔴 CRITICAL: api-health"


@pytest.mark.parametrize(("settings", "answer", "outcome", "retry_after", "error"), [
    ({"token": "xoxb-wrong-token-9999"}, None, Outcome.FAILED, None, "invalid_auth"),
    ({"channel": "#nowhere"}, None, Outcome.FAILED, None, "channel_not_found"),
    ({}, Answer(429, {"ok": False, "error": "ratelimited"}, {"Retry-After": "30"}), Outcome.RETRY, 30.0, "ratelimited"),
    ({}, Answer(200, {"ok": False, "error": "internal_error"}), Outcome.RETRY, None, "internal_error"),
    ({}, Answer(503, "upstream down"), Outcome.RETRY, None, "HTTP 503"),
    ({}, Answer(200, {"ok": False, "error": "invalid_blocks"}), Outcome.FAILED, None, "invalid_blocks"),
])
async def test_bot_errors_are_classified(slack_server, clock, closing, settings, answer, outcome, retry_after, error):
    r = closing(bot_receiver(slack_server, clock, **settings))
    if answer:
        slack_server.answer(answer)
    delivery = await r.send(make_notification())
    assert (delivery.outcome, delivery.retry_after) == (outcome, retry_after)
    assert error in delivery.detail
    assert "xoxb-" not in delivery.detail


async def test_bot_that_never_answers_is_retried(slack_server, clock, closing):
    r = closing(bot_receiver(slack_server, clock, timeout="300ms"))
    slack_server.answer(Answer(hang=True))
    delivery = await r.send(make_notification())
    assert (delivery.outcome, delivery.detail) == (Outcome.RETRY, "slack slack-bot: no answer within 0.3s")


async def test_send_resolved_off_drops_resolved_alerts(slack_server, clock, closing):
    r = closing(webhook_receiver(slack_server, clock, send_resolved=False))
    only_resolved = make_notification(make_alert(state=AlertState.RESOLVED))
    assert not r.accepts(only_resolved)
    mixed = make_notification(make_alert("a"), make_alert("b", state=AlertState.RESOLVED))
    assert (await r.send(mixed)).outcome == Outcome.SENT
    [message] = slack_server.messages
    assert message["blocks"][0]["text"]["text"] == "🔴 CRITICAL: a"


def test_settings_need_exactly_one_way_to_post(tmp_path):
    with pytest.raises(ValidationError, match="exactly one of webhook_url"):
        SlackSettings.model_validate({"webhook_url": "https://hooks.slack.com/x", "token": "xoxb-1234"})
    with pytest.raises(ValidationError, match="token needs a channel"):
        SlackSettings.model_validate({"token": "xoxb-1234"})
    with pytest.raises(ValidationError, match="channel only applies with token"):
        SlackSettings.model_validate({"webhook_url": "https://hooks.slack.com/x", "channel": "#ops"})
    secret = tmp_path / "slack-url"
    secret.write_text("https://hooks.slack.com/services/T9/B9/fromAFil3\n")
    settings = SlackSettings.model_validate({"webhook_url_file": str(secret)})
    assert settings.webhook_url.get_secret_value() == "https://hooks.slack.com/services/T9/B9/fromAFil3"
    assert "fromAFil3" not in repr(settings)
