"""Text every receiver shares: titles, "firing for 12m", observation values.

An SRE reads the same alert in Slack, PagerDuty, Alertmanager and the log;
rendering it in one place keeps those words identical and keeps the
receivers about wire formats only. Nothing here does I/O; time comes from an
injected clock so messages are testable without sleeping.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from agent import humanize
from agent.core import Alert, AlertState, Handoff, Severity, Status

from .base import Clock as Clock  # re-exported: receivers take the clock type from here
from .base import Notification
from .base import system_clock as system_clock

ELLIPSIS = "…"

SEVERITY_EMOJI = {
    Severity.INFO: "🔵",
    Severity.WARNING: "🟠",
    Severity.CRITICAL: "🔴",
    Severity.EMERGENCY: "🚨",
}
RESOLVED_EMOJI = "✅"
MOVED_EMOJI = {"escalated": "⬆️", "de-escalated": "⬇️", "rerouted": "↪️"}


def truncate(text: str, limit: int) -> str:
    """Cut `text` to at most `limit` characters, marking the cut with an ellipsis."""
    if limit <= 0:
        return ""
    if len(text) <= limit:
        return text
    return text[: limit - len(ELLIPSIS)].rstrip() + ELLIPSIS


def duration_text(seconds: float) -> str:
    """Two most significant units, as on-call people say it: 45s, 12m, 1h3m, 3d4h."""
    return humanize.duration(seconds)


def elapsed(alert: Alert, now: float) -> str:
    """`firing for 12m` / `resolved, lasted 1h3m`; empty when the start is unknown."""
    if alert.starts_at <= 0:
        return "resolved" if alert.state == AlertState.RESOLVED else ""
    if alert.state == AlertState.RESOLVED:
        return f"resolved, lasted {lasted(alert, now)}"
    state = AlertState.FIRING if alert.state == AlertState.MOVED else alert.state
    return f"{state.value} for {duration_text(now - alert.starts_at)}"


def lasted(alert: Alert, now: float) -> str:
    """How long the incident went on: to its end once resolved, else until now; empty if unknown."""
    if alert.starts_at <= 0:
        return ""
    end = alert.ends_at if alert.state == AlertState.RESOLVED and alert.ends_at is not None else now
    return duration_text(end - alert.starts_at)


def status_text(alert: Alert) -> str:
    """The check's status as the alert stands: what a resolved alert recovered to, not what it was."""
    if alert.state == AlertState.RESOLVED and alert.status != Status.OK:
        # resolved without a passing result: the check was disabled or removed, or its alerting turned off
        return f"not watched any more (last {alert.status.name})"
    return alert.status.name


def moved_text(handoff: Handoff) -> str:
    """For the receiver an alert left: `escalated to critical → pagerduty`."""
    return f"{handoff.direction} to {handoff.severity.value} → {', '.join(handoff.receivers)}"


def arrived_text(handoff: Handoff) -> str:
    """For the receiver an alert joined: `escalated from warning (was with slack)`."""
    return f"{handoff.direction} from {handoff.previous.value} (was with {', '.join(handoff.receivers)})"


def handoff_line(alert: Alert) -> str:
    """What a move between receivers means to this receiver; empty when there was none."""
    if alert.state == AlertState.MOVED and alert.moved_to is not None:
        return moved_text(alert.moved_to)
    if alert.state == AlertState.FIRING and alert.moved_from is not None:
        return arrived_text(alert.moved_from)
    return ""


def observation_label(name: str) -> str:
    """`latency_seconds` -> `latency`, `disk_used_percent_max` -> `disk used max`."""
    return humanize.label(name)


def format_value(name: str, value: float) -> str:
    """Render an observation with the unit its name declares (a timestamp as a date)."""
    return humanize.observation(name, value)


def observation_pairs(observations: Mapping[str, float]) -> list[tuple[str, str]]:
    return [(observation_label(k), format_value(k, v)) for k, v in observations.items()]


def observations_line(observations: Mapping[str, float], limit: int = 300) -> str:
    return truncate(", ".join(f"{k} {v}" for k, v in observation_pairs(observations)), limit)


def alert_title(alert: Alert) -> str:
    """`CRITICAL api-health` / `RESOLVED api-health` / `ESCALATED api-health`."""
    if alert.state == AlertState.RESOLVED:
        return f"RESOLVED {alert.check}"
    if alert.state == AlertState.MOVED and alert.moved_to is not None:
        return f"{alert.moved_to.direction.upper()} {alert.check}"
    return f"{alert.severity.value.upper()} {alert.check}"


def emoji(alert: Alert) -> str:
    if alert.state == AlertState.RESOLVED:
        return RESOLVED_EMOJI
    if alert.state == AlertState.MOVED and alert.moved_to is not None:
        return MOVED_EMOJI[alert.moved_to.direction]
    return SEVERITY_EMOJI[alert.severity]


def worst_severity(alerts: list[Alert]) -> Severity:
    return max((a.severity for a in alerts), key=lambda s: s.rank, default=Severity.INFO)


def group_description(notification: Notification) -> str:
    """`service=api, env=prod`, or the check name when the group has one check."""
    if notification.group_labels:
        return ", ".join(f"{k}={v}" for k, v in sorted(notification.group_labels.items()))
    checks = sorted({a.check for a in notification.alerts})
    return checks[0] if len(checks) == 1 else f"{len(checks)} checks"


def group_title(notification: Notification, alerts: list[Alert]) -> str:
    """`[FIRING:3, RESOLVED:1] service=api`, in Alertmanager's habit (`MOVED:1` for alerts handed on)."""
    resolved = sum(a.state == AlertState.RESOLVED for a in alerts)
    moved = sum(a.state == AlertState.MOVED for a in alerts)
    firing = len(alerts) - resolved - moved
    counts = ", ".join(part for part in (f"FIRING:{firing}" if firing else "", f"MOVED:{moved}" if moved else "",
                                         f"RESOLVED:{resolved}" if resolved else "") if part)
    return f"[{counts}] {group_description(notification)}"


def one_line(alert: Alert, now: float, limit: int = 1000) -> str:
    """A single readable line: log lines and text fallbacks."""
    tail = [t for t in (handoff_line(alert), elapsed(alert, now), observations_line(alert.observations, 200)) if t]
    suffix = f" ({'; '.join(tail)})" if tail else ""
    head = f"[{alert_title(alert)}] "
    return head + truncate(alert.summary or "(no summary)", max(20, limit - len(head) - len(suffix))) + suffix


def iso8601(timestamp: float) -> str:
    """RFC 3339 / ISO 8601 in UTC with milliseconds, as PagerDuty and Alertmanager read it."""
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def visible_alerts(notification: Notification, send_resolved: bool, moved: bool = True) -> list[Alert]:
    """The alerts a receiver should tell about: resolved ones only when `send_resolved`; moved ones
    (still firing, now with other receivers) unless `moved` is False."""
    wanted = {AlertState.FIRING}
    if send_resolved:
        wanted.add(AlertState.RESOLVED)
    if moved:
        wanted.add(AlertState.MOVED)
    return [a for a in notification.alerts if a.state in wanted]


class _Missing(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return ""


def template_fields(alert: Alert) -> dict[str, Any]:
    fields: dict[str, Any] = {f"label_{k}": v for k, v in alert.labels.items()}
    fields.update(check=alert.check, type=alert.type, severity=alert.severity.value,
                  state=alert.state.value, status=alert.status.name, summary=alert.summary,
                  labels=_Missing(alert.labels))
    return fields


def check_template(template: str) -> str:
    """Validate a `{check}`-style template at config load; unknown fields render empty."""
    try:
        for _, name, spec, _ in string.Formatter().parse(template):
            if name is not None and not name.replace("_", "").replace("[", "").replace("]", "").isalnum():
                raise ValueError(f"template field {{{name}}} is not a plain name")
            if spec:
                raise ValueError("format specs are not supported in templates")
    except ValueError as exc:
        raise ValueError(f"invalid template {template!r}: {exc}; use fields such as {{check}}, {{type}}, "
                         f"{{severity}}, {{label_service}}") from None
    return template


def render_template(template: str, alert: Alert) -> str:
    return template.format_map(_Missing(template_fields(alert)))


def head_facts(alert: Alert, now: float) -> list[tuple[str, str]]:
    """What an on-call person looks at first in a single-alert message (Slack fields, email table)."""
    if alert.state == AlertState.RESOLVED:
        items = [("Status", status_text(alert)), ("Lasted", lasted(alert, now) or "unknown"),
                 ("Severity", alert.severity.value)]
    elif alert.state == AlertState.MOVED and alert.moved_to is not None:
        items = [("Severity", f"{alert.severity.value} (was {alert.moved_to.previous.value})"),
                 ("Status", alert.status.name), ("Now with", ", ".join(alert.moved_to.receivers))]
    else:
        items = [("Severity", alert.severity.value), ("Status", alert.status.name)]
        if alert.moved_from is not None:
            items.append((f"{alert.moved_from.direction.capitalize()} from",
                          f"{alert.moved_from.previous.value} ({', '.join(alert.moved_from.receivers)})"))
    return items


def heading(alert: Alert) -> str:
    """A single alert's title line (Slack's header, the email's heading)."""
    if alert.state == AlertState.RESOLVED:
        return f"{RESOLVED_EMOJI} Resolved: {alert.check}"
    if alert.state == AlertState.MOVED and alert.moved_to is not None:
        direction = alert.moved_to.direction.capitalize()
        return f"{emoji(alert)} {direction} to {alert.severity.value.upper()}: {alert.check}"
    return f"{emoji(alert)} {alert.severity.value.upper()}: {alert.check}"
