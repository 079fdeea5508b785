"""The check seam, on the agent's ground floor: what every layer shares about a check.

A check type (a module in the `checks` package) subclasses `Check`, declares
`type` (the YAML `type:`), `Config` (a pydantic model deriving `CheckConfig`)
and optionally `metric_families` for metrics beyond the common ones. Alerting,
metrics, the config loader and the scheduler speak these types; none of them
imports a concrete check type (they are found through `agent.registry`).
Expected failures (refused, timeout, expired, stale) are returned as results;
anything raised is turned into UNKNOWN by the runner (`agent.runner`).
"""

from __future__ import annotations

import abc
import asyncio
import builtins
import importlib.util
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Self

from pydantic import ConfigDict, Field, ValidationInfo, field_validator, model_validator

from agent import interning
from agent.core import CheckResult, Sample, Severity, Status
from agent.durations import Duration
from agent.secrets import SecretFields

if TYPE_CHECKING:
    from agent.context import CheckContext

NAME_PATTERN = r"^[a-z0-9][a-z0-9_.-]*$"
TAG_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
RESERVED_LABELS = {"check", "type", "name", "status", "window", "slo", "le", "quantile", "severity", "state"}


class Model(SecretFields):
    """Base of every config model: unknown keys are errors, values are frozen, `Secret` fields take `*_file`."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    #: whether an equal instance may stand for this one inside another while a config loads
    #: (`agent.interning`); a check's own config is unique (its name), so only its parts are shared
    share_whole: ClassVar[bool] = True

    @model_validator(mode="after")
    def _share_parts(self) -> Self:
        return interning.shared(self)


class AlertPolicy(Model):
    """When a failing check becomes an alert (see agent.alerting)."""

    after: int = Field(2, ge=1, description="consecutive failing results before the alert fires")
    resolve_after: int = Field(1, ge=1, description="consecutive passing results before it resolves")
    for_: Duration | None = Field(None, alias="for", description="fire after failing this long instead of `after` results")
    on_unknown: bool = Field(False, description="alert on UNKNOWN results too")
    enabled: bool = True


class SeverityMap(Model):
    warning: Severity = Severity.WARNING
    critical: Severity = Severity.CRITICAL


class CheckConfig(Model):
    """Keys every check accepts."""

    share_whole: ClassVar[bool] = False

    name: str = Field(pattern=NAME_PATTERN, max_length=128, description="unique name; [a-z0-9][a-z0-9_.-]*")
    type: str
    description: str | None = None
    interval: Duration | None = Field(None, description="how often it runs; defaults.interval if unset")
    cron: str | None = Field(None, description="5-field crontab schedule instead of an interval")
    timeout: Duration | None = Field(None, description="hard limit for one run; defaults.timeout if unset")
    labels: dict[str, str] = Field(default_factory=dict, description="extra labels on metrics and alerts")
    tags: list[str] = Field(default_factory=list, description="suites the check belongs to, e.g. [smoke, pre-deploy]; "
                            "`sre-agent check --tag smoke` runs them")
    severity: Severity | SeverityMap = Field(
        default_factory=SeverityMap,
        description="alert severity, or {warning: .., critical: ..}; default: WARNING results warning, "
                    "CRITICAL results critical")
    runbook: str | None = Field(None, description="runbook file (must exist; links join it to alerting.runbook_base_url) or URL")
    alert: AlertPolicy = Field(default_factory=AlertPolicy)
    depends_on: list[str] = Field(default_factory=list, description="checks whose failure suppresses this one's alerts")
    enabled: bool = True
    locations: int | None = Field(None, ge=1, le=100, description="run on this many replicas (in distinct "
                                  "agent.location where set); the result is their quorum")
    quorum: int | None = Field(None, ge=1, le=100, description="with locations: failing only when at least this many "
                               "locations fail (default: a majority)")

    @field_validator("quorum")
    @classmethod
    def _quorum(cls, v: int | None, info: ValidationInfo) -> int | None:
        if v is None:
            return v
        locations = info.data.get("locations")
        if locations is None:
            raise ValueError("quorum needs locations: N (the number of replicas that run the check)")
        if v > locations:
            raise ValueError(f"quorum must be at most locations ({locations}), got {v}")
        return v

    @property
    def quorum_needed(self) -> int:
        """Failing locations that make the check fail (1 for a check that runs in one place)."""
        if self.locations is None:
            return 1
        return self.quorum if self.quorum is not None else self.locations // 2 + 1

    @field_validator("severity", mode="before")
    @classmethod
    def _severity(cls, v: Any) -> Any:
        """One clear error instead of one per member of the `Severity | SeverityMap` union."""
        allowed = ", ".join(s.value for s in Severity)
        if isinstance(v, str) and v not in {s.value for s in Severity}:
            raise ValueError(f"invalid severity {v!r}; allowed: {allowed}, or a map {{warning: .., critical: ..}}")
        if isinstance(v, dict):
            for key, value in v.items():
                if key not in ("warning", "critical"):
                    raise ValueError(f"invalid key {key!r} in the severity map; allowed: warning, critical")
                if not isinstance(value, str | Severity) or value not in {s.value for s in Severity}:
                    raise ValueError(f"invalid severity {value!r} for {key} results; allowed: {allowed}")
        elif not isinstance(v, str | Severity | SeverityMap):
            raise ValueError(f"severity must be one of {allowed}, or a map {{warning: .., critical: ..}}")
        return v

    @field_validator("labels")
    @classmethod
    def _label_names(cls, v: dict[str, str]) -> dict[str, str]:
        for key in v:
            if not LABEL_NAME.match(key):
                raise ValueError(f"label name {key!r} is not a valid Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*)")
            if key in RESERVED_LABELS or key.startswith("__"):
                raise ValueError(f"label name {key!r} is reserved; reserved: {', '.join(sorted(RESERVED_LABELS))}")
        return v

    @field_validator("tags")
    @classmethod
    def _tags(cls, v: list[str]) -> list[str]:
        seen: set[str] = set()
        for tag in v:
            if not TAG_PATTERN.match(tag):
                raise ValueError(f"invalid tag {tag!r}: use letters, digits, '_', '.', '-' and start with a letter or digit")
            if tag in seen:
                raise ValueError(f"tag {tag!r} is listed twice")
            seen.add(tag)
        return v

    @field_validator("cron")
    @classmethod
    def _cron(cls, v: str | None, info: ValidationInfo) -> str | None:
        if v is not None:
            from apscheduler.triggers.cron import CronTrigger

            try:
                CronTrigger.from_crontab(v)
            except ValueError as exc:
                raise ValueError(f"invalid cron expression {v!r}: {exc}; expected 5 fields 'min hour dom month dow'") from None
            if info.data.get("interval") is not None:
                raise ValueError("set either interval or cron, not both")
        return v

    @field_validator("interval", "timeout")
    @classmethod
    def _positive(cls, v: timedelta | None, info: ValidationInfo) -> timedelta | None:
        # A field validator (not a model one) so the error names checks[N].timeout and its line.
        if v is not None and v <= timedelta(0):
            raise ValueError(f"{info.field_name} must be positive, e.g. 30s")
        return v

    def observation_thresholds(self) -> dict[str, dict[str, float]]:
        """Configured levels per observation name, in the observation's unit: `{"cpu_percent": {"warning": 70,
        "critical": 90}}`. Exported as `sre_agent_check_threshold{check,name,level}` so a dashboard draws the
        thresholds the config sets. A type overrides this for the observations it judges against a level."""
        return {}

    def severity_for(self, status: Status) -> Severity:
        if isinstance(self.severity, SeverityMap):
            return self.severity.warning if status == Status.WARNING else self.severity.critical
        return self.severity


@dataclass(frozen=True)
class MetricFamily:
    """A gauge (or a counter: its name ends in `_total`) a check type exports from its results' `samples`.

    A counter's samples carry the running total the check instance keeps.
    """

    documentation: str
    labelnames: tuple[str, ...] = ("check",)
    kind: Literal["gauge", "counter"] = "gauge"


class Check(abc.ABC):
    """Base of every check type. Override `run()`; return a `CheckResult`."""

    type: ClassVar[str]
    Config: ClassVar[builtins.type[CheckConfig]]
    metric_families: ClassVar[dict[str, MetricFamily]] = {}
    #: default runbooks (paths under the repository's runbooks/): "" for the type's own alert, other keys
    #: for narrower alert families (`host` + "disk"); a check's own `runbook:` wins (see agent.runbooks)
    runbooks: ClassVar[dict[str, str]] = {}
    #: status when the runner's timeout fires (network probes say CRITICAL)
    timeout_status: ClassVar[Status] = Status.UNKNOWN
    #: Python packages beyond the core install that every check of this type imports (top-level
    #: module -> the `sre-agent[extra]` installing it); the config loader refuses a check whose
    #: package is missing. Override `requirements()` when the need depends on the config.
    requires: ClassVar[dict[str, str]] = {}

    def __init__(self, config: CheckConfig, context: CheckContext) -> None:
        self.config = config
        self.context = context
        # Every attribute an instance will have is set here: one set later (a cache) makes the
        # instance a dict of its own, about 270 bytes more per check.
        self._thresholds: dict[str, dict[str, float]] | None = None

    @classmethod
    def requirements(cls, config: CheckConfig) -> dict[str, str]:
        """The optional packages one configured check needs (module -> extra); `requires` by default."""
        return dict(cls.requires)

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def thresholds(self) -> dict[str, dict[str, float]]:
        """`config.observation_thresholds()`, computed once: every result of this check carries the same."""
        found = self._thresholds
        if found is None:
            found = self._thresholds = self.config.observation_thresholds()
        return found

    @property
    def timeout(self) -> float:
        assert self.config.timeout is not None
        return self.config.timeout.total_seconds()

    @abc.abstractmethod
    async def run(self) -> CheckResult:
        """Probe once and return the result; expected failures are results, not exceptions."""

    async def close(self) -> None:  # noqa: B027 - an optional hook, not abstract
        """Release resources (sessions, pools) when the check is removed or the agent stops."""

    @classmethod  # noqa: B027 - an optional hook, not abstract
    async def close_shared(cls, context: CheckContext) -> None:
        """Release what a type shares across its checks (e.g. one HTTP session), at shutdown."""

    async def in_thread(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run a blocking call off the event loop (psutil, drivers, subprocess-free libs)."""
        return await asyncio.get_running_loop().run_in_executor(None, fn, *args)

    # Helpers for building results
    @staticmethod
    def result(status: Status, summary: str, observations: dict[str, float] | None = None, *,
               samples: list[Sample] | None = None, **details: Any) -> CheckResult:
        return CheckResult(status=status, summary=summary, observations=observations or {},
                           samples=samples or [], details=details)


def missing_packages(needs: dict[str, str]) -> dict[str, str]:
    """The entries of `needs` (module -> extra) whose module cannot be imported; nothing is imported."""
    out: dict[str, str] = {}
    for module, extra in needs.items():
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):  # a missing parent package, a broken sys.modules entry
            found = False
        if not found:
            out[module] = extra
    return out
