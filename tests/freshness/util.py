"""Helpers for freshness tests: build checks from plain config, run them with a fixed clock."""

from __future__ import annotations

from typing import Any

from agent.context import CheckContext
from agent.core import CheckResult
from agent.runner import execute
from checks.freshness import FreshnessCheck, FreshnessConfig

HOUR = 3600.0


def freshness_check(context: CheckContext | None = None, **fields: Any) -> FreshnessCheck:
    fields.setdefault("name", "orders-fresh")
    fields.setdefault("timeout", "10s")
    cfg = FreshnessConfig.model_validate({"type": "freshness", **fields})
    return FreshnessCheck(cfg, context if context is not None else CheckContext())


async def run(check: Any, now: float | None = None) -> CheckResult:
    if now is not None:
        check.clock = lambda: now
    return await execute(check)
