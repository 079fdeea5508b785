"""Helpers for backup tests: build a check from plain config, move its clock, make dumps."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from agent.context import CheckContext
from agent.core import CheckResult
from agent.runner import execute
from checks.backup import BackupCheck, BackupConfig

HOUR = 3600.0


def backup_check(context: CheckContext | None = None, **fields: Any) -> BackupCheck:
    fields.setdefault("name", "orders-db-backup")
    fields.setdefault("timeout", "20s")
    fields.setdefault("max_age", "26h")
    cfg = BackupConfig.model_validate({"type": "backup", **fields})
    return BackupCheck(cfg, context if context is not None else CheckContext())


async def run_at(check: BackupCheck, now: float | None = None) -> CheckResult:
    """Run through the real runner (timeouts, redaction), with the check's clock at `now`."""
    if now is not None:
        check.clock = lambda: now
    return await execute(check)


def write(path: Path, data: bytes, age: float = 0.0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    stamp = time.time() - age
    os.utime(path, (stamp, stamp))
    return path


def sample(result: CheckResult, metric: str) -> float | None:
    values = [s.value for s in result.samples if s.metric == metric]
    return values[0] if values else None
