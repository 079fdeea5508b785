"""Durable delivery: backoff with jitter, Retry-After, permanent failures, max_age, ordering."""

from __future__ import annotations

import json

from aiohttp import web
from prometheus_client import CollectorRegistry

from agent.alerting.engine import AlertingEngine, build_receiver
from agent.core import Status
from tests.alerting.helpers import config, deliver, feed, make_engine, wait

C, OK = Status.CRITICAL, Status.OK

CONFIG = """
checks:
  - {name: api, type: command, command: ["true"], labels: {service: api}}
  - {name: web, type: command, command: ["true"], labels: {service: web}}
alerting:
  route:
    receiver: chat
    group_wait: 0s
    group_interval: 1s
    routes:
      - {match: {service: api}, receiver: pager, continue: true}
      - receiver: chat
  outbox: {max_age: 1h, initial_backoff: 1s, max_backoff: 1m}
  receivers:
    - {name: chat, log: {}}
    - {name: pager, log: {}}
"""


def sample(registry, receiver, outcome):
    return registry.get_sample_value("sre_agent_notifications_total", {"receiver": receiver, "outcome": outcome})


async def firing(tmp_path, store, clock, receivers, registry=None, text=CONFIG):
    engine = await make_engine(config(tmp_path, text), store, clock, receivers, registry)
    await feed(engine, clock, "api", [C, C], every=0)
    await engine.process([], now=clock.now)
    return engine


async def test_backoff_doubles_up_to_max_backoff_and_keeps_the_idempotency_key(tmp_path, store, clock, receivers):
    pager = receivers["pager"]
    pager.condition = "down"
    registry = CollectorRegistry()
    engine = await firing(tmp_path, store, clock, receivers, registry)
    worker = engine.workers["pager"]
    delays = []
    for _ in range(9):
        delay = await worker.step()
        delays.append(delay)
        assert await worker.step() == delay  # not due yet: nothing sent
        clock.advance(delay)
    assert delays == [1, 2, 4, 8, 16, 32, 60, 60, 60]  # rng 1.0: the top of the jitter range
    assert len(set(pager.attempts)) == 1 and len(pager.attempts) == 9
    assert sample(registry, "pager", "retried") == 9
    [row] = await engine.outbox.rows("pager")
    assert row.attempts == 9 and row.last_error == "HTTP 503"
    pager.condition = "up"
    await deliver(engine)
    assert pager.received[0].idempotency_key == pager.attempts[0]
    assert sample(registry, "pager", "sent") == 1
    await engine.stop()


def test_jitter_spreads_delays_between_half_and_full(tmp_path, store):
    from agent.alerting.outbox import DeliveryWorker

    settings = config(tmp_path, CONFIG).alerting.outbox
    low = DeliveryWorker(None, None, settings, None, rng=lambda: 0.0)  # type: ignore[arg-type]
    high = DeliveryWorker(None, None, settings, None, rng=lambda: 1.0)  # type: ignore[arg-type]
    assert [low.backoff(n, None) for n in (1, 2, 3)] == [0.5, 1.0, 2.0]
    assert [high.backoff(n, None) for n in (1, 2, 3)] == [1.0, 2.0, 4.0]
    assert low.backoff(3, retry_after=90) == 90  # the peer's word beats our schedule


def test_after_a_timeout_the_backoff_starts_from_the_receivers_timeout(tmp_path):
    from agent.alerting.outbox import DeliveryWorker
    from agent.notify.base import ReceiverSettings
    from tests.alerting.helpers import RecordingReceiver

    settings = config(tmp_path, CONFIG).alerting.outbox  # initial_backoff 1s, max_backoff 1m
    slow = RecordingReceiver("slow", ReceiverSettings(timeout="10s"))
    worker = DeliveryWorker(slow, None, settings, None, rng=lambda: 1.0)  # type: ignore[arg-type]
    assert [worker.backoff(n, None, timed_out=True) for n in (1, 2, 3, 4)] == [10.0, 20.0, 40.0, 60.0]
    assert [worker.backoff(n, None) for n in (1, 2, 3)] == [1.0, 2.0, 4.0]  # a quick 5xx keeps its schedule


async def test_retry_after_is_honoured(tmp_path, store, clock, receivers):
    pager = receivers["pager"]
    pager.condition, pager.retry_after = "rate_limited", 120.0
    engine = await firing(tmp_path, store, clock, receivers)
    assert await engine.workers["pager"].step() == 120
    pager.condition = "up"
    await wait(engine, clock, 119)
    assert pager.received == [] and len(pager.attempts) == 1
    await wait(engine, clock, 1)
    assert len(pager.received) == 1
    await engine.stop()


async def test_permanent_failure_is_not_retried_and_does_not_block(tmp_path, store, clock, receivers):
    pager = receivers["pager"]
    pager.condition = "rejecting"
    registry = CollectorRegistry()
    engine = await firing(tmp_path, store, clock, receivers, registry)
    await deliver(engine)
    assert sample(registry, "pager", "failed") == 1 and len(pager.attempts) == 1
    assert await engine.outbox.rows("pager") == []
    pager.condition = "up"
    await feed(engine, clock, "api", [OK])
    await wait(engine, clock, 5)
    assert len(pager.attempts) == 2 and pager.events() == [("api", "resolved", "critical")]
    await engine.stop()


async def test_rows_older_than_max_age_are_dropped(tmp_path, store, clock, receivers, caplog):
    pager = receivers["pager"]
    pager.condition = "down"
    registry = CollectorRegistry()
    engine = await firing(tmp_path, store, clock, receivers, registry)
    worker = engine.workers["pager"]
    start = clock.now
    while (delay := await worker.step()) != 0:
        clock.advance(delay)
    assert clock.now == start + 3600  # the last wait is cut to the expiry, not past it
    assert sample(registry, "pager", "dropped") == 1
    assert await engine.outbox.rows("pager") == []
    assert "older than max_age" in caplog.text
    await engine.stop()


async def test_a_receiver_down_for_an_hour_gets_everything_in_order(tmp_path, store, clock, receivers):
    chat = receivers["chat"]
    chat.condition = "down"
    text = CONFIG.replace("max_age: 1h", "max_age: 2h")
    engine = await firing(tmp_path, store, clock, receivers, text=text)
    await feed(engine, clock, "web", [C, C], every=0)
    for _ in range(30):  # an hour of outage, ticking every 2 minutes
        await wait(engine, clock, 120)
    await feed(engine, clock, "api", [OK])
    await feed(engine, clock, "web", [OK])
    await wait(engine, clock, 5)
    assert receivers["pager"].events() == [("api", "firing", "critical"), ("api", "resolved", "critical")]
    assert chat.received == []
    chat.condition = "up"
    await wait(engine, clock, 60)
    events = chat.events()
    assert sorted(events) == sorted([("api", "firing", "critical"), ("web", "firing", "critical"),
                                     ("api", "resolved", "critical"), ("web", "resolved", "critical")])
    for check in ("api", "web"):
        mine = [e[1] for e in events if e[0] == check]
        assert mine == ["firing", "resolved"]
    await engine.stop()


class Peer:
    """A webhook endpoint on 127.0.0.1 that answers from a list, then 200."""

    def __init__(self, answers):
        self.answers = list(answers)
        self.requests: list[tuple[str, dict]] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append((request.headers.get("Idempotency-Key", ""), json.loads(await request.text())))
        status, headers = self.answers.pop(0) if self.answers else (200, {})
        return web.Response(status=status, headers=headers, text="{}")


async def start_peer(peer: Peer):
    app = web.Application()
    app.router.add_post("/alerts", peer.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, runner.addresses[0][1]


async def test_webhook_429_retry_after_then_accepted_with_one_idempotency_key(tmp_path, store, clock):
    peer = Peer([(429, {"Retry-After": "30"}), (503, {})])
    runner, port = await start_peer(peer)
    text = f"""
checks:
  - {{name: api, type: command, command: ["true"]}}
alerting:
  route: {{receiver: hook, group_wait: 0s}}
  receivers:
    - name: hook
      webhook: {{url: "http://127.0.0.1:{port}/alerts", timeout: 2s}}
"""
    engine = AlertingEngine(config(tmp_path, text), store, CollectorRegistry(), clock=clock,
                            receiver_factory=build_receiver, rng=lambda: 1.0, background=False)
    try:
        await engine.start()
        await feed(engine, clock, "api", [C, C], every=0)
        await engine.process([], now=clock.now)
        worker = engine.workers["hook"]
        assert await worker.step() == 30  # 429 + Retry-After: 30
        clock.advance(30)
        assert await worker.step() == 2  # 503: second attempt, our own backoff (1s * 2)
        clock.advance(2)
        assert await worker.step() == 0  # accepted
        keys = {key for key, _ in peer.requests}
        assert len(peer.requests) == 3 and len(keys) == 1 and keys != {""}
        body = peer.requests[-1][1]
        assert body["status"] == "firing" and body["alerts"][0]["check"] == "api"
    finally:
        await engine.stop()
        await runner.cleanup()


async def test_webhook_400_fails_once(tmp_path, store, clock):
    peer = Peer([(400, {})])
    runner, port = await start_peer(peer)
    text = f"""
checks:
  - {{name: api, type: command, command: ["true"]}}
alerting:
  route: {{receiver: hook, group_wait: 0s}}
  receivers:
    - {{name: hook, webhook: {{url: "http://127.0.0.1:{port}/alerts", timeout: 2s}}}}
"""
    registry = CollectorRegistry()
    engine = AlertingEngine(config(tmp_path, text), store, registry, clock=clock, background=False)
    try:
        await engine.start()
        await feed(engine, clock, "api", [C, C], every=0)
        await engine.process([], now=clock.now)
        await deliver(engine)
        assert len(peer.requests) == 1 and sample(registry, "hook", "failed") == 1
        assert await engine.outbox.rows() == []
    finally:
        await engine.stop()
        await runner.cleanup()
