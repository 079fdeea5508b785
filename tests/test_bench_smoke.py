"""The http benchmark still runs end to end: real checks, real scheduler, a local target.

`bench/http_checks.py --smoke --json` runs 20 http checks for 3 s against a
local server (nginx, or an aiohttp subprocess) and, when the binary is
installed, a few prometheus-blackbox-exporter probes. Only that the figures
exist and make sense is asserted; how fast they are is for bench/README.md.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _blackbox_installed() -> bool:
    return any(shutil.which(name) for name in ("prometheus-blackbox-exporter", "blackbox_exporter"))


def test_http_bench_smoke_reports_sane_figures() -> None:
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "http_checks.py"), "--smoke", "--json"],
                          capture_output=True, text=True, timeout=120, cwd=ROOT, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout)

    assert report["target"]["kind"] in ("nginx", "aiohttp")
    [run] = report["runs"]
    assert run["n"] == 20
    assert run["completed_checks"] > 0
    assert run["errors"] == 0, run["error_samples"]
    assert run["cpu_ms_per_check"] > 0
    assert run["checks_per_second"] > 0
    assert run["peak_rss_mib"] > 0
    for key in ("lag_p50_ms", "lag_p99_ms", "duration_p50_ms", "duration_p99_ms"):
        assert run[key] is not None and run[key] >= 0, key
    assert run["lag_p50_ms"] <= run["lag_p99_ms"]
    assert 0 < run["duration_p50_ms"] <= run["duration_p99_ms"]

    if _blackbox_installed():
        bb = run["blackbox"]
        assert bb["probes"] > 0
        assert bb["errors"] == 0, bb["error_samples"]
        assert bb["cpu_ms_per_probe"] > 0
        assert run["cpu_ratio_agent_to_blackbox"] > 0
    else:
        assert "blackbox" not in run


def test_http_bench_table_names_every_figure() -> None:
    """The human-readable table, from the same kind of report, lists each figure."""
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import http_checks
    finally:
        sys.path.remove(str(ROOT / "bench"))
    run = {
        "n": 20, "layer": "scheduler", "interval_seconds": 1.0, "offered_per_second": 20.0, "seconds": 3.0,
        "completed_checks": 60, "checks_per_second": 20.0, "cpu_ms_per_check": 1.5, "cpu_system_seconds": 0.01,
        "cpu_utilisation": 0.03, "machine_busy_cores": 0.2, "lag_p50_ms": 1.0, "lag_p99_ms": 5.0,
        "duration_p50_ms": 1.2, "duration_p99_ms": 3.0, "skipped_runs": 0, "loop_stall_p99_ms": 2.0,
        "loop_stall_max_ms": 3.0, "gc_collections": 3, "gc_pause_total_ms": 4.0, "gc_pause_max_ms": 2.0,
        "gc_cpu_ms_per_check": 0.05, "gc_cpu_share": 0.03,
        "gc_by_generation": [{"generation": g, "collections": 1, "cpu_ms": 1.0} for g in range(3)],
        "peak_rss_mib": 60.0, "log_lines": 0, "log_sample": [], "errors": 0, "error_samples": {},
        "target_cpu_ms_per_request": 0.05, "gc_mode": "default",
        "blackbox": {"probes": 20, "probes_per_second": 500.0, "cpu_ms_per_probe": 0.75, "peak_rss_mib": 20.0,
                     "errors": 0, "error_samples": {}},
        "cpu_ratio_agent_to_blackbox": 2.0,
    }
    report = {"machine": {"cpus": 2, "python": "3.11"}, "target": {"kind": "nginx", "url": "http://127.0.0.1:1/"},
              "settings": {"concurrency": 64}, "blackbox": {"requested": True, "binary": "x"},
              "runs": [run], "layers": [dict(run, layer="aiohttp", cpu_ms_per_check=0.5), run]}
    table = http_checks.format_table(report)
    for label in ("checks/s", "CPU-ms per check", "schedule lag p50 (ms)", "schedule lag p99 (ms)",
                  "check duration p50 (ms)", "check duration p99 (ms)", "peak RSS (MiB)", "errors (non-OK results)",
                  "blackbox CPU-ms per probe", "CPU ratio agent/blackbox", "bare aiohttp GET", "+1.000"):
        assert label in table, label
