"""The receiver seam: `Notification` in, `Delivery` out.

A receiver never retries or sleeps by itself; it classifies the answer:
SENT (accepted), RETRY (429, 5xx, timeout; with `retry_after` when the peer
said so) or FAILED (a permanent rejection such as PagerDuty's 400).

`ConfiguredReceiver` is the constructor every kind shares: it checks the
settings model, keeps the clock, and registers the kind's credentials (named
by `secret_values()`) with the redactor, so a new kind cannot forget to.
"""

from __future__ import annotations

import abc
import enum
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, ClassVar, Generic, TypeVar, cast

from pydantic import BaseModel, Field, field_validator, model_validator

from agent.check import Model
from agent.core import Alert, AlertState
from agent.durations import Duration
from agent.secrets import REDACTOR

Clock = Callable[[], float]


def system_clock() -> float:
    return time.time()


class Outcome(enum.StrEnum):
    SENT = "sent"
    RETRY = "retry"
    FAILED = "failed"


@dataclass(frozen=True)
class Delivery:
    outcome: Outcome
    detail: str = ""
    retry_after: float | None = None  # seconds, from Retry-After or the peer's own rate-limit answer
    #: no answer within the receiver's timeout: the peer may still be working on it (and accept it)
    timed_out: bool = False


@dataclass
class Notification:
    """What one receiver is told about one alert group at one moment."""

    receiver: str
    group_key: str
    group_labels: dict[str, str]
    alerts: list[Alert]
    #: unique per notification: receivers that support idempotency keys send it, so a retry never doubles
    idempotency_key: str
    created_at: float
    #: "firing" if any alert in it fires, else "moved" if one went to other receivers, else "resolved"
    kind: str = "firing"
    #: `repeat`: a reminder of an unchanged group; `new`: dedup keys told about for the first time
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def firing(self) -> list[Alert]:
        return [a for a in self.alerts if a.state == AlertState.FIRING]

    @property
    def resolved(self) -> list[Alert]:
        return [a for a in self.alerts if a.state == AlertState.RESOLVED]

    @property
    def moved(self) -> list[Alert]:
        """Alerts that still fire but went to other receivers (see `Alert.moved_to`)."""
        return [a for a in self.alerts if a.state == AlertState.MOVED]


class ReceiverSettings(Model):
    """Keys every receiver kind accepts."""

    send_resolved: bool = Field(True, description="also notify when an alert resolves")
    timeout: Duration = Field(timedelta(seconds=10), description="per-request timeout")
    #: shown when the settings are not a mapping, e.g. `{webhook_url: ${SLACK_WEBHOOK_URL}}`
    example: ClassVar[str] = "{...}"

    @model_validator(mode="before")
    @classmethod
    def _mapping(cls, data: Any) -> Any:
        # `slack: https://hooks.slack.com/...`: the value is likely the secret itself, so it is never echoed.
        if data is not None and not isinstance(data, dict | BaseModel):
            raise ValueError(f"must be a mapping of the receiver's settings, e.g. {cls.example}; "
                             f"got a {type(data).__name__} (not shown: it may be a secret)")
        return data

    @field_validator("timeout")
    @classmethod
    def _positive(cls, v: timedelta) -> timedelta:
        if v <= timedelta(0):
            raise ValueError("timeout must be more than 0, e.g. 10s (0 would time out every request)")
        return v


class Receiver(abc.ABC):
    """Base of every receiver kind. Override `send()`."""

    kind: ClassVar[str]
    Settings: ClassVar[type[ReceiverSettings]]
    #: whether this kind renders the daily digest (`send_digest`); paging kinds do not
    takes_digest: ClassVar[bool] = False

    def __init__(self, name: str, settings: ReceiverSettings) -> None:
        self.name = name
        self.settings = settings

    def accepts(self, notification: Notification) -> bool:
        """False for a resolved-only notification when `send_resolved` is off. An alert that moved to
        other receivers is news, not a resolve: it is told either way."""
        return bool(notification.firing or notification.moved) or self.settings.send_resolved

    async def deliver(self, notification: Notification) -> Delivery:
        """What the outbox calls: a digest to `send_digest`, alerts to `send`."""
        if notification.kind == "digest":
            return await self.send_digest(notification)
        return await self.send(notification)

    async def send_digest(self, notification: Notification) -> Delivery:
        """Render and deliver a daily digest (`agent.notify.digest`); kinds that take one override this."""
        return Delivery(Outcome.FAILED, f"{self.kind} receiver {self.name} does not take digests "
                                        "(use slack, email, webhook or log)")

    @abc.abstractmethod
    async def send(self, notification: Notification) -> Delivery:
        """Deliver once and classify the answer; never sleep or retry here."""

    async def close(self) -> None:  # noqa: B027 - an optional hook, not abstract
        """Release clients (HTTP pools) when the receiver is removed or the agent stops."""


SettingsT = TypeVar("SettingsT", bound=ReceiverSettings)


class ConfiguredReceiver(Receiver, Generic[SettingsT]):
    """A receiver kind with its own `Settings` model: the one `__init__` every kind shares.

    Subclasses declare `kind` and `Settings`, name their credentials in `secret_values()`
    and read `self.config` (typed as their settings model) and `self.clock`.
    """

    config: SettingsT
    #: this receiver's credentials: registered with the redactor and scrubbed from every detail
    secrets: list[str]

    def __init__(self, name: str, settings: ReceiverSettings, *, clock: Clock = system_clock) -> None:
        if not isinstance(settings, self.Settings):
            raise TypeError(f"{self.kind} receiver {name!r} takes {self.Settings.__name__}, "
                            f"not {type(settings).__name__}")
        super().__init__(name, settings)
        self.config = cast(SettingsT, settings)
        self.clock = clock
        self.secrets = [s for s in self.secret_values() if s]
        for secret in self.secrets:
            REDACTOR.add(secret)

    def secret_values(self) -> list[str]:
        """The credentials in `self.config` (tokens, passwords, secret URLs); none by default."""
        return []

    @property
    def timeout_seconds(self) -> float:
        return self.settings.timeout.total_seconds()
