"""A state store that cannot be written (a full disk) stops no alert (issue 14, item 14).

Before, notifications were committed with the alert state before being sent, so
with the disk full nothing went out, including the alert about the disk, and the
failure was logged on every cycle. Now the rows go out from memory at once (same
idempotency keys), the write is retried with backoff, the failure shows on
`/readyz` and `sre_agent_store_errors_total`, and a row sent from memory is not
sent again once the store takes writes.

Here a real SqliteStore refuses every transaction that writes, with SQLite's
own error ("database or disk is full"), rolled back; tests/test_store_full_disk.py
fills a real filesystem under a running agent.
"""

from __future__ import annotations

import logging
import sqlite3
from typing import Any

import pytest

from agent.core import Status
from agent.store import SqliteStore
from tests.alerting.helpers import config, deliver, feed, make_engine, wait

C, OK = Status.CRITICAL, Status.OK

CONFIG = """
checks:
  - {name: disk, type: command, command: ["true"], labels: {service: node}}
  - {name: api, type: command, command: ["true"], labels: {service: api}}
alerting:
  route: {receiver: pager, group_wait: 0s, group_interval: 1s, group_by: [check]}
  outbox: {max_age: 1h, initial_backoff: 1s, max_backoff: 1m}
  receivers:
    - {name: pager, log: {}}
"""


class FullDisk:
    """Makes a real SqliteStore fail every write as SQLite does on a full disk, while `full` is set."""

    def __init__(self, store: SqliteStore) -> None:
        self.full = False
        real = store._transaction

        def transaction(fn: Any, args: tuple[Any, ...]) -> Any:
            if self.full:
                def refuse(conn: Any, *a: Any) -> Any:
                    before = conn.total_changes
                    out = fn(conn, *a)
                    if conn.total_changes != before:  # it wrote: that is what a full disk refuses
                        raise sqlite3.OperationalError("database or disk is full")
                    return out

                return real(refuse, args)
            return real(fn, args)

        store._transaction = transaction  # type: ignore[method-assign]


async def fill_disk(store: SqliteStore, full: bool) -> None:
    disk = getattr(store, "_test_disk", None)
    if disk is None:
        disk = store._test_disk = FullDisk(store)  # type: ignore[attr-defined]
    disk.full = full


async def outbox_keys(store: SqliteStore) -> list[str]:
    return [r.idempotency_key for r in await store.outbox_rows()]


async def test_a_full_store_does_not_stop_the_page_and_nothing_is_sent_twice(tmp_path, store, clock, receivers,
                                                                            caplog) -> None:
    errors: list[Exception] = []
    store.on_error = errors.append
    engine = await make_engine(config(tmp_path, CONFIG), store, clock, receivers)
    pager = receivers["pager"]
    await fill_disk(store, True)
    with caplog.at_level(logging.ERROR, logger="sre_agent"):
        await feed(engine, clock, "disk", [C, C], every=1)  # fires: its notification cannot be written
        await deliver(engine)
        assert pager.events() == [("disk", "firing", "critical")]  # sent from memory, now
        assert store.failing_since is not None and "alert state" in (store.last_error or "")
        assert errors  # counted (the daemon's sre_agent_store_errors_total)
        for _ in range(20):  # more cycles while the disk is full: retried with backoff, logged once
            await wait(engine, clock, 0.5)
    assert len([r for r in caplog.records if "could not write alert state" in r.message]) == 1
    assert len(errors) < 10  # backoff: not one write attempt per cycle
    assert await outbox_keys(store) == []

    await fill_disk(store, False)
    await wait(engine, clock, 61)  # past the backoff: the state is written, the sent row is not
    assert store.failing_since is None
    assert await outbox_keys(store) == []
    assert [n.idempotency_key for n in pager.received] == pager.attempts  # each sent once
    assert len(pager.received) == 1
    snapshot = await store.load_alert_state()
    assert [r["state"] for r in snapshot.records if r["check"] == "disk"] == ["firing"]  # the state caught up

    await feed(engine, clock, "disk", [OK], every=1)
    await deliver(engine)
    assert pager.events() == [("disk", "firing", "critical"), ("disk", "resolved", "critical")]
    assert await outbox_keys(store) == []


async def test_a_row_still_waiting_in_memory_is_taken_over_by_its_stored_copy(tmp_path, store, clock,
                                                                            receivers) -> None:
    engine = await make_engine(config(tmp_path, CONFIG), store, clock, receivers)
    pager = receivers["pager"]
    pager.condition = "down"  # the receiver is down too: the memory row is retried, not sent
    await fill_disk(store, True)
    await feed(engine, clock, "api", [C, C], every=1)
    await deliver(engine)
    assert pager.received == [] and len(pager.attempts) == 1
    await fill_disk(store, False)
    await wait(engine, clock, 61)  # written now: the stored row replaces the memory one
    assert len(await outbox_keys(store)) == 1
    pager.condition = "up"
    for _ in range(10):
        await wait(engine, clock, 120)
    assert pager.events() == [("api", "firing", "critical")]
    assert set(pager.attempts) == {pager.received[0].idempotency_key}  # one key throughout
    assert await outbox_keys(store) == []


@pytest.mark.parametrize("fill", [True])
async def test_check_history_is_kept_in_memory_while_the_store_is_full(tmp_path, fill: bool) -> None:
    store = SqliteStore(tmp_path / "state.db")
    await store.open()
    try:
        from tests.alerting.helpers import result

        for i in range(50):
            store.add_result(result("api", OK, 1_800_000_000.0 + i))
        await store.flush()
        await fill_disk(store, fill)
        for i in range(50, 3000):
            store.add_result(result("api", OK, 1_800_000_000.0 + i))
        await store.flush()
        assert store.failing_since is not None
        await fill_disk(store, False)
        await store.flush()
        assert store.failing_since is None
        assert await store.success_counts("api", 0, 1_900_000_000.0) == (3000, 3000)  # nothing lost
    finally:
        await store.close()
