"""Run checks once, now, outside the daemon: `sre-agent check` (and later suites and reports).

The same runner as the daemon (timeouts, redaction), the same check
instances, and the daemon's state store opened read-mostly when it exists, so
an SLO over probe history sees what the daemon recorded. No scheduler, no
alerting, no HTTP listener: nothing is sent.
"""

from __future__ import annotations

import asyncio

from agent.check import Check
from agent.config import ConfigBase
from agent.context import CheckContext
from agent.core import CheckResult
from agent.runner import build_checks, close_shared, execute
from agent.store import for_state_dir as store_for_state_dir


async def run_once(config: ConfigBase, names: list[str] | None = None) -> list[CheckResult]:
    """Results of the named checks (in that order), or of every enabled check, run concurrently."""
    store = None
    db = config.agent.state_dir / "state.db"
    if db.exists():
        store = store_for_state_dir(config.agent.state_dir, config.agent.history_retention.total_seconds())
        await store.open()
    context = CheckContext(config=config, store=store)
    checks = build_checks(config, context, names)
    if names:
        order = {n: i for i, n in enumerate(names)}
        checks.sort(key=lambda c: order[c.name])
    semaphore = asyncio.Semaphore(config.agent.max_concurrency)

    async def one(check: Check) -> CheckResult:
        async with semaphore:
            return await execute(check)

    try:
        return list(await asyncio.gather(*(one(c) for c in checks)))
    finally:
        for c in checks:
            await c.close()
        await close_shared(context)
        if store is not None:
            await store.close()
