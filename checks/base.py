"""What a plugin author needs, in one import: the seam's types and threshold helpers.

The seam itself (`Check`, `CheckConfig`, `AlertPolicy`, `MetricFamily`, ...)
lives on the agent's ground floor in `agent.check`; this module re-exports it
so a check module reads `from checks.base import Check, CheckConfig`, and adds
the threshold models several check types share.
"""

from __future__ import annotations

from agent.check import (
    LABEL_NAME,
    NAME_PATTERN,
    RESERVED_LABELS,
    AlertPolicy,
    Check,
    CheckConfig,
    MetricFamily,
    Model,
    SeverityMap,
)
from agent.core import Status
from agent.durations import Duration

__all__ = ["LABEL_NAME", "NAME_PATTERN", "RESERVED_LABELS", "AlertPolicy", "Check", "CheckConfig", "DurationThresholds",
           "MetricFamily", "Model", "SeverityMap", "Thresholds"]


class Thresholds(Model):
    """A value that is worse when higher: WARNING at `warning`, CRITICAL at `critical`."""

    warning: float | None = None
    critical: float | None = None

    def evaluate(self, value: float) -> Status:
        if self.critical is not None and value >= self.critical:
            return Status.CRITICAL
        if self.warning is not None and value >= self.warning:
            return Status.WARNING
        return Status.OK


class DurationThresholds(Model):
    """Durations; `evaluate` for higher-is-worse (latency), `evaluate_remaining`
    for lower-is-worse (time left before a certificate expires)."""

    warning: Duration | None = None
    critical: Duration | None = None

    def evaluate(self, seconds: float) -> Status:
        if self.critical is not None and seconds >= self.critical.total_seconds():
            return Status.CRITICAL
        if self.warning is not None and seconds >= self.warning.total_seconds():
            return Status.WARNING
        return Status.OK

    def evaluate_remaining(self, seconds: float) -> Status:
        if seconds <= 0 or (self.critical is not None and seconds <= self.critical.total_seconds()):
            return Status.CRITICAL
        if self.warning is not None and seconds <= self.warning.total_seconds():
            return Status.WARNING
        return Status.OK
