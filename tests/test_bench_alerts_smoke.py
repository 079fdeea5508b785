"""The alert-pipeline benchmark still runs end to end: real engine, real outbox, a real HTTP receiver.

`bench/alert_pipeline.py --smoke --json` fires 20 alerts through the engine
built by `build_component`, a SQLite store and the webhook receiver into a
local aiohttp server (its own process): paced, in a burst, and against a
receiver that answers slowly and says 429 + Retry-After to its first two
requests. Only that every alert arrived exactly once and that the figures
exist and make sense is asserted; how fast is for bench/README.md.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_alert_pipeline_bench_smoke_delivers_every_alert_once() -> None:
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "alert_pipeline.py"), "--smoke", "--json"],
                          capture_output=True, text=True, timeout=120, cwd=ROOT, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout)

    assert report["receiver"] == {"kind": "aiohttp", "process": "separate"}
    phases = {p["phase"]: p for p in report["phases"]}
    assert set(phases) == {"paced", "burst", "slow-20ms+429"}
    for name, p in phases.items():
        assert p["expected"] == 20, name
        assert p["delivered"] == p["expected"], (name, p)
        assert p["lost"] == 0 and p["duplicates"] == 0 and p["unexpected_keys"] == 0, (name, p)
        assert p["outbox_rows_left"] == 0, name
        assert p["timed_out"] is False, name
        assert p["engine_outcomes"]["sent"] == 20, (name, p["engine_outcomes"])
        assert p["engine_outcomes"]["failed"] == 0 and p["engine_outcomes"]["dropped"] == 0, name
        assert 0 < p["latency_p50_ms"] <= p["latency_p99_ms"] <= p["latency_max_ms"], name
        assert p["notifications_per_second"] > 0, name
        assert p["cpu_ms_per_notification"] > 0, name
        assert p["peak_rss_mib"] > 0, name
        assert p["queue_depth_peak"] >= 1, name

    # every alert of a burst is queued before the first is sent
    assert phases["burst"]["queue_depth_peak"] == 20
    throttled = phases["slow-20ms+429"]
    assert throttled["answered_429"] == 2
    assert throttled["engine_outcomes"]["retried"] == 2  # the 429s were retried, not dropped
    assert throttled["requests_seen"] == 22  # 20 deliveries + the 2 refused attempts, no extra resends


def test_alert_pipeline_table_names_every_figure() -> None:
    """The human-readable table, from the same kind of report, lists each figure."""
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import alert_pipeline
    finally:
        sys.path.remove(str(ROOT / "bench"))
    phase = {
        "phase": "burst", "settings": {"name": "burst", "n": 20, "feed": "burst", "rate": 0.0, "delay_ms": 0.0,
                                       "reject_first": 0, "retry_after": 1.0},
        "expected": 20, "delivered": 20, "lost": 0, "duplicates": 0, "unexpected_keys": 0, "non_firing_received": 0,
        "requests_seen": 20, "answered_429": 0, "latency_min_ms": 1.0, "latency_p50_ms": 5.0, "latency_p90_ms": 8.0,
        "latency_p99_ms": 9.0, "latency_max_ms": 9.5, "latency_p50_first_tenth_ms": 1.5,
        "latency_p50_last_tenth_ms": 9.0, "notifications_per_second": 300.0, "offered_per_second": None,
        "cpu_ms_per_notification": 2.5, "receiver_cpu_ms_per_request": 0.4, "log_lines": 0, "feed_seconds": 0.001,
        "window_seconds": 0.1, "timed_out": False, "cpu_seconds": 0.05, "cpu_system_seconds": 0.01,
        "machine_busy_cores": 1.1, "cpu_by_thread": {"MainThread": 0.04, "sre-agent-store_0": 0.01},
        "queue_depth_peak": 20, "outbox_rows_left": 0,
        "engine_outcomes": {"sent": 20, "retried": 0, "failed": 0, "dropped": 0},
        "peak_rss_mib": 80.0, "rss_growth_mib": 1.0,
    }
    report = {"machine": {"cpus": 2, "python": "3.11"}, "phases": [phase]}
    table = alert_pipeline.format_table(report)
    for label in ("latency p50 (ms)", "latency p99 (ms)", "notifications/s delivered", "queue depth peak",
                  "duplicates", "lost", "CPU-ms per notification", "peak RSS (MiB)", "2.500", "300.0"):
        assert label in table, label
    assert alert_pipeline.problems(report) == []
    assert alert_pipeline.problems({"phases": [dict(phase, duplicates=1)]}) == ["phase burst: duplicates = 1"]
