"""The incident log: each alert from its first failing result to its resolve, kept in the store for digests."""

from __future__ import annotations

from pathlib import Path

from agent.alerting.silences import Silence
from agent.core import Status
from tests.alerting.helpers import T0, FakeClock, Receivers, config, feed, make_engine, open_store

CONFIG = """
checks:
  - {name: api, type: command, command: ["true"], labels: {service: api}, alert: {after: 2}}
  - {name: db, type: command, command: ["true"], alert: {after: 2}}
alerting:
  route: {receiver: ops, group_wait: 0s}
  receivers: [{name: ops, log: {}}]
  silences:
    - {matchers: {check: db}, starts_at: 2027-01-15T08:00:00Z, duration: 1h, comment: planned}
"""
C, OK = Status.CRITICAL, Status.OK


async def test_an_incident_records_start_detection_ack_and_resolve(tmp_path: Path) -> None:
    store = await open_store(tmp_path)
    clock = FakeClock(T0)
    engine = await make_engine(config(tmp_path, CONFIG), store, clock, Receivers())
    try:
        await feed(engine, clock, "api", [C, C, C], every=60)  # first failure at T0, fires on the second
        await engine.add_silence(Silence(id="ack", matchers={"service": "api"}, starts_at=clock.now,
                                         ends_at=clock.now + 3600, comment="on it", source="api"))
        acked_at = clock.now
        await engine.process([], now=clock.now)
        await feed(engine, clock, "api", [C, OK], every=600)
        [incident] = await store.incidents(T0 - 1, clock.now)
        assert incident.check == "api"
        assert incident.failing_since == T0 and incident.fired_at == T0 + 60
        assert incident.acknowledged_at == acked_at
        assert incident.resolved_at == T0 + 180 + 600  # the passing result
        assert incident.doc["severity"] == "critical"
        # a second incident of the same alert is a new row
        await feed(engine, clock, "api", [C, C], every=60)
        assert [(i.check, i.resolved_at is None) for i in await store.incidents(T0, clock.now)] == [
            ("api", False), ("api", True)]
    finally:
        await engine.stop()
        await store.close()


async def test_a_planned_silence_is_no_acknowledgement_and_a_removed_check_closes_its_incident(tmp_path: Path) -> None:
    store = await open_store(tmp_path)
    clock = FakeClock(T0 + 60)
    cfg = config(tmp_path, CONFIG)
    engine = await make_engine(cfg, store, clock, Receivers())
    try:
        await feed(engine, clock, "db", [C, C, C], every=60)
        [incident] = await store.incidents(T0, clock.now)
        assert incident.check == "db" and incident.acknowledged_at is None  # muted by a config silence
        await engine.reconfigure(config(tmp_path, CONFIG.replace("  - {name: db, type: command", "  - {name: db2, type: command")))
        [closed] = await store.incidents(T0, clock.now)
        assert closed.resolved_at == clock.now
    finally:
        await engine.stop()
        await store.close()
