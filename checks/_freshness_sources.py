"""Where "when was this data last updated?" is answered: SQL, files, Prometheus, HTTP.

Each source returns one point in time (Unix seconds) or raises
`FreshnessError` with the status to report: CRITICAL when the data's home is
unreachable or says nothing ("no data"), UNKNOWN when we cannot tell (the
answer is not a timestamp, or Prometheus itself is down). SQL runs through
SQLAlchemy Core in a thread (PostgreSQL via psycopg: `postgresql://` DSNs are
mapped to `postgresql+psycopg://`; SQLite built in; other databases by URL),
with connect and statement timeouts where the driver has them. Naive
timestamps are UTC unless the source names a `timezone`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, field_validator, model_validator

from agent.core import Status
from agent.secrets import Secret, SecretHeaders, dsn_rule, redact
from checks._values import EpochUnit, NotATimestamp, timezone_named, to_epoch
from checks.base import Model

FRESHNESS_KINDS = ("sql", "file", "prometheus", "http")
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*$")
_JSON_PATH = re.compile(r"^\$?\.?([A-Za-z0-9_-]+|\[\d+\])((\.[A-Za-z0-9_-]+)|(\[\d+\]))*$")


class FreshnessError(Exception):
    def __init__(self, status: Status, message: str, **details: Any) -> None:
        super().__init__(message)
        self.status = status
        self.message = redact(message)
        self.details = details


@dataclass
class Reading:
    timestamp: float
    description: str  # what was read, for the summary (no secrets)


DatabaseUrl = Annotated[Secret, dsn_rule("a database URL such as postgresql://user@host:5432/db or sqlite:///path/to.db")]


def validate_table(v: str | None) -> str | None:
    if v is not None and not all(IDENTIFIER.match(part) for part in v.split(".", 1)):
        raise ValueError(f"invalid table {v!r}: use an identifier such as orders or schema.orders "
                         "(letters, digits, _; not starting with a digit)")
    return v


def validate_column(v: str | None) -> str | None:
    if v is not None and not IDENTIFIER.match(v):
        raise ValueError(f"invalid column {v!r}: use an identifier (letters, digits, _; not starting with a digit)")
    return v


class SqlSource(Model):
    kind: Literal["sql"]
    dsn: DatabaseUrl = Field(description="database URL, e.g. ${ORDERS_DSN} (or dsn_file)")
    query: str | None = Field(None, description="SQL returning the last update time (first column, first row)")
    table: str | None = Field(None, description="instead of query: table (or schema.table) ...")
    timestamp_column: str | None = Field(None, description="... and its timestamp column: max(column) is read")
    timezone: str | None = Field(None, description="IANA zone for naive timestamps (default UTC)")
    epoch_unit: EpochUnit = Field("s", description="unit of numeric results: s, ms, us or ns")

    @field_validator("table")
    @classmethod
    def _table(cls, v: str | None) -> str | None:
        return validate_table(v)

    @field_validator("timestamp_column")
    @classmethod
    def _column(cls, v: str | None) -> str | None:
        return validate_column(v)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, v: str | None) -> str | None:
        timezone_named(v)
        return v

    @model_validator(mode="after")
    def _what(self) -> SqlSource:
        if self.query is not None and (self.table or self.timestamp_column):
            raise ValueError("set either query or table + timestamp_column, not both")
        if self.query is None and not (self.table and self.timestamp_column):
            raise ValueError("set query, or both table and timestamp_column")
        if self.query is not None and not self.query.strip():
            raise ValueError("query must not be empty")
        return self


class FileSource(Model):
    kind: Literal["file"]
    path: str = Field(description="a file, or the directory the pattern is matched under")
    pattern: str | None = Field(None, description="glob relative to path, e.g. '*.parquet'")

    @field_validator("pattern")
    @classmethod
    def _pattern(cls, v: str | None) -> str | None:
        if v is not None and (not v.strip() or v.startswith("/")):
            raise ValueError(f"pattern must be a glob relative to path, such as '*.parquet', got {v!r}")
        return v


class PrometheusTimestampSource(Model):
    kind: Literal["prometheus"]
    query: str = Field(description="PromQL returning a Unix timestamp, e.g. max(last_success_timestamp_seconds)")
    url: str | None = Field(None, description="Prometheus base URL; agent.prometheus_url if unset")
    bearer_token: Secret | None = Field(None, description="or bearer_token_file")
    verify_tls: bool = True


class HttpSource(Model):
    kind: Literal["http"]
    url: str = Field(description="URL answering JSON")
    json_path: str = Field(description="field holding the time, e.g. data.last_updated or items[0].ts")
    headers: SecretHeaders = Field(default_factory=dict, description="request headers (values are secret)")
    timezone: str | None = Field(None, description="IANA zone for naive ISO 8601 times (default UTC)")
    epoch_unit: EpochUnit = "s"
    verify_tls: bool = True

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError(f"url must start with http:// or https://, got {v!r}")
        return v

    @field_validator("json_path")
    @classmethod
    def _path(cls, v: str) -> str:
        if not _JSON_PATH.match(v):
            raise ValueError(f"invalid json_path {v!r}: use dotted keys with [index], e.g. data.last_updated or items[0].ts")
        return v

    @field_validator("timezone")
    @classmethod
    def _zone(cls, v: str | None) -> str | None:
        timezone_named(v)
        return v


def _known_kind(v: Any) -> Any:
    if isinstance(v, Model):
        return v
    if not isinstance(v, dict) or v.get("kind") not in FRESHNESS_KINDS:
        kind = v.get("kind") if isinstance(v, dict) else None
        what = f"unknown source kind {kind!r}" if kind is not None else "source needs a kind"
        raise ValueError(f"{what}; allowed kinds: {', '.join(FRESHNESS_KINDS)}")
    return v


FreshnessSource = Annotated[
    SqlSource | FileSource | PrometheusTimestampSource | HttpSource,
    BeforeValidator(_known_kind),
    Field(discriminator="kind"),
]


# --- SQL ------------------------------------------------------------------------------

def sqlalchemy_url(dsn: str) -> str:
    for prefix in ("postgresql://", "postgres://"):
        if dsn.startswith(prefix):
            return "postgresql+psycopg://" + dsn[len(prefix):]
    return dsn


def sql_requires(dsn: str) -> dict[str, str]:
    """Optional packages reading `dsn` needs (module -> extra): SQLAlchemy, and psycopg for PostgreSQL."""
    needs = {"sqlalchemy": "sql"}
    if sqlalchemy_url(dsn).startswith("postgresql+psycopg"):
        needs["psycopg"] = "sql"
    return needs


def make_engine(dsn: str, limit: float) -> Any:
    """A SQLAlchemy engine without pooling (one connection per run) with driver timeouts."""
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    url = sqlalchemy_url(dsn)
    args: dict[str, Any] = {}
    if url.startswith("postgresql+psycopg"):
        args = {"connect_timeout": max(1, int(limit)), "options": f"-c statement_timeout={max(1, int(limit * 1000))}"}
    elif url.startswith("sqlite"):
        args = {"timeout": limit}
    elif url.startswith("mysql"):
        args = {"connect_timeout": max(1, int(limit)), "read_timeout": max(1, int(limit))}
    return create_engine(url, poolclass=NullPool, connect_args=args)


def db_error(exc: BaseException) -> str:
    """A driver error as one safe line: the driver's first line, not SQLAlchemy's SQL/background text."""
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip().splitlines()[0] if str(orig).strip() else ""
    return redact(f"{type(orig).__name__}" + (f": {text}" if text else ""))[:300]


def sql_first_row(dsn: str, statement: Any, limit: float) -> Any:
    """Run a statement and return its first row (None when there is none). Blocking; raises FreshnessError."""
    from sqlalchemy import exc as sa_exc
    from sqlalchemy import text

    try:
        engine = make_engine(dsn, limit)
    except (sa_exc.ArgumentError, sa_exc.NoSuchModuleError) as exc:
        raise FreshnessError(Status.UNKNOWN, f"unsupported database URL: {db_error(exc)}") from None
    except ModuleNotFoundError as exc:
        raise FreshnessError(Status.UNKNOWN, f"database driver not installed: {exc.name}") from None
    try:
        with engine.connect() as conn:
            return conn.execute(text(statement) if isinstance(statement, str) else statement).first()
    except sa_exc.OperationalError as exc:
        raise FreshnessError(Status.CRITICAL, f"database unreachable or query failed: {db_error(exc)}") from None
    except sa_exc.DBAPIError as exc:
        raise FreshnessError(Status.CRITICAL, f"query failed: {db_error(exc)}") from None
    except sa_exc.SQLAlchemyError as exc:
        raise FreshnessError(Status.UNKNOWN, f"query failed: {db_error(exc)}") from None
    finally:
        engine.dispose()


def max_statement(table: str, column: str) -> Any:
    """`SELECT max(column) FROM table`, identifiers quoted by the dialect."""
    from sqlalchemy import column as sa_column
    from sqlalchemy import func, select
    from sqlalchemy import table as sa_table

    schema, _, name = table.rpartition(".")
    return select(func.max(sa_column(column))).select_from(sa_table(name, schema=schema or None))


def read_sql(src: SqlSource, limit: float) -> Reading:
    statement = src.query if src.query is not None else max_statement(src.table or "", src.timestamp_column or "")
    what = f"max({src.timestamp_column}) of {src.table}" if src.query is None else "query result"
    row = sql_first_row(src.dsn.get_secret_value(), statement, limit)
    value = row[0] if row is not None and len(row) else None
    if value is None:
        raise FreshnessError(Status.CRITICAL, f"no data: the {what} is NULL or there are no rows")
    return Reading(_timestamp(value, src.timezone, src.epoch_unit, what), what)


def _timestamp(value: Any, zone: str | None, unit: EpochUnit, what: str, fix: str = "set epoch_unit: {unit}") -> float:
    """`fix` tells how to correct an epoch in the wrong unit (`{unit}` is the unit it looks like)."""
    try:
        return to_epoch(value, timezone_named(zone), unit)
    except NotATimestamp as exc:
        remedy = f"; {fix.format(unit=exc.unit_guess)}" if exc.unit_guess else ""
        raise FreshnessError(Status.UNKNOWN, f"{what} is {exc}{remedy}", value_type=exc.type_name) from None


# --- file, Prometheus, HTTP ----------------------------------------------------------

def read_file(src: FileSource) -> Reading:
    from checks.file import FileError, find_newest

    try:
        newest = find_newest(src.path, src.pattern)
    except FileError as exc:
        raise FreshnessError(exc.status, exc.message) from None
    except OSError as exc:
        raise FreshnessError(Status.UNKNOWN, f"cannot read {src.path}: {exc.strerror or exc}") from None
    if newest is None:
        raise FreshnessError(Status.CRITICAL, f"no data: no file matches {src.pattern or '*'} in {src.path}")
    return Reading(newest.mtime, f"newest file {newest.path}")


async def read_prometheus(src: PrometheusTimestampSource, default_url: str | None, limit: float) -> Reading:
    import httpx

    base = src.url or default_url
    if not base:
        raise FreshnessError(Status.UNKNOWN, "no Prometheus URL: set source.url or agent.prometheus_url")
    headers = {"Authorization": f"Bearer {src.bearer_token.get_secret_value()}"} if src.bearer_token else {}
    try:
        async with httpx.AsyncClient(timeout=limit, verify=src.verify_tls) as client:
            resp = await client.get(base.rstrip("/") + "/api/v1/query", params={"query": src.query}, headers=headers)
        body = resp.json()
    except httpx.HTTPError as exc:
        raise FreshnessError(Status.UNKNOWN, f"Prometheus unreachable: {type(exc).__name__}: {exc}") from None
    except ValueError:
        raise FreshnessError(Status.UNKNOWN, f"Prometheus answered HTTP {resp.status_code} without JSON") from None
    if body.get("status") != "success":
        raise FreshnessError(Status.UNKNOWN, f"Prometheus query failed: {body.get('errorType', '')}: {body.get('error', '')}")
    data = body.get("data") or {}
    if data.get("resultType") == "scalar":
        values = [data.get("result", [None, None])[1]]
    else:
        values = [s.get("value", [None, None])[1] for s in data.get("result") or []]
    numbers = [float(v) for v in values if v not in (None, "NaN", "+Inf", "-Inf")]
    if not numbers:
        raise FreshnessError(Status.CRITICAL, f"no data: {src.query} returned no series")
    # Several series: the stalest one decides.
    return Reading(_timestamp(min(numbers), None, "s", src.query, "convert it to seconds in the query"),
                   f"{src.query} ({len(numbers)} series)" if len(numbers) > 1 else src.query)


def json_lookup(doc: Any, path: str) -> Any:
    """`data.items[0].ts` in a parsed JSON document; KeyError/IndexError/TypeError when absent."""
    for key, index in re.findall(r"([A-Za-z0-9_-]+)|\[(\d+)\]", path.lstrip("$").lstrip(".")):
        doc = doc[int(index)] if index else doc[key]
    return doc


async def read_http(src: HttpSource, limit: float) -> Reading:
    import httpx

    try:
        async with httpx.AsyncClient(timeout=limit, verify=src.verify_tls) as client:
            resp = await client.get(src.url, headers=src.headers)
    except httpx.HTTPError as exc:
        raise FreshnessError(Status.CRITICAL, f"{src.url} unreachable: {type(exc).__name__}: {exc}") from None
    if resp.status_code >= 400:
        raise FreshnessError(Status.CRITICAL, f"{src.url} answered HTTP {resp.status_code}")
    try:
        value = json_lookup(resp.json(), src.json_path)
    except ValueError:
        raise FreshnessError(Status.UNKNOWN, f"{src.url} did not answer JSON") from None
    except (KeyError, IndexError, TypeError):
        raise FreshnessError(Status.CRITICAL, f"no data: {src.json_path} not found in the answer") from None
    if value is None:
        raise FreshnessError(Status.CRITICAL, f"no data: {src.json_path} is null")
    return Reading(_timestamp(value, src.timezone, src.epoch_unit, src.json_path), src.json_path)
