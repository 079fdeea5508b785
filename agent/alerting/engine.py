"""The alerting component: results in, notifications durably queued, receivers fed.

Wiring: `on_result` only enqueues; one task drains the queue and runs
`process()`: lifecycle (`lifecycle.evaluate`) -> mutes (`silences.Suppressor`)
-> groups and timers (`dispatch.Dispatcher`) -> outbox rows, all committed in
one store transaction per cycle; then the per-receiver `DeliveryWorker`s are
woken. `process(results, now)` takes the time as an argument, so the whole
chain is testable with a fake clock and no background task.

Replicas on a shared store (`shard(owner)`): the engine holds the alert state
of the checks its replica owns only. `acquire(checks)` loads theirs from the
store (records, statuses, and what the groups of the previous owner knew of
each alert: its hand-over, or that owner's stored groups if it died), and
`release(checks)` hands them over in one transaction with the release of their
ownership; every write is fenced by the owner's name, each replica's groups are
its own documents, and silences are re-read from the store every
`SHARED_REFRESH` seconds so one created through any replica applies on all.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any

from prometheus_client import CollectorRegistry

from agent.alerting import state
from agent.alerting.config import AlertingConfig, ReceiverConfigBase, alerting_of, receiver_kinds
from agent.alerting.dispatch import Dispatcher, Group, handover_entry
from agent.alerting.lifecycle import (
    AlertRecord,
    agent_url,
    alert_key_of,
    dedup_key,
    evaluate,
    is_failing,
    tick,
    to_alert,
)
from agent.alerting.metrics import AlertingMetrics
from agent.alerting.outbox import DeliveryWorker, Outbox, OutboxRow, new_idempotency_key
from agent.alerting.route import build_routes
from agent.alerting.silences import Mute, Silence, Source, Suppressor
from agent.check import CheckConfig
from agent.config import ConfigBase
from agent.context import CheckContext
from agent.core import Alert, AlertState, CheckResult, Severity, Status
from agent.notify.base import Notification, Receiver
from agent.secrets import redact
from agent.store import Store

log = logging.getLogger("sre_agent.alerting")
Clock = Callable[[], float]
ReceiverFactory = Callable[[ReceiverConfigBase], Receiver]
#: the engine looks at silences, maintenance windows and `for:` periods at least this often
TICK = 1.0
#: at shutdown an in-flight send gets this long (the daemon allows a component 2s to stop)
SHUTDOWN_GRACE = 0.8
#: after a failed write of alert state, the next try waits this long, doubling up to STORE_RETRY_MAX
STORE_RETRY_MIN = 1.0
STORE_RETRY_MAX = 60.0
#: under a steady stream of results a cycle starts at most this often after the previous one, so the
#: results of a busy moment share one store commit and one round of sends (a lone result goes at once)
MIN_CYCLE_INTERVAL = 0.05
#: replicas re-read silences (made through any replica's API) and the outbox depth this often
SHARED_REFRESH = 2.0


def transition_key(n: Notification) -> str:
    """The same for every replica that queues this notification: receiver, group, each alert's
    transition (state, severity, start, end) and whether it is a repeat."""
    parts = [n.receiver, n.group_key, n.kind, str(bool(n.extra.get("repeat")))]
    parts += [f"{a.dedup_key}:{a.state.value}:{a.severity.value}:{a.starts_at}:{a.ends_at}" for a in n.alerts]
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def build_receiver(cfg: ReceiverConfigBase) -> Receiver:
    return receiver_kinds()[cfg.kind](cfg.name, cfg.settings)


class AlertingEngine:
    def __init__(self, config: ConfigBase, store: Store, registry: CollectorRegistry, *, clock: Clock = time.time,
                 receiver_factory: ReceiverFactory = build_receiver, rng: Callable[[], float] = random.random,
                 background: bool = True) -> None:
        """`background=False` starts no tasks: the caller drives `process()` and the workers' `step()`."""
        self.store = store
        self.background = background
        self.clock = clock
        self.rng = rng
        self.receiver_factory = receiver_factory
        self.metrics = AlertingMetrics(registry)
        self.outbox = Outbox(store)
        self.dispatcher = Dispatcher()
        self.suppressor = Suppressor()
        self.records: dict[str, AlertRecord] = {}
        #: check -> dedup keys of its records (an SLO check has several families), in `records` order
        self._by_check: dict[str, dict[str, None]] = {}
        #: records in PENDING: the only ones `tick` can move
        self._pending: set[str] = set()
        #: dedup key -> (record, agent URL, its Alert): an Alert is rebuilt only when its record changes
        self._alerts: dict[str, tuple[AlertRecord, str, Alert]] = {}
        #: (state, severity) -> number of records, kept up to date for the sre_agent_alerts gauge
        self._counts: dict[tuple[AlertState, Severity], int] = {}
        self._counts_changed = True
        self.statuses: dict[str, Status] = {}
        #: what mutes depend on besides the alerts themselves (see `_mute`)
        self._mute_all = True
        self._mute_signature: tuple[Any, ...] | None = None
        self._status_changed: set[str] = set()
        self._source_keys: set[str] = set()
        self._dependents: dict[str, list[str]] = {}
        self.receivers: dict[str, tuple[ReceiverConfigBase, Receiver]] = {}
        self.workers: dict[str, DeliveryWorker] = {}
        self._queue: asyncio.Queue[CheckResult | None] = asyncio.Queue()
        self._held: list[CheckResult] = []  # taken from the queue, waiting for the next cycle
        self._lock = asyncio.Lock()
        self._uncommitted = state.Batch()
        #: idempotency keys of rows handed to workers before they could be written
        self._held_keys: set[str] = set()
        self._store_failures = 0
        self._store_retry_at = 0.0
        self._task: asyncio.Task[None] | None = None
        self._bound_port: Callable[[], int | None] = lambda: None
        #: replicas: this replica's name and the checks whose alert state it holds (None: every check)
        self.owner: str | None = None
        self.owned: set[str] | None = None
        self._refresher: asyncio.Task[None] | None = None
        self._apply_config(config)

    def shard(self, owner: str) -> None:
        """Run as one replica of several (before `start`): hold no check's state until `acquire`."""
        self.owner = owner
        self.owned = set()

    # -- configuration ------------------------------------------------------------------
    def _apply_config(self, config: ConfigBase) -> None:
        self.config = config
        self.alerting: AlertingConfig = alerting_of(config)
        self.checks: dict[str, CheckConfig] = {c.name: c for c in config.all_checks()}
        self._dependents = {}
        for cfg in self.checks.values():
            for dep in cfg.depends_on:
                self._dependents.setdefault(dep, []).append(cfg.name)
        self._alerts.clear()  # labels, runbooks and descriptions come from the config
        self._mute_all = True
        self.dispatcher.root = build_routes(self.alerting.route) if self.alerting.route is not None else None
        self.suppressor.configure(self.alerting.maintenance_windows, self.alerting.inhibit,
                                  [Silence.from_config(s) for s in self.alerting.silences])

    async def start(self) -> None:
        snap = await state.load(self.store, checks=None if self.owned is None else sorted(self.owned),
                                groups=self.owned is None)
        self.records, self._by_check, self._pending, self._alerts, self._counts = {}, {}, set(), {}, {}
        for rec in snap.records:
            self._put_record(rec)
        self._mute_all = True
        self.statuses = dict(snap.statuses)
        self.dispatcher.load(snap.groups)
        self.suppressor.silences.update({s.id: s for s in snap.silences if s.source != "config"})
        await self.outbox.refresh_depth()
        await self._reconcile(self.clock())
        if self.background:
            self._task = asyncio.create_task(self._run(), name="alerting-engine")
            if self.owner is not None:
                self._refresher = asyncio.create_task(self._refresh_loop(), name="alerting-shared-refresh")
        log.info("alerting: %d active alerts, %d groups, %d queued notifications restored",
                 sum(r.active for r in self.records.values()), len(self.dispatcher.groups), sum(self.outbox.depth.values()))

    async def reconfigure(self, config: ConfigBase) -> None:
        async with self._lock:
            self._apply_config(config)
        await self._reconcile(self.clock())

    async def _reconcile(self, now: float) -> None:
        """Bring silences, receivers, workers and groups in line with the current config."""
        async with self._lock:
            config_silences = [s for s in self.suppressor.silences.values() if s.source == "config"]
            await state.sync_config_silences(self.store, config_silences, now)
            for sid, s in list(self.suppressor.silences.items()):
                if s.ends_at < now - state.SILENCE_RETENTION:
                    del self.suppressor.silences[sid]
            batch = state.Batch()
            # a disabled check sends no more results: its alerts would fire (and repeat) forever
            running = {name for name, cfg in self.checks.items() if cfg.enabled}
            for key, rec in list(self.records.items()):
                if rec.check in running:
                    continue
                if rec.state == AlertState.FIRING:
                    why = "check disabled in the config" if rec.check in self.checks else "check removed from the config"
                    resolved = replace(rec, state=AlertState.RESOLVED, ends_at=now, summary=why)
                    if (incident := state.incident_change(rec, resolved, now)) is not None:
                        batch.note_incident(incident)
                    rec = resolved
                    self.dispatcher.update(self._alert(rec), now)
                self._forget_record(key)
            self.statuses = {c: st for c, st in self.statuses.items() if c in running}
            self._mute_all = True
            await state.forget_checks(self.store, running)
            await self._sync_receivers()
            for rec in self.records.values():
                if rec.state == AlertState.FIRING or self.dispatcher.groups_of(rec.dedup_key):
                    self.dispatcher.update(self._alert(rec), now)
            await self._cycle(now, batch, set())

    async def _sync_receivers(self) -> None:
        wanted = {r.name: r for r in self.alerting.receivers}
        for name, (cfg, _receiver) in list(self.receivers.items()):
            if wanted.get(name) != cfg:
                await self._close_receiver(name)
        for name, cfg in wanted.items():
            if name not in self.receivers:
                receiver = self.receiver_factory(cfg)
                self.receivers[name] = (cfg, receiver)
                self.metrics.add_receiver(name)
                worker = self.workers[name] = DeliveryWorker(receiver, self.outbox, self.alerting.outbox, self.metrics,
                                                             clock=self.clock, rng=self.rng)
                if self.background:
                    worker.start()
            self.workers[name].settings = self.alerting.outbox
        gone = await self.outbox.drop_except(set(wanted))
        for name, n in gone.items():
            log.warning("dropped %d queued notifications for receiver %r: it is no longer configured", n, name)
            self.metrics.outcome(name, "dropped", n)
            self.metrics.queue_depth(name, 0)
        for group in list(self.dispatcher.groups.values()):
            if group.receiver not in wanted:
                self.dispatcher.drop_receiver(group.receiver)

    async def _close_receiver(self, name: str, grace: float = 2.0) -> None:
        _, receiver = self.receivers.pop(name)
        worker = self.workers.pop(name, None)
        if worker is not None:
            await worker.stop(grace)
        try:
            await asyncio.wait_for(receiver.close(), grace)
        except Exception as exc:
            log.warning("closing receiver %s failed: %s", name, exc)

    async def stop(self) -> None:
        """Commit what is queued, give in-flight sends a moment, close receivers. Rows stay for the next start."""
        for task in (self._task, self._refresher):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._task = self._refresher = None
        pending, self._held = self._held + self._drain(), []
        if pending or self._uncommitted:
            await self.process(pending)
        await asyncio.gather(*(self._close_receiver(name, grace=SHUTDOWN_GRACE) for name in list(self.receivers)))

    # -- results in ---------------------------------------------------------------------------
    def on_result(self, result: CheckResult) -> None:
        """Called by the scheduler for every result: never blocks, never raises."""
        self._queue.put_nowait(result)

    def poke(self) -> None:
        """Wake the engine now (a silence changed)."""
        self._queue.put_nowait(None)

    def _drain(self) -> list[CheckResult]:
        out = []
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if item is not None:
                out.append(item)
        return out

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        last_cycle = float("-inf")
        while True:
            due = self.dispatcher.next_due()
            timeout = TICK if due is None else min(TICK, max(0.0, due - self.clock()))
            try:
                async with asyncio.timeout(timeout):
                    first = await self._queue.get()
                if first is not None:
                    self._held.append(first)
                if (gap := last_cycle + MIN_CYCLE_INTERVAL - loop.time()) > 0:
                    await asyncio.sleep(gap)
            except TimeoutError:
                pass  # no result within the tick: run the cycle for timers and retries
            results, self._held = self._held + self._drain(), []
            last_cycle = loop.time()
            try:
                await self.process(results)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("alerting cycle failed; will retry with the next results")

    async def process(self, results: Iterable[CheckResult], now: float | None = None) -> None:
        """One engine cycle at time `now`: evaluate, mute, group, enqueue, commit."""
        now = self.clock() if now is None else now
        async with self._lock:
            batch = state.Batch()
            changed: set[str] = set()
            for result in results:
                self._apply_result(result, now, batch, changed)
            for key in list(self._pending):
                rec = self.records[key]
                cfg = self.checks.get(rec.check)
                if cfg is not None and (new := tick(rec, cfg, now)) is not rec:
                    self._store_record(new, batch, changed)
            await self._cycle(now, batch, changed)

    def _apply_result(self, result: CheckResult, now: float, batch: state.Batch, changed: set[str]) -> None:
        cfg = self.checks.get(result.check)
        if cfg is None or not cfg.enabled or (self.owned is not None and result.check not in self.owned):
            return
        if self.statuses.get(result.check) != result.status:
            self.statuses[result.check] = result.status
            batch.statuses[result.check] = (result.status, now)
            self._status_changed.add(result.check)
        verdict = is_failing(result.status, cfg.alert)
        if verdict is None:
            return
        family = alert_key_of(result)
        key = dedup_key(result.check, family)
        families = [self.records[k] for k in self._by_check.get(result.check, ()) if k != key]
        for rec in [self.records.get(key), *families]:
            if rec is None and not verdict:
                continue
            old = rec or AlertRecord(dedup_key=key, check=result.check, type=result.type, alert_key=family)
            new = evaluate(old, result, cfg, now, failing=None if old.dedup_key == key else False)
            if new != old or rec is None:
                self._store_record(new, batch, changed)

    def _store_record(self, rec: AlertRecord, batch: state.Batch, changed: set[str]) -> None:
        if (incident := state.incident_change(self.records.get(rec.dedup_key), rec, self.clock())) is not None:
            batch.note_incident(incident)
        changed.add(rec.dedup_key)
        if rec.idle:
            self._forget_record(rec.dedup_key)
            batch.records.pop(rec.dedup_key, None)
            batch.deleted_records.add(rec.dedup_key)
        else:
            self._put_record(rec)
            batch.records[rec.dedup_key] = rec
            batch.deleted_records.discard(rec.dedup_key)

    def _count(self, rec: AlertRecord, n: int) -> None:
        self._counts[(rec.state, rec.severity)] = self._counts.get((rec.state, rec.severity), 0) + n
        self._counts_changed = True

    def _put_record(self, rec: AlertRecord) -> None:
        key = rec.dedup_key
        if (old := self.records.get(key)) is not None:
            self._count(old, -1)
        self._count(rec, 1)
        self.records[key] = rec
        self._by_check.setdefault(rec.check, {})[key] = None
        self._alerts.pop(key, None)
        if rec.state == AlertState.PENDING:
            self._pending.add(key)
        else:
            self._pending.discard(key)

    def _forget_record(self, key: str) -> None:
        rec = self.records.pop(key, None)
        self._alerts.pop(key, None)
        self._pending.discard(key)
        if rec is not None:
            self._count(rec, -1)
        if rec is not None and (family := self._by_check.get(rec.check)) is not None:
            family.pop(key, None)
            if not family:
                del self._by_check[rec.check]

    def _to_mute(self, now: float, changed: set[str]) -> list[str]:
        """The firing alerts whose mute may have moved since the last cycle.

        A mute is a function of the alert's labels, its check's `depends_on` and their statuses,
        the silences and maintenance windows in force at `now` (`Suppressor.signature`), the inhibit
        rules and the firing alerts that may inhibit. So: the alerts whose record changed, those
        depending on a check whose status changed, and all of them when the config, the signature
        or (with inhibit rules) the set of possible sources changed.
        """
        signature = self.suppressor.signature(now)
        everything = self._mute_all or signature != self._mute_signature
        self._mute_all, self._mute_signature = False, signature
        if self.suppressor.inhibit and not everything:
            for key in changed:
                rec = self.records.get(key)
                source = rec is not None and rec.state == AlertState.FIRING \
                    and self.suppressor.is_source(self._alert(rec).labels)
                if source or key in self._source_keys:
                    everything = True
                    break
        if everything:
            keys = [k for k, r in self.records.items() if r.state == AlertState.FIRING]
            self._source_keys = {k for k in keys if self.suppressor.inhibit
                                 and self.suppressor.is_source(self._alert(self.records[k]).labels)}
            self._status_changed.clear()
            return keys
        wanted = set(changed)
        for check in self._status_changed:
            for dependent in self._dependents.get(check, ()):
                wanted.update(self._by_check.get(dependent, ()))
        self._status_changed.clear()
        return [k for k in wanted if (r := self.records.get(k)) is not None and r.state == AlertState.FIRING]

    def _mute(self, now: float, batch: state.Batch, changed: set[str]) -> None:
        """Recompute `suppressed_by` of the firing alerts whose mute may have moved (see `_to_mute`)."""
        keys = self._to_mute(now, changed)
        if not keys:
            return
        sources = []
        if self.suppressor.inhibit:
            sources = [Source(k, a.check, a.labels) for k, r in self.records.items() if r.state == AlertState.FIRING
                       for a in (self._alert(r),)]
        for key in keys:
            rec = self.records[key]
            alert = self._alert(rec)
            cfg = self.checks.get(rec.check)
            mute = self.suppressor.check(key, alert.labels, cfg.depends_on if cfg else (), self.statuses, sources, now)
            by = mute[1] if mute else None
            if by != rec.suppressed_by:
                if mute is not None and rec.suppressed_by is None:
                    self.metrics.suppress(mute[0])
                    log.info("alert %s (%s) suppressed by %s", rec.check, key, by)
                    self._acknowledged(rec, by, now, batch)
                rec.suppressed_by = by
                self._store_record(rec, batch, changed)

    def _acknowledged(self, rec: AlertRecord, by: str | None, now: float, batch: state.Batch) -> None:
        """Someone silencing a firing alert through the API is the acknowledgement the agent can see."""
        silence = self.suppressor.silences.get((by or "").removeprefix("silence:")) if by else None
        if rec.state != AlertState.FIRING or silence is None or silence.source == "config":
            return
        incident = state.incident_change(None, rec, now)
        if incident is not None:
            batch.note_incident(replace(incident, acknowledged_at=now))

    async def _cycle(self, now: float, batch: state.Batch, changed: set[str]) -> None:
        self._mute(now, batch, changed)
        for key in changed:
            rec = self.records.get(key)
            if rec is not None and (rec.state != AlertState.PENDING):
                self.dispatcher.update(self._alert(rec), now)
        for flush in self.dispatcher.flush_due(now):
            group = flush.group
            n = Notification(receiver=group.receiver, group_key=group.key, group_labels=dict(group.labels),
                             alerts=flush.alerts, idempotency_key=new_idempotency_key(), created_at=now,
                             kind=flush.kind, extra={"repeat": flush.repeat, "new": list(flush.new)})
            entry = self.receivers.get(group.receiver)
            if entry is None:
                log.warning("no receiver %r for group %s; notification dropped", group.receiver, group.key)
                self.metrics.outcome(group.receiver, "dropped")
            elif entry[1].accepts(n):
                row = OutboxRow.for_notification(n)
                row.transition_key = transition_key(n)
                batch.rows.append(row)
        groups, deleted = self.dispatcher.take_changes()
        batch.groups.update({g.key: g for g in groups})
        batch.deleted_groups.update(deleted)
        batch.deleted_groups -= set(batch.groups)
        await self._commit(batch)
        if self._counts_changed:
            self.metrics.set_alert_counts(self._counts)
            self._counts_changed = False

    async def _commit(self, batch: state.Batch) -> None:
        """Write the cycle's changes and outbox rows in one transaction, then hand the rows to their workers.

        When the store cannot be written (a full disk), nothing waits for it: the rows are delivered
        from memory at once (at-least-once, same idempotency keys), the changes are kept and the write
        is retried with backoff, and a row that went out from memory is not written afterwards."""
        batch.merge(self._uncommitted)
        delivered: set[str] = set()
        for each in self.workers.values():
            delivered |= each.take_delivered_from_memory()
        if delivered:
            batch.rows = [r for r in batch.rows if r.idempotency_key not in delivered]
            self._held_keys -= delivered
        if not batch:
            self._uncommitted = state.Batch()
            return
        now = self.clock()
        if now < self._store_retry_at:
            self._uncommitted = batch
            self._hold_in_memory(batch.rows)
            return
        try:
            await state.write_batch(self.store, batch, self.owner)
        except Exception as exc:
            self._uncommitted = batch
            self._store_failures += 1
            self._store_retry_at = now + min(STORE_RETRY_MAX, STORE_RETRY_MIN * 2 ** (self._store_failures - 1))
            self._hold_in_memory(batch.rows)
            if self.store.write_failed(exc, "writing alert state"):
                log.error("could not write alert state: %d notifications are being delivered from memory; "
                          "alert state is kept and written again in %.0fs (logged once a minute): %s",
                          len(self._held_keys), self._store_retry_at - now, redact(str(exc)))
            return
        if self._store_failures:
            log.warning("alert state written again after %d failed attempts", self._store_failures)
            self._store_failures, self._store_retry_at = 0, 0.0
            self.store.write_succeeded()
        self._uncommitted = state.Batch()
        self._announce(batch.rows)

    def _announce(self, committed: list[OutboxRow]) -> None:
        """Count newly committed outbox rows and hand them to their receivers' workers (rows already
        going out from memory, after a failed write, are only marked as stored)."""
        by_receiver: dict[str, tuple[list[OutboxRow], list[OutboxRow]]] = {}
        for row in committed:
            if row.id is None:
                continue  # another replica queued this very transition already, or owns its check
            self.outbox.depth[row.receiver] = self.outbox.depth.get(row.receiver, 0) + 1
            held, fresh = by_receiver.setdefault(row.receiver, ([], []))
            (held if row.idempotency_key in self._held_keys else fresh).append(row)
        self._held_keys.difference_update(r.idempotency_key for r in committed)
        for receiver, (held, fresh) in by_receiver.items():
            self.metrics.queue_depth(receiver, self.outbox.depth[receiver])
            worker = self.workers.get(receiver)
            if worker is not None:
                if held:
                    worker.persisted(held)
                worker.notify(fresh)

    def _hold_in_memory(self, rows: list[OutboxRow]) -> None:
        """Give the workers the rows that could not be written yet (each row once)."""
        by_receiver: dict[str, list[OutboxRow]] = {}
        for row in rows:
            if row.idempotency_key not in self._held_keys:
                by_receiver.setdefault(row.receiver, []).append(row)
        for receiver, new in by_receiver.items():
            holder = self.workers.get(receiver)
            if holder is not None:
                holder.hold(new)
                self._held_keys.update(r.idempotency_key for r in new)

    async def enqueue_once(self, notifications: list[Notification], key: str, value: str) -> bool:
        """Queue notifications outside the alert cycle (the daily digest) unless `key` already holds
        `value` in the store; the marker and the rows are written together. False: already queued."""
        rows = [OutboxRow.for_notification(n) for n in notifications]
        unknown = [r.receiver for r in rows if r.receiver not in self.receivers]
        if unknown:
            raise KeyError(f"no receiver {', '.join(unknown)} configured")
        async with self._lock:
            queued = await self.store.outbox_insert_once(rows, key, value)
        if queued:
            self._announce(rows)
        return queued

    @property
    def agent_url(self) -> str:
        return agent_url(self.config.agent.external_url, self.config.agent.listen, self._bound_port())

    def _alert(self, rec: AlertRecord) -> Alert:
        """The record as receivers see it; cached while the record (and the agent's URL) stay the same."""
        url = self.agent_url
        hit = self._alerts.get(rec.dedup_key)
        if hit is not None and hit[0] is rec and hit[1] == url:
            return hit[2]
        alert = to_alert(rec, self.checks.get(rec.check), self.alerting.runbook_base_url, url)
        if self.records.get(rec.dedup_key) is rec:
            self._alerts[rec.dedup_key] = (rec, url, alert)
        return alert

    # -- replicas ----------------------------------------------------------------------------------
    async def acquire(self, checks: Iterable[str]) -> None:
        """This replica now owns these checks: load their alert state and adopt their alerts into its groups."""
        wanted = set(checks) - (self.owned or set())
        if not wanted or self.owned is None:
            return
        snap = await self.store.load_alert_state(checks=sorted(wanted), groups=True)
        records = [AlertRecord.from_dict(d) for d in snap.records]
        stored: dict[str, list[Group]] = {}
        for doc in snap.groups:
            group = Group.from_dict(doc)
            for key in group.alerts:
                stored.setdefault(key, []).append(group)
        now = self.clock()
        async with self._lock:
            self.owned |= wanted
            batch = state.Batch()
            for rec in records:
                if rec.check not in wanted:
                    continue
                # a released alert carries its hand-over; one whose owner died is in that owner's groups
                entries = rec.handover or [handover_entry(g, rec.dedup_key) for g in stored.get(rec.dedup_key, ())]
                rec = replace(rec, handover=[])
                self._put_record(rec)
                batch.records[rec.dedup_key] = rec
                if not self.dispatcher.groups_of(rec.dedup_key):
                    self.dispatcher.adopt(rec.dedup_key, entries)
            for check, status in snap.statuses.items():
                if check in wanted:
                    self.statuses[check] = status
            self._mute_all = True
            await self._cycle(now, batch, set())
        log.info("alerting: took over %d checks (%d alerts)", len(wanted), len(records))

    async def release(self, checks: Iterable[str]) -> None:
        """Hand these checks to another replica: their last state and hand-over, and the release of
        their ownership, in one transaction (held and retried like any batch if the store is down)."""
        gone = set(checks) & (self.owned or set())
        if not gone or self.owned is None:
            return
        async with self._lock:
            batch = state.Batch()
            for check in gone:
                for key in list(self._by_check.get(check, ())):
                    rec = self.records[key]
                    batch.records[key] = replace(rec, handover=self.dispatcher.release(key))
                    self._forget_record(key)
                self.statuses.pop(check, None)
            self.owned -= gone
            batch.release |= gone
            groups, deleted = self.dispatcher.take_changes()
            batch.groups.update({g.key: g for g in groups})
            batch.deleted_groups.update(set(deleted) - set(batch.groups))
            self._mute_all = True
            await self._commit(batch)
            if self._counts_changed:
                self.metrics.set_alert_counts(self._counts)
                self._counts_changed = False

    async def forget(self, checks: Iterable[str]) -> None:
        """Another replica owns these checks now (taken while this one had lost its lease): drop what
        this replica held of them, writing nothing about them (the new owner's state is in the store)."""
        gone = set(checks) & (self.owned or set())
        if not gone or self.owned is None:
            return
        async with self._lock:
            for check in gone:
                for key in list(self._by_check.get(check, ())):
                    self.dispatcher.release(key)
                    self._forget_record(key)
                    self._uncommitted.records.pop(key, None)
                self.statuses.pop(check, None)
                self._uncommitted.statuses.pop(check, None)
            self.owned -= gone
            batch = state.Batch()
            groups, deleted = self.dispatcher.take_changes()
            batch.groups.update({g.key: g for g in groups})
            batch.deleted_groups.update(set(deleted) - set(batch.groups))
            self._mute_all = True
            await self._commit(batch)
        log.warning("alerting: %d checks were taken over by another replica while this one had lost its lease",
                    len(gone))

    async def refresh_shared(self) -> None:
        """Re-read silences (any replica's API writes them) and the outbox depth from the shared store."""
        snap = await self.store.load_alert_state(checks=[], groups=False)
        stored = {s.id: s for s in (Silence.from_dict(d) for d in snap.silences) if s.source != "config"}
        mine = {k: v for k, v in self.suppressor.silences.items() if v.source != "config"}
        if {k: (v.starts_at, v.ends_at) for k, v in stored.items()} != \
                {k: (v.starts_at, v.ends_at) for k, v in mine.items()}:
            for sid in set(mine) - set(stored):
                del self.suppressor.silences[sid]
            self.suppressor.silences.update(stored)
            self.poke()
        for receiver, depth in (await self.outbox.refresh_depth()).items():
            self.metrics.queue_depth(receiver, depth)

    async def _refresh_loop(self) -> None:
        while True:
            await asyncio.sleep(SHARED_REFRESH)
            try:
                await self.refresh_shared()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.debug("could not re-read shared alerting state: %s", redact(str(exc)))

    def claims_renewed(self, until: float) -> None:
        """The store holds this replica's outbox claims until `until` (monotonic): workers send until then."""
        for worker in self.workers.values():
            worker.claims_until = until

    # -- for the API ----------------------------------------------------------------------------
    def alerts(self, states: set[str] | None = None) -> list[Alert]:
        wanted = states or {AlertState.PENDING.value, AlertState.FIRING.value}
        out = [self._alert(r) for r in self.records.values() if r.state.value in wanted]
        return sorted(out, key=lambda a: (-a.severity.rank, a.starts_at, a.check))

    def silences(self, include_expired: bool = False) -> list[Silence]:
        now = self.clock()
        out = [s for s in self.suppressor.silences.values() if include_expired or s.status(now) != "expired"]
        return sorted(out, key=lambda s: (s.starts_at, s.id))

    def in_force(self, now: float | None = None) -> list[Mute]:
        """Silences and maintenance windows muting alerts now."""
        return self.suppressor.in_force(self.clock() if now is None else now)

    async def add_silence(self, silence: Silence) -> Silence:
        await state.save_silence(self.store, silence)
        self.suppressor.silences[silence.id] = silence
        self.poke()
        return silence

    async def expire_silence(self, silence_id: str) -> Silence | None:
        silence = self.suppressor.silences.get(silence_id)
        if silence is None:
            return None
        if silence.source == "config":
            raise ValueError(f"silence {silence_id} is defined in the config file: remove it there and reload")
        now = self.clock()
        if silence.ends_at > now:
            # a silence that has not started yet ends now too, so it reads "expired", not "pending"
            silence.starts_at = min(silence.starts_at, now)
            silence.ends_at = now
            await state.save_silence(self.store, silence)
            self.poke()
        return silence

    def add_routes(self, app: Any) -> None:
        from agent.alerting.api import add_routes
        from agent.web import AGENT_KEY

        agent = app.get(AGENT_KEY)
        self._bound_port = lambda: getattr(agent, "port", None)
        add_routes(app, self)


def build_component(config: ConfigBase, store: Store, registry: CollectorRegistry,
                    context: CheckContext | None = None) -> AlertingEngine:
    """The daemon's seam (see agent.daemon.Agent._build_components)."""
    return AlertingEngine(config, store, registry)
