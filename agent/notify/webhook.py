"""Generic webhook receiver: a stable JSON document for whatever the team runs.

The body is versioned (`version: "1"`) so consumers can rely on its shape,
carries every alert as `Alert.to_dict()`, and sends the notification's
idempotency key both in the body and as an `Idempotency-Key` header: the
outbox may deliver twice after a crash, and the consumer can tell.
Configured header values are usually credentials, so they are secrets.

The webhook is the receiver a busy agent talks to most, so it posts with one
keep-alive aiohttp session (about a quarter of httpx's CPU per request); the
API clients (PagerDuty, Alertmanager) keep httpx. As with httpx: the proxy
variables (HTTP_PROXY, HTTPS_PROXY, NO_PROXY) are honoured, read once when the
session opens rather than on every request; redirects are not followed (a
3xx is a permanent failure); the body is compact UTF-8 JSON that refuses NaN.
"""

from __future__ import annotations

import json
from typing import Any, Literal

import aiohttp
from aiohttp.helpers import get_env_proxy_for_url
from pydantic import Field, SecretStr, field_validator
from yarl import URL

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
        self._session: aiohttp.ClientSession | None = None
        self._proxy: URL | None = None
        self._proxy_auth: aiohttp.BasicAuth | None = None

    def _http(self) -> aiohttp.ClientSession:
        """One session (connection pool) for the receiver's life, created on the running loop."""
        if self._session is None or self._session.closed:
            try:
                self._proxy, self._proxy_auth = get_env_proxy_for_url(URL(self.config.url))
            except (LookupError, ValueError):  # no proxy for this URL, or no valid URL (the request says so)
                self._proxy, self._proxy_auth = None, None
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.config.timeout.total_seconds()),
                headers={"User-Agent": "sre-agent", **self._headers})
        return self._session

    async def send(self, notification: Notification) -> Delivery:
        alerts = render.visible_alerts(notification, self.config.send_resolved)
        if not alerts:
            return Delivery(Outcome.SENT, "nothing to send")
        what = f"webhook {self.name}"
        body = json.dumps(document(notification, alerts), ensure_ascii=False, separators=(",", ":"),
                          allow_nan=False).encode()
        headers = {"Content-Type": "application/json", "Idempotency-Key": notification.idempotency_key}
        try:
            async with self._http().request(self.config.method, self.config.url, data=body, headers=headers,
                                            allow_redirects=False, proxy=self._proxy,
                                            proxy_auth=self._proxy_auth) as response:
                status, answer_headers = response.status, response.headers
                text = _text(await response.read(), response.charset)
        except TRANSPORT_ERRORS as exc:
            return transport_failure(exc, what=what, timeout=self.config.timeout.total_seconds(),
                                     secrets=self._secrets)
        return classify_status(status, answer_headers, text, what=what, secrets=self._secrets, clock=self.clock)

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None


def _text(body: bytes, charset: str | None) -> str:
    try:
        return body.decode(charset or "utf-8", errors="replace")
    except LookupError:  # a charset Python does not know
        return body.decode("utf-8", errors="replace")
