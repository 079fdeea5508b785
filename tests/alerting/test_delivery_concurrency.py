"""Concurrent delivery: several alerts in flight per receiver, each alert still strictly in order."""

from __future__ import annotations

import asyncio
import json
import logging

from aiohttp import web
from prometheus_client import CollectorRegistry

from agent.alerting.engine import AlertingEngine, build_receiver
from agent.alerting.outbox import CONCURRENCY
from agent.core import Status
from agent.notify.base import Delivery, Notification
from tests.alerting.helpers import (
    FakeClock,
    Receivers,
    RecordingReceiver,
    config,
    feed,
    make_engine,
    open_store,
)

C, OK = Status.CRITICAL, Status.OK


def checks_config(n: int, receiver: str = "log: {}") -> str:
    """n checks that alert on their first failure, each its own group, all to receiver `hook`."""
    checks = "\n".join(f'  - {{name: c{i:02d}, type: command, command: ["true"], alert: {{after: 1}}}}'
                       for i in range(n))
    return f"""
checks:
{checks}
alerting:
  route: {{receiver: hook, group_by: [check], group_wait: 0s, group_interval: 1s}}
  outbox: {{max_age: 1h, initial_backoff: 1s, max_backoff: 1m}}
  receivers:
    - {{name: hook, {receiver}}}
"""


class GatedReceiver(RecordingReceiver):
    """Holds every send until `gate` opens; logs when each send starts and ends."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.gate = asyncio.Event()
        self.log: list[tuple[str, tuple[tuple[str, str], ...]]] = []
        self.in_flight = 0
        self.peak = 0

    async def send(self, notification: Notification) -> Delivery:
        what = tuple((a.check, a.state.value) for a in notification.alerts)
        self.log.append(("start", what))
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            await self.gate.wait()
        finally:
            self.in_flight -= 1
        self.log.append(("end", what))
        return await super().send(notification)


async def until(condition, what: str) -> None:
    """Let the worker run until `condition()` holds (bounded: a hang fails, it does not block)."""
    for _ in range(2000):
        if condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"gave up waiting for {what}")


async def test_sends_to_different_alerts_overlap_up_to_the_limit(tmp_path, store, clock, caplog):
    receivers = Receivers()
    hook = receivers.by_name["hook"] = GatedReceiver("hook")
    engine = await make_engine(config(tmp_path, checks_config(20)), store, clock, receivers)
    for i in range(20):
        await feed(engine, clock, f"c{i:02d}", [C], every=0)
    engine.workers["hook"].start()
    await until(lambda: hook.in_flight == CONCURRENCY, "the first sends")
    for _ in range(20):
        await asyncio.sleep(0)  # room for a ninth send, were the limit not kept
    assert hook.in_flight == CONCURRENCY == 8
    hook.gate.set()
    await until(lambda: len(hook.received) == 20, "all notifications")
    assert hook.peak == CONCURRENCY
    assert sorted(c for c, _, _ in hook.events()) == [f"c{i:02d}" for i in range(20)]  # each exactly once
    await engine.stop()
    assert await engine.outbox.rows() == []
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_a_resolve_never_overtakes_its_trigger_while_sends_overlap(tmp_path, store, clock):
    receivers = Receivers()
    hook = receivers.by_name["hook"] = GatedReceiver("hook")
    engine = await make_engine(config(tmp_path, checks_config(3)), store, clock, receivers)
    engine.workers["hook"].start()
    for check in ("c00", "c01"):
        await feed(engine, clock, check, [C], every=0)
    await until(lambda: hook.in_flight == 2, "both triggers in flight")
    clock.advance(5)
    for check in ("c00", "c01"):  # resolved while the triggers are still being sent
        await feed(engine, clock, check, [OK], every=0)
    await feed(engine, clock, "c02", [C], every=0)  # another alert: it need not wait
    await until(lambda: hook.in_flight == 3, "the unrelated trigger")
    assert [w for e, w in hook.log if e == "start"] == [(("c00", "firing"),), (("c01", "firing"),),
                                                        (("c02", "firing"),)]
    hook.gate.set()
    await until(lambda: len(hook.received) == 5, "all notifications")
    for check in ("c00", "c01"):
        mine = [(e, w[0][1]) for e, w in hook.log if w[0][0] == check]
        assert mine == [("start", "firing"), ("end", "firing"), ("start", "resolved"), ("end", "resolved")]
    await engine.stop()
    assert await engine.outbox.rows() == []


async def test_a_rate_limit_pauses_the_whole_receiver_and_a_retry_holds_back_its_alert(tmp_path, store, clock,
                                                                                        receivers):
    hook = receivers["hook"]
    hook.condition, hook.retry_after = "rate_limited", 30.0
    engine = await make_engine(config(tmp_path, checks_config(2)), store, clock, receivers)
    worker = engine.workers["hook"]
    await feed(engine, clock, "c00", [C], every=0)
    assert await worker.step() == 30  # 429 + Retry-After: 30
    clock.advance(5)
    await feed(engine, clock, "c00", [OK], every=0)  # its resolve, queued behind the retrying trigger
    await feed(engine, clock, "c01", [C], every=0)  # another alert, same receiver: rate limited too
    assert await worker.step() == 25
    assert len(hook.attempts) == 1  # nothing else was tried during the pause
    hook.condition = "up"
    clock.advance(25)
    assert await worker.step() == 0
    assert hook.events() == [("c00", "firing", "critical")]  # after a retry: one probe first
    assert await worker.step() == 0
    assert await worker.step() is None
    assert hook.events()[0] == ("c00", "firing", "critical")
    assert sorted(hook.events()[1:]) == [("c00", "resolved", "critical"), ("c01", "firing", "critical")]
    assert len(hook.attempts) == 4
    await engine.stop()


async def test_a_receiver_that_was_retrying_stays_paused_after_a_restart(tmp_path):
    clock, receivers = FakeClock(), Receivers()
    hook = receivers["hook"]
    hook.condition, hook.retry_after = "rate_limited", 120.0
    store = await open_store(tmp_path)
    engine = await make_engine(config(tmp_path, checks_config(2)), store, clock, receivers)
    await feed(engine, clock, "c00", [C], every=0)
    assert await engine.workers["hook"].step() == 120
    await engine.stop()
    await store.close()

    hook.condition = "up"
    clock.advance(20)
    store = await open_store(tmp_path)
    engine = await make_engine(config(tmp_path, checks_config(2)), store, clock, receivers)
    await feed(engine, clock, "c01", [C], every=0)
    assert await engine.workers["hook"].step() == 100  # the peer asked for 120s: c01 waits too
    assert hook.received == []
    clock.advance(100)
    while await engine.workers["hook"].step() == 0:
        pass
    assert [c for c, _, _ in hook.events()] == ["c00", "c01"]
    await engine.stop()
    await store.close()


class Peer:
    """A webhook endpoint on 127.0.0.1: 429 + Retry-After: 0 for the first requests, then 200."""

    def __init__(self, reject: int) -> None:
        self.reject = reject
        self.requests: list[tuple[str, dict]] = []
        self.concurrent = self.peak = 0

    async def handle(self, request: web.Request) -> web.Response:
        self.concurrent += 1
        self.peak = max(self.peak, self.concurrent)
        try:
            await asyncio.sleep(0.01)
            self.requests.append((request.headers["Idempotency-Key"], json.loads(await request.text())))
            if len(self.requests) <= self.reject:
                return web.Response(status=429, headers={"Retry-After": "0"}, text="slow down")
            return web.Response(status=200, text="{}")
        finally:
            self.concurrent -= 1


async def test_webhook_deliveries_overlap_and_each_is_accepted_exactly_once(tmp_path, store, clock):
    peer = Peer(reject=3)
    app = web.Application()
    app.router.add_post("/alerts", peer.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    text = checks_config(30, f'webhook: {{url: "http://127.0.0.1:{port}/alerts", timeout: 5s}}')
    engine = AlertingEngine(config(tmp_path, text), store, CollectorRegistry(), clock=clock,
                            receiver_factory=build_receiver, rng=lambda: 1.0, background=False)
    try:
        await engine.start()
        for i in range(30):
            await feed(engine, clock, f"c{i:02d}", [C], every=0)
        engine.workers["hook"].start()
        accepted: dict[str, list[str]] = {}

        def count() -> int:
            accepted.clear()
            for key, body in peer.requests[peer.reject:]:
                accepted.setdefault(body["alerts"][0]["check"], []).append(key)
            return len(peer.requests) - peer.reject

        await until(lambda: count() >= 30, "all notifications")
        await engine.stop()
        count()
        assert sorted(accepted) == [f"c{i:02d}" for i in range(30)]
        assert all(len(keys) == 1 for keys in accepted.values())  # no alert accepted twice
        assert 1 < peer.peak <= CONCURRENCY
        assert await engine.outbox.rows() == []
    finally:
        await engine.stop()
        await runner.cleanup()
