"""The receiver seam: `Notification` in, `Delivery` out.

A receiver never retries or sleeps by itself; it classifies the answer:
SENT (accepted), RETRY (429, 5xx, timeout; with `retry_after` when the peer
said so) or FAILED (a permanent rejection such as PagerDuty's 400).
"""

from __future__ import annotations

import abc
import enum
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, ClassVar

from pydantic import BaseModel, Field, field_validator, model_validator

from agent.check import Model
from agent.core import Alert, AlertState
from agent.durations import Duration


class Outcome(enum.StrEnum):
    SENT = "sent"
    RETRY = "retry"
    FAILED = "failed"


@dataclass(frozen=True)
class Delivery:
    outcome: Outcome
    detail: str = ""
    retry_after: float | None = None  # seconds, from Retry-After or the peer's own rate-limit answer


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
    #: "firing" if any alert in it fires, else "resolved"
    kind: str = "firing"
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def firing(self) -> list[Alert]:
        return [a for a in self.alerts if a.state == AlertState.FIRING]

    @property
    def resolved(self) -> list[Alert]:
        return [a for a in self.alerts if a.state == AlertState.RESOLVED]


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

    def __init__(self, name: str, settings: ReceiverSettings) -> None:
        self.name = name
        self.settings = settings

    def accepts(self, notification: Notification) -> bool:
        """False for a resolved-only notification when `send_resolved` is off."""
        return bool(notification.firing) or self.settings.send_resolved

    @abc.abstractmethod
    async def send(self, notification: Notification) -> Delivery:
        """Deliver once and classify the answer; never sleep or retry here."""

    async def close(self) -> None:  # noqa: B027 - an optional hook, not abstract
        """Release clients (HTTP pools) when the receiver is removed or the agent stops."""
