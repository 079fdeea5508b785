"""Data freshness: how long since the data was last updated? dbt's warn_after / error_after.

Pipelines break quietly: the table still answers queries, only its newest row
is from yesterday. This check reads "last updated" from the data's home (SQL
`max(updated_at)` or any query, the newest file, a Prometheus timestamp
metric, a JSON field over HTTP; see `_freshness_sources`) and compares its age
with `warn_after` (WARNING) and `error_after` (CRITICAL).

Status semantics fit SLOs: OK and WARNING count as "fresh" (up), CRITICAL as
stale, UNKNOWN as "could not tell". So an SLO with `sli.check: orders-fresh`
means "fresh (younger than error_after) N% of the time". A query that returns
NULL or no rows is CRITICAL "no data"; an answer that is not a timestamp is
UNKNOWN with the type found. A timestamp in the future counts as age 0 and is
flagged in details (clock skew between writer and agent).

Metric: sre_agent_data_freshness_seconds{check,dataset,domain}; `dataset` is
the `dataset:` key, else the table, else the check name; `domain` is the
check's `domain` label (data products set it from metadata.namespace).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import Field, model_validator

from agent import catalogue
from agent.core import CheckResult, Sample, Status
from agent.durations import Duration, format_duration, human
from checks._freshness_sources import (
    FileSource,
    FreshnessError,
    FreshnessSource,
    HttpSource,
    PrometheusTimestampSource,
    Reading,
    SqlSource,
    read_file,
    read_http,
    read_prometheus,
    read_sql,
    sql_requires,
)
from checks.base import Check, CheckConfig, MetricFamily, age_levels, named_levels


class FreshnessConfig(CheckConfig):
    type: Literal["freshness"]
    source: FreshnessSource = Field(description="where the last update time is read: sql, file, prometheus or http")
    warn_after: Duration | None = Field(None, description="WARNING when the data is older than this")
    error_after: Duration | None = Field(None, description="CRITICAL when the data is older than this")
    dataset: str | None = Field(None, description="dataset label on the metric; default: the table or the check name")

    @model_validator(mode="after")
    def _thresholds(self) -> FreshnessConfig:
        if self.warn_after is None and self.error_after is None:
            raise ValueError("set warn_after, error_after or both")
        for name in ("warn_after", "error_after"):
            value = getattr(self, name)
            if value is not None and value <= timedelta(0):
                raise ValueError(f"{name} must be positive")
        if self.warn_after is not None and self.error_after is not None and self.warn_after >= self.error_after:
            raise ValueError(f"warn_after ({format_duration(self.warn_after)}) must be shorter than "
                             f"error_after ({format_duration(self.error_after)})")
        return self

    def observation_thresholds(self) -> dict[str, dict[str, float]]:
        return named_levels(age_seconds=age_levels(self.warn_after, self.error_after))

    @property
    def dataset_name(self) -> str:
        if self.dataset:
            return self.dataset
        if isinstance(self.source, SqlSource) and self.source.table:
            return self.source.table
        return self.name


class FreshnessCheck(Check):
    type = "freshness"
    runbooks = {"": "runbooks/data-stale.md"}
    Config = FreshnessConfig
    metric_families = catalogue.families("sre_agent_data_freshness_seconds", make=MetricFamily)

    config: FreshnessConfig

    @classmethod
    def requirements(cls, config: CheckConfig) -> dict[str, str]:
        source = getattr(config, "source", None)
        return sql_requires(source.dsn.get_secret_value()) if isinstance(source, SqlSource) else {}

    def __init__(self, config: CheckConfig, context: Any) -> None:
        super().__init__(config, context)
        #: wall clock; tests replace it to move time without sleeping
        self.clock: Callable[[], float] = time.time

    async def read(self) -> Reading:
        src = self.config.source
        loop = asyncio.get_running_loop()
        if isinstance(src, SqlSource):
            return await loop.run_in_executor(None, read_sql, src, self.timeout)  # type: ignore[no-any-return]
        if isinstance(src, FileSource):
            return await loop.run_in_executor(None, read_file, src)  # type: ignore[no-any-return]
        if isinstance(src, PrometheusTimestampSource):
            return await read_prometheus(src, self.context.prometheus_url, self.timeout)
        assert isinstance(src, HttpSource)
        return await read_http(src, self.timeout)

    async def run(self) -> CheckResult:
        cfg = self.config
        labels = {"dataset": cfg.dataset_name, "domain": cfg.labels.get("domain", "")}
        try:
            reading = await self.read()
        except FreshnessError as exc:
            return self.result(exc.status, exc.message, source=cfg.source.kind, dataset=cfg.dataset_name, **exc.details)
        raw_age = self.clock() - reading.timestamp
        age = max(0.0, raw_age)
        status, limit = Status.OK, None
        if cfg.error_after is not None and age >= cfg.error_after.total_seconds():
            status, limit = Status.CRITICAL, f"error_after {format_duration(cfg.error_after)}"
        elif cfg.warn_after is not None and age >= cfg.warn_after.total_seconds():
            status, limit = Status.WARNING, f"warn_after {format_duration(cfg.warn_after)}"
        when = datetime.fromtimestamp(reading.timestamp, UTC).isoformat(timespec="seconds")
        summary = f"{cfg.dataset_name} last updated {human(age)} ago ({when})"
        if limit:
            summary += f": older than {limit}"
        return self.result(
            status, summary, {"age_seconds": round(age, 3), "last_update_timestamp_seconds": reading.timestamp},
            samples=[Sample("sre_agent_data_freshness_seconds", round(age, 3), labels)],
            source=cfg.source.kind, dataset=cfg.dataset_name, read=reading.description, last_update=when,
            in_future=raw_age < 0)
