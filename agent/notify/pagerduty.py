"""PagerDuty receiver: Events API v2 trigger / resolve, one event per alert.

PagerDuty deduplicates on `dedup_key`, so each alert's stable key is sent as
is: a retried trigger for an open incident only adds a log entry, and the
resolve closes exactly the incident its trigger opened. That is what makes
it safe for the outbox to re-send a whole notification after a RETRY.
Answers (Events API v2): 202 accepted; 400 invalid event (permanent, with an
`errors` list); 429 rate limited and 5xx are worth retrying.
"""

from __future__ import annotations

import hashlib
import json
import logging
import socket
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from agent.core import Alert, AlertState, Severity
from agent.secrets import Secret

from . import render
from .base import Delivery, Notification, Outcome, ReceiverSettings
from .http import HttpxReceiver, merge, scrub, transport_errors

if TYPE_CHECKING:
    import httpx

log = logging.getLogger(__name__)

DEFAULT_URL = "https://events.pagerduty.com/v2/enqueue"
PdSeverity = Literal["critical", "error", "warning", "info"]
DEFAULT_SEVERITY_MAP: dict[Severity, PdSeverity] = {
    Severity.EMERGENCY: "critical",
    Severity.CRITICAL: "error",
    Severity.WARNING: "warning",
    Severity.INFO: "info",
}
SUMMARY_MAX = 1024
DEDUP_KEY_MAX = 255
#: an Events API v2 integration (routing) key is always this long
ROUTING_KEY_LENGTH = 32
CLIENT = "sre-agent"


class PagerDutySettings(ReceiverSettings):
    routing_key: Secret | None = Field(None, description="Events API v2 integration key, 32 characters (or routing_key_file)")
    example: ClassVar[str] = "{routing_key: ${PAGERDUTY_ROUTING_KEY}}"
    url: str = Field(DEFAULT_URL, description="Events API v2 enqueue endpoint")
    severity_map: dict[Severity, PdSeverity] = Field(
        default_factory=lambda: dict(DEFAULT_SEVERITY_MAP),
        description="agent severity -> PagerDuty severity; unset keys keep the default")
    source: str | None = Field(None, description="payload.source; default this host's name")
    component: str | None = Field(None, description="template for payload.component; default {check}")
    group: str | None = Field(None, description="template for payload.group; default the service label, else {type}")
    class_: str | None = Field(None, alias="class", description="template for payload.class; default {type}")
    client_url: str | None = Field(None, description="link shown as the event's client; default the check's URL")

    @model_validator(mode="after")
    def _key_set(self) -> PagerDutySettings:
        if self.routing_key is None:
            raise ValueError("routing_key (or routing_key_file) is required")
        # PagerDuty answers 400 (never retried) to any other length: the pages would be lost.
        length = len(self.routing_key.get_secret_value())
        if length != ROUTING_KEY_LENGTH:
            raise ValueError(f"routing_key must be the {ROUTING_KEY_LENGTH}-character integration key of an "
                             f"Events API v2 integration; got {length} characters")
        return self

    @field_validator("severity_map")
    @classmethod
    def _complete(cls, v: dict[Severity, PdSeverity]) -> dict[Severity, PdSeverity]:
        return {**DEFAULT_SEVERITY_MAP, **v}

    @field_validator("component", "group", "class_")
    @classmethod
    def _template(cls, v: str | None) -> str | None:
        return render.check_template(v) if v is not None else v

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError(f"url must be http:// or https://, got {v!r}")
        return v


def dedup_key(alert: Alert) -> str:
    """The alert's own key; hashed only if longer than PagerDuty's 255 characters."""
    if len(alert.dedup_key) <= DEDUP_KEY_MAX:
        return alert.dedup_key
    return "sre-agent-" + hashlib.sha256(alert.dedup_key.encode()).hexdigest()


class PagerDutyReceiver(HttpxReceiver[PagerDutySettings]):
    """PagerDuty Events API v2: trigger and resolve by the alert's dedup_key."""

    kind = "pagerduty"
    Settings = PagerDutySettings

    def secret_values(self) -> list[str]:
        assert self.config.routing_key is not None  # the settings model refuses a missing key
        return [self.config.routing_key.get_secret_value()]

    @property
    def _key(self) -> str:
        return self.secrets[0]

    @property
    def _source(self) -> str:
        return self.config.source or socket.gethostname()

    def client_options(self) -> dict[str, Any]:
        return {"headers": {"User-Agent": CLIENT}}

    def accepts(self, notification: Notification) -> bool:
        """A move to other receivers resolves the incident here, so `send_resolved` governs it too."""
        return bool(notification.firing) or self.settings.send_resolved

    def event(self, alert: Alert) -> dict[str, Any]:
        """The Events API v2 body for one alert.

        An alert that moved to other receivers (de-escalated to warning, now in Slack) resolves its
        incident: it no longer pages, and an open incident would keep escalating. That resolve carries
        a payload saying why and where it continues, which PagerDuty shows in the alert's log.
        """
        key = dedup_key(alert)
        if alert.state == AlertState.RESOLVED:
            return {"routing_key": self._key, "dedup_key": key, "event_action": "resolve"}
        cfg = self.config
        group = render.render_template(cfg.group, alert) if cfg.group else alert.labels.get("service", alert.type)
        if alert.state == AlertState.MOVED and alert.moved_to is not None:
            note = render.moved_text(alert.moved_to)
            summary = f"[{alert.moved_to.direction.upper()}] {alert.check}: {note}; {alert.summary}"
        else:
            summary = f"[{alert.severity.value.upper()}] {alert.check}: {alert.summary}"
            if alert.moved_from is not None:
                summary += f" ({render.arrived_text(alert.moved_from)})"
        payload: dict[str, Any] = {
            "summary": render.truncate(summary, SUMMARY_MAX),
            "source": self._source,
            "severity": cfg.severity_map[alert.severity],
            "timestamp": render.iso8601(alert.starts_at if alert.starts_at > 0 else self.clock()),
            "component": render.render_template(cfg.component, alert) if cfg.component else alert.check,
            "group": group,
            "class": render.render_template(cfg.class_, alert) if cfg.class_ else alert.type,
            "custom_details": {
                "status": alert.status.name,
                "observations": {render.observation_label(k): render.format_value(k, v)
                                 for k, v in alert.observations.items()},
                "observations_raw": dict(alert.observations),
                "labels": dict(alert.labels),
                "firing_since": render.iso8601(alert.starts_at) if alert.starts_at > 0 else None,
                **({"annotations": dict(alert.annotations)} if alert.annotations else {}),
                **({"moved_to": alert.moved_to.to_dict()} if alert.moved_to else {}),
                **({"moved_from": alert.moved_from.to_dict()} if alert.moved_from else {}),
            },
        }
        links = [{"href": url, "text": text} for url, text in
                 ((alert.runbook_url, "Runbook"), (alert.generator_url, "Check")) if url]
        event: dict[str, Any] = {
            "routing_key": self._key,
            "event_action": "resolve" if alert.state == AlertState.MOVED else "trigger",
            "dedup_key": key,
            "payload": payload,
            "client": CLIENT,
        }
        client_url = cfg.client_url or alert.generator_url
        if client_url:
            event["client_url"] = client_url
        if links:
            event["links"] = links
        return event

    async def send(self, notification: Notification) -> Delivery:
        outcomes: list[Delivery] = []
        for alert in render.visible_alerts(notification, self.config.send_resolved, moved=self.config.send_resolved):
            delivery = await self._post(alert)
            outcomes.append(delivery)
            if delivery.outcome == Outcome.RETRY:
                # Rate limited or unreachable: the rest would fare the same; the outbox re-sends all,
                # and PagerDuty's dedup_key makes the already accepted ones harmless repeats.
                break
        return merge(outcomes)

    async def _post(self, alert: Alert) -> Delivery:
        event = self.event(alert)
        what = f"pagerduty {self.name} {event['event_action']} {alert.check}"
        try:
            response = await self.http().post(self.config.url, json=event)
        except transport_errors() as exc:
            return self.no_answer(exc, what=what)
        if response.status_code == 400:
            delivery = Delivery(Outcome.FAILED, _invalid_event(response, what, self._key))
            log.warning("PagerDuty rejected an event, not retrying: %s", delivery.detail)
            return delivery
        return self.answer(response.status_code, response.headers, response.text, what=what)


def _invalid_event(response: httpx.Response, what: str, key: str) -> str:
    """PagerDuty's 400 says why in `message` and `errors`; keep that, scrubbed."""
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        body = None
    if isinstance(body, dict):
        errors = body.get("errors")
        parts = [body.get("message"), *(errors if isinstance(errors, list) else [])]
        reason = "; ".join(str(x) for x in parts if x)
    else:
        reason = response.text
    return render.truncate(scrub(f"{what}: HTTP 400 invalid event: {reason}", [key]), 500)
