"""Alert lifecycle: thresholds, for:, UNKNOWN handling, severity changes, stable keys."""

from __future__ import annotations

import hashlib

import pytest

from agent.alerting.lifecycle import AlertRecord, agent_url, dedup_key, evaluate, runbook_url, tick, to_alert
from agent.core import AlertState, Severity, Status
from checks.command import CommandConfig
from tests.alerting.helpers import T0, result


def check(**kw):
    return CommandConfig.model_validate({"name": "api", "type": "command", "command": ["true"], **kw})


def run(cfg, statuses, every=10.0, rec=None):
    """Feed statuses; return the record after each one."""
    rec = rec or AlertRecord(dedup_key=dedup_key("api"), check="api", type="command")
    out = []
    for i, st in enumerate(statuses):
        rec = evaluate(rec, result("api", st, T0 + i * every), cfg, T0 + i * every)
        out.append(rec)
    return out


def states(records):
    return [r.state.value for r in records]


C, W, OK, U = Status.CRITICAL, Status.WARNING, Status.OK, Status.UNKNOWN


def test_after_and_resolve_after_count_consecutive_results():
    recs = run(check(alert={"after": 3, "resolve_after": 2}), [C, C, C, OK, C, OK, OK])
    assert states(recs) == ["pending", "pending", "firing", "firing", "firing", "firing", "resolved"]
    assert recs[2].starts_at == T0 + 20
    assert recs[-1].ends_at == T0 + 60


def test_defaults_are_two_failures_and_one_success():
    recs = run(check(), [C, C, OK])
    assert states(recs) == ["pending", "firing", "resolved"]


def test_a_pass_while_pending_resets_without_alerting():
    recs = run(check(alert={"after": 3}), [C, C, OK, C, C, C])
    assert states(recs) == ["pending", "pending", "inactive", "pending", "pending", "firing"]
    assert recs[2].idle


def test_for_fires_after_the_period_not_after_a_count():
    cfg = check(alert={"for": "5m"})
    recs = run(cfg, [C] * 7, every=60)
    assert states(recs) == ["pending"] * 5 + ["firing", "firing"]
    assert recs[5].starts_at == T0 + 300


def test_for_fires_between_results_on_tick():
    cfg = check(alert={"for": "5m"}, interval="10m")
    rec = run(cfg, [C])[0]
    assert tick(rec, cfg, T0 + 299).state == AlertState.PENDING
    fired = tick(rec, cfg, T0 + 300)
    assert fired.state == AlertState.FIRING and fired.starts_at == T0 + 300


def test_unknown_neither_advances_nor_resets_by_default():
    recs = run(check(alert={"after": 3}), [C, U, U, C, U, C])
    assert states(recs) == ["pending", "pending", "pending", "pending", "pending", "firing"]
    firing = recs[-1]
    after = run(check(alert={"after": 3}), [U, U], rec=firing)
    assert states(after) == ["firing", "firing"]


def test_unknown_alerts_when_on_unknown_is_set():
    recs = run(check(alert={"on_unknown": True}), [U, U])
    assert states(recs) == ["pending", "firing"]
    assert recs[-1].status == Status.UNKNOWN


def test_flapping_severity_updates_the_same_alert():
    cfg = check(severity={"warning": "warning", "critical": "emergency"})
    recs = run(cfg, [W, W, C, W, C])
    assert states(recs) == ["pending", "firing", "firing", "firing", "firing"]
    assert [r.severity for r in recs] == [Severity.WARNING, Severity.WARNING, Severity.EMERGENCY,
                                          Severity.WARNING, Severity.EMERGENCY]
    assert {r.dedup_key for r in recs} == {dedup_key("api")}
    assert len({r.starts_at for r in recs[1:]}) == 1


def test_disabled_policy_resolves_a_firing_alert_and_raises_none():
    firing = run(check(), [C, C])[-1]
    off = check(alert={"enabled": False})
    assert evaluate(firing, result("api", C, T0 + 99), off, T0 + 99).state == AlertState.RESOLVED
    assert states(run(off, [C, C, C])) == ["inactive"] * 3


def test_dedup_key_is_stable_and_family_specific():
    assert dedup_key("api") == hashlib.sha256(b"sre-agent/api").hexdigest()[:32]
    assert dedup_key("api") == dedup_key("api")
    assert dedup_key("api", "fast-burn") != dedup_key("api")
    assert dedup_key("api", "fast-burn") == hashlib.sha256(b"sre-agent/api/fast-burn").hexdigest()[:32]


def test_record_survives_a_round_trip_through_json():
    rec = run(check(), [C, C])[-1]
    assert AlertRecord.from_dict(rec.to_dict()) == rec


@pytest.mark.parametrize(("runbook", "base", "expected"), [
    ("runbooks/http.md", "https://git.example.com/ops/runbooks/blob/main/",
     "https://git.example.com/ops/runbooks/blob/main/runbooks/http.md"),
    ("http.md", "https://git.example.com/ops/blob/main", "https://git.example.com/ops/blob/main/http.md"),
    ("https://wiki.example.com/api", "https://git.example.com/", "https://wiki.example.com/api"),
    ("runbooks/http.md", None, "http://127.0.0.1:9108/api/v1/runbooks/api"),
    (None, "https://git.example.com/", None),
])
def test_runbook_url(runbook, base, expected):
    assert runbook_url(runbook, base, "http://127.0.0.1:9108", "api") == expected


def test_alert_carries_labels_links_and_observations():
    cfg = check(labels={"service": "payments", "team": "core"}, runbook="runbooks/api.md", description="the API")
    rec = run(cfg, [C, C])[-1]
    alert = to_alert(rec, cfg, "https://git.example.com/rb/", agent_url("https://agent.example.com/", "0.0.0.0:9108"))
    assert alert.labels == {"service": "payments", "team": "core", "check": "api", "type": "command",
                            "severity": "critical"}
    assert alert.runbook_url == "https://git.example.com/rb/runbooks/api.md"
    assert alert.generator_url == "https://agent.example.com/api/v1/checks?name=api"
    assert alert.observations == {"latency_seconds": 0.25}
    assert alert.summary == "api is CRITICAL" and alert.annotations["description"] == "the API"
    assert alert.starts_at == T0 + 10 and alert.ends_at is None


def test_agent_url_from_listen():
    assert agent_url(None, "0.0.0.0:9108") == "http://127.0.0.1:9108"
    assert agent_url(None, "10.0.0.5:9000") == "http://10.0.0.5:9000"
    assert agent_url(None, "[::1]:9108") == "http://[::1]:9108"


def test_an_alert_of_a_check_without_runbook_links_its_types_default() -> None:
    from agent.alerting.lifecycle import runbook_url
    from agent.runbooks import effective_runbook
    from checks.tcp import TcpConfig

    plain = TcpConfig(name="db-port", type="tcp", host="127.0.0.1", port=5432)
    own = TcpConfig(name="db-port", type="tcp", host="127.0.0.1", port=5432, runbook="runbooks/db.md")
    assert effective_runbook(plain) == "runbooks/tcp-port-down.md"
    assert effective_runbook(own) == "runbooks/db.md"
    base = "https://git.example.com/sre/runbooks/"
    assert runbook_url(effective_runbook(plain), base, "http://agent:9108", "db-port") == base + "runbooks/tcp-port-down.md"
    assert runbook_url(effective_runbook(plain), None, "http://agent:9108", "db-port") == \
        "http://agent:9108/api/v1/runbooks/db-port"
