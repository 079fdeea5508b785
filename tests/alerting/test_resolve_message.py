"""A resolve says what the check recovered to and how long the incident lasted, in every receiver."""

from __future__ import annotations

from agent.core import Status
from agent.notify import slack
from agent.notify.alertmanager import AlertmanagerReceiver, AlertmanagerSettings
from agent.notify.log import LogReceiver, LogSettings
from agent.notify.webhook import document
from tests.alerting.helpers import config, feed, make_engine, wait

CONFIG = """
checks:
  - {name: api, type: command, command: ["true"]}
alerting:
  route: {receiver: chat, group_wait: 0s, group_interval: 1m}
  receivers:
    - {name: chat, log: {}}
"""


async def _incident(tmp_path, store, clock, receivers):
    """api fails CRITICAL for 12 minutes, then passes: the resolve notification the chat accepted."""
    engine = await make_engine(config(tmp_path, CONFIG), store, clock, receivers)
    await feed(engine, clock, "api", [Status.CRITICAL] * 2, every=6 * 60)  # fires at the second result
    await feed(engine, clock, "api", [Status.OK])
    await wait(engine, clock, 60)
    firing, resolved = receivers["chat"].received
    assert firing.kind == "firing" and resolved.kind == "resolved"
    return resolved


async def test_resolved_slack_message_shows_the_recovered_status_and_the_duration(tmp_path, store, clock, receivers):
    resolved = await _incident(tmp_path, store, clock, receivers)
    message = slack.build_message(resolved, resolved.alerts, clock.now)
    header, summary, fields, *_ = message["blocks"]
    assert header["text"]["text"] == "✅ Resolved: api"
    assert summary["text"]["text"] == "api is OK"
    shown = [f["text"] for f in fields["fields"]]
    assert shown[:3] == ["*Status*\nOK", "*Lasted*\n6m", "*Severity*\ncritical"]
    assert not any("CRITICAL" in text for text in shown)


async def test_other_receivers_render_the_resolve_with_the_recovered_status(tmp_path, store, clock, receivers):
    resolved = await _incident(tmp_path, store, clock, receivers)
    [alert] = resolved.alerts
    fields = LogReceiver("log", LogSettings(), clock=clock).fields(resolved, alert, clock.now)
    assert (fields["state"], fields["status"], fields["duration_seconds"]) == ("resolved", "OK", 360.0)
    assert document(resolved, resolved.alerts)["alerts"][0]["status"] == "OK"
    am = AlertmanagerReceiver("am", AlertmanagerSettings(), clock=clock)
    assert am.alert_body(alert)["annotations"]["description"] == "api is OK | latency 250ms | resolved, lasted 6m"
