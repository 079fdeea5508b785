"""What each receiver sends for an alert that moved to other receivers while it fires."""

from __future__ import annotations

import logging

from agent.core import AlertState, Handoff, Severity
from agent.notify import render
from agent.notify.alertmanager import AlertmanagerReceiver, AlertmanagerSettings
from agent.notify.base import Outcome
from agent.notify.log import LogReceiver, LogSettings
from agent.notify.pagerduty import PagerDutyReceiver, PagerDutySettings
from agent.notify.slack import build_message
from agent.notify.webhook import WebhookReceiver, WebhookSettings
from tests.notify.conftest import NOW, make_alert, make_notification

UP = Handoff("escalated", Severity.CRITICAL, Severity.WARNING, ("pagerduty",))


def moved(**kw):
    return make_alert(state=AlertState.MOVED, moved_to=UP, **kw)


def test_render_names_the_move_never_a_resolve():
    alert = moved()
    assert render.alert_title(alert) == "ESCALATED api-health"
    assert render.emoji(alert) == "⬆️"
    assert render.elapsed(alert, NOW) == "firing for 12m"
    assert render.one_line(alert, NOW).startswith("[ESCALATED api-health] GET")
    assert "escalated to critical → pagerduty; firing for 12m" in render.one_line(alert, NOW)
    n = make_notification(make_alert("other"), alert)
    assert render.group_title(n, n.alerts) == "[FIRING:1, MOVED:1] service=api"


def test_slack_single_and_group_messages():
    single = build_message(make_notification(moved()), [moved()], NOW)
    header, summary, fields, *_ = single["blocks"]
    assert header["text"]["text"] == "⬆️ Escalated to CRITICAL: api-health"
    assert [f["text"] for f in fields["fields"]][:3] == [
        "*Severity*\ncritical (was warning)", "*Status*\nCRITICAL", "*Now with*\npagerduty"]
    group = build_message(make_notification(make_alert("b"), moved()), [make_alert("b"), moved()], NOW)
    assert group["blocks"][0]["text"]["text"].startswith("🔴 [FIRING:1, MOVED:1]")
    assert group["blocks"][2]["text"]["text"].startswith("*⬆️ Escalated to CRITICAL: api-health* · _firing for 12m_")


def test_slack_arrival_says_where_it_came_from():
    came = make_alert(moved_from=Handoff("escalated", Severity.CRITICAL, Severity.WARNING, ("slack",)))
    fields = build_message(make_notification(came), [came], NOW)["blocks"][2]["fields"]
    assert "*Escalated from*\nwarning (slack)" in [f["text"] for f in fields]


def test_alertmanager_ends_the_alert_it_had_with_its_old_severity(clock):
    body = AlertmanagerReceiver("am", AlertmanagerSettings(), clock=clock).alert_body(moved())
    assert body["labels"]["severity"] == "warning"  # the label set Alertmanager knows
    assert body["endsAt"] == render.iso8601(NOW)
    assert body["annotations"]["description"].startswith("escalated to critical → pagerduty | GET")


async def test_webhook_status_is_moved(http_server, clock, closing):
    r = closing(WebhookReceiver("hook", WebhookSettings(url=http_server.url + "/h", send_resolved=False), clock=clock))
    n = make_notification(moved())
    assert r.accepts(n)  # a move is news, not a resolve
    assert (await r.send(n)).outcome == Outcome.SENT
    [request] = http_server.requests
    assert request.json["status"] == "moved"
    assert request.json["alerts"][0]["moved_to"] == UP.to_dict()


async def test_log_line_is_informational(clock, caplog):
    with caplog.at_level(logging.INFO, logger="sre_agent.alerts"):
        await LogReceiver("log", LogSettings(), clock=clock).send(make_notification(moved()))
    [record] = caplog.records
    assert record.levelno == logging.INFO and record.getMessage().startswith("[ESCALATED api-health]")
    assert record.fields["moved_to"] == UP.to_dict()


def test_pagerduty_treats_a_move_as_a_resolve_for_send_resolved():
    n = make_notification(make_alert(state=AlertState.MOVED,
                                     moved_to=Handoff("de-escalated", Severity.WARNING, Severity.CRITICAL, ("slack",))))
    assert PagerDutyReceiver("pd", PagerDutySettings(routing_key="k" * 32)).accepts(n)
    assert not PagerDutyReceiver("pd", PagerDutySettings(routing_key="k" * 32, send_resolved=False)).accepts(n)
