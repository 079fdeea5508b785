"""Generic webhook receiver: versioned JSON document, Idempotency-Key, secret headers."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from agent.core import AlertState
from agent.notify.base import Outcome
from agent.notify.webhook import WebhookReceiver, WebhookSettings
from tests.notify.conftest import make_alert, make_notification
from tests.notify.fakes import Answer


def receiver(url: str, clock, **kw) -> WebhookReceiver:
    return WebhookReceiver("hook", WebhookSettings.model_validate({"url": url + "/hooks/alerts", **kw}), clock=clock)


async def test_document_and_headers(http_server, clock, closing):
    r = closing(receiver(http_server.url, clock, headers={"X-Api-Key": "wh-s3cret-key"}))
    firing, resolved = make_alert("a"), make_alert("b", state=AlertState.RESOLVED)
    delivery = await r.send(make_notification(firing, resolved, idempotency_key="notif-42"))
    assert delivery.outcome == Outcome.SENT
    [request] = http_server.requests
    assert (request.method, request.path) == ("POST", "/hooks/alerts")
    assert request.headers["Idempotency-Key"] == "notif-42"
    assert request.headers["X-Api-Key"] == "wh-s3cret-key"
    assert request.headers["Content-Type"] == "application/json"
    assert request.json == {
        "version": "1", "receiver": "oncall", "group_key": '{}:{service="api"}',
        "group_labels": {"service": "api"}, "status": "firing",
        "alerts": [firing.to_dict(), resolved.to_dict()], "idempotency_key": "notif-42",
    }


async def test_resolved_only_status_and_put(http_server, clock, closing):
    r = closing(receiver(http_server.url, clock, method="PUT"))
    await r.send(make_notification(make_alert(state=AlertState.RESOLVED)))
    [request] = http_server.requests
    assert request.method == "PUT" and request.json["status"] == "resolved"


@pytest.mark.parametrize(("answer", "outcome", "retry_after"), [
    (Answer(202, "queued"), Outcome.SENT, None),
    (Answer(204, ""), Outcome.SENT, None),
    (Answer(429, "slow down", {"Retry-After": "3"}), Outcome.RETRY, 3.0),
    (Answer(503, "", {"Retry-After": "Tue, 14 Nov 2023 22:15:20 GMT"}), Outcome.RETRY, 120.0),
    (Answer(500, "boom"), Outcome.RETRY, None),
    (Answer(408, ""), Outcome.RETRY, None),
    (Answer(400, "bad"), Outcome.FAILED, None),
    (Answer(403, "denied for key wh-s3cret-key"), Outcome.FAILED, None),
    (Answer(301, "", {"Location": "http://elsewhere/"}), Outcome.FAILED, None),
])
async def test_answers_are_classified(http_server, clock, closing, answer, outcome, retry_after):
    r = closing(receiver(http_server.url, clock, headers={"Authorization": "Bearer wh-s3cret-key"}))
    http_server.answer(answer)
    delivery = await r.send(make_notification())
    assert (delivery.outcome, delivery.retry_after) == (outcome, retry_after)
    assert f"HTTP {answer.status}" in delivery.detail
    assert "wh-s3cret-key" not in delivery.detail


async def test_no_answer_is_retried_after_the_timeout(http_server, clock, closing):
    r = closing(receiver(http_server.url, clock, timeout="300ms"))
    http_server.answer(Answer(hang=True))
    delivery = await r.send(make_notification())
    assert (delivery.outcome, delivery.detail) == (Outcome.RETRY, "webhook hook: no answer within 0.3s")


async def test_nothing_to_send_when_resolved_are_off(http_server, clock, closing):
    r = closing(receiver(http_server.url, clock, send_resolved=False))
    delivery = await r.send(make_notification(make_alert(state=AlertState.RESOLVED)))
    assert (delivery.outcome, http_server.requests) == (Outcome.SENT, [])


def test_settings():
    s = WebhookSettings.model_validate({"url": "https://hooks.example.com/x", "headers": {"X-Token": "abcd1234"}})
    assert "abcd1234" not in repr(s)
    with pytest.raises(ValidationError, match="set by the agent"):
        WebhookSettings.model_validate({"url": "https://x", "headers": {"Idempotency-Key": "k"}})
    with pytest.raises(ValidationError, match="not a valid HTTP header name"):
        WebhookSettings.model_validate({"url": "https://x", "headers": {"Bad Header": "v"}})
    with pytest.raises(ValidationError, match="method"):
        WebhookSettings.model_validate({"url": "https://x", "method": "GET"})
