"""Alerting's metrics, on the injected registry: alert counts, deliveries, queue, latency.

Names are a contract (dashboards and the generated alert rules use them):
`sre_agent_alerts{state,severity}`, `sre_agent_notifications_total{receiver,outcome}`,
`sre_agent_notification_queue_depth{receiver}`,
`sre_agent_notification_latency_seconds{receiver}` and
`sre_agent_alerts_suppressed_total{reason}`; their definitions are in
`agent.catalogue`.
"""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import CollectorRegistry

from agent import catalogue
from agent.core import AlertState, Severity

OUTCOMES = ("sent", "retried", "failed", "dropped")


class AlertingMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.alerts = catalogue.gauge("sre_agent_alerts", registry)
        self.notifications = catalogue.counter("sre_agent_notifications_total", registry)
        self.depth = catalogue.gauge("sre_agent_notification_queue_depth", registry)
        self.latency_seconds = catalogue.histogram("sre_agent_notification_latency_seconds", registry)
        self.suppressed = catalogue.counter("sre_agent_alerts_suppressed_total", registry)
        for state in (AlertState.PENDING, AlertState.FIRING):
            for severity in Severity:
                self.alerts.labels(state.value, severity.value).set(0)
        for reason in ("silenced", "inhibited", "dependency"):
            self.suppressed.labels(reason)

    def add_receiver(self, name: str) -> None:
        """Create a receiver's series at zero, so rate() works from the first failure."""
        for outcome in OUTCOMES:
            self.notifications.labels(name, outcome)
        self.depth.labels(name)

    def outcome(self, receiver: str, outcome: str, n: int = 1) -> None:
        self.notifications.labels(receiver, outcome).inc(n)

    def latency(self, receiver: str, seconds: float) -> None:
        self.latency_seconds.labels(receiver).observe(seconds)

    def queue_depth(self, receiver: str, depth: int) -> None:
        self.depth.labels(receiver).set(depth)

    def set_alert_counts(self, counts: Mapping[tuple[AlertState, Severity], int]) -> None:
        """Set the sre_agent_alerts gauges from counts the engine keeps up to date (absent: 0)."""
        for state in (AlertState.PENDING, AlertState.FIRING):
            for severity in Severity:
                self.alerts.labels(state.value, severity.value).set(counts.get((state, severity), 0))

    def suppress(self, reason: str) -> None:
        self.suppressed.labels(reason).inc()
