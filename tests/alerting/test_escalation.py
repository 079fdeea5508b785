"""An alert that changes severity across routes: each receiver hears what it means for it.

warning -> slack, critical -> pagerduty. Going WARNING -> CRITICAL pages and tells Slack the
alert escalated (and to whom), never that it resolved; going back resolves the PagerDuty
incident with a note that it continues in Slack, and Slack hears it is back at warning.
"""

from __future__ import annotations

from agent.core import AlertState, Handoff, Severity, Status
from agent.notify import slack
from agent.notify.pagerduty import PagerDutyReceiver, PagerDutySettings
from tests.alerting.helpers import config, feed, make_engine, wait

W, C, OK = Status.WARNING, Status.CRITICAL, Status.OK
CHECK = "api-latency"
CONFIG = f"""
checks:
  - name: {CHECK}
    type: command
    command: ["true"]
    severity: {{warning: warning, critical: critical}}
alerting:
  route:
    receiver: slack
    group_wait: 10s
    group_interval: 1m
    routes:
      - {{match: {{severity: warning}}, receiver: slack}}
      - {{match: {{severity: critical}}, receiver: pagerduty}}
  receivers:
    - {{name: slack, log: {{}}}}
    - {{name: pagerduty, log: {{}}}}
"""
ESCALATED = Handoff("escalated", Severity.CRITICAL, Severity.WARNING, ("pagerduty",))
ARRIVED_ESCALATED = Handoff("escalated", Severity.CRITICAL, Severity.WARNING, ("slack",))
DE_ESCALATED = Handoff("de-escalated", Severity.WARNING, Severity.CRITICAL, ("slack",))
ARRIVED_DE_ESCALATED = Handoff("de-escalated", Severity.WARNING, Severity.CRITICAL, ("pagerduty",))


def told(receiver):
    """(state, severity, moved_to, moved_from) of every alert a receiver accepted, in order."""
    return [(a.state.value, a.severity.value, a.moved_to, a.moved_from) for n in receiver.received for a in n.alerts]


async def test_escalation_and_de_escalation_tell_each_receiver_where_the_alert_went(tmp_path, store, clock, receivers):
    engine = await make_engine(config(tmp_path, CONFIG), store, clock, receivers)
    chat, pager = receivers["slack"], receivers["pagerduty"]

    await feed(engine, clock, CHECK, [W, W])  # fires as warning
    await wait(engine, clock, 10)
    assert told(chat) == [("firing", "warning", None, None)]

    await feed(engine, clock, CHECK, [C])  # the same alert, now critical
    await wait(engine, clock, 60)
    assert told(pager) == [("firing", "critical", None, ARRIVED_ESCALATED)]
    assert told(chat)[1:] == [("moved", "critical", ESCALATED, None)]
    assert [a.state for a in engine.alerts()] == [AlertState.FIRING]

    await feed(engine, clock, CHECK, [W])  # back to warning: no longer a page
    await wait(engine, clock, 60)
    assert told(pager)[1:] == [("moved", "warning", DE_ESCALATED, None)]
    assert told(chat)[2:] == [("firing", "warning", None, ARRIVED_DE_ESCALATED)]

    await feed(engine, clock, CHECK, [OK])
    await wait(engine, clock, 60)
    assert told(chat)[3:] == [("resolved", "warning", None, None)]
    assert len(pager.received) == 2  # its incident was already resolved on de-escalation
    await wait(engine, clock, 4 * 3600)
    assert len(chat.received) == 4 and len(pager.received) == 2


async def test_what_slack_and_pagerduty_put_on_the_wire_for_a_move(tmp_path, store, clock, receivers):
    engine = await make_engine(config(tmp_path, CONFIG), store, clock, receivers)
    await feed(engine, clock, CHECK, [W, W])
    await wait(engine, clock, 10)
    await feed(engine, clock, CHECK, [C])
    await wait(engine, clock, 60)
    await feed(engine, clock, CHECK, [W])
    await wait(engine, clock, 60)
    escalated = receivers["slack"].received[1]
    message = slack.build_message(escalated, escalated.alerts, clock.now)
    header = message["blocks"][0]["text"]["text"]
    assert header == f"⬆️ Escalated to CRITICAL: {CHECK}"
    assert "Resolved" not in str(message) and "RESOLVED" not in str(message)
    assert message["blocks"][1]["text"]["text"].startswith("Escalated to critical → pagerduty\n")

    pd = PagerDutyReceiver("pagerduty", PagerDutySettings(routing_key="k" * 32))
    page = pd.event(receivers["pagerduty"].received[0].alerts[0])
    assert page["event_action"] == "trigger"
    assert page["payload"]["summary"].endswith("(escalated from warning (was with slack))")
    [moved] = receivers["pagerduty"].received[1].alerts
    resolve = pd.event(moved)
    assert resolve["event_action"] == "resolve" and resolve["dedup_key"] == moved.dedup_key
    assert resolve["payload"]["summary"].startswith(f"[DE-ESCALATED] {CHECK}: de-escalated to warning → slack")
    assert resolve["payload"]["custom_details"]["moved_to"] == DE_ESCALATED.to_dict()
