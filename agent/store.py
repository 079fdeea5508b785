"""Durable state behind one small interface: SQLite (stdlib, WAL) by default.

All SQL runs on one dedicated thread so the event loop never blocks on disk
and SQLite sees a single writer. Other packages (alerting's outbox, silences,
alert state) add their own tables with `ensure_schema()` and run their own
statements with `call()`, each call one transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from agent.core import CheckResult, Status

log = logging.getLogger("sre_agent.store")
T = TypeVar("T")

_SCHEMA = """
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


@dataclass(frozen=True)
class HistoryPoint:
    ts: float
    status: Status


class Store:
    """SQLite state store. Create, `await open()`, use, `await close()`."""

    FLUSH_EVERY = 1.0
    FLUSH_BATCH = 2000

    def __init__(self, path: str | Path, default_retention: float = 2 * 86400) -> None:
        self.path = Path(path)
        self.default_retention = default_retention
        self._retention: dict[str, float] = {}
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sre-agent-store")
        self._conn: sqlite3.Connection | None = None
        self._pending: list[tuple[str, float, int, float, str]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._last_prune = 0.0
        self.on_error: Callable[[Exception], None] | None = None

    @classmethod
    def for_state_dir(cls, state_dir: str | Path, default_retention: float) -> Store:
        return cls(Path(state_dir) / "state.db", default_retention)

    # -- lifecycle ---------------------------------------------------------
    async def open(self) -> None:
        await self._run(self._open_sync)
        self._last_prune = time.time()
        self._flusher = asyncio.create_task(self._flush_loop(), name="store-flush")

    def _open_sync(self) -> None:
        if str(self.path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA busy_timeout=5000")
        conn.executescript(_SCHEMA)
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

    # -- generic access -----------------------------------------------------
    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn(conn, *args)` on the store thread inside one transaction."""
        return await self._run(self._transaction, fn, args)

    def _transaction(self, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        conn = self._conn
        if conn is None:
            raise RuntimeError("store is not open")
        conn.execute("BEGIN IMMEDIATE")
        try:
            out = fn(conn, *args)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return out

    async def ensure_schema(self, sql: str) -> None:
        def apply(conn: sqlite3.Connection) -> None:
            for statement in filter(str.strip, sql.split(";")):
                conn.execute(statement)

        await self.call(apply)

    async def get_meta(self, key: str) -> str | None:
        def get(conn: sqlite3.Connection) -> str | None:
            row = conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
            return row[0] if row else None

        return await self.call(get)

    async def set_meta(self, key: str, value: str) -> None:
        await self.call(lambda c: c.execute("INSERT INTO meta(key, value) VALUES(?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value", (key, value)))

    # -- result history -----------------------------------------------------
    def set_retention(self, check: str, seconds: float) -> None:
        """Keep a check's history at least this long (SLOs over probe history need their window)."""
        self._retention[check] = max(seconds, self._retention.get(check, 0.0))

    def add_result(self, result: CheckResult) -> None:
        """Queue a result for the next batched write (no I/O here)."""
        self._pending.append((result.check, result.timestamp, int(result.status), result.duration_seconds, result.summary[:500]))
        if len(self._pending) >= self.FLUSH_BATCH and self._flusher is not None:
            asyncio.get_running_loop().create_task(self.flush())

    async def flush(self) -> None:
        if not self._pending:
            return
        batch, self._pending = self._pending, []
        try:
            await self.call(lambda c: c.executemany("INSERT INTO results VALUES (?, ?, ?, ?, ?)", batch))
        except Exception as exc:
            log.error("could not write %d results to %s: %s", len(batch), self.path, exc)
            if self.on_error:
                self.on_error(exc)
        if time.time() - self._last_prune > 600:
            self._last_prune = time.time()
            await self.prune()

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(self.FLUSH_EVERY)
            await self.flush()

    async def prune(self, now: float | None = None) -> int:
        now = time.time() if now is None else now
        special = dict(self._retention)

        def prune(conn: sqlite3.Connection) -> int:
            deleted = 0
            placeholders = ",".join("?" * len(special))
            cur = conn.execute(f"DELETE FROM results WHERE ts < ? AND check_name NOT IN ({placeholders})",
                               (now - self.default_retention, *special))
            deleted += cur.rowcount
            for check, keep in special.items():
                deleted += conn.execute("DELETE FROM results WHERE check_name=? AND ts < ?", (check, now - keep)).rowcount
            return deleted

        return await self.call(prune)

    async def history(self, check: str, since: float, until: float | None = None) -> list[HistoryPoint]:
        until = time.time() if until is None else until
        await self.flush()

        def read(conn: sqlite3.Connection) -> list[HistoryPoint]:
            rows = conn.execute("SELECT ts, status FROM results WHERE check_name=? AND ts>=? AND ts<=? ORDER BY ts",
                                (check, since, until)).fetchall()
            return [HistoryPoint(ts, Status(st)) for ts, st in rows]

        return await self.call(read)

    async def success_counts(self, check: str, since: float, until: float | None = None) -> tuple[int, int]:
        """(good, total) results since a time; good = OK or WARNING."""
        until = time.time() if until is None else until
        await self.flush()

        def count(conn: sqlite3.Connection) -> tuple[int, int]:
            row = conn.execute("SELECT COALESCE(SUM(status IN (0, 1)), 0), COUNT(*) FROM results "
                               "WHERE check_name=? AND ts>=? AND ts<=?", (check, since, until)).fetchone()
            return int(row[0]), int(row[1])

        return await self.call(count)
