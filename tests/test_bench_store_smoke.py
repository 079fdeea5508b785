"""The store-size benchmark runs end to end in smoke mode and its figures add up.

How small the store is belongs to bench/README.md; here only that the rollup
happened (raw rows only for the raw period, one aggregate per check and minute
before it) and that the figures were written.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_store_bench_smoke(tmp_path: Path) -> None:
    results = tmp_path / "latest.json"
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "store_history.py"), "--smoke", "--json"],
                          capture_output=True, text=True, timeout=120, cwd=ROOT, stdin=subprocess.DEVNULL,
                          env={"PATH": "/usr/bin:/bin", "SRE_AGENT_BENCH_RESULTS": str(results)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    checks, raw, retention = report["checks"], report["raw_retention_seconds"], report["retention_seconds"]
    assert report["raw_rows"] <= checks * raw  # nothing older than the raw retention is kept one by one
    minutes = (retention - raw) / 60
    assert checks * (minutes - 1) <= report["rollup_rows"] <= checks * (minutes + 1)
    assert 0 < report["size_bytes"] < report["before_rollup_bytes_extrapolated"]
    assert json.loads(results.read_text())["store_history_smoke"]["figures"] == report
