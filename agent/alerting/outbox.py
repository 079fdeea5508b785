"""The durable outbox: every notification is a row before it is sent, and stays one
until its receiver accepted it (SENT) or refused it for good (FAILED).

One `DeliveryWorker` (an asyncio task) per receiver drains that receiver's rows
strictly in insertion order, so a resolve never overtakes its trigger and a
receiver that is down for an hour gets everything afterwards, in order, while
the other receivers' workers carry on. A RETRY waits (exponential backoff with
jitter, or the peer's `Retry-After`) at the head of the line; a row older than
`max_age` is dropped. The idempotency key is stored with the row, so every
retry of it (also after a restart) carries the same key.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import sqlite3
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from agent.alerting.config import OutboxSettings
from agent.alerting.metrics import AlertingMetrics
from agent.core import Alert
from agent.notify.base import Delivery, Notification, Outcome, Receiver
from agent.secrets import redact
from agent.store import Store

log = logging.getLogger("sre_agent.alerting.outbox")
Clock = Callable[[], float]
#: longest a delivery worker sleeps when a store read failed
STORE_RETRY = 1.0


@dataclass
class OutboxRow:
    receiver: str
    group_key: str
    idempotency_key: str
    created_at: float
    payload: dict[str, Any]
    next_attempt_at: float = 0.0
    attempts: int = 0
    last_error: str | None = None
    id: int | None = None

    @classmethod
    def for_notification(cls, n: Notification) -> OutboxRow:
        return cls(receiver=n.receiver, group_key=n.group_key, idempotency_key=n.idempotency_key,
                   created_at=n.created_at, payload=encode(n), next_attempt_at=n.created_at)

    def notification(self) -> Notification:
        return decode(self.payload)


def new_idempotency_key() -> str:
    return uuid.uuid4().hex


def encode(n: Notification) -> dict[str, Any]:
    return {"receiver": n.receiver, "group_key": n.group_key, "group_labels": n.group_labels,
            "alerts": [a.to_dict() for a in n.alerts], "idempotency_key": n.idempotency_key,
            "created_at": n.created_at, "kind": n.kind, "extra": n.extra}


def decode(d: dict[str, Any]) -> Notification:
    return Notification(receiver=d["receiver"], group_key=d["group_key"], group_labels=d["group_labels"],
                        alerts=[Alert.from_dict(a) for a in d["alerts"]], idempotency_key=d["idempotency_key"],
                        created_at=d["created_at"], kind=d["kind"], extra=d.get("extra", {}))


def insert_rows(conn: sqlite3.Connection, rows: list[OutboxRow]) -> None:
    for row in rows:
        cur = conn.execute(
            "INSERT INTO alert_outbox(receiver, group_key, idempotency_key, created_at, attempts, next_attempt_at, "
            "last_error, payload) VALUES(?, ?, ?, ?, ?, ?, ?, ?)",
            (row.receiver, row.group_key, row.idempotency_key, row.created_at, row.attempts, row.next_attempt_at,
             row.last_error, json.dumps(row.payload)))
        row.id = cur.lastrowid


_COLUMNS = "id, receiver, group_key, idempotency_key, created_at, attempts, next_attempt_at, last_error, payload"


def _row(r: tuple[Any, ...]) -> OutboxRow:
    return OutboxRow(id=r[0], receiver=r[1], group_key=r[2], idempotency_key=r[3], created_at=r[4], attempts=r[5],
                     next_attempt_at=r[6], last_error=r[7], payload=json.loads(r[8]))


class Outbox:
    """Reads and deletes of outbox rows; inserts happen in the engine's transaction."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.depth: dict[str, int] = {}

    async def refresh_depth(self) -> dict[str, int]:
        rows = await self.store.call(lambda c: c.execute(
            "SELECT receiver, COUNT(*) FROM alert_outbox GROUP BY receiver").fetchall())
        self.depth = {r: n for r, n in rows}
        return self.depth

    async def head(self, receiver: str) -> OutboxRow | None:
        found = await self.store.call(lambda c: c.execute(
            f"SELECT {_COLUMNS} FROM alert_outbox WHERE receiver=? ORDER BY id LIMIT 1", (receiver,)).fetchone())
        return _row(found) if found else None

    async def rows(self, receiver: str | None = None) -> list[OutboxRow]:
        where, args = ("WHERE receiver=?", (receiver,)) if receiver else ("", ())
        found = await self.store.call(lambda c: c.execute(
            f"SELECT {_COLUMNS} FROM alert_outbox {where} ORDER BY id", args).fetchall())
        return [_row(r) for r in found]

    async def delete(self, row: OutboxRow) -> None:
        await self.store.call(lambda c: c.execute("DELETE FROM alert_outbox WHERE id=?", (row.id,)))
        self.depth[row.receiver] = max(0, self.depth.get(row.receiver, 1) - 1)

    async def reschedule(self, row: OutboxRow) -> None:
        await self.store.call(lambda c: c.execute(
            "UPDATE alert_outbox SET attempts=?, next_attempt_at=?, last_error=? WHERE id=?",
            (row.attempts, row.next_attempt_at, row.last_error, row.id)))

    async def drop_except(self, receivers: set[str]) -> dict[str, int]:
        """Delete rows of receivers that are no longer configured; counts per receiver."""
        def drop(conn: sqlite3.Connection) -> dict[str, int]:
            found = dict(conn.execute("SELECT receiver, COUNT(*) FROM alert_outbox GROUP BY receiver").fetchall())
            gone = {r: n for r, n in found.items() if r not in receivers}
            for r in gone:
                conn.execute("DELETE FROM alert_outbox WHERE receiver=?", (r,))
            return gone

        gone = await self.store.call(drop)
        for r in gone:
            self.depth.pop(r, None)
        return gone


class DeliveryWorker:
    """Drains one receiver's rows in order; `step()` is one decision, `run()` loops it."""

    def __init__(self, receiver: Receiver, outbox: Outbox, settings: OutboxSettings, metrics: AlertingMetrics,
                 clock: Clock = time.time, rng: Callable[[], float] = random.random) -> None:
        self.receiver = receiver
        self.outbox = outbox
        self.settings = settings
        self.metrics = metrics
        self.clock = clock
        self.rng = rng
        self.wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None

    @property
    def name(self) -> str:
        return self.receiver.name

    def backoff(self, attempts: int, retry_after: float | None) -> float:
        """Seconds before attempt `attempts + 1`: the peer's Retry-After, else jittered doubling."""
        if retry_after is not None:
            return max(0.0, retry_after)
        base = self.settings.initial_backoff.total_seconds() * 2 ** max(0, attempts - 1)
        capped = min(self.settings.max_backoff.total_seconds(), base)
        return capped * (0.5 + self.rng() / 2)

    async def step(self) -> float | None:
        """Handle the head row if due. Returns seconds until worth looking again (0: now, None: when woken)."""
        row = await self.outbox.head(self.name)
        if row is None:
            self.metrics.queue_depth(self.name, 0)
            return None
        now = self.clock()
        expires = row.created_at + self.settings.max_age.total_seconds()
        if now >= expires:
            await self.outbox.delete(row)
            self.metrics.outcome(self.name, "dropped")
            log.error("dropped notification %s for receiver %s after %d attempts: older than max_age; last error: %s",
                      row.idempotency_key, self.name, row.attempts, row.last_error or "none")
            return 0.0
        if row.next_attempt_at > now:
            return row.next_attempt_at - now
        delivery = await self._send(row)
        if delivery.outcome == Outcome.SENT:
            await self.outbox.delete(row)
            self.metrics.outcome(self.name, "sent")
            self.metrics.latency(self.name, max(0.0, self.clock() - row.created_at))
            return 0.0
        if delivery.outcome == Outcome.FAILED:
            await self.outbox.delete(row)
            self.metrics.outcome(self.name, "failed")
            log.error("receiver %s refused notification %s permanently (not retried): %s",
                      self.name, row.idempotency_key, redact(delivery.detail))
            return 0.0
        row.attempts += 1
        row.last_error = redact(delivery.detail)[:500]
        row.next_attempt_at = min(now + self.backoff(row.attempts, delivery.retry_after), expires)
        await self.outbox.reschedule(row)
        self.metrics.outcome(self.name, "retried")
        log.warning("receiver %s: attempt %d of notification %s failed (%s); next try in %.1fs",
                    self.name, row.attempts, row.idempotency_key, row.last_error, row.next_attempt_at - now)
        return row.next_attempt_at - now

    async def _send(self, row: OutboxRow) -> Delivery:
        guard = max(30.0, 6 * self.receiver.settings.timeout.total_seconds())
        try:
            async with asyncio.timeout(guard):
                return await self.receiver.send(row.notification())
        except TimeoutError:
            return Delivery(Outcome.RETRY, f"no outcome within {guard:g}s")
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a receiver bug must not stop the worker
            log.exception("receiver %s raised while sending", self.name)
            return Delivery(Outcome.RETRY, f"receiver raised {type(exc).__name__}: {redact(str(exc))[:300]}")

    # -- task ------------------------------------------------------------------------
    def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name=f"outbox-{self.name}")

    async def run(self) -> None:
        while not self._stopping:
            self.wake.clear()  # before reading: a row inserted after the read sets it again
            try:
                delay = await self.step()
                self.metrics.queue_depth(self.name, self.outbox.depth.get(self.name, 0))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.error("outbox worker %s: store error: %s", self.name, redact(str(exc)))
                delay = STORE_RETRY
            if self._stopping:
                return
            if delay == 0:
                continue
            try:
                await asyncio.wait_for(self.wake.wait(), delay)
            except TimeoutError:
                pass

    async def stop(self, grace: float = 2.0) -> None:
        """Let an in-flight send finish (up to `grace`), then cancel; its row stays for later."""
        self._stopping = True
        self.wake.set()
        task, self._task = self._task, None
        if task is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(task), grace)
        except TimeoutError:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
