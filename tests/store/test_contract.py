"""What every store backend promises (`agent.store.base.Store`), tested through the interface only.

Each test runs once per backend in `tests/store/conftest.py`'s `BACKENDS`; nothing
here knows which database is behind the store.
"""

from __future__ import annotations

from typing import Any

import pytest

from agent.core import CheckResult, Status
from agent.store import (
    AlertChanges,
    GroupDoc,
    HistoryPoint,
    IncidentDoc,
    OutboxEntry,
    RecordDoc,
    SilenceDoc,
    Store,
)
from tests.store.conftest import StoreFactory

NOW = 1_800_000_000.0


def result(check: str, ts: float, status: Status = Status.OK) -> CheckResult:
    return CheckResult(status=status, summary=f"{check} {status.name}", check=check, type="t", timestamp=ts)


def entry(receiver: str, key: str, at: float = NOW, **payload: Any) -> OutboxEntry:
    return OutboxEntry(receiver=receiver, group_key="g-" + receiver, idempotency_key=key, created_at=at,
                       payload={"key": key, **payload}, next_attempt_at=at)


class Doc:
    """An object the store serialises itself (as alerting's records and groups are)."""

    def __init__(self, **data: Any) -> None:
        self.data = data

    def to_dict(self) -> dict[str, Any]:
        return dict(self.data)


async def reopen(store: Store, make_store: StoreFactory) -> Store:
    await store.close()
    again = make_store()
    await again.open()
    return again


# -- schema and meta --------------------------------------------------------------------

async def test_schema_version_is_recorded_and_kept_across_reopen(store: Store, make_store: StoreFactory) -> None:
    version = await store.schema_version()
    assert version >= 1
    again = await reopen(store, make_store)
    try:
        assert await again.schema_version() == version
    finally:
        await again.close()


async def test_meta_get_set_overwrite(store: Store) -> None:
    assert await store.get_meta("missing") is None
    await store.set_meta("k", "v1")
    await store.set_meta("k", "v2")
    await store.set_meta("other", "x")
    assert await store.get_meta("k") == "v2"
    assert await store.get_meta("other") == "x"


# -- result history ----------------------------------------------------------------------

async def test_history_reads_queued_results_oldest_first_within_bounds(store: Store) -> None:
    for i in (3, 1, 2, 0):
        store.add_result(result("api", NOW + i, Status.CRITICAL if i == 2 else Status.OK))
    store.add_result(result("web", NOW + 1))
    # not flushed: history flushes first
    assert await store.history("api", NOW, NOW + 3) == [
        HistoryPoint(NOW, Status.OK), HistoryPoint(NOW + 1, Status.OK), HistoryPoint(NOW + 2, Status.CRITICAL),
        HistoryPoint(NOW + 3, Status.OK)]
    assert [p.ts for p in await store.history("api", NOW + 1, NOW + 2)] == [NOW + 1, NOW + 2]  # both ends included
    assert await store.history("nothing", 0, NOW + 10) == []


async def test_success_counts_good_is_ok_or_warning(store: Store) -> None:
    for i, status in enumerate([Status.OK, Status.WARNING, Status.CRITICAL, Status.UNKNOWN, Status.OK]):
        store.add_result(result("api", NOW + i, status))
    await store.flush()
    assert await store.success_counts("api", NOW, NOW + 4) == (3, 5)
    assert await store.success_counts("api", NOW + 2, NOW + 3) == (0, 2)
    assert await store.success_counts("api", NOW + 10, NOW + 20) == (0, 0)
    assert await store.success_counts("other", 0, NOW + 20) == (0, 0)


async def test_first_result_at_is_how_far_back_the_history_goes(make_store: StoreFactory) -> None:
    store = make_store(default_retention=86400, raw_retention=600)
    await store.open()
    try:
        assert await store.first_result_at("api") is None
        store.add_result(result("api", NOW - 7230))  # past the raw retention: rolled into its bucket
        store.add_result(result("api", NOW - 30))
        store.add_result(result("web", NOW - 9000))
        assert await store.first_result_at("api") == NOW - 7230  # queued results count
        await store.prune(NOW)
        bucket = (NOW - 7230) // Store.BUCKET * Store.BUCKET
        assert await store.first_result_at("api") == bucket
        # the interface's own default (for backends that do not override it) says the same
        assert await Store.first_result_at(store, "api") == bucket
        assert await Store.first_result_at(store, "nothing") is None
    finally:
        await store.close()


async def test_buckets_summarise_each_slice_of_history(store: Store) -> None:
    rows = [(0, Status.OK, 0.1), (5, Status.WARNING, 0.3), (12, Status.UNKNOWN, 1.0), (15, Status.CRITICAL, 2.0),
            (19.999, Status.OK, 3.0), (30, Status.OK, 9.0), (40, Status.OK, 9.0)]
    for offset, status, took in rows:
        r = result("api", NOW + offset, status)
        r.duration_seconds = took
        store.add_result(r)
    store.add_result(result("web", NOW + 1, Status.CRITICAL))
    # not flushed: buckets flush first; [since, until) so the row at NOW + 40 is out
    got = await store.buckets("api", NOW, NOW + 40, 4)
    assert [(b.start, b.end) for b in got] == [(NOW + i * 10, NOW + (i + 1) * 10) for i in range(4)]
    assert [(b.total, b.good, b.worst) for b in got] == [
        (2, 2, Status.WARNING), (3, 1, Status.CRITICAL), (0, 0, None), (1, 1, Status.OK)]
    assert got[0].mean_duration == pytest.approx(0.2) and got[1].mean_duration == pytest.approx(2.0)
    assert got[2].mean_duration is None
    assert [b.total for b in await store.buckets("nothing", NOW, NOW + 40, 2)] == [0, 0]
    with pytest.raises(ValueError, match="count >= 1"):
        await store.buckets("api", NOW, NOW + 40, 0)


async def test_buckets_count_aggregated_history_too(make_store: StoreFactory) -> None:
    store = make_store(default_retention=86400, raw_retention=600)
    await store.open()
    try:
        for offset, status in ((7230, Status.CRITICAL), (7225, Status.OK), (30, Status.OK)):
            r = result("api", NOW - offset, status)
            r.duration_seconds = 1.0 if status == Status.OK else 3.0
            store.add_result(r)
        await store.prune(NOW)  # the two old results are now one aggregate
        hours = await store.buckets("api", NOW - 3 * 3600, NOW, 3)
        assert [(b.total, b.good, b.worst) for b in hours] == [(2, 1, Status.CRITICAL), (0, 0, None), (1, 1, Status.OK)]
        assert hours[0].mean_duration == pytest.approx(2.0)
        assert await store.success_counts("api", NOW - 3 * 3600, NOW) == (2, 3)
    finally:
        await store.close()


async def test_flush_with_nothing_queued_is_a_no_op(store: Store) -> None:
    await store.flush()
    await store.flush()
    assert await store.success_counts("api", 0, NOW) == (0, 0)


async def test_prune_keeps_each_checks_retention(make_store: StoreFactory) -> None:
    store = make_store(default_retention=3600)
    await store.open()
    try:
        store.set_retention("slo", 10 * 86400)
        store.set_retention("slo", 86400)  # a shorter need does not shorten it
        store.set_retention("day", 86400)
        for check in ("plain", "slo", "day"):
            store.add_result(result(check, NOW - 60))  # inside every retention
            store.add_result(result(check, NOW - 7200))  # older than the default
            store.add_result(result(check, NOW - 2 * 86400))  # older than a day
        await store.flush()
        assert await store.prune(NOW) == 3  # plain: 2, day: 1 (the 2-day-old one), slo: none
        assert await store.success_counts("plain", 0, NOW) == (1, 1)
        assert await store.success_counts("day", 0, NOW) == (2, 2)
        assert await store.success_counts("slo", 0, NOW) == (3, 3)
        assert await store.prune(NOW) == 0
    finally:
        await store.close()


async def test_old_history_becomes_aggregates_with_exact_counts(make_store: StoreFactory) -> None:
    store = make_store(default_retention=86400, raw_retention=600)
    await store.open()
    try:
        start = NOW - 7200  # two hours old: past the raw retention
        for i in range(300):  # five minutes at 1 s, every tenth run failing
            r = result("api", start + i, Status.CRITICAL if i % 10 == 0 else Status.OK)
            r.duration_seconds = 0.5 if i % 10 == 0 else 0.1
            store.add_result(r)
        store.add_result(result("api", NOW - 10))  # recent: stays one by one
        before = await store.success_counts("api", start, NOW)
        assert before == (271, 301)
        await store.prune(NOW)
        assert await store.success_counts("api", start, NOW) == before
        points = await store.history("api", start, NOW)
        assert [p.ts for p in points] == [start + 60 * k for k in range(5)] + [NOW - 10]
        assert [p.count for p in points] == [60] * 5 + [1]
        assert {p.status for p in points[:5]} == {Status.CRITICAL}  # a bucket shows its worst run
        assert points[0].duration == pytest.approx((6 * 0.5 + 54 * 0.1) / 60)
        assert points[-1].status == Status.OK
        await store.prune(NOW)  # aggregating again changes nothing
        assert await store.success_counts("api", start, NOW) == before
        assert await store.success_counts("api", start + 120, start + 179) == (54, 60)  # whole buckets
    finally:
        await store.close()


async def test_aggregates_expire_with_the_checks_retention(make_store: StoreFactory) -> None:
    store = make_store(default_retention=3600, raw_retention=60)
    await store.open()
    try:
        store.set_retention("slo", 86400)
        for check in ("plain", "slo"):
            store.add_result(result(check, NOW - 7200))
            store.add_result(result(check, NOW - 1800))
        assert await store.prune(NOW) == 1  # plain's 2-hour-old result
        assert await store.success_counts("plain", 0, NOW) == (1, 1)
        assert await store.success_counts("slo", 0, NOW) == (2, 2)
    finally:
        await store.close()


async def test_size_is_reported(store: Store) -> None:
    for i in range(100):
        store.add_result(result("api", NOW + i))
    await store.flush()
    assert store.size_bytes() > 0


# -- alert state ---------------------------------------------------------------------------

async def test_alert_state_round_trip(store: Store, make_store: StoreFactory) -> None:
    changes = AlertChanges(
        records=[RecordDoc("api/", "api", {"state": "firing", "labels": {"team": "ops"}}),
                 RecordDoc("db/x", "db", Doc(state="pending", n=1))],
        groups=[GroupDoc("g1", "pager", Doc(key="g1", alerts={"api/": {"s": "é"}}))],
        statuses={"api": (Status.CRITICAL, NOW), "db": (Status.WARNING, NOW + 1)},
        outbox=[entry("pager", "k1")])
    await store.write_alert_changes(changes)
    assert changes.outbox[0].id is not None
    snap = await store.load_alert_state()
    assert sorted(snap.records, key=str) == sorted([{"state": "firing", "labels": {"team": "ops"}},
                                                    {"state": "pending", "n": 1}], key=str)
    assert snap.groups == [{"key": "g1", "alerts": {"api/": {"s": "é"}}}]
    assert snap.statuses == {"api": Status.CRITICAL, "db": Status.WARNING}
    assert all(isinstance(s, Status) for s in snap.statuses.values())
    assert snap.silences == []
    [row] = await store.outbox_rows()
    assert row == changes.outbox[0]
    store = await reopen(store, make_store)
    try:
        again = await store.load_alert_state()
        assert (again.records, again.groups, again.statuses) == (snap.records, snap.groups, snap.statuses)
        assert await store.outbox_rows() == [row]
    finally:
        await store.close()


async def test_alert_changes_upsert_and_delete(store: Store) -> None:
    await store.write_alert_changes(AlertChanges(
        records=[RecordDoc("a", "api", {"v": 1}), RecordDoc("b", "api", {"v": 1})],
        groups=[GroupDoc("g1", "pager", {"v": 1}), GroupDoc("g2", "pager", {"v": 1})],
        statuses={"api": (Status.CRITICAL, NOW)}))
    await store.write_alert_changes(AlertChanges(
        records=[RecordDoc("a", "api", {"v": 2})], deleted_records=["b", "never-there"],
        groups=[GroupDoc("g1", "chat", {"v": 2})], deleted_groups=["g2"],
        statuses={"api": (Status.OK, NOW + 5)}))
    snap = await store.load_alert_state()
    assert snap.records == [{"v": 2}]
    assert snap.groups == [{"v": 2}]
    assert snap.statuses == {"api": Status.OK}


async def test_an_empty_change_set_writes_nothing(store: Store) -> None:
    await store.write_alert_changes(AlertChanges())
    snap = await store.load_alert_state()
    assert (snap.records, snap.groups, snap.statuses, snap.silences) == ([], [], {}, [])


async def test_a_failure_mid_batch_commits_nothing(store: Store) -> None:
    first = entry("pager", "k1")
    await store.write_alert_changes(AlertChanges(records=[RecordDoc("a", "api", {"v": 1})], outbox=[first]))
    failing = AlertChanges(
        records=[RecordDoc("a", "api", {"v": 2}), RecordDoc("b", "db", {"v": 1})],
        groups=[GroupDoc("g1", "pager", {"v": 1})],
        statuses={"db": (Status.CRITICAL, NOW)},
        outbox=[entry("pager", "k2"), entry("pager", "k1")])  # the second reuses an idempotency key
    with pytest.raises(Exception):  # noqa: B017 - the backend's integrity error
        await store.write_alert_changes(failing)
    snap = await store.load_alert_state()
    assert snap.records == [{"v": 1}] and snap.groups == [] and snap.statuses == {}
    assert [r.idempotency_key for r in await store.outbox_rows()] == ["k1"]
    assert all(r.id is None for r in failing.outbox)  # no row of a write that failed claims an id
    assert await store.outbox_depth() == {"pager": 1}
    # the same batch without the duplicate goes through afterwards
    failing.outbox.pop()
    await store.write_alert_changes(failing)
    assert [r.idempotency_key for r in await store.outbox_rows()] == ["k1", "k2"]


async def test_silences_save_sync_and_prune(store: Store) -> None:
    def silence(sid: str, source: str, ends_at: float, **extra: Any) -> SilenceDoc:
        return SilenceDoc(sid, source, ends_at, {"id": sid, "source": source, "ends_at": ends_at, **extra})

    await store.save_silence(silence("api-old", "api", NOW - 100 * 86400))
    await store.save_silence(silence("api-live", "api", NOW + 3600))
    await store.save_silence(silence("api-live", "api", NOW + 7200, comment="extended"))  # update in place
    await store.sync_silences("config", [silence("cfg-1", "config", NOW + 60)], NOW - 7 * 86400)
    await store.sync_silences("config", [silence("cfg-2", "config", NOW + 60), silence("cfg-3", "config", NOW - 60)],
                              NOW - 7 * 86400)
    by_id = {s["id"]: s for s in (await store.load_alert_state()).silences}
    assert set(by_id) == {"api-live", "cfg-2", "cfg-3"}  # cfg-1 left the config, api-old ended too long ago
    assert by_id["api-live"] == {"id": "api-live", "source": "api", "ends_at": NOW + 7200, "comment": "extended"}
    # a silence that ended before the cut-off goes, whatever its source; one ending later stays
    await store.sync_silences("config", [], NOW + 100)
    assert {s["id"] for s in (await store.load_alert_state()).silences} == {"api-live"}


async def test_forget_checks_keeps_only_the_named_checks(store: Store) -> None:
    await store.write_alert_changes(AlertChanges(
        records=[RecordDoc("api/", "api", {"c": "api"}), RecordDoc("gone/a", "gone", {"c": "gone"}),
                 RecordDoc("gone/b", "gone", {"c": "gone"})],
        groups=[GroupDoc("g1", "pager", {"g": 1})],
        statuses={"api": (Status.OK, NOW), "gone": (Status.CRITICAL, NOW), "status-only": (Status.OK, NOW)}))
    await store.forget_checks({"api"})
    snap = await store.load_alert_state()
    assert snap.records == [{"c": "api"}]
    assert snap.statuses == {"api": Status.OK}
    assert snap.groups == [{"g": 1}]  # groups are not per check


# -- outbox ----------------------------------------------------------------------------------

async def test_outbox_ids_grow_and_reads_go_by_id(store: Store) -> None:
    rows = [entry("pager", f"p{i}", at=NOW - i) for i in range(5)] + [entry("chat", "c0")]
    await store.outbox_insert(rows[:3])
    await store.outbox_insert(rows[3:])
    ids = [r.id for r in rows]
    assert all(isinstance(i, int) for i in ids) and ids == sorted(ids) and len(set(ids)) == len(ids)
    assert [r.idempotency_key for r in await store.outbox_rows()] == ["p0", "p1", "p2", "p3", "p4", "c0"]
    assert [r.idempotency_key for r in await store.outbox_rows("pager")] == ["p0", "p1", "p2", "p3", "p4"]
    assert await store.outbox_rows("nobody") == []
    pager = await store.outbox_after("pager", 0, 100)
    assert pager == rows[:5]
    assert await store.outbox_after("pager", ids[1] or 0, 2) == rows[2:4]
    assert await store.outbox_after("pager", ids[4] or 0, 10) == []
    assert await store.outbox_head("pager") == rows[0]
    assert await store.outbox_head("chat") == rows[5]
    assert await store.outbox_head("nobody") is None
    assert await store.outbox_depth() == {"pager": 5, "chat": 1}


async def test_outbox_rows_carry_every_field(store: Store) -> None:
    row = OutboxEntry(receiver="pager", group_key="gk", idempotency_key="k", created_at=NOW,
                      payload={"alerts": [{"dedup_key": "api/", "labels": {"é": "ü"}}], "n": 1.5, "none": None},
                      next_attempt_at=NOW + 5, attempts=2, last_error="HTTP 503")
    await store.outbox_insert([row])
    [back] = await store.outbox_rows()
    assert back == row and back.payload["alerts"][0]["labels"] == {"é": "ü"}


async def test_outbox_delete_many_returns_what_was_still_there(store: Store) -> None:
    rows = [entry("pager", f"p{i}") for i in range(4)]
    await store.outbox_insert(rows)
    deleted = await store.outbox_delete_many([rows[0], rows[2]])
    assert deleted == [rows[0], rows[2]] and deleted[0] is rows[0]
    assert await store.outbox_delete_many([rows[0], rows[1]]) == [rows[1]]  # rows[0] is already gone
    assert await store.outbox_delete_many([]) == []
    assert await store.outbox_rows() == [rows[3]]
    assert await store.outbox_depth() == {"pager": 1}


async def test_outbox_reschedule_stores_the_retry(store: Store) -> None:
    rows = [entry("pager", "p0"), entry("pager", "p1")]
    await store.outbox_insert(rows)
    rows[0].attempts, rows[0].next_attempt_at, rows[0].last_error = 3, NOW + 120, "HTTP 429"
    await store.outbox_reschedule(rows[0])
    first, second = await store.outbox_rows()
    assert (first.attempts, first.next_attempt_at, first.last_error) == (3, NOW + 120, "HTTP 429")
    assert (second.attempts, second.next_attempt_at, second.last_error) == (0, NOW, None)
    assert first.id == rows[0].id  # a retry keeps its place in the order


async def test_outbox_drop_except(store: Store) -> None:
    await store.outbox_insert([entry("pager", "p0"), entry("old", "o0"), entry("old", "o1"), entry("gone", "g0")])
    assert await store.outbox_drop_except({"pager", "unused"}) == {"old": 2, "gone": 1}
    assert [r.idempotency_key for r in await store.outbox_rows()] == ["p0"]
    assert await store.outbox_depth() == {"pager": 1}
    assert await store.outbox_drop_except({"pager"}) == {}


async def test_outbox_ids_are_never_reused(store: Store, make_store: StoreFactory) -> None:
    """A delivery worker reads rows past the highest id it holds: a new row must never get an old id."""
    first = [entry("pager", "p0"), entry("pager", "p1")]
    await store.outbox_insert(first)
    await store.outbox_delete_many(first)  # the table is empty again, the highest id included
    again = [entry("pager", "p2")]
    await store.outbox_insert(again)
    assert (again[0].id or 0) > (first[1].id or 0)
    await store.outbox_delete_many(again)
    store = await reopen(store, make_store)
    try:
        later = [entry("pager", "p3")]
        await store.write_alert_changes(AlertChanges(outbox=later))
        assert (later[0].id or 0) > (again[0].id or 0)
    finally:
        await store.close()


async def test_outbox_insert_failure_inserts_nothing(store: Store) -> None:
    await store.outbox_insert([entry("pager", "dup")])
    rows = [entry("pager", "fresh"), entry("pager", "dup")]
    with pytest.raises(Exception):  # noqa: B017 - the backend's integrity error
        await store.outbox_insert(rows)
    assert [r.idempotency_key for r in await store.outbox_rows()] == ["dup"]
    assert [r.id for r in rows] == [None, None]


async def test_outbox_insert_once_queues_a_key_value_once(store: Store, make_store: StoreFactory) -> None:
    first = [entry("slack", "digest-1"), entry("email", "digest-2")]
    assert await store.outbox_insert_once(first, "digest:last_day", "2027-01-15") is True
    assert all(r.id is not None for r in first)
    again = [entry("slack", "digest-3")]
    assert await store.outbox_insert_once(again, "digest:last_day", "2027-01-15") is False
    assert again[0].id is None
    store = await reopen(store, make_store)  # a restart the same day queues nothing either
    try:
        assert await store.outbox_insert_once([entry("slack", "digest-4")], "digest:last_day", "2027-01-15") is False
        assert await store.get_meta("digest:last_day") == "2027-01-15"
        assert await store.outbox_insert_once([entry("slack", "digest-5")], "digest:last_day", "2027-01-16") is True
        assert [r.idempotency_key for r in await store.outbox_rows()] == ["digest-1", "digest-2", "digest-5"]
        # a failed insert records no day: the next try queues it
        dup = [entry("slack", "digest-1")]
        with pytest.raises(Exception):  # noqa: B017 - the backend's integrity error
            await store.outbox_insert_once(dup, "digest:last_day", "2027-01-17")
        assert await store.get_meta("digest:last_day") == "2027-01-16" and dup[0].id is None
    finally:
        await store.close()


# -- incidents -------------------------------------------------------------------------------

def incident(key: str, fired: float, **kw: Any) -> IncidentDoc:
    return IncidentDoc(key=f"{key}:{int(fired)}", dedup_key=key, check=key.split("/")[0], fired_at=fired,
                       doc={"severity": kw.pop("severity", "critical"), "summary": kw.pop("summary", "down")}, **kw)


async def test_incidents_keep_their_first_start_and_ack_and_latest_resolve(store: Store) -> None:
    await store.write_alert_changes(AlertChanges(incidents=[
        incident("api/", NOW - 600, failing_since=NOW - 700),
        incident("db/", NOW - 100000, failing_since=NOW - 100100, resolved_at=NOW - 90000),  # over before the window
        incident("web/", NOW - 90000, failing_since=NOW - 90060, resolved_at=NOW - 3600)]))
    # a later write knows only what changed: the ack, then the resolve with a new summary
    await store.write_alert_changes(AlertChanges(incidents=[incident("api/", NOW - 600, acknowledged_at=NOW - 500)]))
    await store.write_alert_changes(AlertChanges(incidents=[
        incident("api/", NOW - 600, acknowledged_at=NOW - 10, resolved_at=NOW - 60, summary="recovered")]))
    got = await store.incidents(NOW - 86400, NOW)
    assert [i.check for i in got] == ["web", "api"]
    api = got[1]
    assert (api.failing_since, api.fired_at, api.acknowledged_at, api.resolved_at) == (
        NOW - 700, NOW - 600, NOW - 500, NOW - 60)
    assert api.doc == {"severity": "critical", "summary": "recovered"}
    open_now = await store.incidents(NOW - 30, NOW)
    assert open_now == []  # both resolved before NOW - 30
    assert [i.check for i in await store.incidents(0, NOW)] == ["db", "web", "api"]


async def test_resolved_incidents_are_pruned_after_their_retention(store: Store) -> None:
    old = NOW - Store.INCIDENT_RETENTION - 10
    await store.write_alert_changes(AlertChanges(incidents=[
        incident("gone/", old - 100, resolved_at=old), incident("open/", old - 100)]))
    await store.prune(NOW)
    assert [i.check for i in await store.incidents(0, NOW)] == ["open"]


# -- durability --------------------------------------------------------------------------------

async def test_reopen_keeps_everything(store: Store, make_store: StoreFactory) -> None:
    store.add_result(result("api", NOW, Status.CRITICAL))  # queued only: close() writes it
    await store.set_meta("k", "v")
    await store.save_silence(SilenceDoc("s1", "api", NOW + 60, {"id": "s1"}))
    await store.write_alert_changes(AlertChanges(records=[RecordDoc("api/", "api", {"r": 1})],
                                                 statuses={"api": (Status.CRITICAL, NOW)},
                                                 outbox=[entry("pager", "k1")]))
    store = await reopen(store, make_store)
    try:
        assert await store.history("api", 0, NOW) == [HistoryPoint(NOW, Status.CRITICAL)]
        assert await store.get_meta("k") == "v"
        snap = await store.load_alert_state()
        assert snap.records == [{"r": 1}] and snap.statuses == {"api": Status.CRITICAL}
        assert snap.silences == [{"id": "s1"}]
        assert [r.idempotency_key for r in await store.outbox_rows()] == ["k1"]
    finally:
        await store.close()


# -- alert state by check, transitions, replicas ------------------------------------------------

async def test_load_alert_state_of_some_checks(store: Store) -> None:
    await store.write_alert_changes(AlertChanges(
        records=[RecordDoc("a/", "a", {"c": "a"}), RecordDoc("b/", "b", {"c": "b"}), RecordDoc("b/x", "b", {"c": "bx"})],
        groups=[GroupDoc("g1", "pager", {"g": 1})],
        statuses={"a": (Status.OK, NOW), "b": (Status.CRITICAL, NOW)}))
    await store.save_silence(SilenceDoc("s1", "api", NOW + 60, {"id": "s1"}))
    snap = await store.load_alert_state(checks=["b", "nothing"], groups=False)
    assert sorted(r["c"] for r in snap.records) == ["b", "bx"]
    assert snap.statuses == {"b": Status.CRITICAL}
    assert snap.groups == [] and snap.silences == [{"id": "s1"}]
    none = await store.load_alert_state(checks=[])
    assert (none.records, none.statuses, none.groups) == ([], {}, [{"g": 1}])


async def test_one_row_per_transition_key(store: Store) -> None:
    first = entry("pager", "k1")
    first.transition_key = "t1"
    await store.outbox_insert([first])
    again, other = entry("pager", "k2"), entry("pager", "k3")
    again.transition_key, other.transition_key = "t1", "t2"
    await store.write_alert_changes(AlertChanges(records=[RecordDoc("a/", "a", {"v": 1})], outbox=[again, other]))
    assert again.id is None and other.id is not None  # the second row of transition t1 was not queued
    rows = await store.outbox_rows()
    assert [(r.idempotency_key, r.transition_key) for r in rows] == [("k1", "t1"), ("k3", "t2")]
    assert (await store.load_alert_state()).records == [{"v": 1}]  # the rest of the batch was written


async def test_heartbeat_lists_live_members_and_leave_removes(store: Store) -> None:
    members = await store.heartbeat("r1", "eu", 30)
    assert [(m.name, m.location) for m in members] == [("r1", "eu")]
    members = await store.heartbeat("r2", None, 30)
    assert [m.name for m in members] == ["r1", "r2"]
    now = await store.now()
    assert all(m.heartbeat_at + m.lease >= now for m in members)
    await store.heartbeat("r3", None, 0.0)  # a lease that runs out at once
    later = await store.heartbeat("r1", "eu", 30)
    assert [m.name for m in later] == ["r1", "r2"]
    await store.leave("r2")
    assert [m.name for m in await store.heartbeat("r1", "eu", 30)] == ["r1"]


async def test_claims_go_to_nobody_else_while_the_owner_lives(store: Store) -> None:
    assert await store.claim_checks("r1", ["a", "b"], live=["r1", "r2"]) == {"a", "b"}
    assert await store.claim_checks("r2", ["a", "c"], live=["r1", "r2"]) == {"c"}  # a is r1's
    assert await store.claim_checks("r1", ["a"], live=["r1", "r2"]) == {"a"}  # its own again
    assert await store.check_owners() == {"a": "r1", "b": "r1", "c": "r2"}
    assert await store.claim_checks("r2", ["a", "b"], live=["r2"]) == {"a", "b"}  # r1 is gone
    # a release in the same transaction as the check's last state frees it for anyone
    await store.write_alert_changes(AlertChanges(records=[RecordDoc("c/", "c", {"last": True})], owner="r2",
                                                 release=["c"]))
    assert await store.claim_checks("r3", ["c"], live=["r2", "r3"]) == {"c"}
    assert (await store.load_alert_state(checks=["c"])).records == [{"last": True}]
    await store.leave("r2")
    assert await store.check_owners() == {"c": "r3"}


async def test_an_owner_writes_only_the_state_of_its_checks(store: Store) -> None:
    await store.claim_checks("r1", ["a"], live=["r1"])
    await store.claim_checks("r2", ["b"], live=["r1", "r2"])
    await store.write_alert_changes(AlertChanges(records=[RecordDoc("b/", "b", {"by": "r2"})],
                                                 statuses={"b": (Status.CRITICAL, NOW)}, owner="r2"))
    # r1 was cut off and still writes what it had about b: it must not overwrite r2's state
    await store.write_alert_changes(AlertChanges(
        records=[RecordDoc("a/", "a", {"by": "r1"}), RecordDoc("b/", "b", {"by": "r1"})],
        statuses={"a": (Status.OK, NOW), "b": (Status.OK, NOW)}, owner="r1"))
    await store.write_alert_changes(AlertChanges(deleted_records=["b/"], owner="r1"))
    snap = await store.load_alert_state()
    assert sorted(r["by"] for r in snap.records) == ["r1", "r2"]
    assert snap.statuses == {"a": Status.OK, "b": Status.CRITICAL}
    # nor queue a notification about it: r2 pages for b
    about_a, about_b = entry("pager", "ka"), entry("pager", "kb")
    about_a.checks, about_b.checks = ("a",), ("a", "b")
    await store.write_alert_changes(AlertChanges(outbox=[about_a, about_b], owner="r1"))
    assert about_a.id is not None and about_b.id is None
    assert [r.idempotency_key for r in await store.outbox_rows()] == ["ka"]


async def test_location_results_keep_the_latest_per_replica(store: Store) -> None:
    from agent.store import LocationResult

    await store.publish_location_results([LocationResult("api", "r1", "eu", Status.OK, NOW, "ok"),
                                          LocationResult("api", "r2", "us", Status.CRITICAL, NOW, "down")])
    await store.publish_location_results([LocationResult("api", "r1", "eu", Status.CRITICAL, NOW + 1, "down"),
                                          LocationResult("web", "r1", "eu", Status.OK, NOW, "ok")])
    found = await store.location_results(["api"])
    assert list(found) == ["api"]
    assert [(r.replica, r.status, r.ts) for r in found["api"]] == [("r1", Status.CRITICAL, NOW + 1),
                                                                  ("r2", Status.CRITICAL, NOW)]
    await store.forget_checks({"web"})
    assert await store.location_results(["api", "web"]) == {"web": [LocationResult("web", "r1", "eu", Status.OK, NOW, "ok")]}
