"""The SQLite backend: batched history, retention, durability, schema versions and migrations.

What every backend promises is in test_contract.py; this is what is SQLite's own:
the file, its journal mode, and opening a database an older agent wrote.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from agent.core import CheckResult, Status
from agent.store import OutboxEntry, SqliteStore, StoreSchemaError
from agent.store import for_state_dir as store_for_state_dir
from agent.store.sqlite import SCHEMA_VERSION, VERSION_KEY


def _r(check: str, ts: float, status: Status) -> CheckResult:
    return CheckResult(status=status, summary="s", check=check, type="t", timestamp=ts)


async def test_history_counts_and_retention(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "state.db", default_retention=3600)
    await store.open()
    try:
        now = time.time()
        store.set_retention("slo-probe", 40 * 86400)
        for i in range(10):
            store.add_result(_r("api", now - i * 60, Status.OK if i % 5 else Status.CRITICAL))
            store.add_result(_r("slo-probe", now - 30 * 86400 + i, Status.OK))
            store.add_result(_r("old", now - 7200 - i, Status.OK))
        assert await store.success_counts("api", now - 3600) == (8, 10)
        assert len(await store.history("slo-probe", now - 31 * 86400)) == 10
        deleted = await store.prune(now)
        assert deleted == 10  # only "old": default retention 1h; slo-probe keeps 40d
        assert await store.success_counts("old", 0) == (0, 0)
        assert await store.success_counts("slo-probe", 0) == (10, 10)
        await store.set_meta("k", "v1")
        await store.set_meta("k", "v2")
        assert await store.get_meta("k") == "v2"
    finally:
        await store.close()
    # durable across reopen
    again = SqliteStore(tmp_path / "state.db")
    await again.open()
    try:
        assert await again.success_counts("api", 0) == (8, 10)
    finally:
        await again.close()


#: the schema as the agent created it before versioning, copied literally: agent/store.py's
#: `_SCHEMA` (at open) and agent/alerting/state.py's `SCHEMA` (when the alerting engine started)
LEGACY_STORE_SCHEMA = """
CREATE TABLE IF NOT EXISTS results (
    check_name TEXT NOT NULL,
    ts REAL NOT NULL,
    status INTEGER NOT NULL,
    duration REAL NOT NULL,
    summary TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS results_check_ts ON results (check_name, ts);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
LEGACY_ALERTING_SCHEMA = """
CREATE TABLE IF NOT EXISTS alert_records (
    dedup_key TEXT PRIMARY KEY, check_name TEXT NOT NULL, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS alert_groups (
    key TEXT PRIMARY KEY, receiver TEXT NOT NULL, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS alert_check_status (
    check_name TEXT PRIMARY KEY, status INTEGER NOT NULL, ts REAL NOT NULL);
CREATE TABLE IF NOT EXISTS alert_silences (
    id TEXT PRIMARY KEY, source TEXT NOT NULL, ends_at REAL NOT NULL, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS alert_outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT, receiver TEXT NOT NULL, group_key TEXT NOT NULL,
    idempotency_key TEXT NOT NULL UNIQUE, created_at REAL NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL, last_error TEXT, payload TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS alert_outbox_receiver ON alert_outbox (receiver, id)
"""
NOW = 1_800_000_000.0


def legacy_db(path: Path, alerting: bool = True) -> None:
    """A state.db as the agent wrote it before the schema was versioned, with a row in every table."""
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.executescript(LEGACY_STORE_SCHEMA)
        db.executemany("INSERT INTO results VALUES (?, ?, ?, ?, ?)",
                       [("api", NOW - 60, 0, 0.1, "ok"), ("api", NOW - 30, 2, 0.2, "refused")])
        db.execute("INSERT INTO meta(key, value) VALUES('k', 'v')")
        if alerting:
            db.executescript(LEGACY_ALERTING_SCHEMA)
            db.execute("INSERT INTO alert_records VALUES('api/', 'api', ?)", (json.dumps({"state": "firing"}),))
            db.execute("INSERT INTO alert_groups VALUES('g1', 'pager', ?)", (json.dumps({"key": "g1"}),))
            db.execute("INSERT INTO alert_check_status VALUES('api', 2, ?)", (NOW - 30,))
            db.execute("INSERT INTO alert_silences VALUES('s1', 'api', ?, ?)", (NOW + 60, json.dumps({"id": "s1"})))
            db.execute("INSERT INTO alert_outbox(id, receiver, group_key, idempotency_key, created_at, attempts, "
                       "next_attempt_at, last_error, payload) VALUES(41, 'pager', 'g1', 'k41', ?, 2, ?, 'HTTP 503', ?)",
                       (NOW - 30, NOW + 10, json.dumps({"kind": "firing"})))
        db.commit()


def schema_of(path: Path) -> dict[str, str]:
    with contextlib.closing(sqlite3.connect(path)) as db:
        return dict(db.execute("SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL").fetchall())


async def test_a_database_from_before_versioning_is_migrated_with_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    legacy_db(path)
    before = schema_of(path)
    store = SqliteStore(path)
    await store.open()
    try:
        assert await store.schema_version() == SCHEMA_VERSION
        assert await store.get_meta(VERSION_KEY) == str(SCHEMA_VERSION)
        assert await store.get_meta("k") == "v"
        assert await store.success_counts("api", 0, NOW) == (1, 2)
        snap = await store.load_alert_state()
        assert snap.records == [{"state": "firing"}] and snap.groups == [{"key": "g1"}]
        assert snap.statuses == {"api": Status.CRITICAL} and snap.silences == [{"id": "s1"}]
        [row] = await store.outbox_rows()
        assert (row.id, row.idempotency_key, row.attempts, row.last_error, row.payload) == \
            (41, "k41", 2, "HTTP 503", {"kind": "firing"})
        assert [r.id for r in await store.outbox_after("pager", 0, 10)] == [41]
    finally:
        await store.close()
    after = schema_of(path)
    # every table and index as it was; v5 appends the outbox's transition key
    assert {k: after[k] for k in before if k != "alert_outbox"} == {k: v for k, v in before.items() if k != "alert_outbox"}
    assert after["alert_outbox"] == before["alert_outbox"][:-1] + ", transition_key TEXT)"
    # v2's index, v3's table, v4's table and its indexes, v5's
    assert set(after) - set(before) == {"alert_records_check", "results_rollup", "incidents", "incidents_fired",
                                        "incidents_resolved", "alert_outbox_transition", "cluster_members",
                                        "check_owners", "location_results"}


async def test_a_database_where_alerting_never_ran_gets_its_tables(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    legacy_db(path, alerting=False)
    store = SqliteStore(path)
    await store.open()
    try:
        assert await store.success_counts("api", 0, NOW) == (1, 2)
        snap = await store.load_alert_state()
        assert (snap.records, snap.groups, snap.statuses, snap.silences) == ([], [], {}, [])
        assert await store.outbox_depth() == {}
    finally:
        await store.close()


async def test_a_new_database_is_at_the_latest_version(tmp_path: Path) -> None:
    store = store_for_state_dir(tmp_path / "state", 3600)
    assert isinstance(store, SqliteStore) and store.path == tmp_path / "state" / "state.db"
    await store.open()
    try:
        assert await store.schema_version() == SCHEMA_VERSION
    finally:
        await store.close()
    with contextlib.closing(sqlite3.connect(tmp_path / "state" / "state.db")) as db:
        assert db.execute("SELECT value FROM meta WHERE key=?", (VERSION_KEY,)).fetchone() == (str(SCHEMA_VERSION),)
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)


async def test_a_database_from_a_newer_agent_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    legacy_db(path)
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute("INSERT INTO meta(key, value) VALUES(?, ?)", (VERSION_KEY, str(SCHEMA_VERSION + 1)))
        db.commit()
    before = schema_of(path)
    store = SqliteStore(path)
    with pytest.raises(StoreSchemaError, match="newer than this agent knows"):
        await store.open()
    await store.close()
    assert schema_of(path) == before


async def test_sql_runs_on_the_store_thread(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "state.db")
    await store.open()
    try:
        names = await store._run(lambda: threading.current_thread().name)
        assert names.startswith("sre-agent-store")
    finally:
        await store.close()


async def test_a_failed_history_write_is_reported_not_raised(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "state.db")
    errors: list[Exception] = []
    store.on_error = errors.append
    await store.open()
    try:
        with contextlib.closing(sqlite3.connect(tmp_path / "state.db")) as db:
            db.execute("DROP TABLE results")
        store.add_result(_r("api", time.time(), Status.OK))
        await store.flush()
        assert len(errors) == 1 and isinstance(errors[0], sqlite3.OperationalError)
    finally:
        await store.close()


async def test_summaries_are_stored_only_when_the_status_changes(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "state.db")
    await store.open()
    try:
        statuses = [Status.OK] * 50 + [Status.CRITICAL] * 50 + [Status.OK] * 50
        for i, status in enumerate(statuses):
            store.add_result(CheckResult(status=status, summary="x" * 400, check="api", type="http", timestamp=NOW + i))
        await store.flush()
    finally:
        await store.close()
    conn = sqlite3.connect(tmp_path / "state.db")
    try:
        rows = conn.execute("SELECT COUNT(*), SUM(summary != '') FROM results").fetchone()
    finally:
        conn.close()
    assert rows == (150, 3)  # every result kept; a summary at each of the three transitions


async def test_history_over_max_size_loses_its_oldest_part_never_alert_state(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "state.db", default_retention=30 * 86400, raw_retention=30 * 86400,
                        max_size=2_000_000)
    await store.open()
    try:
        await store.outbox_insert([OutboxEntry(receiver="pd", group_key="g", idempotency_key="k", created_at=NOW,
                                               payload={"p": 1}, next_attempt_at=NOW)])
        week = 7 * 86400
        for i in range(120_000):  # ~5 MB of raw history over a week
            store.add_result(CheckResult(status=Status.OK, summary="", check=f"c{i % 50}", type="http",
                                         timestamp=NOW - week + i * week / 120_000))
        await store.flush()
        assert store.size_bytes() > 2_000_000
        deleted = await store.prune(NOW)
        assert deleted > 0
        newest = await store.history("c0", NOW - 3600, NOW)
        assert newest  # the most recent hour is kept
        oldest = await store.history("c0", 0, NOW - week + 86400)
        assert oldest == []  # the oldest day went first
        assert [r.idempotency_key for r in await store.outbox_rows()] == ["k"]
    finally:
        await store.close()
    conn = sqlite3.connect(tmp_path / "state.db")
    try:
        pages, free, size = (conn.execute(f"PRAGMA {p}").fetchone()[0] for p in ("page_count", "freelist_count", "page_size"))
    finally:
        conn.close()
    assert (pages - free) * size <= 2_000_000
