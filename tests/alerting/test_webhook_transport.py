"""The webhook receiver's HTTP transport: one kept-alive connection, proxy variables honoured."""

from __future__ import annotations

from aiohttp import web

from agent.notify.base import Outcome
from agent.notify.webhook import WebhookReceiver, WebhookSettings
from tests.notify.conftest import make_notification


class Endpoint:
    """Records each request's target (absolute when sent through a proxy) and client port."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, int]] = []

    async def handle(self, request: web.Request) -> web.Response:
        peer = request.transport.get_extra_info("peername") if request.transport else None
        self.seen.append((request.raw_path, peer[1]))
        await request.read()
        return web.Response(status=202, text="ok")


async def serve(endpoint: Endpoint) -> tuple[web.AppRunner, int]:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", endpoint.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, runner.addresses[0][1]


async def test_sends_reuse_one_connection(monkeypatch):
    for var in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    endpoint = Endpoint()
    runner, port = await serve(endpoint)
    receiver = WebhookReceiver("hook", WebhookSettings.model_validate({"url": f"http://127.0.0.1:{port}/hook"}))
    try:
        for i in range(5):
            delivery = await receiver.send(make_notification(idempotency_key=f"n-{i}"))
            assert delivery.outcome == Outcome.SENT
    finally:
        await receiver.close()
        await runner.cleanup()
    assert [path for path, _ in endpoint.seen] == ["/hook"] * 5
    assert len({client_port for _, client_port in endpoint.seen}) == 1  # keep-alive: one connection


async def test_http_proxy_from_the_environment_is_used_and_no_proxy_is_respected(monkeypatch):
    proxy = Endpoint()
    runner, port = await serve(proxy)
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("NO_PROXY", "direct.invalid")
    for var in ("http_proxy", "no_proxy"):
        monkeypatch.delenv(var, raising=False)
    via_proxy = WebhookReceiver("hook", WebhookSettings.model_validate({"url": "http://hooks.invalid/alerts"}))
    bypassing = WebhookReceiver("hook2", WebhookSettings.model_validate({"url": "http://direct.invalid/alerts",
                                                                         "timeout": "2s"}))
    try:
        assert (await via_proxy.send(make_notification())).outcome == Outcome.SENT
        direct = await bypassing.send(make_notification())  # not through the proxy: the name does not resolve
        assert direct.outcome == Outcome.RETRY
    finally:
        await via_proxy.close()
        await bypassing.close()
        await runner.cleanup()
    assert [target for target, _ in proxy.seen] == ["http://hooks.invalid/alerts"]
