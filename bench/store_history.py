"""How big the state store gets: N checks at 1 s, in steady state, with the history rollup.

The steady state of the store is the last `history_raw_retention` of results one
by one plus `history_retention` of per-minute aggregates. Rather than run for two
days, this writes that history with synthetic timestamps through the real
`SqliteStore` (add_result, flush, prune), then measures the file. It also writes a
sample of the same results the way the store did before the rollup (every result
with its summary, nothing aggregated) and extrapolates it to the same period, so
both figures come from one run on this machine.

    python bench/store_history.py              # 200 checks at 1s, 1h raw, 2d retention
    python bench/store_history.py --smoke      # seconds; what the suite runs
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agent.core import CheckResult, Status  # noqa: E402
from agent.store import SqliteStore  # noqa: E402
from bench._common import fmt, write_results  # noqa: E402

SUMMARY = "HTTP 200 in 12ms from https://api.internal.example/healthz (body matched, certificate 83 days left)" * 3


def _result(check: str, ts: float, i: int) -> CheckResult:
    status = Status.CRITICAL if i % 997 == 0 else Status.OK
    return CheckResult(status=status, summary=SUMMARY, check=check, type="http", timestamp=ts, duration_seconds=0.012)


async def steady_state(path: Path, checks: int, raw: float, retention: float, now: float) -> dict[str, Any]:
    store = SqliteStore(path, default_retention=retention, raw_retention=raw)
    store.FLUSH_BATCH = 10**9  # flushed by hand below
    await store.open()
    written = 0
    try:
        # The aggregated part: one result per check per minute gives the same aggregates (one row per
        # check and minute) as one per second would, at a sixtieth of the bench's time.
        t = now - retention
        while t < now - raw:
            for c in range(checks):
                store.add_result(_result(f"check-{c}", t, written))
                written += 1
            t += 60.0
            if written % 200_000 < checks:
                await store.flush()
        await store.flush()
        await store.prune(now)
        # The raw part: every second of the last `raw` seconds.
        t = now - raw
        while t < now:
            for c in range(checks):
                store.add_result(_result(f"check-{c}", t, written))
                written += 1
            t += 1.0
            if written % 200_000 < checks:
                await store.flush()
        await store.flush()
        await store.prune(now)
        size = store.size_bytes()
    finally:
        await store.close()
    conn = sqlite3.connect(path)
    try:
        raw_rows = conn.execute("SELECT COUNT(*) FROM results").fetchone()[0]
        rollup_rows = conn.execute("SELECT COUNT(*) FROM results_rollup").fetchone()[0]
    finally:
        conn.close()
    return {"size_bytes": size, "raw_rows": raw_rows, "rollup_rows": rollup_rows,
            "results_written": written}


def before_rollup(path: Path, checks: int, seconds: int) -> int:
    """Bytes the pre-rollup layout took for `seconds` of N checks at 1 s (one row per result, summary each)."""
    conn = sqlite3.connect(path)
    try:
        conn.executescript("CREATE TABLE results (check_name TEXT NOT NULL, ts REAL NOT NULL, status INTEGER NOT NULL, "
                           "duration REAL NOT NULL, summary TEXT NOT NULL); "
                           "CREATE INDEX results_check_ts ON results (check_name, ts);")
        rows = ((f"check-{c}", float(t), 0, 0.012, SUMMARY[:500]) for t in range(seconds) for c in range(checks))
        conn.executemany("INSERT INTO results VALUES (?, ?, ?, ?, ?)", rows)
        conn.commit()
        pages, size = (conn.execute(f"PRAGMA {p}").fetchone()[0] for p in ("page_count", "page_size"))
        return int(pages * size)
    finally:
        conn.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checks", type=int, default=200)
    parser.add_argument("--raw", type=float, default=3600.0, help="history_raw_retention in seconds")
    parser.add_argument("--retention", type=float, default=2 * 86400.0, help="history_retention in seconds")
    parser.add_argument("--smoke", action="store_true", help="20 checks, 10 min raw, 2 h retention")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON only")
    args = parser.parse_args()
    if args.smoke:
        args.checks, args.raw, args.retention = 20, 600.0, 7200.0
    now = 1_800_000_000.0
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="sre-agent-bench-store-") as tmp:
        state = asyncio.run(steady_state(Path(tmp) / "state.db", args.checks, args.raw, args.retention, now))
        sample_seconds = 60 if args.smoke else 300
        sample = before_rollup(Path(tmp) / "before.db", args.checks, sample_seconds)
    before = sample * args.retention / sample_seconds
    report = {
        "checks": args.checks, "interval_seconds": 1.0, "raw_retention_seconds": args.raw,
        "retention_seconds": args.retention, **state,
        "before_rollup_bytes_extrapolated": round(before), "reduction": round(before / max(1, state["size_bytes"]), 1),
        "bench_seconds": round(time.perf_counter() - started, 1),
    }
    write_results("store_history" + ("_smoke" if args.smoke else ""), report)
    if args.json:
        print(json.dumps(report))
        return 0
    mib = 1 << 20
    print(f"state store, {args.checks} checks at 1s, {args.raw / 3600:g}h raw + {args.retention / 86400:g}d "
          "of per-minute aggregates (steady state)")
    print(f"  store size      {fmt(state['size_bytes'] / mib)} MiB  ({state['raw_rows']} raw rows, "
          f"{state['rollup_rows']} aggregate rows)")
    print(f"  before rollup   {fmt(before / mib)} MiB  (extrapolated from {sample_seconds}s of the old layout)")
    print(f"  reduction       {report['reduction']}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
