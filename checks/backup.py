"""Backup verification: is the newest backup recent, plausible, readable, restorable?

Backups fail silently: the job still "succeeds" while writing a 0-byte or
truncated dump, or stops running and nobody notices until the restore.
Each run asks the source (`files`, `restic`, `pgbackrest`, `s3`) for its
newest backup and judges it: `max_age` (the RPO; WARNING from `warn_age`,
default 80% of max_age), `min_size`, `max_size_change` (a shrink of more than
that versus the previous backup is CRITICAL), and for files the checksum
sidecar and a full integrity read.

Heavy parts run on their own cadence. `restore_test` (the drill, see
`checks._restore`) and `check` (restic's `check --read-data-subset`) run:
  * on the first run in a process, i.e. at agent start and on every
    `sre-agent check NAME` (a fresh process), unless `run_on_start: false`
    (then the first run only starts the clock, and `sre-agent check` skips it);
  * then whenever a slot of their `schedule` (5-field cron, UTC) has passed
    since their last run (APScheduler's CronTrigger computes the slot);
  * on every run when they have no `schedule`.
The last run time and outcome are kept in memory (the check context's shared
state, which survives config reloads) and shown in `details`. A failed drill
keeps the check CRITICAL until a later drill passes; a restic check that finds
the repository locked (a backup running) is WARNING and retried on the next
run. Time limits: `timeout` bounds the look at the source, including reading
the newest file to its end (raise it for multi-GB dumps); the drill and the
deep check have their own `timeout`; the runner's limit for this check is
the sum, so each part fails on its own deadline first.

Metrics: sre_agent_backup_age_seconds, _size_bytes, _restore_duration_seconds,
_restore_success and _last_success_timestamp_seconds (when the newest backup
was completed, so `time() - x > RPO` works in PromQL), all labelled {check}.
"""

from __future__ import annotations

import asyncio
import os
import re
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from agent import catalogue
from agent.core import CheckResult, Sample, Status
from agent.durations import Duration, format_duration, human
from checks._backup_sources import (
    BackupSource,
    FilesSource,
    Inventory,
    ResticSource,
    S3Source,
    SourceError,
    download_s3,
    inspect_files,
    inspect_s3,
)
from checks._backup_tools import VerifyOutcome, inspect_pgbackrest, inspect_restic, restic_check
from checks._restore import DrillOutcome, RestoreTest, run_drill, validate_cron
from checks._values import Percent
from checks.base import Check, CheckConfig, MetricFamily, Model, age_levels, named_levels
from checks.file import Size, format_size

_SUBSET = re.compile(r"^(\d+(\.\d+)?%|\d+/\d+|\d+[kKmMgGtT]?)$")


class ResticVerify(Model):
    """`check:` restic's own consistency check, reading a share of the data packs."""

    read_data_subset: str | None = Field(None, description="5%, 1/7 or a size such as 500M; unset: structure only")
    schedule: str | None = Field(None, description="5-field cron (UTC) for this heavier check")
    run_on_start: bool = Field(True, description="run on the first run in a process")
    timeout: Duration = Field(timedelta(minutes=30), description="limit for one `restic check`")

    @field_validator("read_data_subset")
    @classmethod
    def _subset(cls, v: str | None) -> str | None:
        if v is not None and not _SUBSET.match(v.strip()):
            raise ValueError(f"invalid read_data_subset {v!r}: use a percentage (5%), a part n/t (1/7) or a size (500M)")
        if v is not None and v.endswith("%") and not 0 < float(v[:-1]) <= 100:
            raise ValueError(f"invalid read_data_subset {v!r}: a percentage must be above 0% and at most 100%")
        return v.strip() if v else v

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, v: str | None) -> str | None:
        return validate_cron(v)


class BackupConfig(CheckConfig):
    type: Literal["backup"]
    source: BackupSource = Field(description="where the backups are: files, restic, pgbackrest or s3")
    max_age: Duration = Field(description="CRITICAL when the newest backup is older (the RPO)")
    warn_age: Duration | None = Field(None, description="WARNING when older; default 80% of max_age")
    min_size: Size | None = Field(None, description="CRITICAL when the newest backup is smaller, e.g. 10MB")
    max_size_change: Percent | None = Field(None, description="CRITICAL when it shrank more than this vs the previous one")
    checksum: Literal["sidecar", "required", "off"] | None = Field(
        None, description="files: verify <file>.sha256 if present (sidecar, the default), always (required), or off")
    restore_test: RestoreTest | None = Field(None, description="the restore drill (files and s3 sources)")
    check: ResticVerify | None = Field(None, description="restic check on its own schedule (restic sources)")

    @model_validator(mode="after")
    def _coherent(self) -> BackupConfig:
        kind = self.source.kind
        if self.max_age <= timedelta(0):
            raise ValueError("max_age must be positive")
        if self.warn_age is not None and not timedelta(0) < self.warn_age < self.max_age:
            raise ValueError(f"warn_age ({format_duration(self.warn_age)}) must be positive and shorter than "
                             f"max_age ({format_duration(self.max_age)})")
        if self.checksum is not None and kind != "files":
            raise ValueError(f"checksum applies to source kind files only, not {kind}")
        if self.restore_test is not None and kind not in ("files", "s3"):
            raise ValueError(f"restore_test (pg_restore) needs a files or s3 source holding pg_dump archives, not {kind}")
        if self.check is not None and kind != "restic":
            raise ValueError(f"check (restic check) applies to source kind restic only, not {kind}")
        return self

    @property
    def warn_after(self) -> timedelta:
        return self.warn_age if self.warn_age is not None else self.max_age * 0.8

    def observation_thresholds(self) -> dict[str, dict[str, float]]:
        return named_levels(age_seconds=age_levels(self.warn_after, self.max_age),
                            size_bytes={"critical": float(self.min_size)} if self.min_size is not None else {})


@dataclass
class HeavyState:
    """Last run of a drill or deep check, kept across runs (and reloads) of one check."""

    last_run: float | None = None
    first_seen: float | None = None
    outcome: Any = None


def is_due(schedule: str | None, run_on_start: bool, state: HeavyState, now: float) -> bool:
    if state.first_seen is None:
        state.first_seen = now
    if state.last_run is None and run_on_start:
        return True
    if schedule is None:
        return True
    return next_slot(schedule, state.last_run or state.first_seen) <= now


def next_slot(schedule: str, after: float) -> float:
    """The first cron slot strictly after `after` (Unix seconds), in UTC."""
    from apscheduler.triggers.cron import CronTrigger

    trigger = CronTrigger.from_crontab(schedule, timezone=UTC)
    fire = trigger.get_next_fire_time(None, datetime.fromtimestamp(after + 1, UTC))
    assert fire is not None
    return fire.timestamp()


def _stamp(ts: float | None) -> str | None:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds") if ts is not None else None


class BackupCheck(Check):
    type = "backup"
    runbooks = {
        "": "runbooks/backup-stale.md",
        "failed": "runbooks/backup-failed.md",
        "restore": "runbooks/restore-drill-failed.md",
    }
    Config = BackupConfig
    timeout_status = Status.CRITICAL
    metric_families = catalogue.families("sre_agent_backup_age_seconds", "sre_agent_backup_size_bytes",
                                         "sre_agent_backup_restore_duration_seconds", "sre_agent_backup_restore_success",
                                         "sre_agent_backup_last_success_timestamp_seconds", make=MetricFamily)

    config: BackupConfig

    @classmethod
    def requirements(cls, config: CheckConfig) -> dict[str, str]:
        needs: dict[str, str] = {}
        if isinstance(getattr(config, "source", None), S3Source):
            needs["boto3"] = "s3"
        if getattr(config, "restore_test", None) is not None:
            needs["psycopg"] = "sql"  # the drill talks to the scratch PostgreSQL
        return needs

    def __init__(self, config: CheckConfig, context: Any) -> None:
        super().__init__(config, context)
        self.clock: Callable[[], float] = time.time

    @property
    def timeout(self) -> float:
        base = super().timeout
        if self.config.restore_test is not None:
            base += self.config.restore_test.timeout.total_seconds()
        if self.config.check is not None:
            base += self.config.check.timeout.total_seconds()
        return base

    def _state(self, part: str) -> HeavyState:
        shared = self.context.shared.setdefault("backup", {})
        return shared.setdefault((self.name, part), HeavyState())  # type: ignore[no-any-return]

    async def _inventory(self) -> Inventory:
        src, base = self.config.source, super().timeout
        try:
            async with asyncio.timeout(base):
                if isinstance(src, FilesSource):
                    return await inspect_files(src, self.config.checksum or "sidecar", base)
                if isinstance(src, ResticSource):
                    return await inspect_restic(src, base)
                if isinstance(src, S3Source):
                    return await inspect_s3(src, base)
                return await inspect_pgbackrest(src, base)
        except TimeoutError:
            raise SourceError(Status.CRITICAL, f"looking at the {src.kind} source did not finish within {human(base)}") from None

    async def run(self) -> CheckResult:
        cfg = self.config
        now = self.clock()
        try:
            inv: Inventory | None = await self._inventory()
            error = None
        except SourceError as exc:
            inv, error = None, exc
        problems: list[tuple[Status, str]] = []
        observations: dict[str, float] = {}
        samples: list[Sample] = []
        details: dict[str, Any] = {"source": cfg.source.kind}
        if inv is not None:
            problems += self._judge(inv, now, observations, samples, details)
            problems += await self._heavy(inv, now, observations, samples, details)
        else:
            self._carry(observations, samples, details)
        if error is not None:
            return self.result(error.status, error.message, observations, samples=samples, **details)
        assert inv is not None
        status = Status.worst([s for s, _ in problems]) if problems else Status.OK
        head = f"newest backup {os.path.basename(inv.newest.name)} is {human(max(0.0, now - inv.newest.timestamp))} old"
        if problems:
            summary = head + ": " + "; ".join(text for _, text in problems)
        else:
            size = f", {format_size(inv.newest.size)}" if inv.newest.size is not None else ""
            extra = [o.message for o in (self._state("drill").outcome, self._state("verify").outcome) if o is not None]
            summary = f"{head}{size} ({inv.count} backups)" + ("; " + "; ".join(extra) if extra else "")
        return self.result(status, summary, observations, samples=samples, **details)

    def _judge(self, inv: Inventory, now: float, obs: dict[str, float], samples: list[Sample],
               details: dict[str, Any]) -> list[tuple[Status, str]]:
        cfg = self.config
        newest = inv.newest
        age = max(0.0, now - newest.timestamp)
        problems = list(inv.problems)
        if age >= cfg.max_age.total_seconds():
            problems.append((Status.CRITICAL, f"older than max_age {format_duration(cfg.max_age)}"))
        elif age >= cfg.warn_after.total_seconds():
            problems.append((Status.WARNING, f"older than warn_age {format_duration(cfg.warn_after)}"))
        if newest.size is not None:
            if cfg.min_size is not None and newest.size < cfg.min_size:
                problems.append((Status.CRITICAL, f"{format_size(newest.size)} < min_size {format_size(cfg.min_size)}"))
            previous = inv.previous
            if previous is not None and previous.size:
                change = (newest.size - previous.size) / previous.size
                obs["size_change_ratio"] = round(change, 6)
                if cfg.max_size_change is not None and -change * 100 > cfg.max_size_change:
                    problems.append((Status.CRITICAL, f"shrank {-change:.0%} vs the previous backup "
                                                      f"({format_size(previous.size)} -> {format_size(newest.size)}; "
                                                      f"max_size_change {cfg.max_size_change:g}%)"))
            obs["size_bytes"] = float(newest.size)
            samples.append(Sample("sre_agent_backup_size_bytes", float(newest.size)))
        obs.update({"age_seconds": round(age, 3), "count": float(inv.count), **inv.observations})
        if newest.duration is not None:
            obs["last_duration_seconds"] = round(newest.duration, 3)
        samples += [Sample("sre_agent_backup_age_seconds", round(age, 3)),
                    Sample("sre_agent_backup_last_success_timestamp_seconds", newest.timestamp)]
        details.update({"newest": newest.name, "completed_at": _stamp(newest.timestamp), "kind": newest.kind,
                        "previous": inv.previous.name if inv.previous else None, **inv.details})
        return problems

    async def _heavy(self, inv: Inventory, now: float, obs: dict[str, float], samples: list[Sample],
                     details: dict[str, Any]) -> list[tuple[Status, str]]:
        cfg = self.config
        if cfg.restore_test is not None:
            state = self._state("drill")
            ran = is_due(cfg.restore_test.schedule, cfg.restore_test.run_on_start, state, now)
            if ran:
                state.outcome = await self._drill(cfg.restore_test, inv, now)
                state.last_run = now
            details["restore_test"] = self._part_details(state, cfg.restore_test.schedule, ran)
        if cfg.check is not None and isinstance(cfg.source, ResticSource):
            state = self._state("verify")
            ran = is_due(cfg.check.schedule, cfg.check.run_on_start, state, now)
            skipped: VerifyOutcome | None = None
            if ran:
                outcome = await restic_check(cfg.source, cfg.check.read_data_subset, cfg.check.timeout.total_seconds())
                if outcome.retry:  # locked by a running backup: keep the last outcome, try again next run
                    skipped = outcome
                else:
                    state.outcome, state.last_run = outcome, now
            details["check"] = self._part_details(state, cfg.check.schedule, ran and skipped is None)
            if skipped is not None:
                details["check"]["skipped"] = skipped.message
                return [*self._carry(obs, samples, details), (Status.WARNING, skipped.message)]
        return self._carry(obs, samples, details)

    def _carry(self, obs: dict[str, float], samples: list[Sample], details: dict[str, Any]) -> list[tuple[Status, str]]:
        """Observations, samples and problems from the last drill / deep check (run now or earlier)."""
        problems: list[tuple[Status, str]] = []
        drill: DrillOutcome | None = self._state("drill").outcome
        if drill is not None:
            obs["restore_success"] = 1.0 if drill.ok else 0.0
            samples.append(Sample("sre_agent_backup_restore_success", obs["restore_success"]))
            if drill.restore_seconds is not None:
                obs["restore_duration_seconds"] = round(drill.restore_seconds, 3)
                samples.append(Sample("sre_agent_backup_restore_duration_seconds", obs["restore_duration_seconds"]))
            if drill.data_age_seconds is not None:
                obs["restore_data_age_seconds"] = round(drill.data_age_seconds, 3)
            if not drill.ok:
                problems.append((Status.CRITICAL, f"restore drill failed: {drill.message}"))
        verify: VerifyOutcome | None = self._state("verify").outcome
        if verify is not None:
            obs["check_success"] = 1.0 if verify.ok else 0.0
            if not verify.ok:
                problems.append((Status.CRITICAL, verify.message))
        return problems

    def _part_details(self, state: HeavyState, schedule: str | None, ran: bool) -> dict[str, Any]:
        outcome = state.outcome
        return {"ran_this_run": ran, "last_run": _stamp(state.last_run), "schedule": schedule,
                "next_due": _stamp(next_slot(schedule, state.last_run or state.first_seen or self.clock()))
                if schedule else None,
                "outcome": outcome.to_dict() if isinstance(outcome, DrillOutcome)
                else ({"ok": outcome.ok, "message": outcome.message, **outcome.details} if outcome else None)}

    async def _drill(self, test: RestoreTest, inv: Inventory, now: float) -> DrillOutcome:
        src = self.config.source
        if isinstance(src, FilesSource):
            return await run_drill(test, inv.newest.name, now)
        assert isinstance(src, S3Source)
        loop = asyncio.get_running_loop()
        with tempfile.TemporaryDirectory(prefix="sre-agent-drill-") as tmp:
            local = os.path.join(tmp, os.path.basename(inv.newest.name) or "dump")
            started = time.monotonic()
            try:
                async with asyncio.timeout(test.timeout.total_seconds()):
                    await loop.run_in_executor(None, download_s3, src, inv.newest.name, local, test.timeout.total_seconds())
            except TimeoutError:
                return DrillOutcome(False, f"downloading s3://{src.bucket}/{inv.newest.name} exceeded the drill timeout", now)
            except SourceError as exc:
                return DrillOutcome(False, f"download failed: {exc.message}", now)
            remaining = max(1.0, test.timeout.total_seconds() - (time.monotonic() - started))
            return await run_drill(test.model_copy(update={"timeout": timedelta(seconds=remaining)}), local, now)
