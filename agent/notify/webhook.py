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
aiohttp (and yarl) are imported when the session opens, not with the settings
model, so loading a config with a webhook receiver does not pay for them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, SecretStr, field_validator

from agent.core import Alert, AlertState

from . import digest, render
from .base import Delivery, Notification, Outcome, ReceiverSettings
from .http import AiohttpReceiver, transport_errors

if TYPE_CHECKING:
    import aiohttp
    from yarl import URL

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


def status(alerts: list[Alert]) -> str:
    """`firing` if any alert fires; `moved` if one still fires but went to other receivers; else `resolved`."""
    if any(a.state == AlertState.FIRING for a in alerts):
        return "firing"
    return "moved" if any(a.state == AlertState.MOVED for a in alerts) else "resolved"


def document(notification: Notification, alerts: list[Alert]) -> dict[str, Any]:
    return {
        "version": VERSION,
        "receiver": notification.receiver,
        "group_key": notification.group_key,
        "group_labels": dict(notification.group_labels),
        "status": status(alerts),
        "alerts": [a.to_dict() for a in alerts],
        "idempotency_key": notification.idempotency_key,
    }


def digest_document(notification: Notification) -> dict[str, Any]:
    """`{version, kind: "digest", receiver, idempotency_key, digest: {...}, text}`: the data and the words."""
    d = digest.of(notification)
    return {"version": VERSION, "kind": digest.KIND, "receiver": notification.receiver,
            "idempotency_key": notification.idempotency_key, "digest": d.to_dict(), "text": d.text()}


class WebhookReceiver(AiohttpReceiver[WebhookSettings]):
    """POSTs a versioned JSON document with an Idempotency-Key to any URL."""

    kind = "webhook"
    Settings = WebhookSettings
    takes_digest = True
    _proxy: URL | None = None
    _proxy_auth: aiohttp.BasicAuth | None = None

    def secret_values(self) -> list[str]:
        return [v.get_secret_value() for v in self.config.headers.values()]

    def open_session(self, headers: Mapping[str, str] | None = None) -> aiohttp.ClientSession:
        """The proxy is looked up when the session opens, not on every request."""
        # with the session, as AiohttpReceiver imports aiohttp: not when the config loads
        from aiohttp.helpers import get_env_proxy_for_url
        from yarl import URL

        try:
            self._proxy, self._proxy_auth = get_env_proxy_for_url(URL(self.config.url))
        except (LookupError, ValueError):  # no proxy for this URL, or no valid URL (the request says so)
            self._proxy, self._proxy_auth = None, None
        configured = {k: v.get_secret_value() for k, v in self.config.headers.items()}
        return super().open_session({"User-Agent": "sre-agent", **configured, **(headers or {})})

    async def send(self, notification: Notification) -> Delivery:
        alerts = render.visible_alerts(notification, self.config.send_resolved)
        if not alerts:
            return Delivery(Outcome.SENT, "nothing to send")
        return await self._post(notification, document(notification, alerts))

    async def send_digest(self, notification: Notification) -> Delivery:
        return await self._post(notification, digest_document(notification))

    async def _post(self, notification: Notification, doc: dict[str, Any]) -> Delivery:
        what = f"webhook {self.name}"
        body = json.dumps(doc, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()
        headers = {"Content-Type": "application/json", "Idempotency-Key": notification.idempotency_key}
        try:
            async with self.session().request(self.config.method, self.config.url, data=body, headers=headers,
                                            allow_redirects=False, proxy=self._proxy,
                                            proxy_auth=self._proxy_auth) as response:
                status, answer_headers = response.status, response.headers
                text = _text(await response.read(), response.charset)
        except transport_errors() as exc:
            return self.no_answer(exc, what=what)
        return self.answer(status, answer_headers, text, what=what)


def _text(body: bytes, charset: str | None) -> str:
    try:
        return body.decode(charset or "utf-8", errors="replace")
    except LookupError:  # a charset Python does not know
        return body.decode("utf-8", errors="replace")
