"""The types every layer speaks: check statuses, results and severities.

`CheckResult` is the one currency between checks, metrics, the store and
alerting. Checks and receivers both depend on this module, never on each other.
"""

from __future__ import annotations

import contextlib
import enum
import gc
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection inside: loading 10,000 checks allocates millions of objects
    that all stay alive, and the collector's passes over them cost a third of the start-up."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


class Status(enum.IntEnum):
    """Nagios plugin codes: also the exit codes of `sre-agent check`."""

    OK = 0
    WARNING = 1
    CRITICAL = 2
    UNKNOWN = 3

    @property
    def up(self) -> bool:
        return self in (Status.OK, Status.WARNING)

    @classmethod
    def worst(cls, statuses: list[Status] | tuple[Status, ...]) -> Status:
        """Worst for exit codes: CRITICAL beats UNKNOWN beats WARNING beats OK."""
        order = {cls.OK: 0, cls.WARNING: 1, cls.UNKNOWN: 2, cls.CRITICAL: 3}
        return max(statuses, key=order.__getitem__, default=cls.OK)


class Severity(enum.StrEnum):
    """Alert severity, ordered: info < warning < critical < emergency."""

    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"
    EMERGENCY = "emergency"

    @property
    def rank(self) -> int:
        return _SEVERITY_RANK[self]


_SEVERITY_RANK = {Severity.INFO: 0, Severity.WARNING: 1, Severity.CRITICAL: 2, Severity.EMERGENCY: 3}


@dataclass(frozen=True)
class Sample:
    """A value for a metric family a check type declares (see `Check.metric_families`).

    Used where a plain observation is not enough: `sre_agent_backup_age_seconds`,
    `sre_agent_slo_burn_rate{slo,window}`, `sre_agent_data_quality_ratio{...}`.
    """

    metric: str
    value: float
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)  # one per check is kept (its latest): no per-instance __dict__
class CheckResult:
    status: Status
    summary: str
    observations: dict[str, float] = field(default_factory=dict)
    duration_seconds: float = 0.0
    labels: dict[str, str] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    samples: list[Sample] = field(default_factory=list)
    #: configured levels per observation name, {"cpu_percent": {"warning": 70, "critical": 90}} (set by the runner)
    thresholds: dict[str, dict[str, float]] = field(default_factory=dict)
    check: str = ""
    type: str = ""
    timestamp: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "type": self.type,
            "status": self.status.name,
            "code": int(self.status),
            "summary": self.summary,
            "observations": dict(self.observations),
            "duration_seconds": round(self.duration_seconds, 6),
            "labels": dict(self.labels),
            "details": self.details,
            "timestamp": self.timestamp,
        }


class AlertState(enum.StrEnum):
    INACTIVE = "inactive"
    PENDING = "pending"
    FIRING = "firing"
    RESOLVED = "resolved"
    #: only in what one receiver is told: the alert still fires, but a change (of severity, usually)
    #: routed it to other receivers; `Alert.moved_to` says where. Never an alert record's state.
    MOVED = "moved"


@dataclass(frozen=True)
class Handoff:
    """An alert passing between receivers while it fires: escalated, de-escalated or rerouted.

    On the copy the old receiver gets (`Alert.moved_to`), `receivers` are the ones that have it
    now; on the first notification the new receiver gets (`Alert.moved_from`), the ones that had it.
    """

    direction: str  # "escalated" | "de-escalated" | "rerouted"
    severity: Severity  # the alert's severity after the move
    previous: Severity  # and before it
    receivers: tuple[str, ...]

    @classmethod
    def between(cls, previous: Severity, severity: Severity, receivers: tuple[str, ...]) -> Handoff:
        direction = "escalated" if severity.rank > previous.rank else \
            "de-escalated" if severity.rank < previous.rank else "rerouted"
        return cls(direction, severity, previous, receivers)

    def to_dict(self) -> dict[str, Any]:
        return {"direction": self.direction, "severity": self.severity.value, "previous": self.previous.value,
                "receivers": list(self.receivers)}

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> Handoff | None:
        if not d:
            return None
        return cls(d["direction"], Severity(d["severity"]), Severity(d["previous"]), tuple(d["receivers"]))


@dataclass
class Alert:
    """One alert: a check (or SLO window) failing, with an explicit state and a stable key.

    `dedup_key` is derived from the check name and alert family only, so the same
    alert keeps the same key across restarts (PagerDuty's dedup_key).
    """

    check: str
    type: str
    state: AlertState
    severity: Severity
    summary: str
    dedup_key: str
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    observations: dict[str, float] = field(default_factory=dict)
    runbook_url: str | None = None
    generator_url: str | None = None
    status: Status = Status.CRITICAL
    starts_at: float = 0.0
    ends_at: float | None = None
    suppressed_by: str | None = None
    moved_to: Handoff | None = None
    moved_from: Handoff | None = None

    @property
    def firing(self) -> bool:
        return self.state == AlertState.FIRING

    def to_dict(self) -> dict[str, Any]:
        return {
            "check": self.check, "type": self.type, "state": self.state.value, "severity": self.severity.value,
            "summary": self.summary, "dedup_key": self.dedup_key, "labels": dict(self.labels),
            "annotations": dict(self.annotations), "observations": dict(self.observations),
            "runbook_url": self.runbook_url, "generator_url": self.generator_url, "status": self.status.name,
            "starts_at": self.starts_at, "ends_at": self.ends_at, "suppressed_by": self.suppressed_by,
            "moved_to": self.moved_to.to_dict() if self.moved_to else None,
            "moved_from": self.moved_from.to_dict() if self.moved_from else None,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Alert:
        return cls(
            check=d["check"], type=d["type"], state=AlertState(d["state"]), severity=Severity(d["severity"]),
            summary=d["summary"], dedup_key=d["dedup_key"], labels=dict(d.get("labels", {})),
            annotations=dict(d.get("annotations", {})), observations=dict(d.get("observations", {})),
            runbook_url=d.get("runbook_url"), generator_url=d.get("generator_url"),
            status=Status[d.get("status", "CRITICAL")], starts_at=d.get("starts_at", 0.0), ends_at=d.get("ends_at"),
            suppressed_by=d.get("suppressed_by"), moved_to=Handoff.from_dict(d.get("moved_to")),
            moved_from=Handoff.from_dict(d.get("moved_from")),
        )
