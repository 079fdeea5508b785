"""The internal SLO spec (what `slos:` entries say) and the `slo` check config built from it.

Both the native entry and an OpenSLO document end up as one `SloSpec`; the
scheduler never sees SLOs, only `slo` checks (`SloCheckConfig`), one per SLO,
so one SLO failing to evaluate never stops another.
"""

from __future__ import annotations

import difflib
import re
from datetime import timedelta
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from agent.check import (
    LABEL_NAME,
    NAME_PATTERN,
    RESERVED_LABELS,
    AlertPolicy,
    CheckConfig,
    Model,
    SeverityMap,
)
from agent.core import Severity
from agent.durations import Duration, format_duration
from agent.registry import RootConfig
from agent.secrets import Secret
from agent.slo.windows import default_min_events

WINDOW_PLACEHOLDER = "{{window}}"
MIN_WINDOW = timedelta(days=1)
MAX_WINDOW = timedelta(days=365)
_METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_SELECTOR = re.compile(r"^\{.*\}$", re.S)
#: slack on top of the window so the store keeps the oldest results the SLO reads
HISTORY_MARGIN = timedelta(hours=1)


def check_label_names(labels: dict[str, Any]) -> dict[str, Any]:
    """SLO labels go on metrics, rules and alerts: Prometheus names, none the agent sets itself."""
    reserved = RESERVED_LABELS | {"service", "long_window", "short_window"}
    for key in labels:
        if not LABEL_NAME.match(key):
            raise ValueError(f"label name {key!r} is not a valid Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*)")
        if key in reserved or key.startswith("__"):
            raise ValueError(f"label name {key!r} is reserved (set the service with `service:`); "
                             f"reserved: {', '.join(sorted(reserved))}")
    return labels


class PrometheusSource(Model):
    url: str = Field(description="base URL of the Prometheus HTTP API, e.g. http://127.0.0.1:9090")
    timeout: Duration = Field(timedelta(seconds=10), description="per-query timeout")
    bearer_token: Secret | None = Field(None, description="sent as Authorization: Bearer (or bearer_token_file)")

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not re.match(r"^https?://[^/\s]+", v):
            raise ValueError(f"url must start with http:// or https:// and name a host, got {v!r}")
        return v.rstrip("/")

    @field_validator("timeout")
    @classmethod
    def _timeout(cls, v: timedelta) -> timedelta:
        if v <= timedelta(0):
            raise ValueError("timeout must be positive")
        return v


def unbalanced(query: str) -> str | None:
    """The first unbalanced (), [] or {} outside string literals, as a message; None if balanced."""
    pairs = {")": "(", "]": "[", "}": "{"}
    stack: list[tuple[str, int]] = []
    quote: str | None = None
    escaped = False
    for i, ch in enumerate(query):
        if quote:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == quote:
                quote = None
        elif ch in "\"'`":
            quote = ch
        elif ch in "([{":
            stack.append((ch, i))
        elif ch in pairs:
            if not stack or stack[-1][0] != pairs[ch]:
                return f"unexpected {ch!r} at position {i}"
            stack.pop()
    if quote:
        return f"unclosed string literal ({quote})"
    if stack:
        ch, i = stack[-1]
        return f"unclosed {ch!r} at position {i}"
    return None


class EventsSli(Model):
    """Sloth's `events`: two queries returning per-second rates; `{{window}}` is the range."""

    error_query: str = Field(description="rate of bad events, e.g. sum(rate(x{code=~\"5..\"}[{{window}}]))")
    total_query: str = Field(description="rate of all events, e.g. sum(rate(x[{{window}}]))")

    @field_validator("error_query", "total_query")
    @classmethod
    def _windowed(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("query must not be empty")
        if WINDOW_PLACEHOLDER not in v:
            raise ValueError(f"query must contain {WINDOW_PLACEHOLDER} where the range goes, e.g. rate(x[{WINDOW_PLACEHOLDER}])")
        problem = unbalanced(v)
        if problem:
            raise ValueError(f"query is not valid PromQL: {problem}")
        return v.strip()


class LatencySli(Model):
    """Good events are requests faster than `threshold`: the histogram bucket `le=threshold`."""

    histogram: str = Field(description="histogram metric name without _bucket/_count, e.g. http_request_duration_seconds")
    threshold: float = Field(gt=0, description="seconds; must be one of the histogram's bucket bounds (le)")
    selector: str = Field("", description="label matchers in braces, e.g. '{job=\"api\"}'")

    @field_validator("histogram")
    @classmethod
    def _metric(cls, v: str) -> str:
        v = v.strip().removesuffix("_bucket")
        if not _METRIC_NAME.match(v):
            raise ValueError(f"histogram must be a metric name ([a-zA-Z_:][a-zA-Z0-9_:]*), got {v!r}")
        return v

    @field_validator("selector")
    @classmethod
    def _selector(cls, v: str) -> str:
        v = v.strip()
        if v and not _SELECTOR.match(v):
            raise ValueError(f"selector must be label matchers in braces such as {{job=\"api\"}}, got {v!r}")
        return v


class Sli(Model):
    """Exactly one of `events`, `latency` or `check`."""

    events: EventsSli | None = None
    latency: LatencySli | None = None
    check: str | None = Field(None, description="name of an agent check: SLI = OK|WARNING results / all results")

    @model_validator(mode="after")
    def _one(self) -> Sli:
        chosen = [k for k in ("events", "latency", "check") if getattr(self, k) is not None]
        if len(chosen) != 1:
            raise ValueError("set exactly one of events, latency, check" + (f"; got {', '.join(chosen)}" if chosen else ""))
        return self

    @property
    def kind(self) -> Literal["events", "latency", "check"]:
        return "events" if self.events else "latency" if self.latency else "check"


def _default_min_events(data: dict[str, Any]) -> int:
    objective = data.get("objective")
    if not isinstance(objective, float | int) or not 0 < objective < 100:
        return 1  # the objective is invalid and reported as such
    return default_min_events(round(objective / 100.0, 12))


class SloSpec(Model):
    name: str = Field(pattern=NAME_PATTERN, max_length=100, description="unique SLO name; [a-z0-9][a-z0-9_.-]*")
    service: str = Field(min_length=1, description="the service the SLO is about (label `service`)")
    description: str | None = None
    objective: float = Field(description="target in percent, 0 < objective < 100, e.g. 99.9")
    window: Duration = Field(timedelta(days=30), description="rolling window, e.g. 30d, 28d, 7d")
    labels: dict[str, str] = Field(default_factory=dict, description="extra labels on metrics, rules and alerts")
    runbook: str | None = Field(None, description="runbook file (must exist; links join it to alerting.runbook_base_url) or URL")
    interval: Duration = Field(timedelta(minutes=1), description="how often the agent evaluates the SLO "
                                                                 "(its generated rule groups: at most every 30s)")
    min_events: int = Field(default_factory=lambda data: _default_min_events(data), ge=1,
                            description="fewer events than this in a window means no data there, not a breach; "
                                        "default: enough that one bad event alone cannot page "
                                        "(1 / (14.4 x error budget): 70 at 99.9%, 14 at 99.5%, 7 at 99%)")
    sli: Sli
    prometheus: PrometheusSource | None = Field(None, description="defaults to agent.prometheus_url")

    @field_validator("objective", mode="before")
    @classmethod
    def _objective_text(cls, v: Any) -> Any:
        """`99.9` or `"99.9%"`; other text is refused with what is allowed."""
        if isinstance(v, str):
            text = v.strip().removesuffix("%").strip()
            try:
                return float(text)
            except ValueError:
                raise ValueError(f"objective is a percentage such as 99.9 or \"99.9%\"; got {v!r}") from None
        return v

    @field_validator("objective")
    @classmethod
    def _objective(cls, v: float) -> float:
        if not 0 < v < 100:
            raise ValueError(f"objective is a percentage and must be between 0 and 100 (exclusive), e.g. 99.9; got {v}")
        return v

    @field_validator("window")
    @classmethod
    def _window(cls, v: timedelta) -> timedelta:
        if not MIN_WINDOW <= v <= MAX_WINDOW:
            raise ValueError(f"window must be between 1d and 365d (e.g. 30d, 28d, 7d), got {format_duration(v)}")
        if v.total_seconds() % 60:
            raise ValueError("window must be a whole number of minutes")
        return v

    @field_validator("interval")
    @classmethod
    def _interval(cls, v: timedelta) -> timedelta:
        if v < timedelta(seconds=1):
            raise ValueError("interval must be at least 1s")
        return v

    @field_validator("labels")
    @classmethod
    def _labels(cls, v: dict[str, str]) -> dict[str, str]:
        return check_label_names(v)

    @property
    def objective_ratio(self) -> float:
        return round(self.objective / 100.0, 12)

    @property
    def check_name(self) -> str:
        return self.check_name_for(self.name)

    @staticmethod
    def check_name_for(slo_name: str) -> str:
        """The name of the `slo` check evaluating the SLO `slo_name`."""
        return f"slo-{slo_name}"

    @property
    def all_labels(self) -> dict[str, str]:
        return {**self.labels, "service": self.service}

    def prometheus_url(self, config: RootConfig | None) -> str | None:
        if self.prometheus is not None:
            return self.prometheus.url
        agent = getattr(config, "agent", None)
        url = getattr(agent, "prometheus_url", None)
        return url.rstrip("/") if url else None

    def to_spec(self) -> SloSpec:
        return self

    def to_checks(self, config: RootConfig | None) -> list[CheckConfig]:
        timeout = None
        if self.sli.kind != "check":
            per_query = self.prometheus.timeout if self.prometheus else timedelta(seconds=10)
            timeout = per_query + timedelta(seconds=5)
        return [SloCheckConfig(
            name=self.check_name, type="slo", description=self.description or f"SLO {self.name} of {self.service}",
            interval=self.interval, timeout=timeout, labels=self.all_labels, runbook=self.runbook,
            severity=SeverityMap(warning=Severity.WARNING, critical=Severity.CRITICAL),
            alert=AlertPolicy(after=1, resolve_after=1), slo=self, prometheus_url=self.prometheus_url(config),
        )]

    def semantic_issues(self, config: RootConfig) -> list[tuple[tuple[Any, ...], str]]:
        """Cross-section problems: the probe check of `sli.check`, a Prometheus to ask."""
        out: list[tuple[tuple[Any, ...], str]] = []
        if self.sli.check is not None:
            names = [c.name for c in config.all_checks() if c.type != "slo"]
            if self.sli.check not in names:
                hint = difflib.get_close_matches(self.sli.check, names, n=1)
                out.append((("sli", "check"), f"unknown check {self.sli.check!r}"
                            + (f"; did you mean {hint[0]!r}?" if hint else "")
                            + (f" (checks: {', '.join(sorted(names))})" if 0 < len(names) <= 10 else "")
                            + ("" if names else " (no checks are configured)")))
        elif self.prometheus_url(config) is None:
            out.append((("prometheus",), f"the {self.sli.kind} SLI needs a Prometheus: set prometheus.url here "
                                         "or agent.prometheus_url"))
        return out


class SloCheckConfig(CheckConfig):
    """The `slo` check: one SLO, evaluated on its own schedule (built by `SloSpec.to_checks`)."""

    type: Literal["slo"]
    slo: SloSpec
    prometheus_url: str | None = Field(None, description="resolved Prometheus URL for events/latency SLIs")

    def history_needs(self) -> dict[str, float]:
        """An SLO over probe history needs the probe's results for its whole window."""
        if self.slo.sli.check is None:
            return {}
        return {self.slo.sli.check: (self.slo.window + HISTORY_MARGIN).total_seconds()}
