"""Log receiver: one structured line per alert on the `sre_agent.alerts` logger.

The receiver of last resort and the one for pipelines that already ship
logs: with `log_format: json` each line carries the alert's fields (check,
severity, state, dedup_key, observations, runbook) for the log system to
index. Field values are scrubbed here because the JSON formatter writes
`record.fields` as they are.
"""

from __future__ import annotations

import logging
from typing import Any

from agent.core import Alert, AlertState, Severity
from agent.secrets import REDACTOR

from . import digest, render
from .base import ConfiguredReceiver, Delivery, Notification, Outcome, ReceiverSettings

LOGGER_NAME = "sre_agent.alerts"
_LEVELS = {Severity.INFO: logging.INFO, Severity.WARNING: logging.WARNING,
           Severity.CRITICAL: logging.ERROR, Severity.EMERGENCY: logging.CRITICAL}


class LogSettings(ReceiverSettings):
    """No keys beyond send_resolved and timeout."""


class LogReceiver(ConfiguredReceiver[LogSettings]):
    """One structured log line per alert on the sre_agent.alerts logger."""

    kind = "log"
    Settings = LogSettings
    takes_digest = True

    def __init__(self, name: str, settings: ReceiverSettings, *, clock: render.Clock = render.system_clock,
                 logger: logging.Logger | None = None) -> None:
        super().__init__(name, settings, clock=clock)
        self.logger = logger or logging.getLogger(LOGGER_NAME)

    def fields(self, notification: Notification, alert: Alert, now: float) -> dict[str, Any]:
        end = alert.ends_at if alert.ends_at is not None else now
        fields: dict[str, Any] = {
            "event": "alert", "receiver": self.name, "group_key": notification.group_key,
            "idempotency_key": notification.idempotency_key,
            "state": alert.state.value, "severity": alert.severity.value, "check": alert.check,
            "type": alert.type, "status": alert.status.name, "summary": alert.summary,
            "dedup_key": alert.dedup_key, "labels": dict(alert.labels),
            "moved_to": alert.moved_to.to_dict() if alert.moved_to else None,
            "moved_from": alert.moved_from.to_dict() if alert.moved_from else None,
            "observations": dict(alert.observations), "runbook_url": alert.runbook_url,
            "generator_url": alert.generator_url,
            "starts_at": render.iso8601(alert.starts_at) if alert.starts_at > 0 else None,
            "ends_at": render.iso8601(alert.ends_at) if alert.ends_at is not None else None,
            "duration_seconds": round(end - alert.starts_at, 3) if alert.starts_at > 0 else None,
        }
        return REDACTOR.redact_obj(fields)

    async def send(self, notification: Notification) -> Delivery:
        now = self.clock()
        alerts = render.visible_alerts(notification, self.settings.send_resolved)
        for alert in alerts:
            level = logging.INFO if alert.state in (AlertState.RESOLVED, AlertState.MOVED) else _LEVELS[alert.severity]
            line = render.one_line(alert, now)
            if alert.runbook_url:
                line += f" runbook={alert.runbook_url}"
            self.logger.log(level, "%s", REDACTOR.redact(line), extra={"fields": self.fields(notification, alert, now)})
        return Delivery(Outcome.SENT, f"logged {len(alerts)} alert(s)")

    async def send_digest(self, notification: Notification) -> Delivery:
        d = digest.of(notification)
        fields = {"event": "digest", "receiver": self.name, "idempotency_key": notification.idempotency_key,
                  "day": d.day, "headline": d.headline(), "failing": len(d.failing), "incidents": len(d.incidents)}
        self.logger.info("%s", REDACTOR.redact(d.text().rstrip()), extra={"fields": REDACTOR.redact_obj(fields)})
        return Delivery(Outcome.SENT, f"logged the digest of {d.day}")
