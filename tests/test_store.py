"""The SQLite store: batched history, retention, generic transactions."""

from __future__ import annotations

import time
from pathlib import Path

from agent.core import CheckResult, Status
from agent.store import Store


def _r(check: str, ts: float, status: Status) -> CheckResult:
    return CheckResult(status=status, summary="s", check=check, type="t", timestamp=ts)


async def test_history_counts_and_retention(tmp_path: Path) -> None:
    store = Store(tmp_path / "state.db", default_retention=3600)
    await store.open()
    try:
        now = time.time()
        store.set_retention("slo-probe", 40 * 86400)
        for i in range(10):
            store.add_result(_r("api", now - i * 60, Status.OK if i % 5 else Status.CRITICAL))
            store.add_result(_r("slo-probe", now - 30 * 86400 + i, Status.OK))
            store.add_result(_r("old", now - 7200 - i, Status.OK))
        assert await store.success_counts("api", now - 3600) == (8, 10)
        assert len(await store.history("slo-probe", now - 31 * 86400)) == 10
        deleted = await store.prune(now)
        assert deleted == 10  # only "old": default retention 1h; slo-probe keeps 40d
        assert await store.success_counts("old", 0) == (0, 0)
        assert await store.success_counts("slo-probe", 0) == (10, 10)
        await store.set_meta("k", "v1")
        await store.set_meta("k", "v2")
        assert await store.get_meta("k") == "v2"
    finally:
        await store.close()
    # durable across reopen
    again = Store(tmp_path / "state.db")
    await again.open()
    try:
        assert await again.success_counts("api", 0) == (8, 10)
    finally:
        await again.close()
