"""What only a store shared by several replicas does: outbox claims (PostgreSQL).

Two `PostgresStore`s on one database stand for two replicas; claims are
exclusive while they last, run out when not renewed, and a row claimed by
another replica since is not deleted by the one whose claim expired.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from agent.store import OutboxEntry, Store
from tests.store.conftest import StoreFactory, postgresql_backend

pytestmark = pytest.mark.integration
NOW = 1_800_000_000.0


def entry(group: str, key: str) -> OutboxEntry:
    return OutboxEntry(receiver="pager", group_key=group, idempotency_key=key, created_at=NOW, payload={"k": key},
                       next_attempt_at=NOW)


@pytest.fixture
def make(tmp_path, pg_cluster) -> StoreFactory:  # type: ignore[no-untyped-def]
    return postgresql_backend(tmp_path, pg_cluster)


@pytest.fixture
async def two(make: StoreFactory) -> AsyncIterator[tuple[Store, Store]]:
    a, b = make(), make()
    a.member, b.member = "r1", "r2"
    await a.open()
    await b.open()
    yield a, b
    await a.close()
    await b.close()


async def test_a_claimed_row_goes_to_one_replica(two: tuple[Store, Store]) -> None:
    a, b = two
    await a.outbox_insert([entry("g1", "k1"), entry("g2", "k2"), entry("g3", "k3")])
    got_a = await a.outbox_after("pager", 0, 2)
    got_b = await b.outbox_after("pager", 0, 10)
    assert [r.idempotency_key for r in got_a] == ["k1", "k2"]
    assert [r.idempotency_key for r in got_b] == ["k3"]
    assert [r.idempotency_key for r in await a.outbox_after("pager", 0, 10)] == ["k1", "k2"]  # its own, again
    assert await b.outbox_delete_many(got_a) == []  # b never held them
    assert await a.outbox_renew() == 2


async def test_a_later_row_of_a_group_waits_for_the_replica_holding_an_earlier_one(two: tuple[Store, Store]) -> None:
    a, b = two
    await a.outbox_insert([entry("g1", "trigger")])
    assert [r.idempotency_key for r in await a.outbox_after("pager", 0, 10)] == ["trigger"]
    await a.outbox_insert([entry("g1", "resolve"), entry("g2", "other")])
    assert [r.idempotency_key for r in await b.outbox_after("pager", 0, 10)] == ["other"]  # not the resolve
    assert [r.idempotency_key for r in await a.outbox_after("pager", 0, 10)] == ["trigger", "resolve"]


async def test_a_claim_that_is_not_renewed_runs_out(two: tuple[Store, Store]) -> None:
    a, b = two
    a.claim_lease = 0.0  # a replica that died: its claims end at once
    rows = [entry("g1", "k1")]
    await a.outbox_insert(rows)
    [held] = await a.outbox_after("pager", 0, 10)
    [taken] = await b.outbox_after("pager", 0, 10)
    assert taken.id == held.id and taken.idempotency_key == "k1"  # same row, same key: retried, not re-created
    assert await a.outbox_delete_many([held]) == []  # b holds it now
    assert await b.outbox_delete_many([taken]) == [taken]
    assert await a.outbox_rows() == []


async def test_results_are_held_within_the_buffer_while_the_server_is_unreachable() -> None:
    from agent.core import CheckResult, Status
    from agent.store.postgresql import PostgresStore

    store = PostgresStore("postgresql://nobody@127.0.0.1:1/none")  # never opened: every write fails
    dropped: list[int] = []
    store.buffer_limit, store.on_drop = 100, dropped.append
    for i in range(150):
        store.add_result(CheckResult(status=Status.OK, summary="ok", check="api", type="t", timestamp=NOW + i))
    await store.flush()  # fails, keeps them
    assert store.buffered == 100 and sum(dropped) == 50
    assert store._pending[0][1] == NOW + 50  # the oldest went first


async def test_a_connection_error_never_shows_the_password() -> None:
    from agent.store.postgresql import PostgresStore

    store = PostgresStore("postgresql://sre:Inline-Secret-77@127.0.0.1:1/db", password="Apart-Secret-88")
    with pytest.raises(OSError) as err:
        await store.open()
    assert "Inline-Secret-77" not in str(err.value) and "Apart-Secret-88" not in str(err.value)
    assert "127.0.0.1:1" in str(err.value) and "Inline-Secret-77" not in repr(store)
