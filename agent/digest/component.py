"""The daemon's digest component: an APScheduler cron job that queues the digest through the outbox.

At each fire time of `digest.schedule` (read in `digest.timezone`) the
digest is built and one notification per receiver is queued with
`AlertingEngine.enqueue_once`, which records the day (`digest:last_day` in
the store's meta) in the same transaction as the outbox rows: the digest
goes out once per day even across restarts, and is as durable and retried as
an alert. An agent (re)started within `CATCH_UP` of a fire time it missed
sends that day's digest once every check has reported (at most `SETTLE`
seconds later). `GET /api/v1/digest` builds it on demand
(what `sre-agent digest --print` shows) without sending anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from aiohttp import web
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger

from agent.core import Alert, CheckResult
from agent.digest.build import build_digest
from agent.digest.config import DigestConfig
from agent.notify import digest as digest_doc
from agent.notify.base import Notification
from agent.store import Store
from agent.web import json_response

log = logging.getLogger("sre_agent.digest")
META_KEY = "digest:last_day"
#: a fire time missed by at most this much (the agent was restarting) is caught up at start
CATCH_UP = timedelta(hours=1)
JOB_ID = "daily-digest"
#: a caught-up digest waits at most this long for every check's first result
SETTLE = 300.0


class Outbox(Protocol):
    """What the digest needs of the alerting engine."""

    def alerts(self, states: set[str] | None = None) -> list[Alert]: ...
    async def enqueue_once(self, notifications: list[Notification], key: str, value: str) -> bool: ...

    @property
    def agent_url(self) -> str: ...


class DigestComponent:
    def __init__(self, config: Any, store: Store, engine: Outbox, latest: Callable[[], dict[str, CheckResult]],
                 clock: Callable[[], float] = time.time, settle: float = SETTLE) -> None:
        self.config = config
        self.store = store
        self.engine = engine
        self.latest = latest
        self.clock = clock
        self.settle = settle
        self._scheduler: AsyncIOScheduler | None = None
        self._scheduled: tuple[str, str] | None = None
        self._catch_up: asyncio.Task[None] | None = None
        self._waiting_for: set[str] = set()
        self._settled = asyncio.Event()

    @property
    def settings(self) -> DigestConfig:
        return self.config.digest  # type: ignore[no-any-return]

    async def build(self, now: float | None = None) -> digest_doc.Digest:
        now = self.clock() if now is None else now
        return await build_digest(self.settings, self.config.all_checks(), self.latest(),
                                  self.engine.alerts({"pending", "firing"}), self.store, now,
                                  agent_url=self.engine.agent_url)

    async def send(self, now: float | None = None) -> bool:
        """Queue today's digest for every receiver, unless it was queued today already."""
        now = self.clock() if now is None else now
        settings = self.settings
        if not settings.receivers:
            return False
        d = await self.build(now)
        notifications = [digest_doc.notification(d, r, uuid.uuid4().hex, now) for r in settings.receivers]
        queued = await self.engine.enqueue_once(notifications, META_KEY, d.day)
        if queued:
            log.info("daily digest of %s queued for %s: %s", d.day, ", ".join(settings.receivers), d.headline())
        else:
            log.info("daily digest of %s was already sent", d.day)
        return queued

    async def _fire(self) -> None:
        try:
            await self.send()
        except Exception:  # the next day's run must still happen
            log.exception("daily digest failed")

    # -- the daemon's component protocol ---------------------------------------------------------
    async def start(self) -> None:
        self._scheduler = AsyncIOScheduler(timezone=ZoneInfo("UTC"))
        self._scheduler.start()
        await self._apply()

    async def stop(self) -> None:
        if self._catch_up is not None:
            self._catch_up.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._catch_up
            self._catch_up = None
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
            self._scheduler = None

    async def reconfigure(self, config: Any) -> None:
        self.config = config
        await self._apply()

    def on_result(self, result: CheckResult) -> None:
        """The digest reads results when it is built (the metrics' latest); here only a caught-up send
        waiting for every check's first result is told of them."""
        if self._waiting_for:
            self._waiting_for.discard(result.check)
            if not self._waiting_for:
                self._settled.set()

    def add_routes(self, app: web.Application) -> None:
        app.add_routes([web.get("/api/v1/digest", self._show)])

    async def _show(self, request: web.Request) -> web.Response:
        d = await self.build()
        return json_response({"digest": d.to_dict(), "text": d.text(), "subject": d.subject})

    async def _apply(self) -> None:
        """(Re)schedule the job when the schedule or zone changed; catch up a just-missed send."""
        assert self._scheduler is not None
        settings = self.settings
        wanted = (settings.schedule, settings.zone_name) if settings.schedule and settings.receivers else None
        if wanted == self._scheduled:
            return
        if self._scheduler.get_job(JOB_ID) is not None:
            self._scheduler.remove_job(JOB_ID)
        self._scheduled = wanted
        if wanted is None:
            return
        trigger = CronTrigger.from_crontab(wanted[0], timezone=ZoneInfo(wanted[1]))
        self._scheduler.add_job(self._fire, trigger, id=JOB_ID, name="daily digest", max_instances=1, coalesce=True,
                                misfire_grace_time=int(CATCH_UP.total_seconds()), replace_existing=True)
        missed = last_fire_time(trigger, self.clock())
        if missed is not None and self.clock() - missed <= CATCH_UP.total_seconds() and self._catch_up is None:
            self._catch_up = asyncio.create_task(self._send_when_settled(), name="digest-catch-up")

    async def _send_when_settled(self) -> None:
        """A digest sent the second the agent starts would know nothing: first let every check report once
        (or `settle` seconds pass)."""
        try:
            self._waiting_for = {c.name for c in self.config.all_checks() if c.enabled} - set(self.latest())
            if self._waiting_for:
                self._settled.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._settled.wait(), self.settle)
            await self._fire()
        finally:
            self._catch_up = None
            self._waiting_for = set()


def last_fire_time(trigger: CronTrigger, now: float, look_back: timedelta = timedelta(days=1, hours=1)) -> float | None:
    """The latest fire time at or before `now` within `look_back`."""
    zone = trigger.timezone
    cursor = datetime.fromtimestamp(now, zone) - look_back
    last = None
    for _ in range(100_000):  # a minutely cron over 25 h is 1500 steps
        nxt = trigger.get_next_fire_time(None, cursor)
        if nxt is None or nxt.timestamp() > now:
            break
        last = nxt.timestamp()
        cursor = nxt + timedelta(seconds=1)
    return last


def build_component(config: Any, store: Store, engine: Outbox, latest: Callable[[], dict[str, CheckResult]]) -> DigestComponent:
    """The daemon's seam (see agent.daemon.Agent._build_components)."""
    return DigestComponent(config, store, engine, latest)
