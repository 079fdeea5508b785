"""The durable outbox: every notification is a row before it is sent, and stays one
until its receiver accepted it (SENT) or refused it for good (FAILED).

One `DeliveryWorker` (an asyncio task) per receiver drains that receiver's rows
oldest first, up to `CONCURRENCY` sends at a time, and never two rows of one
alert or one group at once: a row waits while an earlier row sharing its group
or one of its alerts is queued, retrying or in flight, so a resolve never
overtakes its trigger. A receiver that is down for an hour gets everything
afterwards, in that order, while the other receivers' workers carry on.

A RETRY (5xx, timeout, or 429 with the peer's `Retry-After`) is about the
receiver, not the row: it pauses all of that receiver's rows until the retried
row is due (exponential backoff with jitter, or the `Retry-After`), and until a
send gets through again the worker probes with one send at a time. The backoff
runs from when the attempt ended; after a timeout it starts from the
receiver's timeout instead of `initial_backoff` (a peer that did not answer in
10s is not helped by another request 1s later, and may still accept the last). A row older
than `max_age` is dropped. The idempotency key is stored with the row, so every
retry of it (also after a restart) carries the same key.

On a store shared by replicas (`Store.shared`) every replica's worker for a
receiver drains the same rows: the window is filled by claims (`outbox_after`
from the first id, so rows whose claim ran out elsewhere come back), new rows
are announced only as "look again", the store is polled every
`SHARED_RECHECK`, and no send starts after `claims_until` (the daemon moves
it on with every renewal of the claims): a replica cut off from the store
stops sending what another may have claimed since.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any

from agent.alerting.config import OutboxSettings
from agent.alerting.metrics import AlertingMetrics
from agent.core import Alert
from agent.notify.base import Delivery, Notification, Outcome, Receiver
from agent.secrets import redact
from agent.store import OutboxEntry, Store

log = logging.getLogger("sre_agent.alerting.outbox")
Clock = Callable[[], float]
#: longest a delivery worker sleeps when a store read failed
STORE_RETRY = 1.0
#: sends in flight per receiver (to different alerts and groups) while it answers
CONCURRENCY = 8
#: a worker holds at most this many of its oldest rows in memory to choose from
WINDOW = 64
#: an idle worker reads the store this often even if no new row was announced
IDLE_RECHECK = 30.0
#: on a shared store, other replicas insert rows this worker is not told of: it looks this often
SHARED_RECHECK = 1.0


class OutboxRow(OutboxEntry):
    """The store's outbox entry, read as the notification it carries."""

    @classmethod
    def for_notification(cls, n: Notification) -> OutboxRow:
        return cls(receiver=n.receiver, group_key=n.group_key, idempotency_key=n.idempotency_key,
                   created_at=n.created_at, payload=encode(n), next_attempt_at=n.created_at,
                   checks=tuple(sorted({a.check for a in n.alerts})))

    @classmethod
    def of(cls, e: OutboxEntry) -> OutboxRow:
        return cls(id=e.id, receiver=e.receiver, group_key=e.group_key, idempotency_key=e.idempotency_key,
                   created_at=e.created_at, attempts=e.attempts, next_attempt_at=e.next_attempt_at,
                   last_error=e.last_error, payload=e.payload)

    def notification(self) -> Notification:
        return decode(self.payload)

    def ordering_keys(self) -> frozenset[str]:
        """Rows sharing one of these are delivered one after the other, in id order."""
        alerts = self.payload.get("alerts", ()) if isinstance(self.payload, dict) else ()
        return frozenset(["group:" + self.group_key,
                          *("alert:" + str(a.get("dedup_key")) for a in alerts if isinstance(a, dict))])


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


class Outbox:
    """Reads and deletes of outbox rows; inserts happen in the engine's transaction."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.depth: dict[str, int] = {}

    async def refresh_depth(self) -> dict[str, int]:
        self.depth = await self.store.outbox_depth()
        return self.depth

    async def after(self, receiver: str, after_id: int, limit: int) -> list[OutboxRow]:
        """A receiver's rows with an id above `after_id`, oldest first."""
        return [OutboxRow.of(e) for e in await self.store.outbox_after(receiver, after_id, limit)]

    async def head(self, receiver: str) -> OutboxRow | None:
        found = await self.store.outbox_head(receiver)
        return OutboxRow.of(found) if found else None

    async def rows(self, receiver: str | None = None) -> list[OutboxRow]:
        return [OutboxRow.of(e) for e in await self.store.outbox_rows(receiver or None)]

    async def delete(self, row: OutboxRow) -> None:
        await self.delete_many([row])

    async def delete_many(self, rows: list[OutboxRow]) -> None:
        """Delete rows in one transaction (a row already gone is not counted twice)."""
        for row in await self.store.outbox_delete_many(rows):
            self.depth[row.receiver] = max(0, self.depth.get(row.receiver, 1) - 1)

    async def reschedule(self, row: OutboxRow) -> None:
        await self.store.outbox_reschedule(row)

    async def drop_except(self, receivers: set[str]) -> dict[str, int]:
        """Delete rows of receivers that are no longer configured; counts per receiver."""
        gone = await self.store.outbox_drop_except(receivers)
        for r in gone:
            self.depth.pop(r, None)
        return gone


class DeliveryWorker:
    """Delivers one receiver's rows; `step()` is one round (waiting for its sends), `run()` loops rounds.

    The rows it may send are a window of the receiver's oldest rows, read from the store as
    `notify()` says new ones were committed (ids only grow, and only this worker deletes a
    live receiver's rows, so the window stays in step with the table).
    """

    def __init__(self, receiver: Receiver, outbox: Outbox, settings: OutboxSettings, metrics: AlertingMetrics,
                 clock: Clock = time.time, rng: Callable[[], float] = random.random,
                 concurrency: int = CONCURRENCY) -> None:
        self.receiver = receiver
        self.outbox = outbox
        self.settings = settings
        self.metrics = metrics
        self.clock = clock
        self.rng = rng
        self.concurrency = max(1, concurrency)
        self.wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._rows: dict[int, OutboxRow] = {}  # the window, by id (oldest first)
        self._keys: dict[int, frozenset[str]] = {}
        self._last_id = 0
        self._more = True  # rows past the window may exist in the store
        self._flying: dict[int, asyncio.Task[None]] = {}
        self._loading = False
        self._undeleted: dict[int, OutboxRow] = {}  # finished, DELETE not yet done (or refused): retried
        self._delete_lock = asyncio.Lock()
        self._deleter: asyncio.Task[None] | None = None
        self._paused_until = 0.0  # after a RETRY: no row of this receiver goes before
        self._probing = False  # after a RETRY: one send at a time until one gets through
        self._launched = 0
        self._probe_from = 0
        # Rows the engine could not write (the store failing) live here under negative ids until they
        # are sent, or written: then the stored twin replaces or follows the memory row.
        self._memory: dict[str, OutboxRow] = {}  # idempotency key -> memory-only row
        self._next_memory_id = -1
        self._delivered_from_memory: set[str] = set()  # went out before it could be written
        self._twins: dict[str, OutboxRow] = {}  # key -> stored row whose memory twin is in flight
        self.shared = bool(getattr(getattr(outbox, "store", None), "shared", False))
        #: (monotonic) the store holds this worker's claims until then; no send starts after it
        self.claims_until = float("inf")

    @property
    def name(self) -> str:
        return self.receiver.name

    @property
    def _window(self) -> int:
        return max(WINDOW, 4 * self.concurrency)

    def notify(self, rows: Iterable[OutboxRow] = ()) -> None:
        """New rows for this receiver were committed; given them, the worker need not read them back."""
        new = sorted(rows, key=lambda r: r.id or 0)
        if self.shared:  # committed unclaimed: they come in through a claim
            self._more = True
        elif new and not self._more and not self._loading and len(self._rows) + len(new) <= self._window \
                and all(r.id is not None and r.id > self._last_id for r in new):
            for row in new:  # the window holds every live row up to _last_id, and ids only grow
                self._admit(row, self.clock())
        else:
            self._more = True
        self.wake.set()

    # -- rows held in memory while the store cannot be written -----------------------------
    def hold(self, rows: Iterable[OutboxRow]) -> None:
        """Deliver these rows from memory: the engine could not write them (yet)."""
        for row in rows:
            if row.idempotency_key in self._memory or row.idempotency_key in self._delivered_from_memory:
                continue
            twin = replace(row, id=self._next_memory_id)
            self._next_memory_id -= 1
            self._memory[row.idempotency_key] = twin
            assert twin.id is not None
            self._rows[twin.id] = twin
            self._keys[twin.id] = twin.ordering_keys()
        self.wake.set()

    def take_delivered_from_memory(self) -> set[str]:
        """Keys of held rows that went out (or failed for good) before being written: not to be written."""
        done, self._delivered_from_memory = self._delivered_from_memory, set()
        return done

    def persisted(self, rows: Iterable[OutboxRow]) -> None:
        """Held rows were written after all: the stored row takes over from its memory twin."""
        for row in rows:
            key = row.idempotency_key
            twin = self._memory.get(key)
            if twin is None:  # sent from memory meanwhile: the stored copy is done with
                if key in self._delivered_from_memory:
                    self._delivered_from_memory.discard(key)
                    self._finished(row)
                continue
            assert twin.id is not None
            if twin.id in self._flying:
                self._twins[key] = row  # decided when the twin's send ends
            else:
                del self._memory[key]
                self._forget(twin)
                self._more = True  # read back from the store, in id order, with everything else
        self.wake.set()

    def _finished(self, row: OutboxRow) -> None:
        """A stored row is done with: never sent again; its DELETE goes in the background."""
        assert row.id is not None
        self._undeleted[row.id] = row
        if self._task is not None and (self._deleter is None or self._deleter.done()):
            self._deleter = asyncio.create_task(self._delete_in_background(), name=f"outbox-{self.name}-delete")

    def _admit(self, row: OutboxRow, now: float) -> None:
        assert row.id is not None
        if row.idempotency_key in self._twins or row.idempotency_key in self._memory:
            return  # its memory twin is in the window or in flight: that one is sent
        self._rows[row.id] = row
        self._keys[row.id] = row.ordering_keys()
        self._last_id = max(self._last_id, row.id)
        if row.attempts and row.next_attempt_at > now:  # retried before a restart: the receiver was failing
            self._paused_until = max(self._paused_until, row.next_attempt_at)
            self._probing = True

    def backoff(self, attempts: int, retry_after: float | None, timed_out: bool = False) -> float:
        """Seconds before attempt `attempts + 1`: the peer's Retry-After, else jittered doubling
        (from the receiver's timeout, if longer than `initial_backoff`, when the attempt timed out)."""
        if retry_after is not None:
            return max(0.0, retry_after)
        first = self.settings.initial_backoff.total_seconds()
        if timed_out:
            first = max(first, self.receiver.settings.timeout.total_seconds())
        base = first * 2 ** max(0, attempts - 1)
        capped = min(self.settings.max_backoff.total_seconds(), base)
        return capped * (0.5 + self.rng() / 2)

    async def step(self) -> float | None:
        """Drop expired rows and send every row that may go now, waiting for those sends.

        Returns seconds until worth looking again (0: now, None: when woken)."""
        now = self.clock()
        started, delay = await self._round(now)
        if not started:
            return delay
        await asyncio.gather(*started)
        await self._delete_finished()
        return self._paused_until - now if self._paused_until > now else 0.0

    async def _round(self, now: float) -> tuple[list[asyncio.Task[None]], float | None]:
        """Start what may go now; returns the sends started and when to look again."""
        try:
            await self._delete_finished()
        except Exception as exc:  # finished rows stay out of the window (never re-sent); deleted later
            if self.outbox.store.write_failed(exc, f"deleting sent notifications of {self.name}"):
                log.error("outbox worker %s: could not delete sent notifications (retried): %s", self.name,
                          redact(str(exc)))
        if self.shared and time.monotonic() > self.claims_until:
            # the claims may have run out and been taken by another replica: send nothing held
            for rid in [rid for rid in self._rows if rid not in self._flying]:
                self._rows.pop(rid)
                self._keys.pop(rid, None)
            self._more = True
            return [], STORE_RETRY
        await self._load(now)
        if not self._rows:
            self.metrics.queue_depth(self.name, 0)
            return [], None
        start, expired, wake = self._plan(now)
        for row in expired:
            if row.id is not None and row.id < 0:
                self._memory.pop(row.idempotency_key, None)
                self._delivered_from_memory.add(row.idempotency_key)  # not to be written either
            else:
                await self.outbox.delete(row)
            self._forget(row)
            self.metrics.outcome(self.name, "dropped")
            log.error("dropped notification %s for receiver %s after %d attempts: older than max_age; last error: %s",
                      row.idempotency_key, self.name, row.attempts, row.last_error or "none")
        started = [self._launch(row) for row in start]
        if expired:
            return started, 0.0
        return started, None if wake is None else max(0.0, wake - now)

    async def _load(self, now: float) -> None:
        room = self._window - len(self._rows)
        if room <= 0 or not self._more:
            return
        self._more = False  # before reading: a notify() during the read sets it again
        self._loading = True
        try:
            if self.shared:  # claim from the start: rows another replica let go of are below _last_id
                rows = await self.outbox.after(self.name, 0, self._window)
            else:
                rows = await self.outbox.after(self.name, self._last_id, room)
        except BaseException:
            self._more = True
            raise
        finally:
            self._loading = False
        fresh = [r for r in rows if r.id not in self._rows and r.id not in self._undeleted]
        for row in fresh[:room]:
            self._admit(row, now)
        if len(rows) == (self._window if self.shared else room):
            self._more = True

    def _plan(self, now: float) -> tuple[list[OutboxRow], list[OutboxRow], float | None]:
        """Rows to send now (oldest first, none sharing a key with an earlier unfinished row),
        rows past `max_age`, and the earliest time a waiting row becomes due."""
        blocked: set[str] = set()
        for rid in self._flying:
            blocked |= self._keys[rid]
        free = (1 if self._probing else self.concurrency) - len(self._flying)
        max_age = self.settings.max_age.total_seconds()
        start: list[OutboxRow] = []
        expired: list[OutboxRow] = []
        wake: float | None = None
        for rid, row in self._rows.items():
            if rid in self._flying:
                continue
            keys = self._keys[rid]
            if not keys.isdisjoint(blocked):
                blocked |= keys
                continue
            expires = row.created_at + max_age
            if now >= expires:
                expired.append(row)
                continue
            due = max(row.next_attempt_at, self._paused_until)
            if due > now:
                blocked |= keys
                wake = min(due, expires) if wake is None else min(wake, due, expires)
                continue
            if free <= 0:
                break  # a finishing send wakes the worker
            start.append(row)
            blocked |= keys
            free -= 1
        return start, expired, wake

    def _launch(self, row: OutboxRow) -> asyncio.Task[None]:
        assert row.id is not None
        self._launched += 1
        task = asyncio.create_task(self._deliver(row, self._launched), name=f"outbox-{self.name}-{row.id}")
        self._flying[row.id] = task
        return task

    def _forget(self, row: OutboxRow) -> None:
        """The row is done with: never sent again, and no longer holds back rows of its alerts."""
        assert row.id is not None
        self._rows.pop(row.id, None)
        self._keys.pop(row.id, None)
        self._flying.pop(row.id, None)

    async def _deliver(self, row: OutboxRow, seq: int) -> None:
        """Send one row and record the outcome; never raises (but for cancellation)."""
        assert row.id is not None
        try:
            delivery = await self._send(row)
            if delivery.outcome in (Outcome.SENT, Outcome.FAILED):
                if seq > self._probe_from:
                    self._probing = False  # the receiver answers again
                self._forget(row)  # from here on it is never sent again, whatever the store says
                if row.id < 0:  # from memory: tell the engine, or delete the stored twin written meanwhile
                    self._memory.pop(row.idempotency_key, None)
                    twin = self._twins.pop(row.idempotency_key, None)
                    if twin is not None:
                        self._finished(twin)
                    else:
                        self._delivered_from_memory.add(row.idempotency_key)
                else:
                    self._finished(row)  # until its DELETE is done
                if delivery.outcome == Outcome.SENT:
                    self.metrics.outcome(self.name, "sent")
                    self.metrics.latency(self.name, max(0.0, self.clock() - row.created_at))
                else:
                    self.metrics.outcome(self.name, "failed")
                    log.error("receiver %s refused notification %s permanently (not retried): %s",
                              self.name, row.idempotency_key, redact(delivery.detail))
                return
            expires = row.created_at + self.settings.max_age.total_seconds()
            row.attempts += 1
            row.last_error = redact(delivery.detail)[:500]
            ended = self.clock()  # the attempt may have taken its whole timeout: back off from its end
            row.next_attempt_at = min(ended + self.backoff(row.attempts, delivery.retry_after, delivery.timed_out),
                                      expires)
            self._paused_until = max(self._paused_until, row.next_attempt_at)
            self._probing, self._probe_from = True, self._launched
            self.metrics.outcome(self.name, "retried")
            log.warning("receiver %s: attempt %d of notification %s failed (%s); next try in %.1fs",
                        self.name, row.attempts, row.idempotency_key, row.last_error, row.next_attempt_at - ended)
            if row.id < 0:
                twin = self._twins.pop(row.idempotency_key, None)
                if twin is not None:  # written meanwhile: the stored row takes over, with this retry's schedule
                    self._memory.pop(row.idempotency_key, None)
                    self._forget(row)
                    twin.attempts, twin.next_attempt_at, twin.last_error = row.attempts, row.next_attempt_at, row.last_error
                    self._more = True
                    await self.outbox.reschedule(twin)
                return
            try:
                await self.outbox.reschedule(row)
            except Exception as exc:  # the schedule is kept in memory; a restart retries the row sooner
                if self.outbox.store.write_failed(exc, f"rescheduling a notification for {self.name}"):
                    log.error("outbox worker %s: could not store a retry's schedule: %s", self.name,
                              redact(str(exc)))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.error("outbox worker %s: %s: %s", self.name, type(exc).__name__, redact(str(exc)))
            self._paused_until = max(self._paused_until, self.clock() + STORE_RETRY)
        finally:
            self._flying.pop(row.id, None)
            self.wake.set()

    async def _delete_finished(self) -> None:
        """Delete the rows finished so far: one store call for all that finished meanwhile."""
        async with self._delete_lock:
            while self._undeleted:
                rows = list(self._undeleted.values())
                await self.outbox.delete_many(rows)
                for row in rows:
                    self._undeleted.pop(row.id or 0, None)
                self.metrics.queue_depth(self.name, self.outbox.depth.get(self.name, 0))

    async def _delete_in_background(self) -> None:
        try:
            await self._delete_finished()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the rows stay in _undeleted; the next round tries again
            log.error("outbox worker %s: %s: %s", self.name, type(exc).__name__, redact(str(exc)))

    async def _send(self, row: OutboxRow) -> Delivery:
        guard = max(30.0, 6 * self.receiver.settings.timeout.total_seconds())
        try:
            async with asyncio.timeout(guard):
                return await self.receiver.deliver(row.notification())
        except TimeoutError:
            return Delivery(Outcome.RETRY, f"no outcome within {guard:g}s", timed_out=True)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a receiver bug must not stop the worker
            log.exception("receiver %s raised while sending", self.name)
            return Delivery(Outcome.RETRY, f"receiver raised {type(exc).__name__}: {redact(str(exc))[:300]}")

    # -- task ------------------------------------------------------------------------
    def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name=f"outbox-{self.name}")

    async def run(self) -> None:
        delay: float | None
        while not self._stopping:
            self.wake.clear()  # before reading: a row inserted or a send finished after the read sets it again
            try:
                _, delay = await self._round(self.clock())
                self.metrics.queue_depth(self.name, self.outbox.depth.get(self.name, 0))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.error("outbox worker %s: %s: %s", self.name, type(exc).__name__, redact(str(exc)))
                delay = STORE_RETRY
            if self._stopping:
                break
            if delay == 0:
                continue
            idle = SHARED_RECHECK if self.shared else IDLE_RECHECK
            try:
                await asyncio.wait_for(self.wake.wait(), idle if delay is None else min(delay, idle))
            except TimeoutError:
                self._more = self._more or delay is None or self.shared
        # stopping: let the sends in flight finish (stop() bounds this), then record them
        await asyncio.gather(*self._flying.values(), return_exceptions=True)
        await self._delete_finished()

    async def stop(self, grace: float = 2.0) -> None:
        """Let in-flight sends finish (up to `grace`), then cancel them; their rows stay for later."""
        self._stopping = True
        self.wake.set()
        task, self._task = self._task, None
        if task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(task), grace)
            except TimeoutError:
                flying = list(self._flying.values())
                for t in (task, *flying):
                    t.cancel()
                await asyncio.gather(task, *flying, return_exceptions=True)
        deleter, self._deleter = self._deleter, None
        if deleter is not None:
            deleter.cancel()
            await asyncio.gather(deleter, return_exceptions=True)
        try:  # sends that got through must not be sent again after a restart
            await asyncio.wait_for(self._delete_finished(), 0.5)
        except Exception as exc:
            log.warning("outbox worker %s: could not record finished sends: %s", self.name, redact(str(exc)))
