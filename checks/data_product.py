"""Data products (data-mesh DataProduct documents) as checks, and the quality check type.

Domain teams describe what they publish in their own format:
`apiVersion/kind: DataProduct/metadata/spec` with an owner, a freshness SLO
and quality rules. The agent accepts those documents as written, in
`data_products:` or as bare documents in `include:` files, and turns each into
checks (`DataProductEntry.to_checks`):

* `<name>-freshness` (type `freshness`) from `spec.slo.freshness: "< 1 hour"`:
  error_after 1h, warn_after 80% of it;
* `<name>-quality` (type `data_product`, below) from `spec.quality`:
  completeness (non-null ratio of a column), uniqueness (distinct / non-null)
  against a percentage threshold, and row_count min/max.

Both carry the labels `domain` (metadata.namespace) and `owner` (spec.owner),
so an alert route with `match: {domain: sales-domain}` sends them to the
sales team. Quality metrics are computed in one SELECT over the table
(SQLAlchemy Core, identifiers quoted by the dialect) and exported as
sre_agent_data_quality_ratio{check,metric,column}.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import Field, WithJsonSchema, field_validator, model_validator

from agent import catalogue
from agent.core import CheckResult, Sample, Severity, Status
from agent.durations import Duration, format_duration
from agent.registry import RootConfig, Section, register_section
from checks._freshness_sources import (
    FreshnessError,
    FreshnessSource,
    SqlSource,
    sql_first_row,
    sql_requires,
    validate_column,
)
from checks._values import Percent, parse_slo_duration
from checks.base import NAME_PATTERN, Check, CheckConfig, MetricFamily, Model, SeverityMap, named_levels
from checks.freshness import FreshnessConfig

WARN_SHARE = 0.8


class Completeness(Model):
    metric: Literal["completeness"]
    column: str = Field(description="column whose non-null share is measured")
    threshold: Percent = Field(100.0, description="CRITICAL below this share of non-null values, e.g. 95%")

    @field_validator("column")
    @classmethod
    def _column(cls, v: str) -> str:
        return validate_column(v) or v


class Uniqueness(Model):
    metric: Literal["uniqueness"]
    column: str = Field(description="column whose distinct share of non-null values is measured")
    threshold: Percent = Field(100.0, description="CRITICAL below this share of distinct values")

    @field_validator("column")
    @classmethod
    def _column(cls, v: str) -> str:
        return validate_column(v) or v


class RowCount(Model):
    metric: Literal["row_count"]
    min: int | None = Field(None, ge=0, description="CRITICAL with fewer rows")
    max: int | None = Field(None, ge=0, description="CRITICAL with more rows")

    @model_validator(mode="after")
    def _bounds(self) -> RowCount:
        if self.min is None and self.max is None:
            raise ValueError("row_count needs min, max or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) must not be above max ({self.max})")
        return self


QualityRule = Annotated[Completeness | Uniqueness | RowCount, Field(discriminator="metric")]


class DataQualityConfig(CheckConfig):
    type: Literal["data_product"]
    source: SqlSource = Field(description="kind: sql with dsn and table")
    quality: list[QualityRule] = Field(min_length=1, description="completeness / uniqueness / row_count rules")

    def observation_thresholds(self) -> dict[str, dict[str, float]]:
        # row_count has a lower and an upper bound, which one level per name cannot say: not exported.
        return named_levels(**{f"{rule.metric}_{rule.column}_ratio": {"critical": round(rule.threshold / 100, 12)}
                               for rule in self.quality if isinstance(rule, Completeness | Uniqueness)})

    @model_validator(mode="after")
    def _table(self) -> DataQualityConfig:
        if not self.source.table:
            raise ValueError("quality rules need source.table (a query source cannot be measured)")
        return self


class DataQualityCheck(Check):
    type = "data_product"
    runbooks = {"": "runbooks/data-stale.md"}
    Config = DataQualityConfig
    metric_families = catalogue.families("sre_agent_data_quality_ratio", make=MetricFamily)

    config: DataQualityConfig

    @classmethod
    def requirements(cls, config: CheckConfig) -> dict[str, str]:
        source = getattr(config, "source", None)
        return sql_requires(source.dsn.get_secret_value()) if isinstance(source, SqlSource) else {"sqlalchemy": "sql"}

    def statement(self) -> Any:
        from sqlalchemy import column, distinct, func, select, table

        schema, _, name = (self.config.source.table or "").rpartition(".")
        parts = [func.count().label("rows")]
        for i, rule in enumerate(self.config.quality):
            if isinstance(rule, Completeness | Uniqueness):
                parts.append(func.count(column(rule.column)).label(f"nonnull_{i}"))
            if isinstance(rule, Uniqueness):
                parts.append(func.count(distinct(column(rule.column))).label(f"distinct_{i}"))
        return select(*parts).select_from(table(name, schema=schema or None))

    async def run(self) -> CheckResult:
        cfg = self.config
        loop = asyncio.get_running_loop()
        try:
            row = await loop.run_in_executor(None, sql_first_row, cfg.source.dsn.get_secret_value(), self.statement(),
                                             self.timeout)
        except FreshnessError as exc:
            return self.result(exc.status, exc.message, table=cfg.source.table)
        values = dict(row._mapping) if row is not None else {}
        rows = int(values.get("rows") or 0)
        problems: list[str] = []
        passed: list[str] = []
        observations: dict[str, float] = {"row_count": float(rows)}
        samples: list[Sample] = []
        for i, rule in enumerate(cfg.quality):
            if isinstance(rule, RowCount):
                if rule.min is not None and rows < rule.min:
                    problems.append(f"row_count {rows} < min {rule.min}")
                elif rule.max is not None and rows > rule.max:
                    problems.append(f"row_count {rows} > max {rule.max}")
                else:
                    passed.append(f"row_count {rows}")
                continue
            nonnull = int(values.get(f"nonnull_{i}") or 0)
            base = rows if isinstance(rule, Completeness) else nonnull
            label = f"{rule.metric}({rule.column})"
            if base == 0:
                problems.append(f"{label}: no data (no {'rows' if rows == 0 else 'non-null values'})")
                continue
            ratio = (nonnull if isinstance(rule, Completeness) else int(values.get(f"distinct_{i}") or 0)) / base
            observations[f"{rule.metric}_{rule.column}_ratio"] = round(ratio, 6)
            samples.append(Sample("sre_agent_data_quality_ratio", round(ratio, 6),
                                  {"metric": rule.metric, "column": rule.column}))
            if ratio * 100 < rule.threshold:
                problems.append(f"{label} {ratio:.1%} < {rule.threshold:g}%")
            else:
                passed.append(f"{label} {ratio:.1%}")
        table = cfg.source.table
        if problems:
            return self.result(Status.CRITICAL, f"{table}: " + "; ".join(problems), observations, samples=samples,
                               table=table, passed=passed)
        return self.result(Status.OK, f"{table}: " + ", ".join(passed), observations, samples=samples, table=table)


# --- the DataProduct document ---------------------------------------------------------

class DataProductMetadata(Model):
    name: str = Field(pattern=NAME_PATTERN, max_length=100, description="checks are named <name>-freshness / <name>-quality")
    namespace: str | None = Field(None, description="the domain; becomes the `domain` label")
    labels: dict[str, str] = Field(default_factory=dict, description="extra labels on the product's checks")
    annotations: dict[str, str] = Field(default_factory=dict, description="kept as written; not used by checks")


class DataProductSlo(Model):
    freshness: Annotated[timedelta | None, WithJsonSchema({"type": "string", "examples": ["< 1 hour", "< 30 minutes"]})] = \
        Field(None, description="'< 1 hour': CRITICAL when older, WARNING from 80% of it")

    @field_validator("freshness", mode="before")
    @classmethod
    def _freshness(cls, v: Any) -> Any:
        return parse_slo_duration(v) if v is not None else v


class DataProductSpec(Model):
    owner: str = Field(description="owning team (email or name); becomes the `owner` label")
    description: str | None = None
    slo: DataProductSlo = Field(default_factory=DataProductSlo)
    source: FreshnessSource = Field(description="where the data lives (sql with table + timestamp_column for both checks)")
    quality: list[QualityRule] = Field(default_factory=list, description="quality rules, checked on source.table")
    interval: Duration | None = Field(None, description="how often the product's checks run")
    timeout: Duration | None = None
    severity: Severity | SeverityMap = Field(default_factory=SeverityMap, description="severity of the product's alerts; "
                                              "default: WARNING results warning, CRITICAL results critical")
    runbook: str | None = None


class DataProductEntry(Model):
    """A DataProduct document, accepted as written."""

    apiVersion: str = Field(min_length=1, description="e.g. v1; kept as written")
    kind: Literal["DataProduct"]
    metadata: DataProductMetadata
    spec: DataProductSpec

    @model_validator(mode="after")
    def _checks(self) -> DataProductEntry:
        if self.spec.slo.freshness is None and not self.spec.quality:
            raise ValueError("a data product needs spec.slo.freshness or spec.quality (else there is nothing to check)")
        if self.spec.quality and not (isinstance(self.spec.source, SqlSource) and self.spec.source.table):
            raise ValueError("spec.quality needs spec.source of kind sql with a table")
        if self.spec.slo.freshness is not None and isinstance(self.spec.source, SqlSource) \
                and self.spec.source.query is None and not self.spec.source.timestamp_column:
            raise ValueError("spec.slo.freshness needs spec.source.timestamp_column (or a query)")
        self.to_checks(None)  # label names and the derived configs fail here, with this entry's path
        return self

    @property
    def labels(self) -> dict[str, str]:
        out = dict(self.metadata.labels)
        if self.metadata.namespace:
            out["domain"] = self.metadata.namespace
        out["owner"] = self.spec.owner
        return out

    def to_checks(self, config: RootConfig | None) -> list[CheckConfig]:
        spec, name = self.spec, self.metadata.name
        freshness_name, quality_name = derived_names(name)
        common: dict[str, Any] = {"labels": self.labels, "interval": spec.interval, "timeout": spec.timeout,
                                  "severity": spec.severity, "runbook": spec.runbook}
        out: list[CheckConfig] = []
        if spec.slo.freshness is not None:
            objective = spec.slo.freshness
            out.append(FreshnessConfig.model_validate({
                "name": freshness_name, "type": "freshness", "source": spec.source, "dataset": name,
                "error_after": objective, "warn_after": objective * WARN_SHARE,
                "description": f"data product {name}: freshness SLO < {format_duration(objective)}", **common}))
        if spec.quality:
            out.append(DataQualityConfig.model_validate({
                "name": quality_name, "type": "data_product", "source": spec.source, "quality": spec.quality,
                "description": f"data product {name}: quality", **common}))
        return out


def derived_names(product: str) -> tuple[str, str]:
    """Names of a data product's freshness and quality checks."""
    return f"{product}-freshness", f"{product}-quality"


def _to_checks(entry: DataProductEntry, config: RootConfig | None) -> list[CheckConfig]:
    return entry.to_checks(config)


def _check_names(raw: Any) -> dict[str, str]:
    """The checks a (possibly invalid) raw DataProduct may derive, by its metadata.name."""
    meta = raw.get("metadata") if isinstance(raw, dict) else None
    name = meta.get("name") if isinstance(meta, dict) else None
    if not isinstance(name, str):
        return {}
    freshness, quality = derived_names(name)
    return {freshness: "freshness", quality: "data_product"}


register_section(Section("data_products", DataProductEntry, to_checks=_to_checks, kind="DataProduct", order=30,
                         check_names=_check_names))
