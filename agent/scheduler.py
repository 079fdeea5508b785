"""Runs every check on its own schedule, never stacked, never all at once.

APScheduler (asyncio) is the scheduler of record: its interval and cron
triggers say when a check runs. Each check's first run is spread at random
across its interval (no thundering herd at start) and placed on a 10 ms grid;
checks that share an interval and a grid slot, or a crontab, share one
APScheduler job (a *slot*) that starts them all. With 1,000 checks at 1 s that
is about 100 jobs instead of 1,000, so the scheduler's own bookkeeping per
run (job store, events, timer) is paid once per slot, not once per check.
Coalescing and a misfire grace apply to the slot; a check whose previous run
has not finished is skipped, not stacked, and counted (`on_skip`); a global
semaphore caps how many run at once. Each finished run goes to one fan-out
callback (metrics, store, alerting). The clock (first-run times, lag) and
the random source (the first-run spread) are constructor arguments, so a
schedule is testable without waiting.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import math
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime

from apscheduler.events import EVENT_JOB_SUBMITTED, JobSubmissionEvent
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from agent.check import Check, CheckConfig
from agent.core import CheckResult
from agent.runner import execute

log = logging.getLogger("sre_agent.scheduler")
#: first runs are placed on this grid (ms): checks in one slot of it start together
SLOT_MS = 10
# Our job never raises (the runner turns failures into results); what APScheduler
# would log here is a run cancelled by shutdown, which is expected.
logging.getLogger("apscheduler.executors.default").setLevel(logging.CRITICAL)
# "skipped: maximum number of running instances reached" would be logged every
# interval for a slow check; it is counted in sre_agent_check_runs_skipped_total instead.
logging.getLogger("apscheduler.scheduler").setLevel(logging.ERROR)


class Scheduler:
    def __init__(self, on_result: Callable[[CheckResult], None], max_concurrency: int = 256,
                 on_lag: Callable[[float], None] | None = None, jitter: bool = True,
                 on_skip: Callable[[str], None] | None = None, *, clock: Callable[[], float] = time.time,
                 rng: Callable[[], float] = random.random) -> None:
        """`clock` gives epoch seconds; `rng` a float in [0, 1) that places each check's first run."""
        self.on_result = on_result
        self.on_lag = on_lag
        self.on_skip = on_skip
        self.jitter = jitter
        self.clock = clock
        self.rng = rng
        self.checks: dict[str, Check] = {}
        self.skipped_runs = 0
        self._semaphore = asyncio.Semaphore(max_concurrency)
        self._scheduler = AsyncIOScheduler(timezone=UTC)
        self._scheduler.add_listener(self._on_event, EVENT_JOB_SUBMITTED)
        self._due: dict[str, float] = {}  # slot id -> when its current run was due
        self._slots: dict[str, dict[str, None]] = {}  # slot id -> its checks' names, in order added
        self._slot_of: dict[str, str] = {}  # check name -> slot id
        self._busy: set[Check] = set()  # checks with a scheduled run in flight (the instance: a check
        # removed and added again by a reload is a new one, not held up by its predecessor's run)
        self._running: set[asyncio.Task[object]] = set()
        self.started = False

    # -- lifecycle -------------------------------------------------------------
    def start(self) -> None:
        self._scheduler.start()
        self.started = True

    async def shutdown(self, grace: float = 0.0) -> None:
        """Stop scheduling; let in-flight runs finish for `grace` seconds, then cancel them.

        The daemon uses no grace: a SIGTERM must not wait for a slow check.
        """
        running = [t for t in self._running if not t.done()]
        if self.started and grace > 0 and running:
            self._scheduler.pause()
            await asyncio.wait(running, timeout=grace)
        if self.started:
            self._scheduler.shutdown(wait=False)  # cancels the running jobs' tasks
            self.started = False
        running = [t for t in self._running if not t.done()]
        for task in running:
            task.cancel()
        if running:
            await asyncio.wait(running, timeout=2.0)
        for check in list(self.checks.values()):
            await _close(check)
        self.checks.clear()

    # -- jobs --------------------------------------------------------------------
    def add(self, check: Check) -> None:
        name = check.name
        if name in self.checks:
            raise ValueError(f"check {name!r} is already scheduled")
        slot, trigger = self._slot(check.config)
        if slot not in self._slots:
            first, grace = trigger()
            self._scheduler.add_job(self._start_slot, first, args=[slot], id=slot, name=slot, max_instances=1,
                                    coalesce=True, misfire_grace_time=grace, replace_existing=True)
            self._slots[slot] = {}
        self._slots[slot][name] = None
        self._slot_of[name] = slot
        self.checks[name] = check

    def _slot(self, cfg: CheckConfig) -> tuple[str, Callable[[], tuple[IntervalTrigger | CronTrigger, int]]]:
        """The slot a check runs in, and how to make its trigger and misfire grace (only for a new slot)."""
        if cfg.cron:
            crontab = cfg.cron
            return f"cron {crontab}", lambda: (CronTrigger.from_crontab(crontab), 60)
        assert cfg.interval is not None
        interval_ms = max(1, round(cfg.interval.total_seconds() * 1000))
        offset = self.rng() * interval_ms if self.jitter else 0.0
        first_ms = math.ceil((self.clock() * 1000 + offset) / SLOT_MS) * SLOT_MS
        return (f"every {interval_ms}ms at {first_ms % interval_ms}",
                lambda: (IntervalTrigger(seconds=interval_ms / 1000, start_date=datetime.fromtimestamp(first_ms / 1000, UTC),
                                         timezone=UTC), max(1, interval_ms // 1000)))

    async def remove(self, name: str) -> None:
        check = self.checks.pop(name, None)
        slot = self._slot_of.pop(name, None)
        members = self._slots.get(slot, {}) if slot is not None else {}
        members.pop(name, None)
        if slot is not None and not members:
            self._slots.pop(slot, None)
            if self._scheduler.get_job(slot) is not None:
                self._scheduler.remove_job(slot)
        if check is not None:
            await _close(check)

    def next_run(self, name: str) -> datetime | None:
        slot = self._slot_of.get(name)
        job = self._scheduler.get_job(slot) if slot is not None else None
        return job.next_run_time if job else None

    def _on_event(self, event: JobSubmissionEvent) -> None:
        if event.scheduled_run_times:
            self._due[event.job_id] = event.scheduled_run_times[-1].timestamp()

    async def _start_slot(self, slot: str) -> None:
        """A slot's run: start each of its checks that is not still busy with its previous run."""
        due = self._due.pop(slot, None)
        loop = asyncio.get_running_loop()
        for name in self._slots.get(slot, ()):
            check = self.checks.get(name)
            if check is None:
                continue
            if check in self._busy:
                self.skipped_runs += 1
                if self.on_skip is not None:
                    self.on_skip(name)
                continue
            self._busy.add(check)
            task = loop.create_task(self._job(check, due))
            self._running.add(task)  # also keeps the task alive: the loop holds it weakly
            task.add_done_callback(self._running.discard)

    async def _job(self, check: Check, due: float | None) -> None:
        try:
            await self.run_now(check, due=due)
        except asyncio.CancelledError:
            log.debug("run of %s cancelled", check.name)  # shutdown or removal: expected
        finally:
            self._busy.discard(check)

    async def run_now(self, check: Check, due: float | None = None) -> CheckResult:
        """Run a check (scheduled or on demand) under the concurrency cap and publish it."""
        task = asyncio.current_task()
        if task is not None:
            self._running.add(task)
        try:
            async with self._semaphore:
                if due is not None and self.on_lag is not None:
                    self.on_lag(max(0.0, self.clock() - due))
                result = await execute(check)
            try:
                self.on_result(result)
            except Exception:
                log.exception("publishing the result of %s failed", check.name)
            return result
        finally:
            if task is not None:
                self._running.discard(task)


# APScheduler checks a job's callable against its args with inspect.signature on every add_job:
# 40 us each. The signature is fixed, so it is computed once.
Scheduler._start_slot.__signature__ = inspect.signature(Scheduler._start_slot)  # type: ignore[attr-defined]


async def _close(check: Check) -> None:
    try:
        await asyncio.wait_for(check.close(), timeout=2)
    except Exception as exc:
        log.warning("closing check %s failed: %s", check.name, exc)
