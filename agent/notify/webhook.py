"""Generic webhook receiver: a stable JSON document for whatever the team runs.

The body is versioned (`version: "1"`) so consumers can rely on its shape,
carries every alert as `Alert.to_dict()`, and sends the notification's
idempotency key both in the body and as an `Idempotency-Key` header: the
outbox may deliver twice after a crash, and the consumer can tell.
Configured header values are usually credentials, so they are secrets.
"""

from __future__ import annotations

from typing import Any, Literal

import httpx
from pydantic import Field, SecretStr, field_validator

from agent.core import Alert
from agent.secrets import REDACTOR

from . import render
from .base import Delivery, Notification, Outcome, Receiver, ReceiverSettings
from .http import TRANSPORT_ERRORS, classify_status, transport_failure

VERSION = "1"
_TOKEN = set("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


class WebhookSettings(ReceiverSettings):
    url: str = Field(description="where to send the JSON document")
    headers: dict[str, SecretStr] = Field(default_factory=dict, description="extra request headers (values are secret)")
    method: Literal["POST", "PUT"] = "POST"

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError("url must start with http:// or https://")
        return v

    @field_validator("headers")
    @classmethod
    def _names(cls, v: dict[str, SecretStr]) -> dict[str, SecretStr]:
        for name in v:
            if not name or not set(name) <= _TOKEN:
                raise ValueError(f"header name {name!r} is not a valid HTTP header name")
            if name.lower() in ("content-type", "content-length", "idempotency-key"):
                raise ValueError(f"header {name!r} is set by the agent")
        return v


def document(notification: Notification, alerts: list[Alert]) -> dict[str, Any]:
    return {
        "version": VERSION,
        "receiver": notification.receiver,
        "group_key": notification.group_key,
        "group_labels": dict(notification.group_labels),
        "status": "firing" if any(a.firing for a in alerts) else "resolved",
        "alerts": [a.to_dict() for a in alerts],
        "idempotency_key": notification.idempotency_key,
    }


class WebhookReceiver(Receiver):
    """POSTs a versioned JSON document with an Idempotency-Key to any URL."""

    kind = "webhook"
    Settings = WebhookSettings

    def __init__(self, name: str, settings: ReceiverSettings, *, clock: render.Clock = render.system_clock) -> None:
        assert isinstance(settings, WebhookSettings)
        super().__init__(name, settings)
        self.config = settings
        self.clock = clock
        self._headers = {k: v.get_secret_value() for k, v in settings.headers.items()}
        self._secrets = [v for v in self._headers.values() if v]
        for secret in self._secrets:
            REDACTOR.add(secret)
        self._client: httpx.AsyncClient | None = None

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.config.timeout.total_seconds(),
                                             headers={"User-Agent": "sre-agent", **self._headers})
        return self._client

    async def send(self, notification: Notification) -> Delivery:
        alerts = render.visible_alerts(notification, self.config.send_resolved)
        if not alerts:
            return Delivery(Outcome.SENT, "nothing to send")
        what = f"webhook {self.name}"
        try:
            response = await self._http().request(
                self.config.method, self.config.url, json=document(notification, alerts),
                headers={"Idempotency-Key": notification.idempotency_key})
        except TRANSPORT_ERRORS as exc:
            return transport_failure(exc, what=what, timeout=self.config.timeout.total_seconds(),
                                     secrets=self._secrets)
        return classify_status(response.status_code, response.headers, response.text, what=what,
                               secrets=self._secrets, clock=self.clock)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
