"""The engine's shortcuts give what recomputing everything would.

Cached `Alert`s, mutes recomputed only where they can move, records indexed by
check, groups indexed by alert and by flush time: after every cycle of a long
random run (results, silences, maintenance windows, inhibition, dependencies,
alert families, reloads) each is compared with a from-scratch computation.
"""

from __future__ import annotations

import random

import pytest
from prometheus_client import CollectorRegistry

from agent.alerting.lifecycle import to_alert
from agent.alerting.silences import Silence, Source
from agent.core import AlertState, Severity, Status
from tests.alerting.helpers import config, make_engine, result

CONFIG = """
agent: {{listen: "127.0.0.1:9108"}}
checks:
  - {{name: db, type: command, command: ["true"], labels: {{service: db, team: data}}, alert: {{after: 1}}}}
  - name: api
    type: command
    command: ["true"]
    labels: {{service: api, team: {api_team}}}
    severity: {{warning: warning, critical: critical}}
    depends_on: [db]
    alert: {{after: 2, resolve_after: 2}}
  - {{name: api-latency, type: command, command: ["true"], labels: {{service: api}}, severity: warning}}
  - {{name: api-emergency, type: command, command: ["true"], labels: {{service: api}}, severity: emergency,
     alert: {{after: 1}}}}
  - {{name: web, type: command, command: ["true"], labels: {{service: web}}, alert: {{for: 30s}}}}
  - {{name: slo, type: command, command: ["true"], labels: {{service: web}}, alert: {{after: 1}}}}
alerting:
  route:
    receiver: chat
    group_by: [service, severity]
    group_wait: 10s
    group_interval: 1m
    repeat_interval: 1h
    routes:
      - {{match: {{severity: critical}}, receiver: pager, continue: true, group_by: [check]}}
      - {{receiver: chat}}
  inhibit:
    - source_match: {{severity: emergency}}
      target_match_re: {{severity: "warning|critical"}}
      equal: [service]
  maintenance_windows:
    - {{name: nightly, matchers: {{team: data}}, cron: "0 * * * *", duration: 10m}}
  receivers:
    - {{name: chat, log: {{}}}}
    - {{name: pager, log: {{}}}}
"""

STATUSES = [Status.OK, Status.OK, Status.WARNING, Status.CRITICAL, Status.CRITICAL, Status.UNKNOWN]
CHECKS = ["db", "api", "api-latency", "api-emergency", "web", "slo"]


def assert_consistent(engine, registry) -> None:
    now = engine.clock()
    records = engine.records
    # cached Alerts are what to_alert builds now
    for rec in records.values():
        fresh = to_alert(rec, engine.checks.get(rec.check), engine.alerting.runbook_base_url, engine.agent_url)
        assert engine._alert(rec) == fresh
    # mutes of firing alerts are what a full pass over every firing alert gives
    firing = {k: engine._alert(r) for k, r in records.items() if r.state == AlertState.FIRING}
    sources = [Source(k, a.check, a.labels) for k, a in firing.items()]
    for key, alert in firing.items():
        cfg = engine.checks[records[key].check]
        mute = engine.suppressor.check(key, alert.labels, cfg.depends_on, engine.statuses, sources, now)
        assert records[key].suppressed_by == (mute[1] if mute else None), records[key].check
    # records by check, in records order
    by_check: dict[str, list[str]] = {}
    for key, rec in records.items():
        by_check.setdefault(rec.check, []).append(key)
    assert {c: list(keys) for c, keys in engine._by_check.items()} == by_check
    assert engine._pending == {k for k, r in records.items() if r.state == AlertState.PENDING}
    # the dispatcher's indexes
    d = engine.dispatcher
    keys = set(records) | {k for g in d.groups.values() for k in g.alerts}
    for key in keys:
        assert d.groups_of(key) == [g for g in d.groups.values() if key in g.alerts]
    assert d.next_due() == min((g.next_flush for g in d.groups.values() if g.next_flush is not None), default=None)
    # the sre_agent_alerts gauge
    for state in (AlertState.PENDING, AlertState.FIRING):
        for severity in Severity:
            n = sum(1 for r in records.values() if (r.state, r.severity) == (state, severity))
            value = registry.get_sample_value("sre_agent_alerts", {"state": state.value, "severity": severity.value})
            assert value == n


@pytest.mark.parametrize("seed", range(6))
async def test_a_random_run_matches_recomputing_everything(tmp_path, store, clock, receivers, seed):
    rng = random.Random(seed)
    registry = CollectorRegistry()
    team = "payments"
    engine = await make_engine(config(tmp_path, CONFIG.format(api_team=team)), store, clock, receivers, registry)
    silences = 0
    for _ in range(250):
        action = rng.random()
        if action < 0.55:
            check = rng.choice(CHECKS)
            details = {"alert_key": rng.choice(["fast-burn", "slow-burn"])} if check == "slo" else {}
            results = [result(check, rng.choice(STATUSES), clock.now, **details)]
            if rng.random() < 0.2:  # a burst: several results in one cycle
                results += [result(c, rng.choice(STATUSES), clock.now) for c in rng.sample(CHECKS[:5], 3)]
            await engine.process(results, now=clock.now)
        elif action < 0.75:
            clock.advance(rng.choice([1, 5, 20, 45, 300, 700]))
            await engine.process([], now=clock.now)
        elif action < 0.85:
            silences += 1
            start = clock.now + rng.choice([0, 0, 15, 90])
            await engine.add_silence(Silence(id=f"s{silences}", matchers={"service": rng.choice(["api", "web", "db"])},
                                             starts_at=start, ends_at=start + rng.choice([30, 200, 900]),
                                             created_at=clock.now))
            await engine.process([], now=clock.now)
        elif action < 0.92 and silences:
            await engine.expire_silence(f"s{rng.randint(1, silences)}")
            await engine.process([], now=clock.now)
        elif action < 0.96:
            team = "checkout" if team == "payments" else "payments"  # a reload that changes a check's labels
            await engine.reconfigure(config(tmp_path, CONFIG.format(api_team=team)))
        else:
            await engine.process([], now=clock.now)
        assert_consistent(engine, registry)
    assert {r.state for r in engine.records.values()} >= {AlertState.FIRING}
    await engine.stop()


async def test_mutes_follow_what_changes_without_the_alert_changing(tmp_path, store, clock, receivers):
    """A silence starting, a source starting to fire, a dependency failing: the muted alert's own
    record does not change, yet its mute must."""
    engine = await make_engine(config(tmp_path, CONFIG.format(api_team="payments")), store, clock, receivers)
    for _ in range(2):
        await engine.process([result("api-latency", Status.CRITICAL, clock.now),
                              result("api", Status.CRITICAL, clock.now)], now=clock.now)

    def muted() -> dict[str, str | None]:
        return {a.check: a.suppressed_by for a in engine.alerts()}

    assert muted() == {"api-latency": None, "api": None}
    await engine.add_silence(Silence(id="later", matchers={"check": "api-latency"}, starts_at=clock.now + 60,
                                     ends_at=clock.now + 120))
    clock.advance(59)
    await engine.process([], now=clock.now)
    assert muted()["api-latency"] is None
    clock.advance(1)
    await engine.process([], now=clock.now)
    assert muted()["api-latency"] == "silence:later"
    clock.advance(60)
    await engine.process([], now=clock.now)
    assert muted()["api-latency"] is None

    await engine.process([result("api-emergency", Status.CRITICAL, clock.now)], now=clock.now)
    assert muted() == {"api-latency": "inhibited:api-emergency", "api": "inhibited:api-emergency",
                       "api-emergency": None}
    await engine.process([result("api-emergency", Status.OK, clock.now)], now=clock.now)
    assert muted() == {"api-latency": None, "api": None}

    await engine.process([result("db", Status.CRITICAL, clock.now)], now=clock.now)
    assert muted()["api"] == "dependency:db"
    await engine.process([result("db", Status.OK, clock.now)], now=clock.now)
    assert muted()["api"] is None
    await engine.stop()
