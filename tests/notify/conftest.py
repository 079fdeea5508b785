"""Alerts, notifications and a settable clock for receiver tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from agent.core import Alert, AlertState, Severity, Status
from agent.notify.base import Notification
from tests.notify.fakes import FakeAlertmanager, FakePagerDuty, FakeServer, FakeSlack

NOW = 1_700_000_000.0


class Clock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def make_alert(check: str = "api-health", state: AlertState = AlertState.FIRING, **kw: Any) -> Alert:
    values: dict[str, Any] = dict(
        check=check, type="http", state=state, severity=Severity.CRITICAL,
        summary="GET https://api.example.com/healthz returned 503 (expected 200)",
        dedup_key=f"{check}:down", labels={"service": "api", "env": "prod"},
        observations={"latency_seconds": 2.345, "status_code": 503.0},
        runbook_url="https://runbooks.example.com/http-endpoint-down.md",
        generator_url=f"https://sre-agent.example.com/checks/{check}", status=Status.CRITICAL,
        starts_at=NOW - 12 * 60,
    )
    if state == AlertState.RESOLVED:
        values["ends_at"] = NOW - 60
    values.update(kw)
    return Alert(**values)


def make_notification(*alerts: Alert, receiver: str = "oncall", **kw: Any) -> Notification:
    alerts = alerts or (make_alert(),)
    firing = any(a.state == AlertState.FIRING for a in alerts)
    values: dict[str, Any] = dict(receiver=receiver, group_key="{}:{service=\"api\"}", group_labels={"service": "api"},
                                  alerts=list(alerts), idempotency_key="notif-0001", created_at=NOW,
                                  kind="firing" if firing else "resolved")
    values.update(kw)
    return Notification(**values)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def alert() -> Callable[..., Alert]:
    return make_alert


async def _serve(server: FakeServer) -> AsyncIterator[Any]:
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def slack_server() -> AsyncIterator[FakeSlack]:
    async for s in _serve(FakeSlack()):
        yield s


@pytest.fixture
async def pd_server() -> AsyncIterator[FakePagerDuty]:
    async for s in _serve(FakePagerDuty()):
        yield s


@pytest.fixture
async def am_server() -> AsyncIterator[FakeAlertmanager]:
    async for s in _serve(FakeAlertmanager()):
        yield s


@pytest.fixture
async def http_server() -> AsyncIterator[FakeServer]:
    async for s in _serve(FakeServer()):
        yield s


@pytest.fixture
async def closing() -> AsyncIterator[Callable[[Any], Any]]:
    """`r = closing(Receiver(...))`: the receiver's clients are closed after the test."""
    opened: list[Any] = []

    def keep(receiver: Any) -> Any:
        opened.append(receiver)
        return receiver

    yield keep
    for receiver in opened:
        await receiver.close()
