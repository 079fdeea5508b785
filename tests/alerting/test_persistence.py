"""Restarts and reloads: nothing lost, nothing re-paged, removed receivers' rows dropped."""

from __future__ import annotations

import contextlib
import sqlite3

from prometheus_client import CollectorRegistry

from agent.core import Status
from tests.alerting.helpers import T0, FakeClock, Receivers, config, feed, make_engine, open_store, wait

C, OK = Status.CRITICAL, Status.OK

CONFIG = """
checks:
  - {name: api, type: command, command: ["true"], labels: {service: api}}
alerting:
  route: {receiver: pager, group_wait: 10s, group_interval: 1m, repeat_interval: 4h}
  receivers:
    - {name: pager, log: {}}
"""


async def restart(tmp_path, clock, receivers, text=CONFIG):
    store = await open_store(tmp_path)
    engine = await make_engine(config(tmp_path, text), store, clock, receivers)
    return store, engine


async def shutdown(store, engine):
    await engine.stop()
    await store.close()


async def test_a_restart_does_not_repage_and_keeps_the_repeat_timer(tmp_path):
    clock, receivers = FakeClock(), Receivers()
    store, engine = await restart(tmp_path, clock, receivers)
    await feed(engine, clock, "api", [C, C])
    await wait(engine, clock, 10)
    assert len(receivers["pager"].received) == 1
    sent_at = clock.now
    await shutdown(store, engine)

    clock.advance(3600)
    store, engine = await restart(tmp_path, clock, receivers)
    await feed(engine, clock, "api", [C] * 6, every=600)  # still failing after the restart
    assert len(receivers["pager"].received) == 1
    clock.now = sent_at + 4 * 3600 - 1
    await wait(engine, clock, 0)
    assert len(receivers["pager"].received) == 1
    await wait(engine, clock, 1)
    assert len(receivers["pager"].received) == 2 and receivers["pager"].received[1].extra == {"repeat": True, "new": []}
    await shutdown(store, engine)


async def test_a_resolve_queued_while_the_receiver_was_down_survives_a_restart(tmp_path):
    clock, receivers = FakeClock(), Receivers()
    store, engine = await restart(tmp_path, clock, receivers)
    await feed(engine, clock, "api", [C, C])
    await wait(engine, clock, 10)
    receivers["pager"].condition = "down"
    await feed(engine, clock, "api", [OK])
    await wait(engine, clock, 60)
    assert [r.notification().kind for r in await engine.outbox.rows()] == ["resolved"]
    await shutdown(store, engine)

    receivers["pager"].condition = "up"
    clock.advance(600)
    store, engine = await restart(tmp_path, clock, receivers)
    await wait(engine, clock, 0)
    assert receivers["pager"].events() == [("api", "firing", "critical"), ("api", "resolved", "critical")]
    assert await engine.outbox.rows() == []
    await shutdown(store, engine)


async def test_pending_counters_survive_a_restart(tmp_path):
    clock, receivers = FakeClock(), Receivers()
    text = CONFIG.replace('command: ["true"]', 'command: ["true"], alert: {after: 3}')
    store, engine = await restart(tmp_path, clock, receivers, text)
    await feed(engine, clock, "api", [C, C])
    await shutdown(store, engine)
    store, engine = await restart(tmp_path, clock, receivers, text)
    await feed(engine, clock, "api", [C])
    assert [a.state.value for a in engine.alerts()] == ["firing"]
    await shutdown(store, engine)


async def test_api_silences_survive_a_restart(tmp_path):
    from agent.alerting.silences import Silence

    clock, receivers = FakeClock(), Receivers()
    store, engine = await restart(tmp_path, clock, receivers)
    await engine.add_silence(Silence(id="s1", matchers={"service": "api"}, starts_at=T0, ends_at=T0 + 7200,
                                     comment="deploy", created_by="me"))
    await shutdown(store, engine)
    store, engine = await restart(tmp_path, clock, receivers)
    await feed(engine, clock, "api", [C, C])
    assert engine.alerts()[0].suppressed_by == "silence:s1"
    await engine.expire_silence("s1")
    await wait(engine, clock, 10)
    assert engine.alerts()[0].suppressed_by is None and len(receivers["pager"].received) == 1
    await shutdown(store, engine)


async def test_reload_drops_rows_of_a_removed_receiver_and_closes_it(tmp_path, store, clock, receivers, caplog):
    two = CONFIG.replace("route: {receiver: pager,", "route: {receiver: pager, routes: [{receiver: chat, continue: true}, {receiver: pager}],") \
        + "    - {name: chat, log: {}}\n"
    registry = CollectorRegistry()
    engine = await make_engine(config(tmp_path, two), store, clock, receivers, registry)
    receivers["chat"].condition = "down"
    await feed(engine, clock, "api", [C, C])
    await wait(engine, clock, 10)
    assert len(await engine.outbox.rows("chat")) == 1 and len(receivers["pager"].received) == 1
    await engine.reconfigure(config(tmp_path, CONFIG))
    assert receivers["chat"].closed and "chat" not in engine.workers
    assert await engine.outbox.rows() == []
    assert registry.get_sample_value("sre_agent_notifications_total", {"receiver": "chat", "outcome": "dropped"}) == 1
    assert "no longer configured" in caplog.text
    await feed(engine, clock, "api", [C] * 3, every=60)
    assert len(receivers["pager"].received) == 1  # the reload did not re-page
    await engine.stop()


async def test_reload_that_removes_a_check_resolves_its_alert(tmp_path, store, clock, receivers):
    text = CONFIG.replace("checks:\n", "checks:\n  - {name: other, type: command, command: [\"true\"]}\n")
    engine = await make_engine(config(tmp_path, CONFIG), store, clock, receivers)
    await feed(engine, clock, "api", [C, C])
    await wait(engine, clock, 10)
    await engine.reconfigure(config(tmp_path, text.replace("  - {name: api, type: command, command: [\"true\"], labels: {service: api}}\n", "")))
    await wait(engine, clock, 60)
    assert receivers["pager"].events() == [("api", "firing", "critical"), ("api", "resolved", "critical")]
    assert receivers["pager"].received[1].alerts[0].summary == "check removed from the config"
    assert engine.alerts({"firing", "resolved"}) == []
    await engine.stop()


async def test_state_of_removed_checks_is_forgotten_across_restarts(tmp_path):
    clock, receivers = FakeClock(), Receivers()
    two = CONFIG.replace("checks:\n", "checks:\n  - {name: gone, type: command, command: [\"true\"]}\n")
    store, engine = await restart(tmp_path, clock, receivers, two)
    await feed(engine, clock, "gone", [C])
    await shutdown(store, engine)
    store, engine = await restart(tmp_path, clock, receivers)
    assert engine.records == {} and "gone" not in engine.statuses
    with contextlib.closing(sqlite3.connect(tmp_path / "state.db")) as db:  # the file, read from outside
        rows = db.execute("SELECT check_name FROM alert_records UNION ALL "
                          "SELECT check_name FROM alert_check_status").fetchall()
    assert rows == []
    await shutdown(store, engine)
