"""OpenSLO `kind: SLO` documents (apiVersion openslo/v1), converted to the internal `SloSpec`.

Teams that already write OpenSLO keep their files: an included file holding a
`kind: SLO` document lands in `slos:` and is read here. Only what sre-agent can
evaluate is accepted (a Prometheus `ratioMetric`, one rolling time window, one
objective, `Occurrences` budgeting); anything else is refused with the field
that holds it, rather than silently ignored. Agent-specific settings ride in
`metadata.annotations` under `sre-agent/` keys.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from agent.check import NAME_PATTERN, CheckConfig, Model
from agent.durations import Duration, parse_duration
from agent.registry import RootConfig
from agent.slo.spec import WINDOW_PLACEHOLDER, EventsSli, PrometheusSource, Sli, SloSpec, check_label_names

ANNOTATIONS = {
    "sre-agent/runbook": "runbook path or URL",
    "sre-agent/interval": "evaluation schedule, e.g. 1m",
    "sre-agent/min-events": "events per window below which the window has no data",
    "sre-agent/prometheus-url": "Prometheus for this SLO (default agent.prometheus_url)",
}
#: internal SloSpec field -> where it comes from in the OpenSLO document
_FIELDS = {"name": "metadata.name", "labels": "metadata.labels", "service": "spec.service",
           "objective": "spec.objectives[0]", "window": "spec.timeWindow[0].duration",
           "interval": "metadata.annotations.sre-agent/interval", "prometheus": "metadata.annotations.sre-agent/prometheus-url"}
_SELECTOR = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*(\{.*\})?$", re.S)


class Metadata(Model):
    name: str = Field(pattern=NAME_PATTERN, max_length=100)
    displayName: str | None = None
    labels: dict[str, str | list[str]] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)

    @field_validator("labels")
    @classmethod
    def _labels(cls, v: dict[str, str | list[str]]) -> dict[str, str | list[str]]:
        return check_label_names(v)

    @field_validator("annotations")
    @classmethod
    def _annotations(cls, v: dict[str, str]) -> dict[str, str]:
        for key, value in v.items():
            if not key.startswith("sre-agent/"):
                continue
            if key not in ANNOTATIONS:
                raise ValueError(f"unknown annotation {key!r}; sre-agent reads: {', '.join(sorted(ANNOTATIONS))}")
            if key == "sre-agent/interval":
                parse_duration(value)
            if key == "sre-agent/min-events" and not (value.isdigit() and int(value) >= 1):
                raise ValueError(f"annotation sre-agent/min-events must be a whole number >= 1, got {value!r}")
        return v


class PrometheusQuery(Model):
    query: str = Field(min_length=1)


class MetricSource(Model):
    metricSourceRef: str | None = None
    type: str
    spec: PrometheusQuery

    @field_validator("type")
    @classmethod
    def _type(cls, v: str) -> str:
        if v.lower() != "prometheus":
            raise ValueError(f"metric source type {v!r} is not supported; sre-agent reads type: Prometheus")
        return v


class MetricRef(Model):
    metricSource: MetricSource


class RatioMetric(Model):
    counter: bool
    good: MetricRef | None = None
    bad: MetricRef | None = None
    total: MetricRef

    @model_validator(mode="after")
    def _good_or_bad(self) -> RatioMetric:
        if (self.good is None) == (self.bad is None):
            raise ValueError("set exactly one of good, bad (with total)")
        for part in ("good", "bad", "total"):
            ref = getattr(self, part)
            if ref is not None:
                _windowed(ref.metricSource.spec.query, self.counter, part)
        return self

    def queries(self) -> tuple[str, str]:
        """(error, total) query templates, each with `{{window}}`; error = total - good."""
        total = _windowed(self.total.metricSource.spec.query, self.counter, "total")
        if self.bad is not None:
            return _windowed(self.bad.metricSource.spec.query, self.counter, "bad"), total
        assert self.good is not None
        good = _windowed(self.good.metricSource.spec.query, self.counter, "good")
        return f"({total}) - ({good})", total


def _windowed(query: str, counter: bool, part: str) -> str:
    query = query.strip()
    if WINDOW_PLACEHOLDER in query:
        return query
    if counter and _SELECTOR.match(query):
        return f"sum(rate({query}[{WINDOW_PLACEHOLDER}]))"
    raise ValueError(f"{part}.metricSource.spec.query: with counter: true give a metric selector such as "
                     f"http_requests_total{{code!~\"5..\"}}, otherwise a query containing {WINDOW_PLACEHOLDER}; "
                     f"got {query!r}")


class IndicatorSpec(Model):
    ratioMetric: RatioMetric | None = None
    thresholdMetric: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _ratio(self) -> IndicatorSpec:
        if self.thresholdMetric is not None or self.ratioMetric is None:
            raise ValueError("only ratioMetric indicators are supported (thresholdMetric is not)")
        return self


class IndicatorMetadata(Model):
    name: str | None = None
    displayName: str | None = None


class Indicator(Model):
    metadata: IndicatorMetadata | None = None
    spec: IndicatorSpec


class TimeWindow(Model):
    duration: Duration
    isRolling: bool = True
    calendar: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _rolling(self) -> TimeWindow:
        if not self.isRolling or self.calendar is not None:
            raise ValueError("calendar time windows are not supported; use isRolling: true with a duration such as 30d")
        return self


class Objective(Model):
    displayName: str | None = None
    target: float | None = Field(None, description="ratio, 0 < target < 1, e.g. 0.999")
    targetPercent: float | None = Field(None, description="percent, 0 < targetPercent < 100")

    @model_validator(mode="after")
    def _target(self) -> Objective:
        if (self.target is None) == (self.targetPercent is None):
            raise ValueError("set exactly one of target (e.g. 0.999) or targetPercent (e.g. 99.9)")
        if self.target is not None and not 0 < self.target < 1:
            raise ValueError(f"target is a ratio between 0 and 1 (exclusive), e.g. 0.999; got {self.target}")
        if self.targetPercent is not None and not 0 < self.targetPercent < 100:
            raise ValueError(f"targetPercent must be between 0 and 100 (exclusive), got {self.targetPercent}")
        return self

    @property
    def percent(self) -> float:
        return round(self.target * 100, 10) if self.target is not None else float(self.targetPercent or 0)


class OpenSloSpec(Model):
    description: str | None = None
    service: str = Field(min_length=1)
    indicator: Indicator | None = None
    indicatorRef: str | None = None
    timeWindow: list[TimeWindow] = Field(min_length=1, max_length=1)
    budgetingMethod: Literal["Occurrences"] = "Occurrences"
    objectives: list[Objective] = Field(min_length=1, max_length=1)
    alertPolicies: list[Any] = Field(default_factory=list)

    @model_validator(mode="after")
    def _supported(self) -> OpenSloSpec:
        if self.indicator is None:
            raise ValueError("an inline indicator is required (indicatorRef is not supported)")
        if self.alertPolicies:
            raise ValueError("alertPolicies are not supported: sre-agent alerts from the multiwindow burn-rate table")
        return self


class OpenSloDocument(Model):
    apiVersion: Literal["openslo/v1"]
    kind: Literal["SLO"]
    metadata: Metadata
    spec: OpenSloSpec

    @model_validator(mode="after")
    def _converts(self) -> OpenSloDocument:
        try:
            self.to_spec()
        except ValidationError as exc:  # name the OpenSLO field, not the internal one
            raise ValueError("; ".join(f"{_FIELDS.get(str(e['loc'][0]), str(e['loc'][0])) if e['loc'] else 'spec'}: "
                                       f"{str(e['msg']).removeprefix('Value error, ')}"
                                       for e in exc.errors(include_url=False))) from None
        return self

    def to_spec(self) -> SloSpec:
        spec, notes = self.spec, self.metadata.annotations
        assert spec.indicator is not None and spec.indicator.spec.ratioMetric is not None
        error_query, total_query = spec.indicator.spec.ratioMetric.queries()
        labels = {k: ",".join(v) if isinstance(v, list) else v for k, v in self.metadata.labels.items()}
        url = notes.get("sre-agent/prometheus-url")
        return SloSpec(
            name=self.metadata.name, service=spec.service,
            description=spec.description or self.metadata.displayName,
            objective=spec.objectives[0].percent, window=spec.timeWindow[0].duration, labels=labels,
            runbook=notes.get("sre-agent/runbook"),
            interval=parse_duration(notes.get("sre-agent/interval", "1m")),
            **({"min_events": int(notes["sre-agent/min-events"])} if "sre-agent/min-events" in notes else {}),
            sli=Sli(events=EventsSli(error_query=error_query, total_query=total_query)),
            prometheus=PrometheusSource(url=url, timeout=timedelta(seconds=10)) if url else None,
        )

    @property
    def name(self) -> str:
        return self.metadata.name

    def to_checks(self, config: RootConfig | None) -> list[CheckConfig]:
        return self.to_spec().to_checks(config)

    def semantic_issues(self, config: RootConfig) -> list[tuple[tuple[Any, ...], str]]:
        out = []
        for _, message in self.to_spec().semantic_issues(config):
            out.append((("metadata", "annotations"), message.replace(
                "set prometheus.url here", "set the annotation sre-agent/prometheus-url")))
        return out
