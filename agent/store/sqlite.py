"""The SQLite state store (stdlib, WAL): the default backend, one file in the state directory.

All SQL runs on one dedicated thread so the event loop never blocks on disk
and SQLite sees a single writer; each operation is one `BEGIN IMMEDIATE`
transaction. Check results are queued in memory and written in batches
(every `FLUSH_EVERY` seconds or `FLUSH_BATCH` results).

The schema is versioned: `MIGRATIONS` is the ordered list of steps, and the
`meta` row `schema_version` says how many a database has had. `open()` applies
the missing ones in one transaction. A database from before the version row is
treated as version 0: step 1 is the schema as it was then, written with
`IF NOT EXISTS`, so applying it keeps every table and row such a database has
and only adds the tables it lacks (alerting's, if alerting never ran).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from agent.core import CheckResult, Status
from agent.secrets import redact
from agent.store.base import Store, StoreSchemaError
from agent.store.types import (
    AlertChanges,
    AlertSnapshot,
    Bucket,
    HistoryPoint,
    Incident,
    IncidentDoc,
    LocationResult,
    Member,
    OutboxEntry,
    SilenceDoc,
    doc_dict,
)

log = logging.getLogger("sre_agent.store")
T = TypeVar("T")
E = TypeVar("E", bound=OutboxEntry)
Migration = Callable[[sqlite3.Connection], None]

#: the meta row holding the number of migrations applied
VERSION_KEY = "schema_version"


def _script(sql: str) -> Migration:
    """A migration step made of DDL statements (run inside the migration's transaction)."""
    def apply(conn: sqlite3.Connection) -> None:
        for statement in filter(str.strip, sql.split(";")):
            conn.execute(statement)

    return apply


#: v1: result history, meta and alerting's tables, exactly as the agent created them before the
#: schema was versioned (history and meta at open, alerting's when the alerting engine started)
_V1 = """
CREATE TABLE IF NOT EXISTS results (
    check_name TEXT NOT NULL,
    ts REAL NOT NULL,
    status INTEGER NOT NULL,
    duration REAL NOT NULL,
    summary TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS results_check_ts ON results (check_name, ts);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
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

#: v2: `forget_checks` deletes alert records by check name
_V2 = "CREATE INDEX IF NOT EXISTS alert_records_check ON alert_records (check_name)"

#: v3: history past the raw retention, one row per check per bucket
_V3 = """
CREATE TABLE IF NOT EXISTS results_rollup (
    check_name TEXT NOT NULL, bucket REAL NOT NULL, good INTEGER NOT NULL, total INTEGER NOT NULL,
    duration_sum REAL NOT NULL, duration_max REAL NOT NULL, worst INTEGER NOT NULL,
    PRIMARY KEY (check_name, bucket)) WITHOUT ROWID
"""

#: v4: incidents (firing to resolved), for digests: when each started, fired, was acknowledged and resolved
_V4 = """
CREATE TABLE IF NOT EXISTS incidents (
    key TEXT PRIMARY KEY, dedup_key TEXT NOT NULL, check_name TEXT NOT NULL, fired_at REAL NOT NULL,
    failing_since REAL, acknowledged_at REAL, resolved_at REAL, data TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS incidents_fired ON incidents (fired_at);
CREATE INDEX IF NOT EXISTS incidents_resolved ON incidents (resolved_at)
"""

#: v5: one outbox row per alert transition and receiver; the replica tables (one member here, see
#: `agent.store.base`) and quorum results, so every backend offers the same operations
_V5 = """
ALTER TABLE alert_outbox ADD COLUMN transition_key TEXT;
CREATE UNIQUE INDEX IF NOT EXISTS alert_outbox_transition ON alert_outbox (transition_key);
CREATE TABLE IF NOT EXISTS cluster_members (
    name TEXT PRIMARY KEY, location TEXT, started_at REAL NOT NULL, heartbeat_at REAL NOT NULL, lease REAL NOT NULL);
CREATE TABLE IF NOT EXISTS check_owners (check_name TEXT PRIMARY KEY, owner TEXT NOT NULL, since REAL NOT NULL);
CREATE TABLE IF NOT EXISTS location_results (
    check_name TEXT NOT NULL, replica TEXT NOT NULL, location TEXT, status INTEGER NOT NULL, ts REAL NOT NULL,
    summary TEXT NOT NULL, PRIMARY KEY (check_name, replica))
"""

#: schema steps, oldest first; a database at version n has had the first n. Only ever append.
MIGRATIONS: tuple[Migration, ...] = (_script(_V1), _script(_V2), _script(_V3), _script(_V4), _script(_V5))
SCHEMA_VERSION = len(MIGRATIONS)

_OUTBOX_COLUMNS = ("id, receiver, group_key, idempotency_key, created_at, attempts, next_attempt_at, last_error, "
                   "payload, transition_key")


def _outbox_entry(r: tuple[Any, ...]) -> OutboxEntry:
    return OutboxEntry(id=r[0], receiver=r[1], group_key=r[2], idempotency_key=r[3], created_at=r[4], attempts=r[5],
                       next_attempt_at=r[6], last_error=r[7], payload=json.loads(r[8]), transition_key=r[9])


def _version(conn: sqlite3.Connection) -> int:
    if conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'").fetchone() is None:
        return 0
    row = conn.execute("SELECT value FROM meta WHERE key=?", (VERSION_KEY,)).fetchone()
    return int(row[0]) if row else 0


def migrate(conn: sqlite3.Connection, path: object = "") -> int:
    """Apply the steps a database lacks, in one transaction; returns the version it is at."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = _version(conn)
        if version > SCHEMA_VERSION:
            raise StoreSchemaError(f"{path}: schema version {version} is newer than this agent knows "
                                   f"({SCHEMA_VERSION}); run the newer agent, or move the state directory aside")
        for step in MIGRATIONS[version:]:
            step(conn)
        if version < SCHEMA_VERSION:
            conn.execute("INSERT INTO meta(key, value) VALUES(?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                         (VERSION_KEY, str(SCHEMA_VERSION)))
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    if version < SCHEMA_VERSION:
        log.info("state store %s: schema migrated from version %d to %d", path, version, SCHEMA_VERSION)
    return SCHEMA_VERSION


def _delete_rollup(conn: sqlite3.Connection, where: str, args: tuple[Any, ...]) -> int:
    """Delete aggregates; returns how many results they stood for."""
    lost = conn.execute(f"SELECT COALESCE(SUM(total), 0) FROM results_rollup WHERE {where}", args).fetchone()[0]
    conn.execute(f"DELETE FROM results_rollup WHERE {where}", args)
    return int(lost)


def _insert_outbox(conn: sqlite3.Connection, rows: Sequence[OutboxEntry], others: Collection[str] = ()) -> None:
    """Insert rows, setting `id`; a row of a transition already queued, or about a check in `others`
    (owned by another replica), is not inserted and keeps `id` None."""
    for row in rows:
        if others and any(c in others for c in row.checks):
            row.id = None
            continue
        cur = conn.execute(
            "INSERT INTO alert_outbox(receiver, group_key, idempotency_key, transition_key, created_at, attempts, "
            "next_attempt_at, last_error, payload) VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT(transition_key) DO NOTHING",
            (row.receiver, row.group_key, row.idempotency_key, row.transition_key, row.created_at, row.attempts,
             row.next_attempt_at, row.last_error, json.dumps(row.payload)))
        row.id = cur.lastrowid if cur.rowcount else None


def _save_incident(conn: sqlite3.Connection, i: IncidentDoc) -> None:
    conn.execute(
        "INSERT INTO incidents(key, dedup_key, check_name, fired_at, failing_since, acknowledged_at, resolved_at, data) "
        "VALUES(?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(key) DO UPDATE SET "
        "failing_since=COALESCE(incidents.failing_since, excluded.failing_since), "
        "acknowledged_at=COALESCE(incidents.acknowledged_at, excluded.acknowledged_at), "
        "resolved_at=COALESCE(excluded.resolved_at, incidents.resolved_at), data=excluded.data",
        (i.key, i.dedup_key, i.check, i.fired_at, i.failing_since, i.acknowledged_at, i.resolved_at,
         json.dumps(doc_dict(i.doc))))


def _save_silence(conn: sqlite3.Connection, silence: SilenceDoc) -> None:
    conn.execute("INSERT INTO alert_silences(id, source, ends_at, data) VALUES(?, ?, ?, ?) "
                 "ON CONFLICT(id) DO UPDATE SET ends_at=excluded.ends_at, data=excluded.data",
                 (silence.id, silence.source, silence.ends_at, json.dumps(doc_dict(silence.doc))))


def private_file(path: Path) -> None:
    """Make `path` (created if missing) and its SQLite -wal/-shm siblings readable by the owner only.

    The store holds alert text and delivery errors; SQLite creates -wal and
    -shm with the database file's mode, so fixing the database first is enough
    for new siblings, and existing ones (from an older release) are fixed too.
    """
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except PermissionError:
        return  # another user's database (`sre-agent check` reading it): SQLite says what it can do
    try:
        with contextlib.suppress(PermissionError):
            os.fchmod(fd, 0o600)
    finally:
        os.close(fd)
    for suffix in ("-wal", "-shm", "-journal"):
        with contextlib.suppress(FileNotFoundError, PermissionError):
            os.chmod(path.with_name(path.name + suffix), 0o600)


class SqliteStore(Store):
    """SQLite state store at `path` (":memory:" for a throwaway one)."""

    FLUSH_EVERY = 1.0
    FLUSH_BATCH = 2000

    PRUNE_EVERY = 600.0
    #: results kept in memory while the database cannot be written (about 100 bytes each)
    MAX_PENDING = 200_000
    #: history trimmed per step while over max_size: the oldest this many seconds of it
    TRIM_STEP = 3600.0

    def __init__(self, path: str | Path, default_retention: float = 2 * 86400, raw_retention: float = 3600.0,
                 max_size: int | None = None) -> None:
        super().__init__(default_retention, raw_retention, max_size)
        self.path = Path(path)
        #: last status queued per check: a result's summary is stored only when the status changes
        self._last_status: dict[str, int] = {}
        self._trim_logged = 0.0
        self._dropped = 0
        self._early_flush: asyncio.Task[None] | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sre-agent-store")
        self._conn: sqlite3.Connection | None = None
        self._pending: list[tuple[str, float, int, float, str]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._last_prune = 0.0

    # -- lifecycle ---------------------------------------------------------
    async def open(self) -> None:
        await self._run(self._open_sync)
        self._last_prune = time.time()
        self._flusher = asyncio.create_task(self._flush_loop(), name="store-flush")

    def _open_sync(self) -> None:
        if str(self.path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
            private_file(self.path)
        conn = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=5000")
            migrate(conn, self.path)
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    async def close(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
            self._flusher = None
        if self._conn is not None:
            await self.flush()
            await self._run(self._conn.close)
            self._conn = None
        self._executor.shutdown(wait=True)

    # -- running SQL on the store thread --------------------------------------
    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn(conn, *args)` on the store thread inside one transaction."""
        return await self._run(self._transaction, fn, args)

    def _transaction(self, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        conn = self._conn
        if conn is None:
            raise RuntimeError("store is not open")
        conn.execute("BEGIN IMMEDIATE")
        try:
            out = fn(conn, *args)
            conn.execute("COMMIT")
        except BaseException:
            # SQLite ends the transaction itself on some errors (SQLITE_FULL: a full disk); a ROLLBACK
            # then fails and would hide the error that matters.
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return out

    # -- meta and schema --------------------------------------------------------
    async def get_meta(self, key: str) -> str | None:
        def get(conn: sqlite3.Connection) -> str | None:
            row = conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
            return row[0] if row else None

        return await self._call(get)

    async def set_meta(self, key: str, value: str) -> None:
        await self._call(lambda c: c.execute("INSERT INTO meta(key, value) VALUES(?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value", (key, value)))

    async def schema_version(self) -> int:
        return await self._call(_version)

    # -- result history -----------------------------------------------------
    def add_result(self, result: CheckResult) -> None:
        # The summary of a run that changed nothing is the previous one's: storing it again was ~90%
        # of the history's size, and only transitions are read back.
        status = int(result.status)
        changed = self._last_status.get(result.check) != status
        self._last_status[result.check] = status
        self._pending.append((result.check, result.timestamp, status, result.duration_seconds,
                              result.summary[:500] if changed else ""))
        if (len(self._pending) >= self.FLUSH_BATCH and self._flusher is not None and self.failing_since is None
                and (self._early_flush is None or self._early_flush.done())):
            # one early flush at a time; while writes fail, the flush loop alone retries (once a second)
            self._early_flush = asyncio.get_running_loop().create_task(self.flush())

    async def flush(self) -> None:
        if not self._pending:
            return
        batch, self._pending = self._pending, []
        try:
            await self._call(lambda c: c.executemany("INSERT INTO results VALUES (?, ?, ?, ?, ?)", batch))
        except Exception as exc:
            # Keep them for the next flush (a full disk may be freed); past the bound the oldest go.
            self._pending[:0] = batch
            lost = len(self._pending) - self.MAX_PENDING
            if lost > 0:
                del self._pending[:lost]
            if self.write_failed(exc, "writing check history"):
                log.error("could not write %d results to %s (kept in memory, %d dropped so far; retried every "
                          "%gs, logged once a minute): %s", len(batch), self.path, self._dropped + max(0, lost),
                          self.FLUSH_EVERY, redact(str(exc)))
            self._dropped += max(0, lost)
            return
        since = self.write_succeeded()
        if since is not None:
            log.warning("state store %s writable again after %.0fs", self.path, time.time() - since)
        if time.time() - self._last_prune > self.PRUNE_EVERY:
            self._last_prune = time.time()
            try:
                await self.prune()
            except Exception as exc:
                if self.write_failed(exc, "pruning check history"):
                    log.error("could not prune the history in %s: %s", self.path, redact(str(exc)))

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(self.FLUSH_EVERY)
            await self.flush()

    async def prune(self, now: float | None = None) -> int:
        now = time.time() if now is None else now
        await self.flush()
        special = dict(self._retention)
        bucket = self.BUCKET
        # only whole buckets are rolled up, so an aggregate never gets more rows of its bucket later
        cutoff = (now - self.raw_retention) // bucket * bucket

        def prune(conn: sqlite3.Connection) -> int:
            conn.execute(
                "INSERT INTO results_rollup(check_name, bucket, good, total, duration_sum, duration_max, worst) "
                "SELECT check_name, CAST(ts / ? AS INTEGER) * ?, SUM(status IN (0, 1)), COUNT(*), SUM(duration), "
                "MAX(duration), MAX(status) FROM results WHERE ts < ? GROUP BY 1, 2 "
                "ON CONFLICT(check_name, bucket) DO UPDATE SET good = good + excluded.good, "
                "total = total + excluded.total, duration_sum = duration_sum + excluded.duration_sum, "
                "duration_max = MAX(duration_max, excluded.duration_max), worst = MAX(worst, excluded.worst)",
                (bucket, bucket, cutoff))
            conn.execute("DELETE FROM results WHERE ts < ?", (cutoff,))  # now in the aggregates
            placeholders = ",".join("?" * len(special))
            deleted = _delete_rollup(conn, f"bucket < ? AND check_name NOT IN ({placeholders})",
                                     (now - self.default_retention, *special))
            for check, keep in special.items():
                deleted += _delete_rollup(conn, "check_name=? AND bucket < ?", (check, now - keep))
            conn.execute("DELETE FROM incidents WHERE resolved_at < ?", (now - self.INCIDENT_RETENTION,))
            if self.max_size is not None:
                deleted += self._trim(conn, self.max_size)
            return deleted

        return await self._call(prune)

    def _used_bytes(self, conn: sqlite3.Connection) -> int:
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        free = conn.execute("PRAGMA freelist_count").fetchone()[0]
        size = conn.execute("PRAGMA page_size").fetchone()[0]
        return int((pages - free) * size)

    def _trim(self, conn: sqlite3.Connection, max_size: int) -> int:
        """Delete the oldest history, an hour at a time, until the database uses under 90% of max_size;
        returns how many results went."""
        target = int(max_size * 0.9)
        deleted = 0
        for _ in range(10_000):
            if self._used_bytes(conn) <= target:
                break
            row = conn.execute("SELECT MIN(t) FROM (SELECT MIN(bucket) AS t FROM results_rollup "
                               "UNION ALL SELECT MIN(ts) FROM results)").fetchone()
            if row is None or row[0] is None:
                break  # no history left: what remains is alert state and the outbox, never trimmed
            before = row[0] + self.TRIM_STEP
            deleted += _delete_rollup(conn, "bucket < ?", (before,))
            deleted += conn.execute("DELETE FROM results WHERE ts < ?", (before,)).rowcount
        if deleted and time.time() - self._trim_logged > 3600:
            self._trim_logged = time.time()
            log.warning("state store %s is over agent.store_max_size (%d bytes): deleted the oldest %d history rows",
                        self.path, max_size, deleted)
        return deleted

    def size_bytes(self) -> int:
        total = 0
        if str(self.path) == ":memory:":
            return 0
        for suffix in ("", "-wal"):
            with contextlib.suppress(OSError):
                total += (self.path.parent / (self.path.name + suffix)).stat().st_size
        return total

    async def history(self, check: str, since: float, until: float | None = None) -> list[HistoryPoint]:
        until = time.time() if until is None else until
        await self.flush()

        def read(conn: sqlite3.Connection) -> list[HistoryPoint]:
            rows = conn.execute(
                "SELECT bucket, worst, duration_sum / total, total FROM results_rollup "
                "WHERE check_name=? AND bucket>=? AND bucket<=? "
                "UNION ALL SELECT ts, status, duration, 1 FROM results WHERE check_name=? AND ts>=? AND ts<=? "
                "ORDER BY 1", (check, since, until, check, since, until)).fetchall()
            return [HistoryPoint(ts, Status(st), duration, n) for ts, st, duration, n in rows]

        return await self._call(read)

    async def success_counts(self, check: str, since: float, until: float | None = None) -> tuple[int, int]:
        until = time.time() if until is None else until
        await self.flush()

        def count(conn: sqlite3.Connection) -> tuple[int, int]:
            raw = conn.execute("SELECT COALESCE(SUM(status IN (0, 1)), 0), COUNT(*) FROM results "
                               "WHERE check_name=? AND ts>=? AND ts<=?", (check, since, until)).fetchone()
            rolled = conn.execute("SELECT COALESCE(SUM(good), 0), COALESCE(SUM(total), 0) FROM results_rollup "
                                  "WHERE check_name=? AND bucket>=? AND bucket<=?", (check, since, until)).fetchone()
            return int(raw[0]) + int(rolled[0]), int(raw[1]) + int(rolled[1])

        return await self._call(count)

    async def first_result_at(self, check: str) -> float | None:
        await self.flush()

        def first(conn: sqlite3.Connection) -> float | None:
            row = conn.execute("SELECT MIN(t) FROM (SELECT MIN(bucket) AS t FROM results_rollup WHERE check_name=? "
                               "UNION ALL SELECT MIN(ts) FROM results WHERE check_name=?)", (check, check)).fetchone()
            return None if row[0] is None else float(row[0])

        return await self._call(first)

    async def buckets(self, check: str, since: float, until: float, count: int) -> list[Bucket]:
        if count < 1 or until <= since:
            raise ValueError(f"buckets need count >= 1 and until > since, got count={count}, [{since}, {until})")
        await self.flush()
        width = (until - since) / count

        def read(conn: sqlite3.Connection) -> list[tuple[Any, ...]]:
            # raw results and the aggregates of older ones (each counted in the slice of its start);
            # worst status by rank: CRITICAL (2) above UNKNOWN (3) above WARNING above OK
            return conn.execute(
                "SELECT MIN(CAST((t - ?) / ? AS INTEGER), ?) AS b, SUM(n), SUM(g), SUM(d) / SUM(n), "
                "MAX(CASE w WHEN 2 THEN 3 WHEN 3 THEN 2 ELSE w END) FROM ("
                "SELECT ts AS t, 1 AS n, status IN (0, 1) AS g, duration AS d, status AS w FROM results "
                "WHERE check_name=? AND ts>=? AND ts<? "
                "UNION ALL SELECT bucket, total, good, duration_sum, worst FROM results_rollup "
                "WHERE check_name=? AND bucket>=? AND bucket<?) GROUP BY b ORDER BY b",
                (since, width, count - 1, check, since, until, check, since, until)).fetchall()

        found = {int(b): (n, good, mean, worst) for b, n, good, mean, worst in await self._call(read)}
        out = []
        for i in range(count):
            start, end = since + i * width, since + (i + 1) * width
            if i in found:
                n, good, mean, worst = found[i]
                out.append(Bucket(start, end, int(n), int(good), float(mean),
                                  Status({3: 2, 2: 3}.get(int(worst), int(worst)))))
            else:
                out.append(Bucket(start, end))
        return out

    # -- alert state -----------------------------------------------------------
    async def load_alert_state(self, checks: Collection[str] | None = None, groups: bool = True) -> AlertSnapshot:
        wanted = None if checks is None else set(checks)

        def load(conn: sqlite3.Connection) -> AlertSnapshot:
            records = [json.loads(d) for c, d in conn.execute("SELECT check_name, data FROM alert_records ORDER BY dedup_key")
                       if wanted is None or c in wanted]
            group_docs = [json.loads(d) for (d,) in conn.execute("SELECT data FROM alert_groups ORDER BY key")] if groups else []
            statuses = {c: Status(s) for c, s in conn.execute("SELECT check_name, status FROM alert_check_status")
                        if wanted is None or c in wanted}
            silences = [json.loads(d) for (d,) in conn.execute("SELECT data FROM alert_silences ORDER BY id")]
            return AlertSnapshot(records, group_docs, statuses, silences)

        return await self._call(load)

    async def write_alert_changes(self, changes: AlertChanges) -> None:
        owner = changes.owner

        def write(conn: sqlite3.Connection) -> None:
            others: set[str] = set()
            if owner:
                others = {c for (c,) in conn.execute("SELECT check_name FROM check_owners WHERE owner<>?", (owner,))}
            for rec in changes.records:
                if rec.check in others:
                    continue
                conn.execute("INSERT INTO alert_records(dedup_key, check_name, data) VALUES(?, ?, ?) "
                             "ON CONFLICT(dedup_key) DO UPDATE SET data=excluded.data",
                             (rec.key, rec.check, json.dumps(doc_dict(rec.doc))))
            for key in changes.deleted_records:
                found = conn.execute("SELECT check_name FROM alert_records WHERE dedup_key=?", (key,)).fetchone()
                if found is not None and found[0] not in others:
                    conn.execute("DELETE FROM alert_records WHERE dedup_key=?", (key,))
            for group in changes.groups:
                conn.execute("INSERT INTO alert_groups(key, receiver, data) VALUES(?, ?, ?) "
                             "ON CONFLICT(key) DO UPDATE SET receiver=excluded.receiver, data=excluded.data",
                             (group.key, group.receiver, json.dumps(doc_dict(group.doc))))
            for key in changes.deleted_groups:
                conn.execute("DELETE FROM alert_groups WHERE key=?", (key,))
            for check, (status, ts) in changes.statuses.items():
                if check in others:
                    continue
                conn.execute("INSERT INTO alert_check_status(check_name, status, ts) VALUES(?, ?, ?) "
                             "ON CONFLICT(check_name) DO UPDATE SET status=excluded.status, ts=excluded.ts",
                             (check, int(status), ts))
            for incident in changes.incidents:
                _save_incident(conn, incident)
            _insert_outbox(conn, changes.outbox, others)
            if owner:
                for check in changes.release:
                    conn.execute("DELETE FROM check_owners WHERE owner=? AND check_name=?", (owner, check))

        try:
            await self._call(write)
        except Exception:
            for row in changes.outbox:  # rolled back: no row got an id
                row.id = None
            raise

    async def incidents(self, since: float, until: float | None = None) -> list[Incident]:
        until = time.time() if until is None else until
        rows = await self._call(lambda c: c.execute(
            "SELECT key, dedup_key, check_name, fired_at, failing_since, acknowledged_at, resolved_at, data "
            "FROM incidents WHERE fired_at<=? AND (resolved_at IS NULL OR resolved_at>=?) ORDER BY fired_at, key",
            (until, since)).fetchall())
        return [Incident(r[0], r[1], r[2], r[3], r[4], r[5], r[6], json.loads(r[7])) for r in rows]

    async def save_silence(self, silence: SilenceDoc) -> None:
        await self._call(_save_silence, silence)

    async def sync_silences(self, source: str, silences: Sequence[SilenceDoc], expired_before: float) -> None:
        def sync(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM alert_silences WHERE source=?", (source,))
            conn.execute("DELETE FROM alert_silences WHERE ends_at < ?", (expired_before,))
            for s in silences:
                _save_silence(conn, s)

        await self._call(sync)

    async def forget_checks(self, keep: Collection[str]) -> None:
        def forget(conn: sqlite3.Connection) -> None:
            rows: list[Any] = conn.execute("SELECT check_name FROM alert_records UNION "
                                           "SELECT check_name FROM alert_check_status").fetchall()
            for (check,) in rows:
                if check not in keep:
                    conn.execute("DELETE FROM alert_records WHERE check_name=?", (check,))
                    conn.execute("DELETE FROM alert_check_status WHERE check_name=?", (check,))
            for table in ("check_owners", "location_results"):
                for (check,) in conn.execute(f"SELECT DISTINCT check_name FROM {table}").fetchall():
                    if check not in keep:
                        conn.execute(f"DELETE FROM {table} WHERE check_name=?", (check,))

        await self._call(forget)

    # -- outbox ------------------------------------------------------------------
    async def outbox_insert(self, rows: Sequence[OutboxEntry]) -> None:
        try:
            await self._call(_insert_outbox, rows)
        except Exception:
            for row in rows:  # rolled back: no row got an id
                row.id = None
            raise

    async def outbox_insert_once(self, rows: Sequence[OutboxEntry], key: str, value: str) -> bool:
        def insert(conn: sqlite3.Connection) -> bool:
            row = conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
            if row is not None and row[0] == value:
                return False
            conn.execute("INSERT INTO meta(key, value) VALUES(?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                         (key, value))
            _insert_outbox(conn, rows)
            return True

        try:
            return await self._call(insert)
        except Exception:
            for r in rows:  # rolled back: no row got an id
                r.id = None
            raise

    async def outbox_after(self, receiver: str, after_id: int, limit: int) -> list[OutboxEntry]:
        found = await self._call(lambda c: c.execute(
            f"SELECT {_OUTBOX_COLUMNS} FROM alert_outbox WHERE receiver=? AND id>? ORDER BY id LIMIT ?",
            (receiver, after_id, limit)).fetchall())
        return [_outbox_entry(r) for r in found]

    async def outbox_renew(self) -> int:
        return 0  # one agent per database: nobody else claims rows

    async def outbox_head(self, receiver: str) -> OutboxEntry | None:
        found = await self._call(lambda c: c.execute(
            f"SELECT {_OUTBOX_COLUMNS} FROM alert_outbox WHERE receiver=? ORDER BY id LIMIT 1", (receiver,)).fetchone())
        return _outbox_entry(found) if found else None

    async def outbox_rows(self, receiver: str | None = None) -> list[OutboxEntry]:
        where, args = ("WHERE receiver=?", (receiver,)) if receiver is not None else ("", ())
        found = await self._call(lambda c: c.execute(
            f"SELECT {_OUTBOX_COLUMNS} FROM alert_outbox {where} ORDER BY id", args).fetchall())
        return [_outbox_entry(r) for r in found]

    async def outbox_delete_many(self, rows: Sequence[E]) -> list[E]:
        def delete(conn: sqlite3.Connection) -> list[E]:
            return [r for r in rows if conn.execute("DELETE FROM alert_outbox WHERE id=?", (r.id,)).rowcount]

        return await self._call(delete)

    async def outbox_reschedule(self, row: OutboxEntry) -> None:
        await self._call(lambda c: c.execute(
            "UPDATE alert_outbox SET attempts=?, next_attempt_at=?, last_error=? WHERE id=?",
            (row.attempts, row.next_attempt_at, row.last_error, row.id)))

    async def outbox_depth(self) -> dict[str, int]:
        rows = await self._call(lambda c: c.execute(
            "SELECT receiver, COUNT(*) FROM alert_outbox GROUP BY receiver").fetchall())
        return {r: n for r, n in rows}

    async def outbox_drop_except(self, receivers: Collection[str]) -> dict[str, int]:
        def drop(conn: sqlite3.Connection) -> dict[str, int]:
            found = dict(conn.execute("SELECT receiver, COUNT(*) FROM alert_outbox GROUP BY receiver").fetchall())
            gone = {r: n for r, n in found.items() if r not in receivers}
            for r in gone:
                conn.execute("DELETE FROM alert_outbox WHERE receiver=?", (r,))
            return gone

        return await self._call(drop)

    # -- replicas: one process per SQLite file, so these are the single-member case ---------------
    async def now(self) -> float:
        return time.time()

    async def heartbeat(self, name: str, location: str | None, lease: float) -> list[Member]:
        now = time.time()

        def beat(conn: sqlite3.Connection) -> list[Member]:
            conn.execute("INSERT INTO cluster_members(name, location, started_at, heartbeat_at, lease) "
                         "VALUES(?, ?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET location=excluded.location, "
                         "heartbeat_at=excluded.heartbeat_at, lease=excluded.lease", (name, location, now, now, lease))
            conn.execute("DELETE FROM cluster_members WHERE heartbeat_at + 10 * lease < ?", (now,))
            rows = conn.execute("SELECT name, location, started_at, heartbeat_at, lease FROM cluster_members "
                                "WHERE heartbeat_at + lease > ? ORDER BY name", (now,)).fetchall()
            return [Member(*r) for r in rows]

        return await self._call(beat)

    async def leave(self, name: str) -> None:
        def leave(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM cluster_members WHERE name=?", (name,))
            conn.execute("DELETE FROM check_owners WHERE owner=?", (name,))

        await self._call(leave)

    async def claim_checks(self, owner: str, checks: Collection[str], live: Collection[str]) -> set[str]:
        now, alive = time.time(), set(live)

        def claim(conn: sqlite3.Connection) -> set[str]:
            current = dict(conn.execute("SELECT check_name, owner FROM check_owners").fetchall())
            got = set()
            for check in checks:
                holder = current.get(check)
                if holder is None or holder == owner or holder not in alive:
                    conn.execute("INSERT INTO check_owners(check_name, owner, since) VALUES(?, ?, ?) ON CONFLICT"
                                 "(check_name) DO UPDATE SET owner=excluded.owner, since=excluded.since",
                                 (check, owner, now))
                    got.add(check)
            return got

        return await self._call(claim)

    async def check_owners(self) -> dict[str, str]:
        return dict(await self._call(lambda c: c.execute("SELECT check_name, owner FROM check_owners").fetchall()))

    async def publish_location_results(self, results: Sequence[LocationResult]) -> None:
        rows = [(r.check, r.replica, r.location, int(r.status), r.ts, r.summary[:500]) for r in results]
        await self._call(lambda c: c.executemany(
            "INSERT INTO location_results(check_name, replica, location, status, ts, summary) VALUES(?, ?, ?, ?, ?, ?) "
            "ON CONFLICT(check_name, replica) DO UPDATE SET location=excluded.location, status=excluded.status, "
            "ts=excluded.ts, summary=excluded.summary", rows))

    async def location_results(self, checks: Collection[str]) -> dict[str, list[LocationResult]]:
        wanted = set(checks)
        rows = await self._call(lambda c: c.execute(
            "SELECT check_name, replica, location, status, ts, summary FROM location_results "
            "ORDER BY check_name, replica").fetchall())
        out: dict[str, list[LocationResult]] = {}
        for check, replica, location, status, ts, summary in rows:
            if check in wanted:
                out.setdefault(check, []).append(LocationResult(check, replica, location, Status(status), ts, summary))
        return out
