"""The PostgreSQL state store: one database shared by every replica of the agent (`agent.state`).

psycopg 3 (async) over a small `psycopg_pool` pool with timeouts: connecting
(`CONNECT_TIMEOUT`), waiting for a pooled connection (`POOL_TIMEOUT`) and each
statement (`STATEMENT_TIMEOUT`) are bounded, so an unreachable server turns
into an exception in a few seconds, never a hang; the pool reconnects on its
own when the server comes back. This module is imported only when
`agent.state` is a PostgreSQL URL, so SQLite users never load the driver.

Schema: `MIGRATIONS`, applied on `open()` under a transaction-scoped advisory
lock (replicas starting together migrate once), with the version in `meta`
like SQLite's. What differs from SQLite is what sharing needs:

- outbox rows carry a claim (`claimed_by`, `claim_until`): `outbox_after` is
  `SELECT ... FOR UPDATE SKIP LOCKED` over rows nobody holds (or whose claim
  ran out, or that this replica holds already), skipping a row while an
  earlier row of its group is held by another replica, so a group's
  notifications keep their order across replicas;
- `transition_key` is unique: a second row for the same alert transition and
  receiver is not inserted (`ON CONFLICT DO NOTHING`);
- `cluster_members` (heartbeats) and `check_owners` (which replica owns a
  check's alert state) implement membership and the hand-over of checks;
- leases and claims use the server's clock (`clock_timestamp()`).

Results are queued in memory and written in batches; a batch that cannot be
written (the server is down) goes back to the queue, which keeps at most
`buffer_limit` results (the oldest go first, reported to `on_drop`). History
past the raw retention is rolled into per-minute aggregates as in SQLite; one
replica at a time prunes (an advisory lock), and `max_size` is measured as the
bytes of the live history rows (`pg_column_size`), since deleted rows free
their space in the table files only at the next vacuum.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Collection, Sequence
from typing import Any, TypeVar

import psycopg
from psycopg_pool import AsyncConnectionPool

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
E = TypeVar("E", bound=OutboxEntry)

VERSION_KEY = "schema_version"
CONNECT_TIMEOUT = 5
POOL_TIMEOUT = 5.0
STATEMENT_TIMEOUT_MS = 15_000
POOL_SIZE = 6
#: the pool's reconnection backs off exponentially while it lasts: a short one, so the next use of the
#: store after an outage connects at once instead of waiting out a backoff grown to minutes
RECONNECT_TIMEOUT = 3.0
#: any constants: advisory locks that serialise migrations of replicas starting together, and pruning
_MIGRATION_LOCK = 0x5E_A6E7
_PRUNE_LOCK = 0x5E_A6E8
_NOW = "extract(epoch from clock_timestamp())"

_V1 = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS results (
    check_name TEXT NOT NULL, ts DOUBLE PRECISION NOT NULL, status SMALLINT NOT NULL,
    duration DOUBLE PRECISION NOT NULL, summary TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS results_check_ts ON results (check_name, ts);
CREATE TABLE IF NOT EXISTS results_rollup (
    check_name TEXT NOT NULL, bucket DOUBLE PRECISION NOT NULL, good INTEGER NOT NULL, total INTEGER NOT NULL,
    duration_sum DOUBLE PRECISION NOT NULL, duration_max DOUBLE PRECISION NOT NULL, worst SMALLINT NOT NULL,
    PRIMARY KEY (check_name, bucket));
CREATE TABLE IF NOT EXISTS alert_records (dedup_key TEXT PRIMARY KEY, check_name TEXT NOT NULL, data TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS alert_records_check ON alert_records (check_name);
CREATE TABLE IF NOT EXISTS alert_groups (key TEXT PRIMARY KEY, receiver TEXT NOT NULL, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS alert_check_status (
    check_name TEXT PRIMARY KEY, status SMALLINT NOT NULL, ts DOUBLE PRECISION NOT NULL);
CREATE TABLE IF NOT EXISTS alert_silences (
    id TEXT PRIMARY KEY, source TEXT NOT NULL, ends_at DOUBLE PRECISION NOT NULL, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS alert_outbox (
    id BIGSERIAL PRIMARY KEY, receiver TEXT NOT NULL, group_key TEXT NOT NULL,
    idempotency_key TEXT NOT NULL UNIQUE, transition_key TEXT UNIQUE, created_at DOUBLE PRECISION NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0, next_attempt_at DOUBLE PRECISION NOT NULL, last_error TEXT,
    payload TEXT NOT NULL, claimed_by TEXT, claim_until DOUBLE PRECISION);
CREATE INDEX IF NOT EXISTS alert_outbox_receiver ON alert_outbox (receiver, id);
CREATE INDEX IF NOT EXISTS alert_outbox_group ON alert_outbox (receiver, group_key, id);
CREATE TABLE IF NOT EXISTS incidents (
    key TEXT PRIMARY KEY, dedup_key TEXT NOT NULL, check_name TEXT NOT NULL, fired_at DOUBLE PRECISION NOT NULL,
    failing_since DOUBLE PRECISION, acknowledged_at DOUBLE PRECISION, resolved_at DOUBLE PRECISION, data TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS incidents_fired ON incidents (fired_at);
CREATE INDEX IF NOT EXISTS incidents_resolved ON incidents (resolved_at);
CREATE TABLE IF NOT EXISTS cluster_members (
    name TEXT PRIMARY KEY, location TEXT, started_at DOUBLE PRECISION NOT NULL DEFAULT {_NOW},
    heartbeat_at DOUBLE PRECISION NOT NULL, lease DOUBLE PRECISION NOT NULL);
CREATE TABLE IF NOT EXISTS check_owners (
    check_name TEXT PRIMARY KEY, owner TEXT NOT NULL, since DOUBLE PRECISION NOT NULL);
CREATE INDEX IF NOT EXISTS check_owners_owner ON check_owners (owner);
CREATE TABLE IF NOT EXISTS location_results (
    check_name TEXT NOT NULL, replica TEXT NOT NULL, location TEXT, status SMALLINT NOT NULL,
    ts DOUBLE PRECISION NOT NULL, summary TEXT NOT NULL, PRIMARY KEY (check_name, replica))
"""

#: schema steps, oldest first (SQL scripts); a database at version n has had the first n. Only ever append.
MIGRATIONS: tuple[str, ...] = (_V1,)
SCHEMA_VERSION = len(MIGRATIONS)

_OUTBOX_COLUMNS = ("id, receiver, group_key, idempotency_key, created_at, attempts, next_attempt_at, last_error, "
                   "payload, transition_key")


def _outbox_entry(r: Sequence[Any]) -> OutboxEntry:
    return OutboxEntry(id=r[0], receiver=r[1], group_key=r[2], idempotency_key=r[3], created_at=r[4], attempts=r[5],
                       next_attempt_at=r[6], last_error=r[7], payload=json.loads(r[8]), transition_key=r[9])


Conn = psycopg.AsyncConnection[Any]


async def _insert_outbox(conn: Conn, rows: Sequence[OutboxEntry], owner: str | None = None) -> None:
    for row in rows:
        fenced = bool(owner and row.checks)
        cur = await conn.execute(
            "INSERT INTO alert_outbox(receiver, group_key, idempotency_key, transition_key, created_at, attempts, "
            "next_attempt_at, last_error, payload) SELECT %s, %s, %s, %s, %s, %s, %s, %s, %s"
            + (" WHERE NOT EXISTS (SELECT 1 FROM check_owners WHERE check_name = ANY(%s) AND owner<>%s)" if fenced else "")
            + " ON CONFLICT (transition_key) DO NOTHING RETURNING id",
            (row.receiver, row.group_key, row.idempotency_key, row.transition_key, row.created_at, row.attempts,
             row.next_attempt_at, row.last_error, json.dumps(row.payload),
             *((list(row.checks), owner) if fenced else ())))
        found = await cur.fetchone()
        row.id = int(found[0]) if found else None


async def _save_incident(conn: Conn, i: IncidentDoc) -> None:
    await conn.execute(
        "INSERT INTO incidents(key, dedup_key, check_name, fired_at, failing_since, acknowledged_at, resolved_at, data) "
        "VALUES(%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT(key) DO UPDATE SET "
        "failing_since=COALESCE(incidents.failing_since, excluded.failing_since), "
        "acknowledged_at=COALESCE(incidents.acknowledged_at, excluded.acknowledged_at), "
        "resolved_at=COALESCE(excluded.resolved_at, incidents.resolved_at), data=excluded.data",
        (i.key, i.dedup_key, i.check, i.fired_at, i.failing_since, i.acknowledged_at, i.resolved_at,
         json.dumps(doc_dict(i.doc))))


async def _save_silence(conn: Conn, silence: SilenceDoc) -> None:
    await conn.execute("INSERT INTO alert_silences(id, source, ends_at, data) VALUES(%s, %s, %s, %s) "
                       "ON CONFLICT(id) DO UPDATE SET ends_at=excluded.ends_at, data=excluded.data",
                       (silence.id, silence.source, silence.ends_at, json.dumps(doc_dict(silence.doc))))


def _reconnect_failed(pool: AsyncConnectionPool[Any]) -> None:
    log.debug("state store pool %s: server unreachable; reconnecting on the next use", pool.name)


class PostgresStore(Store):
    """PostgreSQL state store at `url` (`postgresql://user@host:port/db`); `password` apart from the URL."""

    shared = True
    FLUSH_EVERY = 1.0
    FLUSH_BATCH = 2000

    PRUNE_EVERY = 600.0
    #: history trimmed per step while over max_size: the oldest this many seconds of it
    TRIM_STEP = 3600.0

    def __init__(self, url: str, default_retention: float = 2 * 86400, password: str | None = None,
                 raw_retention: float = 3600.0, max_size: int | None = None) -> None:
        super().__init__(default_retention, raw_retention, max_size)
        #: last status queued per check: a result's summary is stored only when the status changes
        self._last_status: dict[str, int] = {}
        self._size = 0
        self._trim_logged = 0.0
        self.url = url
        self._password = password
        self._pool: AsyncConnectionPool[Conn] | None = None
        self._pending: list[tuple[str, float, int, float, str]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._flush_lock = asyncio.Lock()
        self._last_prune = 0.0

    def __repr__(self) -> str:
        return f"PostgresStore({redact(self.url)!r})"

    # -- lifecycle ---------------------------------------------------------
    async def open(self) -> None:
        kwargs: dict[str, Any] = {"connect_timeout": CONNECT_TIMEOUT, "autocommit": False,
                                  "options": f"-c statement_timeout={STATEMENT_TIMEOUT_MS}",
                                  "application_name": "sre-agent"}
        if self._password is not None:
            kwargs["password"] = self._password
        pool: AsyncConnectionPool[Conn] = AsyncConnectionPool(
            self.url, min_size=1, max_size=POOL_SIZE, timeout=POOL_TIMEOUT, kwargs=kwargs, open=False,
            check=AsyncConnectionPool.check_connection, reconnect_timeout=RECONNECT_TIMEOUT,
            reconnect_failed=_reconnect_failed, name="sre-agent-store")
        try:
            await pool.open(wait=True, timeout=CONNECT_TIMEOUT + 5)
        except Exception as exc:
            await pool.close()
            raise OSError(f"cannot connect to the state store {redact(self.url)}: {redact(str(exc))}") from None
        self._pool = pool
        try:
            await self._migrate()
        except BaseException:
            await pool.close()
            self._pool = None
            raise
        self._last_prune = time.time()
        self._flusher = asyncio.create_task(self._flush_loop(), name="store-flush")

    async def _migrate(self) -> None:
        async with self._tx() as conn:
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
            version = await self._version(conn)
            if version > SCHEMA_VERSION:
                raise StoreSchemaError(f"{redact(self.url)}: schema version {version} is newer than this agent knows "
                                       f"({SCHEMA_VERSION}); run the newer agent")
            for script in MIGRATIONS[version:]:
                for statement in filter(str.strip, script.split(";")):
                    await conn.execute(statement)  # type: ignore[call-overload]
            if version < SCHEMA_VERSION:
                await conn.execute("INSERT INTO meta(key, value) VALUES(%s, %s) "
                                   "ON CONFLICT(key) DO UPDATE SET value=excluded.value", (VERSION_KEY, str(SCHEMA_VERSION)))
                log.info("state store %s: schema migrated from version %d to %d", redact(self.url), version,
                         SCHEMA_VERSION)

    @staticmethod
    async def _version(conn: Conn) -> int:
        cur = await conn.execute("SELECT to_regclass('meta') IS NOT NULL")
        row = await cur.fetchone()
        if not row or not row[0]:
            return 0
        cur = await conn.execute("SELECT value FROM meta WHERE key=%s", (VERSION_KEY,))
        found = await cur.fetchone()
        return int(found[0]) if found else 0

    async def close(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
            self._flusher = None
        if self._pool is not None:
            await self.flush()
            await self._pool.close()
            self._pool = None

    @contextlib.asynccontextmanager
    async def _tx(self) -> Any:
        """One pooled connection in one transaction (committed on exit, rolled back on an exception)."""
        if self._pool is None:
            raise RuntimeError("store is not open")
        async with self._pool.connection() as conn, conn.transaction():
            yield conn

    async def _fetchall(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        async with self._tx() as conn:
            cur = await conn.execute(sql, args)  # type: ignore[arg-type]
            return list(await cur.fetchall())

    async def _exec(self, sql: str, args: Sequence[Any] = ()) -> int:
        async with self._tx() as conn:
            cur = await conn.execute(sql, args)  # type: ignore[arg-type]
            return cur.rowcount

    # -- meta and schema --------------------------------------------------------
    async def get_meta(self, key: str) -> str | None:
        rows = await self._fetchall("SELECT value FROM meta WHERE key=%s", (key,))
        return rows[0][0] if rows else None

    async def set_meta(self, key: str, value: str) -> None:
        await self._exec("INSERT INTO meta(key, value) VALUES(%s, %s) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                         (key, value))

    async def schema_version(self) -> int:
        async with self._tx() as conn:
            return await self._version(conn)

    # -- result history -----------------------------------------------------
    def add_result(self, result: CheckResult) -> None:
        status = int(result.status)  # as SQLite: only a transition's summary is read back, so only it is kept
        changed = self._last_status.get(result.check) != status
        self._last_status[result.check] = status
        self._pending.append((result.check, result.timestamp, status, result.duration_seconds,
                              result.summary[:500] if changed else ""))
        self._bound_pending()
        if len(self._pending) >= self.FLUSH_BATCH and self._flusher is not None and not self._flush_lock.locked():
            asyncio.get_running_loop().create_task(self.flush())

    def _bound_pending(self) -> None:
        excess = len(self._pending) - self.buffer_limit
        if excess > 0:
            del self._pending[:excess]
            if self.on_drop:
                self.on_drop(excess)

    @property
    def buffered(self) -> int:
        """Results queued in memory, not written yet."""
        return len(self._pending)

    async def flush(self) -> None:
        async with self._flush_lock:
            while self._pending:
                batch, self._pending = self._pending[:self.FLUSH_BATCH], self._pending[self.FLUSH_BATCH:]
                try:
                    async with self._tx() as conn, conn.cursor() as cur:
                        await cur.executemany("INSERT INTO results VALUES (%s, %s, %s, %s, %s)", batch)
                        await cur.execute("SELECT pg_total_relation_size('results') + "
                                          "pg_total_relation_size('results_rollup')")
                        row = await cur.fetchone()
                        self._size = int(row[0]) if row else self._size
                except Exception as exc:
                    self._pending[:0] = batch  # kept for the next flush, within the buffer bound
                    self._bound_pending()
                    if self.write_failed(exc, "writing check history"):
                        log.error("could not write %d results to the state store (%d held in memory; logged once a "
                                  "minute): %s", len(batch), len(self._pending), redact(str(exc)))
                    return
            since = self.write_succeeded()
            if since is not None:
                log.warning("state store %s writable again after %.0fs", redact(self.url), time.time() - since)
        if time.time() - self._last_prune > self.PRUNE_EVERY:
            self._last_prune = time.time()
            try:
                await self.prune()
            except Exception as exc:
                if self.write_failed(exc, "pruning check history"):
                    log.error("could not prune the history in the state store: %s", redact(str(exc)))

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(self.FLUSH_EVERY)
            await self.flush()

    async def prune(self, now: float | None = None) -> int:
        now = time.time() if now is None else now
        await self.flush()
        special = dict(self._retention)
        bucket = self.BUCKET
        cutoff = (now - self.raw_retention) // bucket * bucket  # whole buckets only, as in SQLite
        async with self._tx() as conn:
            cur = await conn.execute("SELECT pg_try_advisory_xact_lock(%s)", (_PRUNE_LOCK,))
            row = await cur.fetchone()
            if not row or not row[0]:
                return 0  # another replica is pruning the same history right now
            await conn.execute(
                "INSERT INTO results_rollup(check_name, bucket, good, total, duration_sum, duration_max, worst) "
                "SELECT check_name, floor(ts / %s) * %s, SUM(CASE WHEN status IN (0, 1) THEN 1 ELSE 0 END), COUNT(*), "
                "SUM(duration), MAX(duration), MAX(status) FROM results WHERE ts < %s GROUP BY 1, 2 "
                "ON CONFLICT(check_name, bucket) DO UPDATE SET good = results_rollup.good + excluded.good, "
                "total = results_rollup.total + excluded.total, "
                "duration_sum = results_rollup.duration_sum + excluded.duration_sum, "
                "duration_max = GREATEST(results_rollup.duration_max, excluded.duration_max), "
                "worst = GREATEST(results_rollup.worst, excluded.worst)", (bucket, bucket, cutoff))
            await conn.execute("DELETE FROM results WHERE ts < %s", (cutoff,))
            deleted = await self._delete_rollup(conn, "bucket < %s AND NOT (check_name = ANY(%s))",
                                                (now - self.default_retention, list(special)))
            for check, keep in special.items():
                deleted += await self._delete_rollup(conn, "check_name=%s AND bucket < %s", (check, now - keep))
            await conn.execute("DELETE FROM incidents WHERE resolved_at < %s", (now - self.INCIDENT_RETENTION,))
            if self.max_size is not None:
                deleted += await self._trim(conn, self.max_size)
            return deleted

    @staticmethod
    async def _delete_rollup(conn: Conn, where: str, args: Sequence[Any]) -> int:
        """Delete aggregates; returns how many results they stood for."""
        cur = await conn.execute(f"WITH gone AS (DELETE FROM results_rollup WHERE {where} RETURNING total) "  # type: ignore[call-overload]
                                 "SELECT COALESCE(SUM(total), 0) FROM gone", args)
        row = await cur.fetchone()
        return int(row[0]) if row else 0

    @staticmethod
    async def _history_bytes(conn: Conn) -> int:
        cur = await conn.execute("SELECT (SELECT COALESCE(SUM(pg_column_size(r.*)), 0) FROM results r) + "
                                 "(SELECT COALESCE(SUM(pg_column_size(u.*)), 0) FROM results_rollup u)")
        row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def _trim(self, conn: Conn, max_size: int) -> int:
        """Delete the oldest history, an hour at a time, until it takes under 90% of max_size."""
        target, deleted = int(max_size * 0.9), 0
        for _ in range(10_000):
            if await self._history_bytes(conn) <= target:
                break
            cur = await conn.execute("SELECT LEAST((SELECT MIN(bucket) FROM results_rollup), (SELECT MIN(ts) FROM results))")
            row = await cur.fetchone()
            if row is None or row[0] is None:
                break  # no history left: alert state and the outbox are never trimmed
            before = float(row[0]) + self.TRIM_STEP
            deleted += await self._delete_rollup(conn, "bucket < %s", (before,))
            cur = await conn.execute("DELETE FROM results WHERE ts < %s", (before,))
            deleted += cur.rowcount
        if deleted and time.time() - self._trim_logged > 3600:
            self._trim_logged = time.time()
            log.warning("state store %s is over agent.store_max_size (%d bytes): deleted the oldest %d history rows",
                        redact(self.url), max_size, deleted)
        return deleted

    def size_bytes(self) -> int:
        """The history tables' size on the server as of the last write (not asked at every scrape)."""
        return self._size

    async def history(self, check: str, since: float, until: float | None = None) -> list[HistoryPoint]:
        until = time.time() if until is None else until
        await self.flush()
        rows = await self._fetchall(
            "SELECT bucket, worst, duration_sum / total, total FROM results_rollup "
            "WHERE check_name=%s AND bucket>=%s AND bucket<=%s "
            "UNION ALL SELECT ts, status, duration, 1 FROM results WHERE check_name=%s AND ts>=%s AND ts<=%s "
            "ORDER BY 1", (check, since, until, check, since, until))
        return [HistoryPoint(float(ts), Status(st), float(d), int(n)) for ts, st, d, n in rows]

    async def success_counts(self, check: str, since: float, until: float | None = None) -> tuple[int, int]:
        until = time.time() if until is None else until
        await self.flush()
        rows = await self._fetchall(
            "SELECT (SELECT COALESCE(SUM(CASE WHEN status IN (0, 1) THEN 1 ELSE 0 END), 0) FROM results "
            "        WHERE check_name=%s AND ts>=%s AND ts<=%s) + "
            "       (SELECT COALESCE(SUM(good), 0) FROM results_rollup WHERE check_name=%s AND bucket>=%s AND bucket<=%s), "
            "       (SELECT COUNT(*) FROM results WHERE check_name=%s AND ts>=%s AND ts<=%s) + "
            "       (SELECT COALESCE(SUM(total), 0) FROM results_rollup WHERE check_name=%s AND bucket>=%s AND bucket<=%s)",
            (check, since, until) * 4)
        return int(rows[0][0]), int(rows[0][1])

    async def first_result_at(self, check: str) -> float | None:
        await self.flush()
        rows = await self._fetchall("SELECT LEAST((SELECT MIN(bucket) FROM results_rollup WHERE check_name=%s), "
                                    "(SELECT MIN(ts) FROM results WHERE check_name=%s))", (check, check))
        return None if rows[0][0] is None else float(rows[0][0])

    async def buckets(self, check: str, since: float, until: float, count: int) -> list[Bucket]:
        if count < 1 or until <= since:
            raise ValueError(f"buckets need count >= 1 and until > since, got count={count}, [{since}, {until})")
        await self.flush()
        width = (until - since) / count
        # as SQLite: raw results and the aggregates of older ones, each in the slice of its start; worst by
        # rank (CRITICAL above UNKNOWN above WARNING above OK)
        rows = await self._fetchall(
            "SELECT LEAST(floor((t - %s) / %s)::int, %s) AS b, SUM(n), SUM(g), SUM(d) / SUM(n), "
            "MAX(CASE w WHEN 2 THEN 3 WHEN 3 THEN 2 ELSE w END) FROM ("
            "SELECT ts AS t, 1 AS n, CASE WHEN status IN (0, 1) THEN 1 ELSE 0 END AS g, duration AS d, status AS w "
            "FROM results WHERE check_name=%s AND ts>=%s AND ts<%s "
            "UNION ALL SELECT bucket, total, good, duration_sum, worst FROM results_rollup "
            "WHERE check_name=%s AND bucket>=%s AND bucket<%s) AS h GROUP BY b ORDER BY b",
            (since, width, count - 1, check, since, until, check, since, until))
        found = {int(b): (n, good, mean, worst) for b, n, good, mean, worst in rows}
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
        where, args = ("WHERE check_name = ANY(%s)", (list(checks),)) if checks is not None else ("", ())
        async with self._tx() as conn:
            cur = await conn.execute(f"SELECT data FROM alert_records {where} ORDER BY dedup_key", args)  # type: ignore[call-overload]
            records = [json.loads(d) for (d,) in await cur.fetchall()]
            cur = await conn.execute(f"SELECT check_name, status FROM alert_check_status {where}", args)  # type: ignore[call-overload]
            statuses = {c: Status(s) for c, s in await cur.fetchall()}
            group_docs: list[dict[str, Any]] = []
            if groups:
                cur = await conn.execute("SELECT data FROM alert_groups ORDER BY key")
                group_docs = [json.loads(d) for (d,) in await cur.fetchall()]
            cur = await conn.execute("SELECT data FROM alert_silences ORDER BY id")
            silences = [json.loads(d) for (d,) in await cur.fetchall()]
        return AlertSnapshot(records, group_docs, statuses, silences)

    async def write_alert_changes(self, changes: AlertChanges) -> None:
        owner = changes.owner
        # with an owner, a check another replica owns is left alone (fencing)
        fence = " WHERE NOT EXISTS (SELECT 1 FROM check_owners o WHERE o.check_name=%s AND o.owner<>%s)" if owner else ""

        def fenced(check: str) -> tuple[Any, ...]:
            return (check, owner) if owner else ()

        try:
            async with self._tx() as conn:
                for rec in changes.records:
                    await conn.execute(
                        "INSERT INTO alert_records(dedup_key, check_name, data) SELECT %s, %s, %s" + fence +
                        " ON CONFLICT(dedup_key) DO UPDATE SET data=excluded.data",
                        (rec.key, rec.check, json.dumps(doc_dict(rec.doc)), *fenced(rec.check)))
                for key in changes.deleted_records:
                    if owner:
                        await conn.execute(
                            "DELETE FROM alert_records r WHERE dedup_key=%s AND NOT EXISTS (SELECT 1 FROM check_owners o "
                            "WHERE o.check_name=r.check_name AND o.owner<>%s)", (key, owner))
                    else:
                        await conn.execute("DELETE FROM alert_records WHERE dedup_key=%s", (key,))
                for group in changes.groups:
                    await conn.execute("INSERT INTO alert_groups(key, receiver, data) VALUES(%s, %s, %s) "
                                       "ON CONFLICT(key) DO UPDATE SET receiver=excluded.receiver, data=excluded.data",
                                       (group.key, group.receiver, json.dumps(doc_dict(group.doc))))
                if changes.deleted_groups:
                    await conn.execute("DELETE FROM alert_groups WHERE key = ANY(%s)", (list(changes.deleted_groups),))
                for check, (status, ts) in changes.statuses.items():
                    await conn.execute(
                        "INSERT INTO alert_check_status(check_name, status, ts) SELECT %s, %s, %s" + fence +
                        " ON CONFLICT(check_name) DO UPDATE SET status=excluded.status, ts=excluded.ts",
                        (check, int(status), ts, *fenced(check)))
                for incident in changes.incidents:
                    await _save_incident(conn, incident)
                await _insert_outbox(conn, changes.outbox, owner)
                if changes.release and owner:
                    await conn.execute("DELETE FROM check_owners WHERE owner=%s AND check_name = ANY(%s)",
                                       (owner, list(changes.release)))
        except Exception:
            for row in changes.outbox:  # rolled back: no row got an id
                row.id = None
            raise

    async def incidents(self, since: float, until: float | None = None) -> list[Incident]:
        until = time.time() if until is None else until
        rows = await self._fetchall(
            "SELECT key, dedup_key, check_name, fired_at, failing_since, acknowledged_at, resolved_at, data "
            "FROM incidents WHERE fired_at<=%s AND (resolved_at IS NULL OR resolved_at>=%s) ORDER BY fired_at, key",
            (until, since))
        return [Incident(r[0], r[1], r[2], r[3], r[4], r[5], r[6], json.loads(r[7])) for r in rows]

    async def save_silence(self, silence: SilenceDoc) -> None:
        async with self._tx() as conn:
            await _save_silence(conn, silence)

    async def sync_silences(self, source: str, silences: Sequence[SilenceDoc], expired_before: float) -> None:
        async with self._tx() as conn:
            await conn.execute("DELETE FROM alert_silences WHERE source=%s", (source,))
            await conn.execute("DELETE FROM alert_silences WHERE ends_at < %s", (expired_before,))
            for s in silences:
                await _save_silence(conn, s)

    async def forget_checks(self, keep: Collection[str]) -> None:
        async with self._tx() as conn:
            names = list(keep)
            await conn.execute("DELETE FROM alert_records WHERE NOT (check_name = ANY(%s))", (names,))
            await conn.execute("DELETE FROM alert_check_status WHERE NOT (check_name = ANY(%s))", (names,))
            await conn.execute("DELETE FROM check_owners WHERE NOT (check_name = ANY(%s))", (names,))
            await conn.execute("DELETE FROM location_results WHERE NOT (check_name = ANY(%s))", (names,))

    # -- outbox ------------------------------------------------------------------
    async def outbox_insert(self, rows: Sequence[OutboxEntry]) -> None:
        try:
            async with self._tx() as conn:
                await _insert_outbox(conn, rows)
        except Exception:
            for row in rows:  # rolled back: no row got an id
                row.id = None
            raise

    async def outbox_insert_once(self, rows: Sequence[OutboxEntry], key: str, value: str) -> bool:
        try:
            async with self._tx() as conn:
                # the meta row, locked: of replicas inserting the same rows at once, one does
                cur = await conn.execute("INSERT INTO meta(key, value) VALUES(%s, %s) ON CONFLICT(key) DO UPDATE "
                                         "SET value=excluded.value WHERE meta.value IS DISTINCT FROM excluded.value "
                                         "RETURNING 1", (key, value))
                if await cur.fetchone() is None:
                    return False
                await _insert_outbox(conn, rows)
                return True
        except Exception:
            for r in rows:  # rolled back: no row got an id
                r.id = None
            raise

    async def outbox_after(self, receiver: str, after_id: int, limit: int) -> list[OutboxEntry]:
        me = self.member
        free = f"(o.claimed_by IS NULL OR o.claimed_by=%(me)s OR o.claim_until < {_NOW})"
        sql = f"""
            WITH picked AS (
                SELECT o.id FROM alert_outbox o
                WHERE o.receiver=%(receiver)s AND o.id>%(after)s AND {free}
                  AND NOT EXISTS (SELECT 1 FROM alert_outbox p WHERE p.receiver=o.receiver AND p.group_key=o.group_key
                                  AND p.id<o.id AND p.claimed_by IS NOT NULL AND p.claimed_by<>%(me)s
                                  AND p.claim_until >= {_NOW})
                ORDER BY o.id LIMIT %(limit)s FOR UPDATE SKIP LOCKED)
            UPDATE alert_outbox a SET claimed_by=%(me)s, claim_until={_NOW} + %(lease)s
            FROM picked WHERE a.id=picked.id
            RETURNING {', '.join('a.' + c.strip() for c in _OUTBOX_COLUMNS.split(','))}"""
        rows = await self._fetchall(sql, {"receiver": receiver, "after": after_id, "me": me,  # type: ignore[arg-type]
                                          "limit": limit, "lease": self.claim_lease})
        return sorted((_outbox_entry(r) for r in rows), key=lambda e: e.id or 0)

    async def outbox_renew(self) -> int:
        return await self._exec(f"UPDATE alert_outbox SET claim_until={_NOW} + %s WHERE claimed_by=%s",
                                (self.claim_lease, self.member))

    async def outbox_head(self, receiver: str) -> OutboxEntry | None:
        rows = await self._fetchall(f"SELECT {_OUTBOX_COLUMNS} FROM alert_outbox WHERE receiver=%s ORDER BY id LIMIT 1",
                                    (receiver,))
        return _outbox_entry(rows[0]) if rows else None

    async def outbox_rows(self, receiver: str | None = None) -> list[OutboxEntry]:
        where, args = ("WHERE receiver=%s", (receiver,)) if receiver is not None else ("", ())
        rows = await self._fetchall(f"SELECT {_OUTBOX_COLUMNS} FROM alert_outbox {where} ORDER BY id", args)
        return [_outbox_entry(r) for r in rows]

    async def outbox_delete_many(self, rows: Sequence[E]) -> list[E]:
        if not rows:
            return []
        ids = [r.id for r in rows]
        found = await self._fetchall(
            f"DELETE FROM alert_outbox WHERE id = ANY(%s) AND (claimed_by IS NULL OR claimed_by=%s "
            f"OR claim_until < {_NOW}) RETURNING id", (ids, self.member))
        gone = {r[0] for r in found}
        return [r for r in rows if r.id in gone]

    async def outbox_reschedule(self, row: OutboxEntry) -> None:
        await self._exec("UPDATE alert_outbox SET attempts=%s, next_attempt_at=%s, last_error=%s WHERE id=%s",
                         (row.attempts, row.next_attempt_at, row.last_error, row.id))

    async def outbox_depth(self) -> dict[str, int]:
        rows = await self._fetchall("SELECT receiver, COUNT(*) FROM alert_outbox GROUP BY receiver")
        return {r: int(n) for r, n in rows}

    async def outbox_drop_except(self, receivers: Collection[str]) -> dict[str, int]:
        rows = await self._fetchall("WITH gone AS (DELETE FROM alert_outbox WHERE NOT (receiver = ANY(%s)) "
                                    "RETURNING receiver) SELECT receiver, COUNT(*) FROM gone GROUP BY receiver",
                                    (list(receivers),))
        return {r: int(n) for r, n in rows}

    # -- replicas --------------------------------------------------------------------
    async def now(self) -> float:
        rows = await self._fetchall(f"SELECT {_NOW}")
        return float(rows[0][0])

    async def heartbeat(self, name: str, location: str | None, lease: float) -> list[Member]:
        async with self._tx() as conn:
            await conn.execute(
                f"INSERT INTO cluster_members(name, location, heartbeat_at, lease) VALUES(%s, %s, {_NOW}, %s) "
                "ON CONFLICT(name) DO UPDATE SET location=excluded.location, heartbeat_at=excluded.heartbeat_at, "
                "lease=excluded.lease", (name, location, lease))
            await conn.execute(f"DELETE FROM cluster_members WHERE heartbeat_at + 10 * lease < {_NOW}")
            cur = await conn.execute(f"SELECT name, location, started_at, heartbeat_at, lease FROM cluster_members "
                                     f"WHERE heartbeat_at + lease > {_NOW} ORDER BY name")
            return [Member(n, loc, float(s), float(h), float(le)) for n, loc, s, h, le in await cur.fetchall()]

    async def leave(self, name: str) -> None:
        async with self._tx() as conn:
            await conn.execute("DELETE FROM cluster_members WHERE name=%s", (name,))
            await conn.execute("DELETE FROM check_owners WHERE owner=%s", (name,))

    async def claim_checks(self, owner: str, checks: Collection[str], live: Collection[str]) -> set[str]:
        if not checks:
            return set()
        rows = await self._fetchall(
            f"INSERT INTO check_owners(check_name, owner, since) SELECT c, %s, {_NOW} FROM unnest(%s::text[]) AS c "
            "ON CONFLICT(check_name) DO UPDATE SET owner=excluded.owner, since=excluded.since "
            "WHERE check_owners.owner=excluded.owner OR NOT (check_owners.owner = ANY(%s)) RETURNING check_name",
            (owner, sorted(checks), list(live)))
        return {r[0] for r in rows}

    async def check_owners(self) -> dict[str, str]:
        return {c: o for c, o in await self._fetchall("SELECT check_name, owner FROM check_owners")}

    async def publish_location_results(self, results: Sequence[LocationResult]) -> None:
        if not results:
            return
        async with self._tx() as conn, conn.cursor() as cur:
            await cur.executemany(
                "INSERT INTO location_results(check_name, replica, location, status, ts, summary) "
                "VALUES(%s, %s, %s, %s, %s, %s) ON CONFLICT(check_name, replica) DO UPDATE SET "
                "location=excluded.location, status=excluded.status, ts=excluded.ts, summary=excluded.summary",
                [(r.check, r.replica, r.location, int(r.status), r.ts, r.summary[:500]) for r in results])

    async def location_results(self, checks: Collection[str]) -> dict[str, list[LocationResult]]:
        rows = await self._fetchall("SELECT check_name, replica, location, status, ts, summary FROM location_results "
                                    "WHERE check_name = ANY(%s) ORDER BY check_name, replica", (list(checks),))
        out: dict[str, list[LocationResult]] = {}
        for c, rep, loc, st, ts, summary in rows:
            out.setdefault(c, []).append(LocationResult(c, rep, loc, Status(st), float(ts), summary))
        return out
