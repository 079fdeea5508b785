"""Grouping and notification timing (group_wait, group_interval, repeat_interval) on a fake clock."""

from __future__ import annotations

from agent.alerting.config import RouteConfig
from agent.alerting.dispatch import Dispatcher, Group
from agent.alerting.lifecycle import dedup_key
from agent.alerting.route import build_routes
from agent.core import Alert, AlertState, Handoff, Severity
from tests.alerting.helpers import T0

ROUTE = {"receiver": "ops", "group_by": ["service"], "group_wait": "30s", "group_interval": "5m",
         "repeat_interval": "4h", "routes": [{"match": {"severity": "critical"}, "receiver": "pager", "continue": True},
                                            {"receiver": "ops"}]}


def alert(check, state=AlertState.FIRING, severity=Severity.WARNING, service="api", suppressed_by=None):
    return Alert(check=check, type="command", state=state, severity=severity, summary=f"{check} broke",
                 dedup_key=dedup_key(check), labels={"check": check, "service": service, "severity": severity.value},
                 starts_at=T0, suppressed_by=suppressed_by)


def sent(flushes):
    return [(f.group.receiver, sorted((a.check, a.state.value) for a in f.alerts)) for f in flushes]


def dispatcher():
    return Dispatcher(build_routes(RouteConfig.model_validate(ROUTE)))


def test_group_wait_delays_the_first_notification():
    d = dispatcher()
    d.update(alert("a"), T0)
    assert d.flush_due(T0 + 29) == []
    d.update(alert("b"), T0 + 10)  # joins the same group before it is sent
    assert sent(d.flush_due(T0 + 30)) == [("ops", [("a", "firing"), ("b", "firing")])]


def test_changes_wait_for_group_interval_then_go_out_together():
    d = dispatcher()
    d.update(alert("a"), T0)
    d.flush_due(T0 + 30)
    d.update(alert("b"), T0 + 60)
    assert d.next_due() == T0 + 30 + 300
    assert d.flush_due(T0 + 329) == []
    assert sent(d.flush_due(T0 + 330)) == [("ops", [("a", "firing"), ("b", "firing")])]


def test_unchanged_group_repeats_after_repeat_interval_only():
    d = dispatcher()
    d.update(alert("a"), T0)
    d.flush_due(T0 + 30)
    for t in (600, 3600, 4 * 3600 + 29):
        d.update(alert("a"), T0 + t)  # new results: same state and severity
        assert d.flush_due(T0 + t) == []
    [repeat] = d.flush_due(T0 + 30 + 4 * 3600)
    assert repeat.repeat and sent([repeat]) == [("ops", [("a", "firing")])]


def test_resolve_is_sent_then_the_group_is_gone():
    d = dispatcher()
    d.update(alert("a"), T0)
    d.flush_due(T0 + 30)
    d.update(alert("a", AlertState.RESOLVED), T0 + 100)
    assert d.flush_due(T0 + 329) == []
    assert sent(d.flush_due(T0 + 330)) == [("ops", [("a", "resolved")])]
    assert d.groups == {} and d.next_due() is None


def test_an_alert_resolved_before_it_was_ever_sent_is_not_announced():
    d = dispatcher()
    d.update(alert("a"), T0)
    d.update(alert("a", AlertState.RESOLVED), T0 + 5)
    assert d.flush_due(T0 + 30) == [] and d.groups == {}


def test_group_by_separates_services():
    d = dispatcher()
    d.update(alert("a", service="api"), T0)
    d.update(alert("b", service="web"), T0)
    flushes = d.flush_due(T0 + 30)
    assert sorted(f.group.labels["service"] for f in flushes) == ["api", "web"]


def test_severity_change_moves_the_alert_off_the_pager_and_updates_the_chat():
    d = dispatcher()
    d.update(alert("a", severity=Severity.CRITICAL), T0)
    assert sorted(sent(d.flush_due(T0 + 30))) == [("ops", [("a", "firing")]), ("pager", [("a", "firing")])]
    d.update(alert("a", severity=Severity.WARNING), T0 + 60)
    flushes = d.flush_due(T0 + 330)
    # still firing: the pager is told it de-escalated and where it went on, never that it resolved
    assert sorted(sent(flushes)) == [("ops", [("a", "firing")]), ("pager", [("a", "moved")])]
    ops = next(f for f in flushes if f.group.receiver == "ops")
    assert ops.alerts[0].severity == Severity.WARNING and not ops.repeat
    pager = next(f for f in flushes if f.group.receiver == "pager")
    assert pager.alerts[0].moved_to == Handoff("de-escalated", Severity.WARNING, Severity.CRITICAL, ("ops",))
    assert pager.kind == "moved"


def test_muted_alerts_are_held_back_until_the_mute_ends():
    d = dispatcher()
    d.update(alert("a", suppressed_by="silence:x"), T0)
    assert d.flush_due(T0 + 30) == []
    d.update(alert("a"), T0 + 600)
    assert sent(d.flush_due(T0 + 600)) == [("ops", [("a", "firing")])]


def test_resolve_goes_out_for_an_alert_paged_before_it_was_silenced():
    d = dispatcher()
    d.update(alert("a"), T0)
    d.flush_due(T0 + 30)
    d.update(alert("a", suppressed_by="silence:x"), T0 + 60)
    assert d.flush_due(T0 + 4 * 3600 + 30) == []  # no repeats while silenced
    d.update(alert("a", AlertState.RESOLVED, suppressed_by="silence:x"), T0 + 5 * 3600)
    assert sent(d.flush_due(T0 + 5 * 3600)) == [("ops", [("a", "resolved")])]


def test_group_state_round_trips_for_restarts():
    d = dispatcher()
    d.update(alert("a"), T0)
    d.flush_due(T0 + 30)
    restored = Dispatcher(d.root)
    restored.load([Group.from_dict(g.to_dict()) for g in d.groups.values()])
    restored.update(alert("a"), T0 + 100)  # the agent came back and the check still fails
    assert restored.flush_due(T0 + 400) == []  # not paged again
    assert sent(restored.flush_due(T0 + 30 + 4 * 3600)) == [("ops", [("a", "firing")])]


def test_regrouping_for_the_same_receiver_carries_what_was_notified():
    d = dispatcher()
    d.update(alert("a"), T0)
    d.flush_due(T0 + 30)
    d.root = build_routes(RouteConfig.model_validate({**ROUTE, "group_by": ["check"]}))  # a reload
    d.update(alert("a"), T0 + 60)
    assert len(d.groups) == 1 and next(iter(d.groups.values())).labels == {"check": "a"}
    assert d.flush_due(T0 + 400) == []


def test_a_flush_names_the_alerts_it_tells_about_for_the_first_time():
    """Email threads an incident from its first mail: receivers need to know which mail that is."""
    d = dispatcher()
    d.update(alert("a"), T0)
    [first] = d.flush_due(T0 + 30)
    assert first.new == (dedup_key("a"),)
    d.update(alert("a", severity=Severity.CRITICAL), T0 + 60)  # a change, not a new alert
    d.update(alert("b"), T0 + 60)
    flushes = d.flush_due(T0 + 330)
    ops = next(f for f in flushes if f.group.receiver == "ops")
    assert ops.new == (dedup_key("b"),)
    d.update(alert("a", state=AlertState.RESOLVED), T0 + 400)
    later = d.flush_due(T0 + 700)
    assert all(f.new == () for f in later)
