"""Alertmanager receiver: POST /api/v2/alerts, for teams that already run one.

Alertmanager then owns grouping, silences and its own receivers; this side
only states what fires and what resolved. Label choice (documented in the
receiver reference): `alertname` is the check name (or the alert's own
`alertname` label when the engine set one), plus `check`, `type`,
`severity` and the alert's labels. A firing alert is sent without `endsAt`
(Alertmanager applies its `resolve_timeout`; the engine re-posts while it
fires) unless `firing_ttl` is set; a resolved alert carries its `endsAt`.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import Field, field_validator, model_validator

from agent.check import Model
from agent.core import Alert, AlertState
from agent.durations import Duration
from agent.secrets import REDACTOR, Secret

from . import render
from .base import Delivery, Notification, Outcome, ReceiverSettings
from .http import HttpxReceiver, transport_errors

LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
DESCRIPTION_MAX = 4000


class BasicAuth(Model):
    username: str
    password: Secret | None = Field(None, description="password (or password_file)")

    @model_validator(mode="after")
    def _password_set(self) -> BasicAuth:
        if self.password is None:
            raise ValueError("password (or password_file) is required")
        return self


class AlertmanagerSettings(ReceiverSettings):
    url: str = Field("http://127.0.0.1:9093", description="Alertmanager base URL (without /api/v2)")
    basic_auth: BasicAuth | None = None
    bearer_token: Secret | None = Field(None, description="sent as Authorization: Bearer (or bearer_token_file)")
    firing_ttl: Duration | None = Field(None, description="endsAt = now + this for firing alerts; "
                                                         "unset: Alertmanager's resolve_timeout applies")

    @model_validator(mode="after")
    def _one_auth(self) -> AlertmanagerSettings:
        if self.basic_auth is not None and self.bearer_token is not None:
            raise ValueError("set basic_auth or bearer_token, not both")
        return self

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError(f"url must be http:// or https://, got {v!r}")
        return v.rstrip("/")


def labels_for(alert: Alert) -> dict[str, str]:
    """Alertmanager identifies an alert by its label set: keep it stable and valid. An alert that
    moved to other receivers ends the alert Alertmanager has, the one with the severity it was told."""
    labels = {k: v for k, v in alert.labels.items() if LABEL_NAME.match(k) and v}
    severity = alert.moved_to.previous if alert.state == AlertState.MOVED and alert.moved_to else alert.severity
    labels.update(alertname=alert.labels.get("alertname") or alert.check, check=alert.check,
                  type=alert.type, severity=severity.value)
    return labels


class AlertmanagerReceiver(HttpxReceiver[AlertmanagerSettings]):
    """Posts alerts to an Alertmanager's /api/v2/alerts."""

    kind = "alertmanager"
    Settings = AlertmanagerSettings

    def secret_values(self) -> list[str]:
        cfg = self.config
        token = cfg.bearer_token.get_secret_value() if cfg.bearer_token is not None else None
        password = cfg.basic_auth.password.get_secret_value() \
            if cfg.basic_auth is not None and cfg.basic_auth.password is not None else None
        if password is not None and cfg.basic_auth is not None:
            # httpx sends base64("user:password"): that is the password too.
            REDACTOR.add_basic_auth(cfg.basic_auth.username, password)
        return [s for s in (token, password) if s is not None]

    def client_options(self) -> dict[str, Any]:
        cfg = self.config
        headers = {"User-Agent": "sre-agent"}
        if cfg.bearer_token is not None:
            headers["Authorization"] = f"Bearer {cfg.bearer_token.get_secret_value()}"
        auth = None
        if cfg.basic_auth is not None:
            import httpx  # the client this configures is an httpx one (`HttpxReceiver.http`)

            assert cfg.basic_auth.password is not None  # BasicAuth refuses a missing password
            auth = httpx.BasicAuth(cfg.basic_auth.username, cfg.basic_auth.password.get_secret_value())
        return {"headers": headers, "auth": auth}

    def alert_body(self, alert: Alert) -> dict[str, Any]:
        now = self.clock()
        annotations = {"summary": alert.summary or alert.check}
        details = [render.handoff_line(alert), alert.summary, render.observations_line(alert.observations, 1000),
                   render.elapsed(alert, now)]
        annotations["description"] = render.truncate(" | ".join(d for d in details if d), DESCRIPTION_MAX)
        if alert.runbook_url:
            annotations["runbook_url"] = alert.runbook_url
        annotations.update({k: v for k, v in alert.annotations.items() if LABEL_NAME.match(k) and v})
        starts = alert.starts_at if alert.starts_at > 0 else now
        body: dict[str, Any] = {"labels": labels_for(alert), "annotations": annotations,
                                "startsAt": render.iso8601(starts)}
        if alert.state == AlertState.RESOLVED:
            body["endsAt"] = render.iso8601(max(starts, alert.ends_at if alert.ends_at is not None else now))
        elif alert.state == AlertState.MOVED:
            body["endsAt"] = render.iso8601(max(starts, now))  # ended here; it goes on with other receivers
        elif self.config.firing_ttl is not None:
            body["endsAt"] = render.iso8601(now + self.config.firing_ttl.total_seconds())
        if alert.generator_url:
            body["generatorURL"] = alert.generator_url
        return body

    async def send(self, notification: Notification) -> Delivery:
        alerts = render.visible_alerts(notification, self.config.send_resolved)
        if not alerts:
            return Delivery(Outcome.SENT, "nothing to send")
        body = [self.alert_body(a) for a in alerts]
        what = f"alertmanager {self.name}"
        try:
            response = await self.http().post(f"{self.config.url}/api/v2/alerts", json=body)
        except transport_errors() as exc:
            return self.no_answer(exc, what=what)
        return self.answer(response.status_code, response.headers, response.text, what=what)
