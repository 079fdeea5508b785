"""A check's alert state moves with the check from one replica to another (`acquire` / `release`).

Two engines on one store stand for two replicas: the check's pending count,
firing state, what its group notified and the repeat timer go with it, so the
new owner neither pages again for an incident already paged nor loses the
resolve, whether the old owner handed it over or died holding it.
"""

from __future__ import annotations

from agent.core import Status
from tests.alerting.helpers import FakeClock, Receivers, config, deliver, feed, open_store, wait

C, OK = Status.CRITICAL, Status.OK

CONFIG = """
checks:
  - {name: api, type: command, command: ["true"], labels: {service: api}}
  - {name: web, type: command, command: ["true"]}
alerting:
  route: {receiver: pager, group_by: [check], group_wait: 10s, group_interval: 1m, repeat_interval: 4h}
  receivers:
    - {name: pager, log: {}}
"""


async def replica(tmp_path, store, clock, receivers, name):
    cfg = config(tmp_path, CONFIG)
    from prometheus_client import CollectorRegistry

    from agent.alerting.engine import AlertingEngine

    engine = AlertingEngine(cfg, store, CollectorRegistry(), clock=clock, receiver_factory=receivers,
                            rng=lambda: 1.0, background=False)
    engine.shard(name)
    await engine.start()
    return engine


async def own(store, engine, checks, live):
    got = await store.claim_checks(engine.owner, checks, live)
    await engine.acquire(got)
    return got


async def test_a_handed_over_alert_is_not_paged_again_and_its_timers_and_resolve_follow(tmp_path):
    clock, receivers = FakeClock(), Receivers()
    store = await open_store(tmp_path)
    a = await replica(tmp_path, store, clock, receivers, "a")
    b = await replica(tmp_path, store, clock, receivers, "b")
    assert await own(store, a, ["api", "web"], ["a", "b"]) == {"api", "web"}
    await feed(a, clock, "api", [C, C])
    await wait(a, clock, 10)
    pager = receivers["pager"]
    assert [(c, s) for c, s, _ in pager.events()] == [("api", "firing")]
    paged_at = clock.now

    # b joins: api is b's now; a cannot hand it to b before it released it
    assert await own(store, b, ["api"], ["a", "b"]) == set()
    await a.release(["api"])
    assert "api" not in {r.check for r in a.records.values()} and a.owned == {"web"}
    assert await own(store, b, ["api"], ["a", "b"]) == {"api"}
    await feed(b, clock, "api", [C] * 6, every=600)  # still failing: the incident was paged already
    await deliver(b)
    assert len(pager.received) == 1
    clock.now = paged_at + 4 * 3600 + 1  # the repeat timer came along
    await wait(b, clock, 0)
    assert len(pager.received) == 2 and pager.received[1].extra["repeat"] is True
    await feed(b, clock, "api", [OK])
    await wait(b, clock, 60)
    assert [(c, s) for c, s, _ in pager.events()][-1] == ("api", "resolved")
    # the old owner, still running, never writes api's state again
    await a.process([], now=clock.now)
    assert (await store.check_owners())["api"] == "b"
    await a.stop()
    await b.stop()
    await store.close()


async def test_the_state_of_a_dead_owner_is_adopted_from_its_stored_groups(tmp_path):
    clock, receivers = FakeClock(), Receivers()
    store = await open_store(tmp_path)
    a = await replica(tmp_path, store, clock, receivers, "a")
    await own(store, a, ["api", "web"], ["a"])
    await feed(a, clock, "api", [C, C])
    await wait(a, clock, 10)
    await feed(a, clock, "web", [C])  # web: one failure of two, pending
    pager = receivers["pager"]
    assert len(pager.received) == 1
    # a dies without a release (kill -9): b sees it gone and takes everything
    b = await replica(tmp_path, store, clock, receivers, "b")
    assert await own(store, b, ["api", "web"], ["b"]) == {"api", "web"}
    await feed(b, clock, "api", [C, C])
    await deliver(b)
    assert len(pager.received) == 1  # no second page
    await feed(b, clock, "web", [C])  # the second failure: web's pending count came along
    await wait(b, clock, 10)
    assert [(c, s) for c, s, _ in pager.events()][-1] == ("web", "firing")
    await feed(b, clock, "api", [OK])
    await wait(b, clock, 60)
    assert ("api", "resolved") in [(c, s) for c, s, _ in pager.events()]
    await b.stop()
    await store.close()


async def test_no_notification_is_lost_while_the_store_and_the_receiver_are_down(tmp_path):
    from agent.store import SqliteStore

    class FlakyStore(SqliteStore):
        down = False

        async def write_alert_changes(self, changes):  # type: ignore[no-untyped-def]
            if self.down:
                raise ConnectionError("server closed the connection")
            await super().write_alert_changes(changes)

    text = CONFIG.replace("checks:\n", "checks:\n" + "".join(
        f"  - {{name: c{i}, type: command, command: [\"true\"], alert: {{after: 1}}}}\n" for i in range(5)))
    clock, receivers = FakeClock(), Receivers()
    store = FlakyStore(tmp_path / "state.db")
    await store.open()
    from prometheus_client import CollectorRegistry

    from agent.alerting.engine import AlertingEngine

    a = AlertingEngine(config(tmp_path, text), store, CollectorRegistry(), clock=clock, receiver_factory=receivers,
                       rng=lambda: 1.0, background=False)
    await a.start()
    store.down = True
    receivers["pager"].condition = "down"
    for i in range(5):
        await feed(a, clock, f"c{i}", [C])
        await wait(a, clock, 10)
    assert receivers["pager"].received == []
    store.down = False
    receivers["pager"].condition = "up"
    for _ in range(6):
        await wait(a, clock, 60)
    assert sorted(c for c, _, _ in receivers["pager"].events()) == ["c0", "c1", "c2", "c3", "c4"]  # each once
    await a.stop()
    await store.close()


async def test_a_silence_made_through_one_replica_applies_on_the_other(tmp_path):
    from agent.alerting.silences import Silence

    clock, receivers = FakeClock(), Receivers()
    store = await open_store(tmp_path)
    a = await replica(tmp_path, store, clock, receivers, "a")
    b = await replica(tmp_path, store, clock, receivers, "b")
    await own(store, b, ["api"], ["a", "b"])
    await a.add_silence(Silence(id="s1", matchers={"check": "api"}, starts_at=clock.now - 1, ends_at=clock.now + 3600,
                                created_by="ops", comment="deploy", source="api", created_at=clock.now))
    await b.refresh_shared()  # what b's background task does every SHARED_REFRESH seconds
    await feed(b, clock, "api", [C, C])
    await wait(b, clock, 10)
    assert receivers["pager"].received == []  # silenced on b too
    assert [r.suppressed_by for r in b.records.values()] == ["silence:s1"]
    await a.expire_silence("s1")
    await b.refresh_shared()
    await wait(b, clock, 10)
    assert [c for c, _, _ in receivers["pager"].events()] == ["api"]
    await a.stop()
    await b.stop()
    await store.close()
