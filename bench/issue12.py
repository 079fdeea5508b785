"""Issue 12's table, every row measured the same way: plain `sre-agent run` against the exporter.

Each row starts the agent as a user would (`python -m agent.cli run -c FILE`
on a generated config of N http checks, nothing else tuned) in its own
process, against one local nginx target (keep-alive off, 127.0.0.1), and
reads its CPU time from /proc for the agent's whole process tree (psutil:
the process and every child, user + system). Completed checks come from the
agent's own `sre_agent_check_runs_total`. blackbox_exporter probes the same
target in the same run, at concurrency 64, its CPU also from /proc.

Rows (keys of `bench/results/latest.json` under "issue12", or
"issue12_smoke" with --smoke):

- cpu_ms_per_check: N checks at 1 s (default 1,000), over the soak window
- blackbox_cpu_ms_per_probe, ratio_agent_to_blackbox
- sustained_checks_per_second: 2,500 checks offered at 1 s
- peak_rss_mib_10k, scrape_ms_10k, start_to_metrics_seconds_10k: 10,000
  checks at 30 s (peak RSS = VmHWM of the agent, scrape = median wall time of
  three GET /metrics 15 s apart once every check has a result, as a 15 s
  Prometheus scrape would find it; plus one with gzip)
- check_command_seconds: `sre-agent check NAME` for one http check, wall
  time of the whole command (median of 3)
- alert_p99_ms: bench/alert_pipeline.py's paced phase (100 results/s)
- soak_rss_growth: RSS at the end of the first row's window over RSS at its
  start (after warm-up), minus one

Figures, never assertions: the exit code is 0 whether goals are met or not;
each row says whether its goal is met. The machine is shared, so re-run the
key rows (`--rows cpu blackbox`) before believing a difference under ~15 %.

    python bench/issue12.py                  # every row, about 4 minutes
    python bench/issue12.py --rows cpu blackbox --soak-seconds 20
    python bench/issue12.py --soak-seconds 3600   # the 1 h soak row
    python bench/issue12.py --smoke --json   # tiny; what tests/test_bench_issue12_smoke.py runs
    python bench/issue12.py --suite-soak     # the suite's 60 s soak: 200 checks at 1 s, the CPU row only
    python bench/issue12.py --hour-soak      # the 1 h soak: 200 checks at 1 s (key issue12_hour_soak)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402
import http_checks  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
ROWS = ("cpu", "blackbox", "sustained", "10k", "check", "alerts")
BLACKBOX_CONCURRENCY = 64

#: (key, label, goal text, test(value, figures) -> bool)
GOALS: list[tuple[str, str, str]] = [
    ("cpu_ms_per_check", "agent CPU-ms per HTTP check, whole pipeline", "<= 0.5x blackbox's"),
    ("blackbox_cpu_ms_per_probe", "blackbox_exporter CPU-ms per probe (concurrency 64)", "(reference)"),
    ("ratio_agent_to_blackbox", "ratio agent / blackbox", "<= 0.5"),
    ("sustained_checks_per_second", "sustained checks/s, 2,500 checks at 1 s offered", ">= 2,500"),
    ("peak_rss_mib_10k", "10,000 checks at 30 s: peak RSS (MiB)", "<= 150"),
    ("scrape_ms_10k", "10,000 checks: /metrics scrape time (ms)", "<= 150"),
    ("start_to_metrics_seconds_10k", "10,000 checks: start until /metrics answers (s)", "<= 3"),
    ("check_command_seconds", "`sre-agent check NAME`, one http check, wall (s)", "<= 0.5"),
    ("alert_p99_ms", "alert pipeline, result to receiver, p99 at 100 results/s (ms)", "<= 250"),
    ("soak_rss_growth", "soak: RSS growth over the window (ratio)", "<= 0.05"),
]


def goal_met(key: str, fig: dict[str, Any]) -> bool | None:
    v = fig.get(key)
    if v is None:
        return None
    limits = {"ratio_agent_to_blackbox": 0.5, "peak_rss_mib_10k": 150.0, "scrape_ms_10k": 150.0,
              "start_to_metrics_seconds_10k": 3.0, "check_command_seconds": 0.5, "alert_p99_ms": 250.0,
              "soak_rss_growth": 0.05}
    if key == "cpu_ms_per_check":
        bb = fig.get("blackbox_cpu_ms_per_probe")
        return None if bb is None else v <= 0.5 * bb
    if key == "sustained_checks_per_second":
        return v >= 0.98 * fig.get("sustained_offered_per_second", 2500.0)  # 2 % for the window's edges
    if key in limits:
        return bool(v <= limits[key])
    return None


# --- the agent as a user starts it -------------------------------------------------

EVENT_LOOP: str | None = None  # --event-loop: agent.event_loop for every agent started (None: the default)


def _config(workdir: Path, n: int, url: str, interval_ms: int) -> Path:
    settings: dict[str, Any] = {"listen": f"127.0.0.1:{_common.free_port()}", "state_dir": str(workdir / "state")}
    if EVENT_LOOP is not None:
        settings["event_loop"] = EVENT_LOOP
    config = {
        "agent": settings,
        "checks": [{
            "name": f"bench-http-{i:05d}", "type": "http", "url": f"{url}?check={i}", "interval": f"{interval_ms}ms",
            "timeout": "5s", "expect": {"status": [200], "body_contains": "ok"},
            "latency": {"warning": "2s", "critical": "4s"}, "labels": {"team": "bench"},
        } for i in range(n)],
    }
    path = workdir / "sre-agent.yaml"
    path.write_text(json.dumps(config))  # JSON is YAML
    return path


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


@dataclass
class AgentProcess:
    proc: subprocess.Popen[bytes]
    port: int
    started: float
    workdir: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/metrics"

    def tree(self) -> list[psutil.Process]:
        root = psutil.Process(self.proc.pid)
        return [root, *root.children(recursive=True)]

    def cpu_seconds(self) -> float:
        total = 0.0
        for p in self.tree():
            with contextlib.suppress(psutil.Error):
                t = p.cpu_times()
                total += t.user + t.system
        return total

    def rss_mib(self) -> float:
        total = 0
        for p in self.tree():
            with contextlib.suppress(psutil.Error):
                total += p.memory_info().rss
        return total / (1 << 20)

    def hwm_mib(self) -> float | None:
        return http_checks._vm_hwm_mib(self.proc.pid)

    def scrape(self, timeout: float = 30.0) -> tuple[float, bytes]:
        t0 = time.perf_counter()
        with urllib.request.urlopen(self.url, timeout=timeout) as resp:  # noqa: S310 (127.0.0.1 only)
            body = resp.read()
        return time.perf_counter() - t0, body

    def runs(self) -> tuple[int, int]:
        """(completed runs, non-OK runs) from sre_agent_check_runs_total."""
        _, body = self.scrape()
        total = bad = 0
        for m in _RUNS.finditer(body.decode()):
            v = int(float(m.group(2)))
            total += v
            if m.group(1) != "OK":
                bad += v
        return total, bad


_RUNS = re.compile(r'^sre_agent_check_runs_total\{[^}]*status="([A-Z]+)"[^}]*\} (\S+)$', re.M)


@contextlib.contextmanager
def agent(n: int, url: str, interval_ms: int, deadline: float = 60.0) -> Iterator[AgentProcess]:
    """`sre-agent run` on N http checks; yields once /metrics answers (bounded by `deadline` s)."""
    workdir = Path(tempfile.mkdtemp(prefix="sre-agent-bench-issue12-"))
    cfg = _config(workdir, n, url, interval_ms)
    port = int(json.loads(cfg.read_text())["agent"]["listen"].rsplit(":", 1)[1])
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "agent.cli", "run", "-c", str(cfg), "--log-level", "warning"],
                            cwd=ROOT, env=_env(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=open(workdir / "stderr.log", "wb"))  # noqa: SIM115
    a = AgentProcess(proc, port, started, workdir)
    try:
        limit = time.monotonic() + deadline
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"agent exited {proc.returncode}: "
                                   + (workdir / "stderr.log").read_text(errors="replace")[-2000:])
            with contextlib.suppress(OSError):
                a.scrape(timeout=5)
                break
            if time.monotonic() > limit:
                raise RuntimeError(f"/metrics did not answer within {deadline:.0f} s")
            time.sleep(0.02)
        yield a
    finally:
        _common.stop_process(proc, timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)


def measure_window(a: AgentProcess, warmup: float, seconds: float) -> dict[str, Any]:
    time.sleep(warmup)
    runs0, bad0 = a.runs()
    cpu0, rss0, t0 = a.cpu_seconds(), a.rss_mib(), time.perf_counter()
    time.sleep(seconds)
    cpu1, rss1, t1 = a.cpu_seconds(), a.rss_mib(), time.perf_counter()
    runs1, bad1 = a.runs()
    done = runs1 - runs0
    return {"completed": done, "errors": bad1 - bad0, "seconds": round(t1 - t0, 2), "cpu_seconds": round(cpu1 - cpu0, 3),
            "cpu_ms_per_check": round((cpu1 - cpu0) * 1000 / done, 4) if done else None,
            "checks_per_second": round(done / (t1 - t0), 1), "rss_start_mib": round(rss0, 1),
            "rss_end_mib": round(rss1, 1), "rss_growth": round(rss1 / rss0 - 1, 4) if rss0 else None}


# --- rows ----------------------------------------------------------------------------------

def row_cpu(target: _common.Target, n: int, warmup: float, seconds: float) -> dict[str, Any]:
    with agent(n, target.url, 1000) as a:
        w = measure_window(a, warmup, seconds)
    return {"cpu_ms_per_check": w["cpu_ms_per_check"], "cpu_checks": n, "cpu_window": w,
            "soak_rss_growth": w["rss_growth"], "soak_seconds": w["seconds"]}


def row_sustained(target: _common.Target, n: int, warmup: float, seconds: float) -> dict[str, Any]:
    with agent(n, target.url, 1000) as a:
        w = measure_window(a, warmup, seconds)
    return {"sustained_checks_per_second": w["checks_per_second"], "sustained_offered_per_second": float(n),
            "sustained_window": w}


def row_10k(target: _common.Target, n: int, interval_s: float, smoke: bool) -> dict[str, Any]:
    with agent(n, target.url, int(interval_s * 1000), deadline=120) as a:
        start_to_metrics = time.perf_counter() - a.started
        limit = time.monotonic() + interval_s * 1.5 + 30
        while time.monotonic() < limit:  # every check has run once (jitter spreads the first runs)
            with contextlib.suppress(OSError):
                _, body = a.scrape()
                if body.count(b"\nsre_agent_check_up{") >= n:
                    break
            time.sleep(1.0 if not smoke else 0.1)
        scrapes, size, gz_size = [], 0, None
        for i in range(3):  # as Prometheus would: 15 s apart, so the results of 15 s are new at each
            time.sleep(0.5 if smoke else 15.0 if i else 0.0)
            took, body = a.scrape()
            scrapes.append(took)
            size = len(body)
        req = urllib.request.Request(a.url, headers={"Accept-Encoding": "gzip"})
        t0 = time.perf_counter()
        with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310
            gz = resp.read()
            if resp.headers.get("Content-Encoding") == "gzip":
                gz_size = len(gz)
        gz_ms = (time.perf_counter() - t0) * 1000
        hwm, rss = a.hwm_mib(), a.rss_mib()
    return {"peak_rss_mib_10k": round(hwm, 1) if hwm else None, "rss_after_scrapes_mib_10k": round(rss, 1),
            "scrape_ms_10k": round(statistics.median(scrapes) * 1000, 1),
            "scrape_ms_all_10k": [round(s * 1000, 1) for s in scrapes], "scrape_bytes_10k": size,
            "scrape_gzip_bytes_10k": gz_size, "scrape_gzip_ms_10k": round(gz_ms, 1),
            "start_to_metrics_seconds_10k": round(start_to_metrics, 3), "checks_10k": n, "interval_10k_seconds": interval_s}


def row_check(target: _common.Target) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="sre-agent-bench-issue12-check-"))
    try:
        cfg = _config(workdir, 1, target.url, 30_000)
        walls = []
        for _ in range(3):
            t0 = time.perf_counter()
            proc = subprocess.run([sys.executable, "-m", "agent.cli", "check", "-c", str(cfg), "bench-http-00000"],
                                  cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=60,
                                  stdin=subprocess.DEVNULL)
            walls.append(time.perf_counter() - t0)
            if proc.returncode != 0:
                raise RuntimeError(f"sre-agent check exited {proc.returncode}: {proc.stdout}{proc.stderr}"[-2000:])
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return {"check_command_seconds": round(statistics.median(walls), 3), "check_command_all_seconds": [round(w, 3) for w in walls]}


def row_blackbox(target: _common.Target, probes: int, max_seconds: float) -> dict[str, Any]:
    binary = http_checks.find_blackbox()
    if binary is None:
        return {"blackbox": None}
    bb = http_checks.run_blackbox(binary, target.url, probes, BLACKBOX_CONCURRENCY, max_seconds)
    return {"blackbox": bb, "blackbox_cpu_ms_per_probe": bb["cpu_ms_per_probe"]}


def row_alerts(smoke: bool) -> dict[str, Any]:
    cmd = [sys.executable, str(ROOT / "bench" / "alert_pipeline.py"), "--json", "--phases", "paced"]
    cmd += ["--n", "100"] if smoke else []
    proc = subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        raise RuntimeError(f"alert_pipeline.py exited {proc.returncode}: {proc.stderr[-2000:]}")
    [paced] = json.loads(proc.stdout)["phases"]
    return {"alert_p99_ms": paced["latency_p99_ms"], "alert_p50_ms": paced.get("latency_p50_ms"),
            "alert_results": paced.get("alerts", paced.get("n"))}


def run(args: argparse.Namespace) -> dict[str, Any]:
    smoke = args.smoke
    fig: dict[str, Any] = {"smoke": smoke}
    rows = set(args.rows)
    with _common.running_target(args.target) as target:
        fig["target"] = target.kind
        if "cpu" in rows:
            fig.update(row_cpu(target, 20 if smoke else args.n, 1.5 if smoke else 5.0,
                               2.0 if smoke else args.soak_seconds))
        if "blackbox" in rows:
            fig.update(row_blackbox(target, 40 if smoke else args.blackbox_probes, 10 if smoke else 60))
        if "sustained" in rows:
            fig.update(row_sustained(target, 50 if smoke else 2500, 1.5 if smoke else 5.0, 2.0 if smoke else 20.0))
        if "10k" in rows:
            fig.update(row_10k(target, 100 if smoke else 10_000, 1.0 if smoke else 30.0, smoke))
        if "check" in rows:
            fig.update(row_check(target))
    if "alerts" in rows:
        fig.update(row_alerts(smoke))
    if fig.get("cpu_ms_per_check") and fig.get("blackbox_cpu_ms_per_probe"):
        fig["ratio_agent_to_blackbox"] = round(fig["cpu_ms_per_check"] / fig["blackbox_cpu_ms_per_probe"], 3)
    fig["goals"] = {key: goal_met(key, fig) for key, _, _ in GOALS if key in fig}
    return fig


def format_table(fig: dict[str, Any], machine: dict[str, Any], revision: str | None) -> str:
    out = [f"machine: {machine.get('cpus')} CPUs, {machine.get('memory_gib')} GiB, Python {machine.get('python')}; "
           f"revision {revision or '?'}; target {fig.get('target')}" + (" (SMOKE: tiny N, figures not comparable)" if fig.get("smoke") else ""),
           "", "| figure | measured | goal | met |", "|---|---:|---|---|"]
    for key, label, goal in GOALS:
        if key not in fig:
            continue
        met = fig["goals"].get(key)
        out.append(f"| {label} | {_common.fmt(fig[key])} | {goal} | {'-' if met is None else ('yes' if met else 'NO')} |")
    return "\n".join(out)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", nargs="+", choices=ROWS, default=list(ROWS), help="rows to measure (default: all)")
    ap.add_argument("--n", type=int, default=1000, help="checks at 1 s for the CPU row (default 1000)")
    ap.add_argument("--soak-seconds", type=float, default=60.0, help="the CPU row's window, also the soak (default 60, max 3600)")
    ap.add_argument("--blackbox-probes", type=int, default=20_000, help="probes for the exporter (default 20000, at most 60 s)")
    ap.add_argument("--target", choices=("auto", "nginx", "aiohttp"), default="auto")
    ap.add_argument("--event-loop", choices=("auto", "asyncio", "uvloop"), default=None,
                    help="set agent.event_loop in the generated configs (default: not set, as a new user would)")
    ap.add_argument("--smoke", action="store_true", help="tiny N and windows: every row runs, figures are not comparable")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    ap.add_argument("--suite-soak", action="store_true",
                    help="the suite's soak: the CPU row only, 200 checks at 1 s for 60 s (key issue12_suite_soak)")
    ap.add_argument("--hour-soak", action="store_true",
                    help="the 1 h soak: the CPU row only, 200 checks at 1 s for 3600 s (key issue12_hour_soak)")
    args = ap.parse_args(argv)
    if args.suite_soak or args.hour_soak:
        args.rows, args.n, args.smoke = ["cpu"], 200, False
        args.soak_seconds = 3600.0 if args.hour_soak else 60.0
    if not 1 <= args.soak_seconds <= 3600 or args.n < 1 or args.blackbox_probes < 1:
        ap.error("--soak-seconds must be 1-3600, --n and --blackbox-probes positive")
    return args


def main(argv: list[str] | None = None) -> int:
    global EVENT_LOOP
    args = parse_args(argv)
    EVENT_LOOP = args.event_loop
    fig = run(args)
    fig["event_loop"] = args.event_loop or "default"
    key = ("issue12_hour_soak" if args.hour_soak else "issue12_suite_soak" if args.suite_soak
           else "issue12_smoke" if args.smoke else "issue12")
    _common.write_results(key, fig)
    if args.json:
        print(json.dumps(fig, indent=2))
    else:
        print(format_table(fig, _common.machine(), _common.revision()))
        missed = [label for k, label, _ in GOALS if fig["goals"].get(k) is False]
        for label in missed:
            print(f"GOAL MISSED: {label}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
