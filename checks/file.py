"""Is the newest file fresh and plausibly sized? For exports, dumps and drops.

Batch jobs fail quietly: the cron line still runs, but the export it should
write is hours old or 0 bytes. This check finds the newest file matching a
glob under a directory (or one file) and fails when it is older than
`max_age` / `warn_age` or outside `min_size`..`max_size`. `parse_size` and the
`Size` config type live here so other file-shaped checks (backups) reuse them.
"""

from __future__ import annotations

import glob
import os
import re
import stat
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, ValidationInfo, WithJsonSchema, field_validator

from agent.core import CheckResult, Status
from agent.durations import Duration, format_duration, human
from checks.base import Check, CheckConfig, age_levels, named_levels

_SIZE_UNITS = {
    "b": 1,
    "kb": 1000, "mb": 1000**2, "gb": 1000**3, "tb": 1000**4, "pb": 1000**5,
    "kib": 1024, "mib": 1024**2, "gib": 1024**3, "tib": 1024**4, "pib": 1024**5,
}
_SIZE = re.compile(r"^(?P<number>\d+(?:\.\d+)?)\s*(?P<unit>[a-zA-Z]*)$")
SIZE_PATTERN = r"^\s*[0-9]+(\.[0-9]+)?\s*(([kKmMgGtTpP][iI]?)?[bB])?\s*$"
_SIZE_HELP = "use a number with a unit: B, KB, MB, GB, TB (1000-based) or KiB, MiB, GiB, TiB (1024-based), e.g. 500B, 10MB, 1KiB"


def parse_size(value: Any) -> int:
    """`"10MB"` -> 10_000_000, `"1KiB"` -> 1024, `"500B"` or `500` -> 500 (bytes)."""
    if isinstance(value, bool):
        raise ValueError(f"invalid size {value!r}: {_SIZE_HELP}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"invalid size {value!r}: must not be negative")
        return value
    if not isinstance(value, str):
        raise ValueError(f"invalid size {value!r}: {_SIZE_HELP}")
    m = _SIZE.match(value.strip())
    if m is None:
        raise ValueError(f"invalid size {value!r}: {_SIZE_HELP}")
    unit = m["unit"].lower() or "b"
    if unit not in _SIZE_UNITS:
        raise ValueError(f"invalid size {value!r}: unknown unit {m['unit']!r}; {_SIZE_HELP}")
    return int(float(m["number"]) * _SIZE_UNITS[unit])


def format_size(size: float) -> str:
    """Short SI form for summaries: 512B, 1.5KB, 12MB."""
    for unit, factor in (("PB", 1000**5), ("TB", 1000**4), ("GB", 1000**3), ("MB", 1000**2), ("KB", 1000)):
        if abs(size) >= factor:
            return f"{size / factor:.1f}".rstrip("0").rstrip(".") + unit
    return f"{int(size)}B"


Size = Annotated[
    int,
    BeforeValidator(parse_size),
    WithJsonSchema({"anyOf": [{"type": "integer", "minimum": 0},
                              {"type": "string", "pattern": SIZE_PATTERN, "examples": ["500B", "10MB", "1KiB"]}]}),
]


class FileConfig(CheckConfig):
    type: Literal["file"]
    path: str = Field(description="a file, or the directory `pattern` is matched under")
    pattern: str | None = Field(None, description="glob relative to path (`**` recurses); default: files directly in path")
    max_age: Duration | None = Field(None, description="CRITICAL when the newest file is older")
    warn_age: Duration | None = Field(None, description="WARNING when the newest file is older")
    min_size: Size | None = Field(None, description="CRITICAL when the newest file is smaller, e.g. 1KB")
    max_size: Size | None = Field(None, description="CRITICAL when the newest file is larger, e.g. 10GiB")

    def observation_thresholds(self) -> dict[str, dict[str, float]]:
        return named_levels(age_seconds=age_levels(self.warn_age, self.max_age))

    @field_validator("path")
    @classmethod
    def _path(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("path must not be empty")
        return os.path.expanduser(v)

    @field_validator("pattern")
    @classmethod
    def _pattern(cls, v: str | None) -> str | None:
        if v is not None and (not v.strip() or os.path.isabs(v)):
            raise ValueError(f"pattern must be a glob relative to path, such as '*.parquet' or '**/*.csv', got {v!r}")
        return v

    @field_validator("max_age", "warn_age")
    @classmethod
    def _positive(cls, v: timedelta | None, info: ValidationInfo) -> timedelta | None:
        if v is not None and v <= timedelta(0):
            raise ValueError(f"{info.field_name} must be positive")
        return v

    @field_validator("warn_age")
    @classmethod
    def _warn_before_max(cls, v: timedelta | None, info: ValidationInfo) -> timedelta | None:
        max_age = info.data.get("max_age")
        if v is not None and max_age is not None and v >= max_age:
            raise ValueError(f"warn_age ({format_duration(v)}) must be shorter than max_age ({format_duration(max_age)})")
        return v

    @field_validator("max_size")
    @classmethod
    def _max_above_min(cls, v: int | None, info: ValidationInfo) -> int | None:
        min_size = info.data.get("min_size")
        if v is not None and min_size is not None and min_size > v:
            raise ValueError(f"min_size ({format_size(min_size)}) must not be above max_size ({format_size(v)})")
        return v


@dataclass(frozen=True)
class Newest:
    """The newest matching file and how many files matched."""

    path: str
    mtime: float
    size: int
    count: int


class FileError(Exception):
    """Looking failed; `status` says whether that is an outage or a blind spot."""

    def __init__(self, status: Status, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def find_newest(path: str, pattern: str | None) -> Newest | None:
    """Newest regular file matching `pattern` under `path` (or `path` itself). Blocking."""
    if not os.path.exists(path):
        raise FileError(Status.CRITICAL, f"path {path} does not exist")
    if os.path.isfile(path) and pattern is None:
        st = os.stat(path)
        return Newest(path, st.st_mtime, st.st_size, 1)
    if not os.path.isdir(path):
        if pattern is None:
            raise FileError(Status.CRITICAL, f"path {path} is neither a regular file nor a directory")
        raise FileError(Status.CRITICAL, f"path {path} is not a directory (pattern {pattern!r} is matched under one)")
    # glob silently returns nothing for a directory it may not read.
    if not os.access(path, os.R_OK | os.X_OK):
        raise FileError(Status.UNKNOWN, f"cannot list {path}: permission denied")
    best: Newest | None = None
    count = 0
    for candidate in glob.iglob(os.path.join(glob.escape(path), pattern or "*"), recursive=True):
        try:
            st = os.stat(candidate)
        except OSError:
            continue  # removed (or rotated) between listing and stat
        if not stat.S_ISREG(st.st_mode):
            continue
        count += 1
        if best is None or st.st_mtime > best.mtime:
            best = Newest(candidate, st.st_mtime, st.st_size, 0)
    return Newest(best.path, best.mtime, best.size, count) if best is not None else None


class FileCheck(Check):
    type = "file"
    runbooks = {"": "runbooks/file-stale.md"}
    Config = FileConfig
    # Listing or stat-ing that never finishes is storage that hangs (a stale
    # NFS/FUSE mount): the data is unreachable, which is an outage.
    timeout_status = Status.CRITICAL

    config: FileConfig

    async def run(self) -> CheckResult:
        cfg = self.config
        where = os.path.join(cfg.path, cfg.pattern) if cfg.pattern else cfg.path
        try:
            newest: Newest | None = await self.in_thread(find_newest, cfg.path, cfg.pattern)
        except FileError as exc:
            return self.result(exc.status, exc.message)
        except OSError as exc:
            return self.result(Status.UNKNOWN, f"cannot read {cfg.path}: {exc.strerror or exc}")
        if newest is None:
            return self.result(Status.CRITICAL, f"no file matches {where}", {"count": 0.0})

        raw_age = time.time() - newest.mtime
        # A clock skewed between writer and reader can put mtime in the future.
        age = max(0.0, raw_age)
        problems: list[tuple[Status, str]] = []
        if cfg.max_age is not None and age >= cfg.max_age.total_seconds():
            problems.append((Status.CRITICAL, f"{human(age)} old (max_age {format_duration(cfg.max_age)})"))
        elif cfg.warn_age is not None and age >= cfg.warn_age.total_seconds():
            problems.append((Status.WARNING, f"{human(age)} old (warn_age {format_duration(cfg.warn_age)})"))
        if cfg.min_size is not None and newest.size < cfg.min_size:
            problems.append((Status.CRITICAL, f"{format_size(newest.size)} < min_size {format_size(cfg.min_size)}"))
        if cfg.max_size is not None and newest.size > cfg.max_size:
            problems.append((Status.CRITICAL, f"{format_size(newest.size)} > max_size {format_size(cfg.max_size)}"))

        matches = f"{newest.count} file matches" if newest.count == 1 else f"{newest.count} files match"
        if problems:
            status = Status.worst([s for s, _ in problems])
            summary = f"newest {newest.path} is " + "; ".join(text for _, text in problems)
        else:
            status = Status.OK
            summary = f"newest {newest.path}: {human(age)} old, {format_size(newest.size)} ({matches})"
        observations = {"age_seconds": round(age, 3), "size_bytes": float(newest.size), "count": float(newest.count)}
        return self.result(status, summary, observations, file=newest.path, mtime=newest.mtime,
                           mtime_in_future=raw_age < 0)
