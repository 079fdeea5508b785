"""The restore drill: a backup is only proven by restoring it.

`restore_test: {kind: pg_restore, dsn: ..., assertions: [...]}` restores the
newest pg_dump archive into a scratch database `sre_agent_drill_<random>`
created on the DSN's server, runs the assertions there (read-only), and drops
the scratch database again. The drill touches nothing else: it connects to the
DSN's database only to CREATE and DROP its own scratch database.

What it measures: `restore_seconds` (the time pg_restore took: a measured RTO
for this dump) and, for assertions with `max_age`, how old the newest restored
row is (a measured RPO). The DROP runs in a `finally` under `asyncio.shield`,
so it happens on failure, on the drill's own timeout, and when the runner
cancels the whole check; pg_restore is killed with its process group first.
The password goes to pg_restore as PGPASSWORD, never on its command line.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from agent.durations import Duration, format_duration, human
from agent.secrets import Secret, dsn_rule, redact
from checks._proc import ToolError, run_tool
from checks._values import NotATimestamp, to_epoch
from checks.base import Model

log = logging.getLogger("sre_agent.checks.backup")
SCRATCH_PREFIX = "sre_agent_drill_"
CLEANUP_TIMEOUT = 30.0
_CONNECT_TIMEOUT = 10
PostgresDsn = Annotated[Secret, dsn_rule("a PostgreSQL URL (postgresql://user@host:5432/postgres) or libpq key=value string",
                                          schemes=("postgresql", "postgres"), key_value=True)]


class Assertion(Model):
    """One query on the restored data: a number within bounds, or a timestamp younger than max_age."""

    name: str | None = Field(None, description="label in results; the query if unset")
    query: str = Field(description="SQL returning one value (first column of the first row)")
    min: float | None = Field(None, description="the value must be at least this")
    max: float | None = Field(None, description="the value must be at most this")
    equals: float | str | None = Field(None, description="the value must equal this")
    max_age: Duration | None = Field(None, description="the value is a timestamp no older than this (measured RPO)")

    @field_validator("query")
    @classmethod
    def _query(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("query must not be empty")
        return v

    @model_validator(mode="after")
    def _has_expectation(self) -> Assertion:
        if self.min is None and self.max is None and self.equals is None and self.max_age is None:
            raise ValueError("an assertion needs min, max, equals or max_age")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min:g}) must not be above max ({self.max:g})")
        if self.max_age is not None and (self.min is not None or self.max is not None or self.equals is not None):
            raise ValueError("max_age reads a timestamp: do not combine it with min, max or equals")
        return self

    @property
    def label(self) -> str:
        return self.name or (self.query if len(self.query) <= 60 else self.query[:57] + "...")


class RestoreTest(Model):
    """The drill: restore into a scratch database, assert, drop it."""

    kind: Literal["pg_restore"] = Field(description="pg_restore: pg_dump custom/tar archives into PostgreSQL")
    dsn: PostgresDsn = Field(description="server to restore on, e.g. ${SCRATCH_PG_DSN}; its database is only used "
                                         "to CREATE/DROP the scratch database (or dsn_file)")
    assertions: list[Assertion] = Field(default_factory=list, description="queries on the restored data")
    schedule: str | None = Field(None, description="5-field cron (UTC): run the drill when a slot has passed since the last one")
    run_on_start: bool = Field(True, description="run the drill on the first run in a process (agent start, `sre-agent check`)")
    timeout: Duration = Field(timedelta(minutes=10), description="limit for create + restore + assertions")
    jobs: int = Field(1, ge=1, le=64, description="pg_restore --jobs")
    pg_restore: str = Field("pg_restore", description="pg_restore binary")

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, v: str | None) -> str | None:
        return validate_cron(v)

    @field_validator("timeout")
    @classmethod
    def _timeout(cls, v: timedelta) -> timedelta:
        if v <= timedelta(0):
            raise ValueError("timeout must be positive")
        return v


def validate_cron(v: str | None) -> str | None:
    if v is not None:
        from apscheduler.triggers.cron import CronTrigger

        try:
            CronTrigger.from_crontab(v)
        except ValueError as exc:
            raise ValueError(f"invalid cron expression {v!r}: {exc}; expected 5 fields 'min hour dom month dow'") from None
    return v


@dataclass
class DrillOutcome:
    ok: bool
    message: str
    started_at: float
    restore_seconds: float | None = None
    data_age_seconds: float | None = None
    assertions: list[dict[str, Any]] = field(default_factory=list)
    scratch_database: str = ""
    dropped: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "message": self.message, "started_at": self.started_at,
                "restore_seconds": self.restore_seconds, "data_age_seconds": self.data_age_seconds,
                "assertions": self.assertions, "scratch_database": self.scratch_database, "dropped": self.dropped}


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _db_error(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return redact(f"{type(exc).__name__}: {text}")[:300]


async def _drop(dsn: str, name: str) -> bool:
    """DROP the scratch database, kicking out any session still in it."""
    import psycopg

    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True, connect_timeout=_CONNECT_TIMEOUT) as conn:
        if conn.info.server_version >= 130000:
            await conn.execute(f"DROP DATABASE IF EXISTS {_quote_ident(name)} WITH (FORCE)")  # type: ignore[arg-type]
        else:
            await conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
            await conn.execute(f"DROP DATABASE IF EXISTS {_quote_ident(name)}")  # type: ignore[arg-type]
    return True


async def _cleanup(dsn: str, name: str) -> bool:
    """Drop, bounded in time, and finish it even if our task is being cancelled."""
    task = asyncio.ensure_future(asyncio.wait_for(_drop(dsn, name), CLEANUP_TIMEOUT))
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        # Cancelled while dropping: let the drop finish (it is bounded), then go on cancelling.
        with contextlib.suppress(BaseException):
            await asyncio.wait([task], timeout=CLEANUP_TIMEOUT + 1)
        raise
    except Exception as exc:
        log.error("restore drill: could not drop scratch database %s: %s", name, _db_error(exc))
        return False


def judge(assertion: Assertion, value: Any, now: float) -> tuple[bool, str, float | None]:
    """(passed, text, data age) for one assertion's value."""
    if value is None:
        return False, "no data (NULL or no rows)", None
    if assertion.max_age is not None:
        try:
            age = now - to_epoch(value)
        except NotATimestamp as exc:
            return False, str(exc), None
        limit = assertion.max_age.total_seconds()
        ok = age < limit
        return ok, f"newest restored row is {human(max(age, 0))} old" + ("" if ok else f" (max_age {format_duration(assertion.max_age)})"), age
    if assertion.equals is not None:
        ok = str(value) == str(assertion.equals) if isinstance(assertion.equals, str) else _number(value) == assertion.equals
        return ok, f"= {value}" + ("" if ok else f", expected {assertion.equals}"), None
    number = _number(value)
    if number is None:
        return False, f"not a number: got {type(value).__name__}", None
    if assertion.min is not None and number < assertion.min:
        return False, f"{number:g} < min {assertion.min:g}", None
    if assertion.max is not None and number > assertion.max:
        return False, f"{number:g} > max {assertion.max:g}", None
    return True, f"= {number:g}", None


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float | Decimal):
        return float(value)
    return None


async def run_drill(cfg: RestoreTest, dump_path: str, now: float) -> DrillOutcome:
    """Create scratch db, pg_restore into it, assert, drop. Never raises for expected failures."""
    import psycopg
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    dsn = cfg.dsn.get_secret_value()
    name = f"{SCRATCH_PREFIX}{secrets.token_hex(6)}"
    outcome = DrillOutcome(False, "", now, scratch_database=name)
    try:
        params = conninfo_to_dict(dsn)
    except psycopg.Error:
        outcome.message = "restore_test.dsn is not a valid PostgreSQL connection string"
        return outcome
    password = params.pop("password", None)
    scratch_conninfo = make_conninfo("", **{**params, "dbname": name})
    env = {"PGCONNECT_TIMEOUT": str(_CONNECT_TIMEOUT)}
    if password:
        env["PGPASSWORD"] = str(password)
    timeout = cfg.timeout.total_seconds()
    started = time.monotonic()
    attempted_create = False
    try:
        async with asyncio.timeout(timeout):
            async with await psycopg.AsyncConnection.connect(dsn, autocommit=True, connect_timeout=_CONNECT_TIMEOUT) as admin:
                attempted_create = True
                await admin.execute(f"CREATE DATABASE {_quote_ident(name)}")  # type: ignore[arg-type]
            restore_started = time.monotonic()
            argv = [cfg.pg_restore, "--dbname", scratch_conninfo, "--no-owner", "--no-privileges", "--exit-on-error",
                    "--jobs", str(cfg.jobs), dump_path]
            proc = await run_tool(argv, limit=max(1.0, timeout - (time.monotonic() - started)), env=env)
            outcome.restore_seconds = time.monotonic() - restore_started
            if proc.returncode != 0:
                outcome.message = f"pg_restore failed: {proc.error_line()}"
                return outcome
            await _assert(cfg, scratch_conninfo, password, outcome, timeout - (time.monotonic() - started))
    except TimeoutError:
        outcome.ok = False
        outcome.message = f"restore drill exceeded its timeout of {human(cfg.timeout.total_seconds())}; stopped"
    except ToolError as exc:
        outcome.message = exc.message
    except psycopg.Error as exc:
        outcome.message = f"restore drill database error: {_db_error(exc)}"
    finally:
        if attempted_create:
            outcome.dropped = await _cleanup(dsn, name)
            if not outcome.dropped:
                outcome.ok = False
                outcome.message = (outcome.message + "; " if outcome.message else "") + f"scratch database {name} NOT dropped"
    return outcome


async def _assert(cfg: RestoreTest, conninfo: str, password: Any, outcome: DrillOutcome, remaining: float) -> None:
    import psycopg

    failed: list[str] = []
    ages: list[float] = []
    async with await psycopg.AsyncConnection.connect(conninfo, password=password, autocommit=True,
                                                     connect_timeout=_CONNECT_TIMEOUT) as conn:
        await conn.execute("SET default_transaction_read_only = on")
        await conn.execute(f"SET statement_timeout = {max(1, int(remaining * 1000))}")  # type: ignore[arg-type]
        for a in cfg.assertions:
            try:
                cur = await conn.execute(a.query)  # type: ignore[arg-type]
                row = await cur.fetchone() if cur.description else None
                value = row[0] if row else None
            except psycopg.errors.QueryCanceled:
                raise TimeoutError from None
            except psycopg.Error as exc:
                ok, text, age = False, f"query failed: {_db_error(exc)}", None
            else:
                ok, text, age = judge(a, value, time.time())
            if age is not None:
                ages.append(age)
            outcome.assertions.append({"assertion": a.label, "ok": ok, "result": text})
            if not ok:
                failed.append(f"{a.label}: {text}")
    outcome.data_age_seconds = max(ages) if ages else None
    outcome.ok = not failed
    restored = f"restored in {human(outcome.restore_seconds or 0)}"
    outcome.message = (f"{restored}, {len(cfg.assertions)} assertion(s) passed" if not failed
                       else f"{restored} but " + "; ".join(failed))
