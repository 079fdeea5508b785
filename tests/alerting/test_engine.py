"""The engine end to end on a fake clock: results -> alerts -> groups -> outbox -> receivers."""

from __future__ import annotations

from datetime import UTC, datetime

from prometheus_client import CollectorRegistry

from agent.alerting.lifecycle import dedup_key
from agent.core import AlertState, Status
from tests.alerting.helpers import T0, config, deliver, feed, make_engine, result, wait

C, W, OK = Status.CRITICAL, Status.WARNING, Status.OK

CONFIG = """
agent: {listen: "127.0.0.1:9108"}
checks:
  - name: db-port
    type: command
    command: ["true"]
    labels: {service: db, team: data}
  - name: api
    type: command
    command: ["true"]
    labels: {service: api, team: payments}
    runbook: runbooks/http-endpoint-down.md  # a relative runbook must exist (this one is shipped)
    severity: {warning: warning, critical: critical}
    depends_on: [db-port]
  - name: api-latency
    type: command
    command: ["true"]
    labels: {service: api}
    severity: warning
  - name: api-emergency
    type: command
    command: ["true"]
    labels: {service: api}
    severity: emergency
  - name: web-latency
    type: command
    command: ["true"]
    labels: {service: web}
    severity: warning
alerting:
  runbook_base_url: https://git.example.com/ops/runbooks/blob/main/
  route:
    receiver: chat
    group_by: [check]
    group_wait: 10s
    group_interval: 1m
    repeat_interval: 4h
    routes:
      - match: {severity: critical}
        receiver: pager
        continue: true
      - receiver: chat
  inhibit:
    - source_match: {severity: emergency}
      target_match: {severity: warning}
      equal: [service]
  receivers:
    - {name: chat, log: {}}
    - {name: pager, log: {}}
"""


async def test_a_failing_check_pages_once_with_everything_an_sre_needs(tmp_path, store, clock, receivers):
    engine = await make_engine(config(tmp_path, CONFIG), store, clock, receivers)
    await feed(engine, clock, "api", [C, C])  # fires at T0+10; now T0+20
    assert [a.state for a in engine.alerts()] == [AlertState.FIRING]
    clock.now = T0 + 19
    await wait(engine, clock, 0)
    assert receivers["pager"].received == []  # group_wait not over
    await wait(engine, clock, 1)
    [n] = receivers["pager"].received
    [alert] = n.alerts
    assert alert.dedup_key == dedup_key("api")
    assert alert.labels == {"service": "api", "team": "payments", "check": "api", "type": "command", "severity": "critical"}
    assert alert.runbook_url == "https://git.example.com/ops/runbooks/blob/main/runbooks/http-endpoint-down.md"
    assert alert.generator_url == "http://127.0.0.1:9108/api/v1/checks?name=api"
    assert alert.observations == {"latency_seconds": 0.25} and alert.summary == "api is CRITICAL"
    assert alert.starts_at == T0 + 10 and n.group_labels == {"check": "api"}
    assert receivers["chat"].events() == [("api", "firing", "critical")]
    clock.now = T0 + 30
    await feed(engine, clock, "api", [C] * 20, every=60)  # 20 more minutes of failure: no new page
    await deliver(engine)
    assert len(receivers["pager"].received) == 1
    await feed(engine, clock, "api", [OK])
    await wait(engine, clock, 60)
    assert receivers["pager"].events() == [("api", "firing", "critical"), ("api", "resolved", "critical")]
    assert receivers["pager"].received[1].alerts[0].ends_at is not None
    await engine.stop()


async def test_flapping_severity_updates_one_alert(tmp_path, store, clock, receivers):
    engine = await make_engine(config(tmp_path, CONFIG), store, clock, receivers)
    await feed(engine, clock, "api", [W, W])
    await wait(engine, clock, 10)
    await feed(engine, clock, "api", [C])
    await wait(engine, clock, 120)
    chat = receivers["chat"].received
    assert [(n.alerts[0].severity.value, n.alerts[0].dedup_key) for n in chat] == \
        [("warning", dedup_key("api")), ("critical", dedup_key("api"))]
    assert receivers["pager"].events() == [("api", "firing", "critical")]
    assert len(engine.alerts()) == 1
    await engine.stop()


async def test_dependency_failure_suppresses_the_dependent(tmp_path, store, clock, receivers):
    registry = CollectorRegistry()
    engine = await make_engine(config(tmp_path, CONFIG), store, clock, receivers, registry)
    await engine.process([result("db-port", C, clock.now)], now=clock.now)
    await feed(engine, clock, "api", [C, C, C])
    [api] = [a for a in engine.alerts() if a.check == "api"]
    assert api.state == AlertState.FIRING and api.suppressed_by == "dependency:db-port"
    await wait(engine, clock, 600)
    assert ("api", "firing", "critical") not in receivers["chat"].events()
    assert registry.get_sample_value("sre_agent_alerts_suppressed_total", {"reason": "dependency"}) == 1
    clock.advance(600)
    await engine.process([result("db-port", OK, clock.now)], now=clock.now)  # the database is back
    await wait(engine, clock, 60)
    assert ("api", "firing", "critical") in receivers["chat"].events()
    await engine.stop()


async def test_emergency_inhibits_warnings_of_the_same_service(tmp_path, store, clock, receivers):
    registry = CollectorRegistry()
    engine = await make_engine(config(tmp_path, CONFIG), store, clock, receivers, registry)
    for check in ("api-emergency", "api-latency", "web-latency"):
        await engine.process([result(check, C, clock.now)], now=clock.now)
        await engine.process([result(check, C, clock.now)], now=clock.now)
    muted = {a.check: a.suppressed_by for a in engine.alerts()}
    assert muted == {"api-emergency": None, "api-latency": "inhibited:api-emergency", "web-latency": None}
    await wait(engine, clock, 10)
    assert {c for c, _, _ in receivers["chat"].events()} == {"api-emergency", "web-latency"}
    assert registry.get_sample_value("sre_agent_alerts_suppressed_total", {"reason": "inhibited"}) == 1
    await feed(engine, clock, "api-emergency", [OK])  # the source resolves: the warning is sent
    await wait(engine, clock, 120)
    assert ("api-latency", "firing", "warning") in receivers["chat"].events()
    await engine.stop()


def iso(ts):
    return datetime.fromtimestamp(ts, UTC).isoformat()


async def test_config_silence_and_maintenance_window(tmp_path, store, clock, receivers):
    text = CONFIG + f"""
  silences:
    - matchers: {{service: api}}
      starts_at: {iso(T0 + 3600)}
      duration: 1h
      comment: planned maintenance
  maintenance_windows:
    - {{name: db-patching, matchers: {{team: data}}, cron: "0 2 * * *", duration: 2h}}
"""
    registry = CollectorRegistry()
    engine = await make_engine(config(tmp_path, text), store, clock, receivers, registry)
    clock.now = T0 + 3600 + 60
    await feed(engine, clock, "api-latency", [C, C])
    [alert] = engine.alerts()
    assert alert.suppressed_by.startswith("silence:cfg-")
    clock.now = datetime(2027, 1, 16, 2, 30, tzinfo=UTC).timestamp()  # inside the nightly window
    await feed(engine, clock, "db-port", [C, C])
    assert {a.check: a.suppressed_by for a in engine.alerts()}["db-port"] == "maintenance:db-patching"
    assert registry.get_sample_value("sre_agent_alerts_suppressed_total", {"reason": "silenced"}) == 2
    # the silence ended long ago: api-latency is sent now; db-port once its window closes at 04:00
    await wait(engine, clock, 60)
    assert {c for c, _, _ in receivers["chat"].events()} == {"api-latency"}
    clock.now = datetime(2027, 1, 16, 4, 0, 1, tzinfo=UTC).timestamp()
    await engine.process([], now=clock.now)
    await wait(engine, clock, 60)
    assert ("db-port", "firing", "critical") in receivers["pager"].events()
    await engine.stop()


async def test_alert_families_from_alert_key(tmp_path, store, clock, receivers):
    engine = await make_engine(config(tmp_path, CONFIG), store, clock, receivers)
    await feed(engine, clock, "api", [C, C], alert_key="fast-burn")
    assert [a.dedup_key for a in engine.alerts()] == [dedup_key("api", "fast-burn")]
    await feed(engine, clock, "api", [C, C], alert_key="slow-burn")  # the other family: fast-burn resolves
    assert {a.dedup_key: a.state.value for a in engine.alerts({"firing", "resolved"})} == {
        dedup_key("api", "fast-burn"): "resolved", dedup_key("api", "slow-burn"): "firing"}
    await engine.stop()


async def test_metrics_count_alerts_and_deliveries(tmp_path, store, clock, receivers):
    registry = CollectorRegistry()
    engine = await make_engine(config(tmp_path, CONFIG), store, clock, receivers, registry)
    await feed(engine, clock, "api", [C])
    assert registry.get_sample_value("sre_agent_alerts", {"state": "pending", "severity": "critical"}) == 1
    await feed(engine, clock, "api", [C])
    await feed(engine, clock, "web-latency", [C, C])
    assert registry.get_sample_value("sre_agent_alerts", {"state": "firing", "severity": "critical"}) == 1
    assert registry.get_sample_value("sre_agent_alerts", {"state": "firing", "severity": "warning"}) == 1
    await engine.process([], now=clock.advance(10))
    assert registry.get_sample_value("sre_agent_notification_queue_depth", {"receiver": "chat"}) == 2
    await deliver(engine)
    assert registry.get_sample_value("sre_agent_notifications_total", {"receiver": "chat", "outcome": "sent"}) == 2
    assert registry.get_sample_value("sre_agent_notification_queue_depth", {"receiver": "chat"}) == 0
    assert registry.get_sample_value("sre_agent_notification_latency_seconds_count", {"receiver": "chat"}) == 2
    await engine.stop()


async def test_alerting_metrics_pass_promtool(tmp_path, store, clock, receivers):
    import asyncio
    import shutil
    import subprocess

    from prometheus_client import generate_latest

    promtool = shutil.which("promtool")
    assert promtool, "promtool (Debian package prometheus) is needed for this test"
    registry = CollectorRegistry()
    engine = await make_engine(config(tmp_path, CONFIG), store, clock, receivers, registry)
    await feed(engine, clock, "api", [C, C])
    await wait(engine, clock, 10)
    text = generate_latest(registry)
    for name in (b"sre_agent_alerts{", b"sre_agent_notifications_total{", b"sre_agent_notification_queue_depth{",
                 b"sre_agent_notification_latency_seconds_bucket{", b"sre_agent_alerts_suppressed_total{"):
        assert name in text
    done = await asyncio.to_thread(subprocess.run, [promtool, "check", "metrics"], input=text, capture_output=True,
                                   timeout=30)
    assert done.returncode == 0 and not done.stdout.strip() and not done.stderr.strip(), done.stdout + done.stderr
    await engine.stop()
