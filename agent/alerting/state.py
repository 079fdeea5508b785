"""Alerting's tables in the state store, and the one transaction that writes them.

Alert records, aggregation groups (with their repeat timers), the last status
of each check (for `depends_on`), silences and outbox rows all live in the
agent's store, so `kill -9` loses nothing: a `Batch` collects what one engine
cycle changed and `write_batch` commits it in a single transaction, outbox
rows included, before anything is sent.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from typing import Any

from agent.alerting.dispatch import Group
from agent.alerting.lifecycle import AlertRecord
from agent.alerting.outbox import OutboxRow, insert_rows
from agent.alerting.silences import Silence
from agent.core import Status
from agent.store import Store

SCHEMA = """
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

#: expired API silences are kept this long (for `silence list --all`), then pruned
SILENCE_RETENTION = 7 * 86400.0


@dataclass
class Snapshot:
    records: list[AlertRecord]
    groups: list[Group]
    statuses: dict[str, Status]
    silences: list[Silence]


@dataclass
class Batch:
    records: dict[str, AlertRecord] = field(default_factory=dict)
    deleted_records: set[str] = field(default_factory=set)
    groups: dict[str, Group] = field(default_factory=dict)
    deleted_groups: set[str] = field(default_factory=set)
    statuses: dict[str, tuple[Status, float]] = field(default_factory=dict)
    rows: list[OutboxRow] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.records or self.deleted_records or self.groups or self.deleted_groups
                    or self.statuses or self.rows)

    def merge(self, other: Batch) -> None:
        """Fold a batch that failed to commit into the next one (newer values win)."""
        for key, rec in other.records.items():
            self.records.setdefault(key, rec)
        self.deleted_records |= other.deleted_records - set(self.records)
        for key, group in other.groups.items():
            self.groups.setdefault(key, group)
        self.deleted_groups |= other.deleted_groups - set(self.groups)
        for key, status in other.statuses.items():
            self.statuses.setdefault(key, status)
        self.rows[:0] = other.rows


async def ensure_schema(store: Store) -> None:
    await store.ensure_schema(SCHEMA)


def write_batch(conn: sqlite3.Connection, batch: Batch) -> None:
    for rec in batch.records.values():
        conn.execute("INSERT INTO alert_records(dedup_key, check_name, data) VALUES(?, ?, ?) "
                     "ON CONFLICT(dedup_key) DO UPDATE SET data=excluded.data",
                     (rec.dedup_key, rec.check, json.dumps(rec.to_dict())))
    for key in batch.deleted_records:
        conn.execute("DELETE FROM alert_records WHERE dedup_key=?", (key,))
    for group in batch.groups.values():
        conn.execute("INSERT INTO alert_groups(key, receiver, data) VALUES(?, ?, ?) "
                     "ON CONFLICT(key) DO UPDATE SET receiver=excluded.receiver, data=excluded.data",
                     (group.key, group.receiver, json.dumps(group.to_dict())))
    for key in batch.deleted_groups:
        conn.execute("DELETE FROM alert_groups WHERE key=?", (key,))
    for check, (status, ts) in batch.statuses.items():
        conn.execute("INSERT INTO alert_check_status(check_name, status, ts) VALUES(?, ?, ?) "
                     "ON CONFLICT(check_name) DO UPDATE SET status=excluded.status, ts=excluded.ts",
                     (check, int(status), ts))
    insert_rows(conn, batch.rows)


def load(conn: sqlite3.Connection) -> Snapshot:
    records = [AlertRecord.from_dict(json.loads(d)) for (d,) in conn.execute("SELECT data FROM alert_records")]
    groups = [Group.from_dict(json.loads(d)) for (d,) in conn.execute("SELECT data FROM alert_groups")]
    statuses = {c: Status(s) for c, s in conn.execute("SELECT check_name, status FROM alert_check_status")}
    silences = [Silence.from_dict(json.loads(d)) for (d,) in conn.execute("SELECT data FROM alert_silences")]
    return Snapshot(records, groups, statuses, silences)


def save_silence(conn: sqlite3.Connection, silence: Silence) -> None:
    conn.execute("INSERT INTO alert_silences(id, source, ends_at, data) VALUES(?, ?, ?, ?) "
                 "ON CONFLICT(id) DO UPDATE SET ends_at=excluded.ends_at, data=excluded.data",
                 (silence.id, silence.source, silence.ends_at, json.dumps(silence.to_dict())))


def sync_config_silences(conn: sqlite3.Connection, silences: list[Silence], now: float) -> None:
    """Config silences are whatever the config says now; old API silences are pruned."""
    conn.execute("DELETE FROM alert_silences WHERE source='config'")
    conn.execute("DELETE FROM alert_silences WHERE ends_at < ?", (now - SILENCE_RETENTION,))
    for s in silences:
        save_silence(conn, s)


def forget_checks(conn: sqlite3.Connection, keep: set[str]) -> None:
    """Delete alert records and statuses of checks that are no longer configured."""
    rows: list[Any] = conn.execute("SELECT check_name FROM alert_records UNION "
                                   "SELECT check_name FROM alert_check_status").fetchall()
    for (check,) in rows:
        if check not in keep:
            conn.execute("DELETE FROM alert_records WHERE check_name=?", (check,))
            conn.execute("DELETE FROM alert_check_status WHERE check_name=?", (check,))
