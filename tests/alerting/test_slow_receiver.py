"""A receiver slower than its timeout: attempts back off from the timeout, one at a time, same key each time.

The issue's numbers, scaled down 20x: a webhook answering after 2 s with a 500 ms timeout
(30 s and 10 s in the report) got 7 requests for 2 notifications within 4 s, because a timed
out attempt was retried as if it had failed instantly.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter

from aiohttp import web
from prometheus_client import CollectorRegistry

from agent.alerting.config import ReceiverConfigBase
from agent.alerting.engine import AlertingEngine, build_receiver
from agent.core import CheckResult, Status
from agent.notify.base import Delivery, Notification, Receiver
from tests.alerting.helpers import config

ANSWER_AFTER = 2.0  # seconds: four times the receiver's timeout
OBSERVE = 4.0  # seconds from the first request


class SlowPeer:
    """Counts requests (with their Idempotency-Key) and answers each only after ANSWER_AFTER."""

    def __init__(self) -> None:
        self.keys: list[str] = []
        self.first = asyncio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        await request.read()
        self.keys.append(request.headers.get("Idempotency-Key", ""))
        self.first.set()
        await asyncio.sleep(ANSWER_AFTER)
        return web.Response(status=202)


async def test_timeouts_back_off_instead_of_piling_duplicates_on_a_slow_receiver(tmp_path, store):
    peer = SlowPeer()
    app = web.Application()
    app.router.add_post("/hook", peer.handle)
    runner = web.AppRunner(app, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    cfg = config(tmp_path, f"""
        checks:
          - {{name: api, type: command, command: ["true"], alert: {{after: 1}}}}
          - {{name: web, type: command, command: ["true"], alert: {{after: 1}}}}
        alerting:
          route: {{receiver: hook, group_wait: 0s, group_by: [check]}}
          outbox: {{initial_backoff: 50ms, max_backoff: 1m}}
          receivers:
            - {{name: hook, webhook: {{url: "http://127.0.0.1:{port}/hook", timeout: 500ms}}}}
    """)
    concurrent: list[int] = []  # sends already in flight when each send starts

    def counting(receiver_cfg: ReceiverConfigBase) -> Receiver:
        receiver = build_receiver(receiver_cfg)
        send, flying = receiver.send, [0]

        async def counted(notification: Notification) -> Delivery:
            concurrent.append(flying[0])
            flying[0] += 1
            try:
                return await send(notification)
            finally:
                flying[0] -= 1

        receiver.send = counted  # type: ignore[method-assign]
        return receiver

    engine = AlertingEngine(cfg, store, CollectorRegistry(), rng=lambda: 1.0, receiver_factory=counting)
    await engine.start()
    try:
        for check in ("api", "web"):
            engine.on_result(CheckResult(status=Status.CRITICAL, summary="down", check=check, type="command",
                                         timestamp=time.time()))
        await asyncio.wait_for(peer.first.wait(), 10)
        await asyncio.sleep(OBSERVE)
        seen = list(peer.keys)
        [row_a, row_b] = await engine.outbox.rows("hook")
    finally:
        await engine.stop()
        await runner.cleanup()
    per_notification = Counter(seen)
    assert set(per_notification) == {row_a.idempotency_key, row_b.idempotency_key}  # every retry: the same key
    # both go out at once before anything is known; then one probe at a time, each waiting at least the
    # timeout, doubling (500ms, 1s, 2s): at most 3 attempts of one and 1 of the other within 4 s
    assert len(seen) <= 4, per_notification
    assert concurrent[0] == 0 and concurrent[2:] == [0] * (len(concurrent) - 2)  # after the first burst: one at a time
    assert all("no answer within 0.5s" in (r.last_error or "") for r in (row_a, row_b) if r.attempts)
