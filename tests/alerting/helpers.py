"""Test doubles and builders for alerting tests: a fake clock, a recording receiver, configs."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from agent.alerting.config import ReceiverConfigBase
from agent.alerting.engine import AlertingEngine
from agent.config import load_config
from agent.core import CheckResult, Status
from agent.notify.base import Delivery, Notification, Outcome, Receiver, ReceiverSettings
from agent.store import SqliteStore, Store

T0 = 1_800_000_000.0  # 2027-01-15, a fixed "now" for every test


@dataclass
class FakeClock:
    now: float = T0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now


class RecordingReceiver(Receiver):
    """A receiver that keeps what it accepted. It behaves like a peer that can be
    `up`, `down` (5xx: retry), `rate_limited` (429 with Retry-After) or `rejecting` (400)."""

    kind = "recording"
    Settings = ReceiverSettings

    def __init__(self, name: str, settings: ReceiverSettings | None = None) -> None:
        super().__init__(name, settings or ReceiverSettings())
        self.received: list[Notification] = []
        self.attempts: list[str] = []
        self.condition = "up"
        self.retry_after: float | None = None
        self.closed = False

    async def send(self, notification: Notification) -> Delivery:
        self.attempts.append(notification.idempotency_key)
        if self.condition == "down":
            return Delivery(Outcome.RETRY, "HTTP 503")
        if self.condition == "rate_limited":
            return Delivery(Outcome.RETRY, "HTTP 429", retry_after=self.retry_after)
        if self.condition == "rejecting":
            return Delivery(Outcome.FAILED, "HTTP 400: invalid event")
        self.received.append(notification)
        return Delivery(Outcome.SENT, "HTTP 202")

    async def close(self) -> None:
        self.closed = True

    def events(self) -> list[tuple[str, str, str]]:
        """(check, state, severity) of every alert in every accepted notification, in order."""
        return [(a.check, a.state.value, a.severity.value) for n in self.received for a in n.alerts]


@dataclass
class Receivers:
    """Factory for the engine: one RecordingReceiver per configured receiver name, kept across reloads."""

    by_name: dict[str, RecordingReceiver] = field(default_factory=dict)

    def __call__(self, cfg: ReceiverConfigBase) -> Receiver:
        receiver = self[cfg.name]
        receiver.settings, receiver.closed = cfg.settings, False
        return receiver

    def __getitem__(self, name: str) -> RecordingReceiver:
        """The peer behind a receiver name (created on first use, so a test can set it up front)."""
        if name not in self.by_name:
            self.by_name[name] = RecordingReceiver(name)
        return self.by_name[name]


def write_config(tmp_path: Path, text: str, name: str = "config.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def config(tmp_path: Path, text: str) -> Any:
    return load_config(write_config(tmp_path, text))


def result(check: str, status: Status, at: float, summary: str = "", **details: Any) -> CheckResult:
    return CheckResult(status=status, summary=summary or f"{check} is {status.name}", check=check, type="command",
                       timestamp=at, observations={"latency_seconds": 0.25}, details=details)


async def open_store(tmp_path: Path) -> Store:
    store = SqliteStore(tmp_path / "state.db")
    await store.open()
    return store


async def make_engine(cfg: Any, store: Store, clock: FakeClock, receivers: Receivers,
                      registry: CollectorRegistry | None = None) -> AlertingEngine:
    engine = AlertingEngine(cfg, store, registry or CollectorRegistry(), clock=clock, receiver_factory=receivers,
                            rng=lambda: 1.0, background=False)
    await engine.start()
    return engine


async def deliver(engine: AlertingEngine) -> None:
    """Let every delivery worker handle what is due now (what its task would do)."""
    for worker in engine.workers.values():
        for _ in range(1000):
            if await worker.step() != 0:
                break


async def feed(engine: AlertingEngine, clock: FakeClock, check: str, statuses: list[Status], every: float = 10.0,
               **details: Any) -> None:
    """Results of one check, `every` seconds apart, each processed as it comes."""
    for status in statuses:
        await engine.process([result(check, status, clock.now, **details)], now=clock.now)
        clock.advance(every)


async def wait(engine: AlertingEngine, clock: FakeClock, seconds: float) -> None:
    """Let `seconds` pass with no results, then run the engine's cycle and deliver what is due."""
    clock.advance(seconds)
    await engine.process([], now=clock.now)
    await deliver(engine)
