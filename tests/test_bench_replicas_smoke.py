"""The replicas benchmark still runs end to end: real PostgreSQL, real replicas, a kill -9.

`bench/replicas.py --smoke --json`: 20 checks on 1 and 2 replicas, one kill.
Only that the figures exist and make sense is asserted; how fast they are is
for bench/README.md.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.integration


def test_replicas_bench_smoke_reports_sane_figures() -> None:
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "replicas.py"), "--smoke", "--json"],
                          capture_output=True, text=True, timeout=240, cwd=ROOT, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    assert [r["replicas"] for r in report["runs"]] == [1, 2]
    for r in report["runs"]:
        assert r["completed_checks"] > 0 and r["checks_per_second"] > 0 and r["cpu_ms_per_check"] > 0
    failover = report["failover"]
    assert failover["kills"] == 1 and len(failover["seconds"]) == 1 and failover["seconds"][0] > 0
