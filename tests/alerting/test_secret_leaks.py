"""Receiver secrets echoed back by a failing peer never reach the log or the outbox (issue 14 item 16 b-d).

Each test runs the real engine, outbox and receiver against a peer on
127.0.0.1 that answers 500 with the request's secret in its body, then reads
`last_error` from the store and the captured log.
"""

from __future__ import annotations

import base64
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry

from agent.alerting.engine import AlertingEngine, build_receiver
from agent.config import load_config
from agent.core import Status
from agent.store import Store
from tests.alerting.helpers import FakeClock, feed, write_config

C = Status.CRITICAL
Handler = Callable[[web.Request], Awaitable[web.Response]]


@pytest.fixture
async def peer() -> AsyncIterator[Callable[[Handler], Awaitable[int]]]:
    runners: list[web.AppRunner] = []

    async def start(handler: Handler) -> int:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handler)
        runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        runners.append(runner)
        return int(runner.addresses[0][1])

    yield start
    for runner in runners:
        await runner.cleanup()


async def _last_error(tmp_path, store: Store, clock: FakeClock, receiver_yaml: str,
                      env: dict[str, str] | None = None) -> str:
    """Fire one alert to the receiver `hook`, let one delivery fail, return the row's `last_error`."""
    text = f"""
checks:
  - {{name: api, type: command, command: ["true"]}}
alerting:
  route: {{receiver: hook, group_wait: 0s}}
  receivers:
    - name: hook
      {receiver_yaml}
"""
    cfg = load_config(write_config(tmp_path, text), env={**os.environ, **(env or {})})
    engine = AlertingEngine(cfg, store, CollectorRegistry(), clock=clock, receiver_factory=build_receiver,
                            rng=lambda: 1.0, background=False)
    try:
        await engine.start()
        await feed(engine, clock, "api", [C, C], every=0)
        await engine.process([], now=clock.now)
        await engine.workers["hook"].step()
        [row] = await engine.outbox.rows("hook")
        assert row.attempts == 1 and "HTTP 500" in (row.last_error or ""), row.last_error
        return row.last_error or ""
    finally:
        await engine.stop()


async def test_a_slack_webhook_path_echoed_by_a_500_is_scrubbed(tmp_path, store, clock, peer, caplog):
    path = "/services/T0LEAK/B0LEAK/sl4ckW3bh00kT0ken9931"

    async def echo(request: web.Request) -> web.Response:
        # Only the path (no scheme, no host): not the whole registered URL.
        return web.Response(status=500, text=f"no route for {request.path} (hook {request.path.rsplit('/', 1)[1]})")

    port = await peer(echo)
    caplog.set_level(logging.WARNING)
    error = await _last_error(tmp_path, store, clock,
                              f'slack: {{webhook_url: "http://127.0.0.1:{port}{path}", timeout: 2s}}')
    for text in (error, caplog.text):
        assert "sl4ckW3bh00kT0ken9931" not in text and path.lstrip("/") not in text, text
    assert "<redacted>" in error


async def test_alertmanager_basic_auth_echoed_base64_is_scrubbed(tmp_path, store, clock, peer, caplog):
    password = "am-b4sic-pa55word-7713"
    encoded = base64.b64encode(f"agent:{password}".encode()).decode()

    async def echo(request: web.Request) -> web.Response:
        return web.Response(status=500, text=f"cannot authorise {request.headers.get('Authorization')}")

    port = await peer(echo)
    caplog.set_level(logging.WARNING)
    error = await _last_error(tmp_path, store, clock,
                              f'alertmanager: {{url: "http://127.0.0.1:{port}", timeout: 2s, '
                              f'basic_auth: {{username: agent, password: "{password}"}}}}')
    for text in (error, caplog.text):
        assert encoded not in text and encoded[8:24] not in text, text
    assert "Basic <redacted>" in error


async def test_an_env_token_with_a_trailing_newline_is_sent_clean_and_never_leaks(tmp_path, store, clock, peer,
                                                                                 caplog):
    token = "am-bearer-from-k8s-secret-5520"
    seen: list[str | None] = []

    async def echo(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization"))
        return web.Response(status=500, text=f"rejected {request.headers.get('Authorization')!r}")

    port = await peer(echo)
    caplog.set_level(logging.WARNING)
    error = await _last_error(tmp_path, store, clock,
                              f'alertmanager: {{url: "http://127.0.0.1:{port}", timeout: 2s, '
                              'bearer_token: "${AM_TOKEN}"}',
                              env={"AM_TOKEN": token + "\n"})  # kubectl create secret --from-file
    # Before: httpx refused the header ("Illegal header value b'Bearer ...\\n'") and the error
    # carried the token; now the header is sent without the newline.
    assert seen == [f"Bearer {token}"]
    for text in (error, caplog.text):
        assert token not in text, text
