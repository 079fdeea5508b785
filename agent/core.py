"""The types every layer speaks: check statuses, results and severities.

`CheckResult` is the one currency between checks, metrics, the store and
alerting. Checks and receivers both depend on this module, never on each other.
"""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field
from typing import Any


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


class Severity(str, enum.Enum):
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


@dataclass
class CheckResult:
    status: Status
    summary: str
    observations: dict[str, float] = field(default_factory=dict)
    duration_seconds: float = 0.0
    labels: dict[str, str] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    samples: list[Sample] = field(default_factory=list)
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
