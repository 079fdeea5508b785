"""Is the worker running? Count processes whose name or command line match a regex.

Daemons that do not serve a port (queue workers, schedulers, log shippers)
have no health endpoint to probe; the process table is the only place that
says whether they are alive, and how many of them. The check counts matching
processes (optionally owned by one user) and fails when the count is outside
`min`..`max`, so "no worker" and "two schedulers fighting" both page.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Literal

import psutil
from pydantic import Field, ValidationInfo, field_validator

from agent.core import CheckResult, Status
from agent.secrets import redact
from checks.base import Check, CheckConfig

#: how many matching pids the summary names before "..."
_PIDS_SHOWN = 5


class ProcessConfig(CheckConfig):
    type: Literal["process"]
    match: str = Field(description="regex searched in the process name and in its full command line")
    min: int = Field(1, ge=0, description="fewest matching processes that is healthy")
    max: int | None = Field(None, ge=0, description="most matching processes that is healthy; unlimited if unset")
    user: str | None = Field(None, description="count only processes owned by this user name")

    @field_validator("match")
    @classmethod
    def _regex(cls, v: str) -> str:
        if not v:
            raise ValueError("match must not be empty (it would match every process)")
        try:
            re.compile(v)
        except re.error as exc:
            raise ValueError(f"invalid regular expression {v!r}: {exc}") from None
        return v

    @field_validator("max")
    @classmethod
    def _range(cls, v: int | None, info: ValidationInfo) -> int | None:
        low = info.data.get("min")
        if v is not None and low is not None and v < low:
            raise ValueError(f"max ({v}) must not be below min ({low})")
        return v


@dataclass(frozen=True)
class Match:
    pid: int
    name: str
    cmdline: str
    username: str | None


def find_processes(pattern: re.Pattern[str], user: str | None = None,
                   exclude: frozenset[int] = frozenset()) -> list[Match]:
    """Processes whose name or joined command line match `pattern` (blocking: call in a thread)."""
    found: list[Match] = []
    for proc in psutil.process_iter(["pid", "name", "cmdline", "username", "status"]):
        info = proc.info
        if info["pid"] in exclude:
            continue
        # A zombie has exited; only its exit status is waiting to be collected.
        if info.get("status") == psutil.STATUS_ZOMBIE:
            continue
        # Fields we may not read (another user's process) come back as None.
        name = info.get("name") or ""
        cmdline = " ".join(info.get("cmdline") or [])
        if user is not None and info.get("username") != user:
            continue
        if pattern.search(name) or (cmdline and pattern.search(cmdline)):
            found.append(Match(info["pid"], name, cmdline, info.get("username")))
    return sorted(found, key=lambda m: m.pid)


def _plural(n: int) -> str:
    return f"{n} process" if n == 1 else f"{n} processes"


class ProcessCheck(Check):
    type = "process"
    runbooks = {"": "runbooks/process-missing.md"}
    Config = ProcessConfig
    # A process-table scan that does not finish means we could not look, not
    # that the worker is down.
    timeout_status = Status.UNKNOWN

    config: ProcessConfig

    async def run(self) -> CheckResult:
        cfg = self.config
        pattern = re.compile(cfg.match)
        matches: list[Match] = await self.in_thread(find_processes, pattern, cfg.user, frozenset({os.getpid()}))
        count = len(matches)
        pids = [m.pid for m in matches]
        shown = ", ".join(str(p) for p in pids[:_PIDS_SHOWN]) + (", ..." if count > _PIDS_SHOWN else "")
        owner = f" owned by {cfg.user}" if cfg.user else ""
        what = f"{_plural(count)}{owner} match {cfg.match!r}"
        if count < cfg.min:
            status, summary = Status.CRITICAL, f"{what}, expected at least {cfg.min}"
        elif cfg.max is not None and count > cfg.max:
            status, summary = Status.CRITICAL, f"{what}, expected at most {cfg.max} (pids {shown})"
        else:
            status = Status.OK
            summary = f"{what} (pids {shown})" if count else what
        return self.result(status, summary, {"count": float(count)},
                           pids=pids, processes=[{"pid": m.pid, "name": m.name, "cmdline": redact(m.cmdline[:4096])[:300],
                                                  "username": m.username} for m in matches[:50]])
