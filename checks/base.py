"""What a plugin author needs, in one import: the seam's types and threshold helpers.

The seam itself (`Check`, `CheckConfig`, `AlertPolicy`, `MetricFamily`, ...)
lives on the agent's ground floor in `agent.check`; this module re-exports it
so a check module reads `from checks.base import Check, CheckConfig`, and adds
the threshold models several check types share.
"""

from __future__ import annotations

from datetime import timedelta

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
           "MetricFamily", "Model", "SeverityMap", "Thresholds", "age_levels", "named_levels"]


def named_levels(**levels: dict[str, float]) -> dict[str, dict[str, float]]:
    """A config's `observation_thresholds()`: the observations that have at least one level set."""
    return {name: value for name, value in levels.items() if value}


def age_levels(warning: timedelta | None, critical: timedelta | None) -> dict[str, float]:
    """WARNING / CRITICAL ages in seconds (warn_age / max_age, warn_after / error_after)."""
    return {level: value.total_seconds() for level, value in (("warning", warning), ("critical", critical))
            if value is not None}


class Thresholds(Model):
    """A value that is worse when higher: WARNING at `warning`, CRITICAL at `critical`."""

    warning: float | None = None
    critical: float | None = None

    def levels(self, scale: float = 1.0) -> dict[str, float]:
        """`{"warning": .., "critical": ..}` for the levels that are set, times `scale` (percent -> ratio: 0.01)."""
        return {level: round(value * scale, 12) for level, value in (("warning", self.warning),
                                                                     ("critical", self.critical)) if value is not None}

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

    def levels(self, unit: timedelta = timedelta(seconds=1)) -> dict[str, float]:
        """The levels that are set, in `unit`s (seconds by default; `timedelta(days=1)` for days left)."""
        return {level: value / unit for level, value in (("warning", self.warning), ("critical", self.critical))
                if value is not None}

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
