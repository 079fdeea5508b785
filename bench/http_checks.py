"""How many HTTP checks one agent process runs, and what each costs in CPU.

N http checks run in the agent itself (`agent.daemon.Agent` on a generated
config file: validated config models -> `build_checks` -> the real
`agent.scheduler.Scheduler`, publishing to metrics, the store and alerting)
and probe a local target on 127.0.0.1 (nginx, or an aiohttp server in another
process). Intervals are N / --rate, so the offered rate keeps one core busy;
jitter spreads the first runs. Each N runs in a fresh child process, so its
CPU time and peak RSS are its own. `--compare-blackbox` then has a
prometheus-blackbox-exporter do the same number of probes against the same
target at the same concurrency and compares CPU per probe. `--layers` peels
the path (bare aiohttp, the check, the runner, the scheduler) to show where
the CPU goes.

    .venv/bin/python bench/http_checks.py                      # N = 1000 and 5000, 20 s each
    .venv/bin/python bench/http_checks.py --n 5000 --compare-blackbox --json
    .venv/bin/python bench/http_checks.py --smoke --json       # tiny, for tests/test_bench_smoke.py
    .venv/bin/python bench/http_checks.py --n 1000 --profile   # + cProfile of the measured window
    .venv/bin/python bench/http_checks.py --layers --repeat 3  # where the CPU goes, median of 3

Figures, not assertions: nothing here fails on a slow machine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for p in (str(HERE), str(ROOT)):
    if p not in sys.path:
        sys.path.insert(0, p)

import _common  # noqa: E402

MAX_PHASE_SECONDS = 120.0
CONCURRENCY = 64
BLACKBOX_BINARIES = ("prometheus-blackbox-exporter", "blackbox_exporter")


# --- one N, in a child process ---------------------------------------------------

def _check_configs(n: int, url: str, interval: float) -> list[dict[str, Any]]:
    interval_ms = max(1, round(interval * 1000))
    return [{
        "name": f"bench-http-{i:05d}",
        "type": "http",
        "url": f"{url}?check={i}",
        "interval": f"{interval_ms}ms",
        "timeout": "5s",
        "expect": {"status": [200], "body_contains": "ok"},
        "latency": {"warning": "2s", "critical": "4s"},
        "labels": {"team": "bench"},
    } for i in range(n)]


LAYERS = ("aiohttp", "check", "execute", "scheduler")


async def run_checks(n: int, url: str, seconds: float, rate: float, warmup: float | None,
                     concurrency: int, target_pids: list[int], profile: bool,
                     layer: str = "scheduler", gc_mode: str = "default") -> dict[str, Any]:
    """Start the agent on N http checks; measure a window after warm-up.

    The agent is `agent.daemon.Agent` on a config file, as `sre-agent run` starts
    it (store, alerting, API, metrics), so the scheduler path is the real one.
    `layer` peels it for `--layers`: "execute" drives `agent.runner.execute` +
    the agent's publishing from `concurrency` loops without APScheduler; "check"
    awaits `HttpCheck.run()` alone; "aiohttp" is a bare `ClientSession.get` with
    a fresh connection each, over the same N URLs. The agent is started for
    every layer, so the heap (and the garbage collector's work) is comparable.
    """
    import aiohttp
    from prometheus_client import CollectorRegistry

    from agent.core import CheckResult, Status
    from agent.daemon import Agent
    from agent.runner import build_checks, execute

    rss_before = _common.rss_mib()
    interval = max(n / rate, 0.2)
    warmup = warmup if warmup is not None else min(10.0, max(2.0, 1.5 * interval))
    workdir = Path(tempfile.mkdtemp(prefix="sre-agent-bench-"))
    config = {
        "agent": {"listen": "127.0.0.1:0", "state_dir": str(workdir / "state"), "max_concurrency": concurrency},
        "checks": _check_configs(n, url, interval),
    }
    (workdir / "sre-agent.yaml").write_text(json.dumps(config))  # JSON is YAML
    agent = Agent(workdir / "sre-agent.yaml", CollectorRegistry(auto_describe=True))

    recording = False
    lags: list[float] = []
    durations: list[float] = []
    completed = errors = 0
    error_samples: dict[str, int] = {}

    def record(result: CheckResult) -> None:
        nonlocal completed, errors
        if recording:
            completed += 1
            durations.append(result.duration_seconds)
            if result.status is not Status.OK:
                errors += 1
                key = f"{result.status.name}: {result.summary}"[:160]
                error_samples[key] = error_samples.get(key, 0) + 1

    # GC: wall-clock pauses (what stalls the loop) and CPU (what it costs; on a busy
    # machine a pause also contains time the process was not scheduled)
    gc_pauses: list[float] = []
    gc_cpu = 0.0
    gc_by_generation = [[0, 0.0], [0, 0.0], [0, 0.0]]  # [collections, CPU seconds] per generation
    gc_started = gc_cpu_started = 0.0

    def on_gc(phase: str, info: dict[str, int]) -> None:
        nonlocal gc_started, gc_cpu_started, gc_cpu
        if phase == "start":
            gc_started, gc_cpu_started = time.perf_counter(), time.process_time()
        elif recording:
            gc_pauses.append(time.perf_counter() - gc_started)
            cpu_spent = time.process_time() - gc_cpu_started
            gc_cpu += cpu_spent
            entry = gc_by_generation[min(info.get("generation", 0), 2)]
            entry[0] += 1
            entry[1] += cpu_spent

    loop_lags: list[float] = []

    async def heartbeat() -> None:
        # how late the event loop wakes a 10 ms sleeper: stalls that no check's own timing shows
        while True:
            before = time.perf_counter()
            await asyncio.sleep(0.01)
            if recording:
                loop_lags.append(time.perf_counter() - before - 0.01)

    stopping = False
    plain: aiohttp.ClientSession | None = None
    built: list[Any] = []

    async def drive(first: int) -> None:
        # one of `concurrency` loops walking the checks round-robin, back to back
        i = first
        while not stopping:
            check = built[i % n]
            i += concurrency
            if layer == "execute":
                result = await execute(check)
                agent._publish(result)
                record(result)
            elif layer == "check":
                started = time.perf_counter()
                result = await check.run()
                result.duration_seconds = time.perf_counter() - started
                record(result)
            else:
                assert plain is not None
                started = time.perf_counter()
                try:
                    async with plain.get(check.config.url) as resp:
                        await resp.read()
                    status = Status.OK if resp.status == 200 else Status.CRITICAL
                    summary = f"HTTP {resp.status}"
                except (aiohttp.ClientError, OSError) as exc:
                    status, summary = Status.CRITICAL, f"{type(exc).__name__}: {exc}"
                record(CheckResult(status=status, summary=summary, duration_seconds=time.perf_counter() - started))

    drivers: list[asyncio.Task[None]] = []
    beat: asyncio.Task[None] | None = None
    profiler = None
    skipped0 = 0
    try:
        await agent.start()
        scheduler = agent.scheduler
        assert scheduler is not None
        # Nothing has run yet: `start()` starts the scheduler last, without awaiting after it.
        if layer == "scheduler":
            publish, observe_lag = scheduler.on_result, scheduler.on_lag

            def on_result(result: CheckResult) -> None:
                publish(result)
                record(result)

            def on_lag(lag: float) -> None:
                if observe_lag is not None:
                    observe_lag(lag)
                if recording:
                    lags.append(lag)

            scheduler.on_result, scheduler.on_lag = on_result, on_lag
        else:
            await scheduler.shutdown()
            built = build_checks(agent.config, agent.context)  # type: ignore[arg-type]
            if layer == "aiohttp":
                plain = aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True, limit=0))
            drivers = [asyncio.create_task(drive(k)) for k in range(concurrency)]
        gc.callbacks.append(on_gc)
        if gc_mode == "freeze":  # what-if: the agent's long-lived objects out of every full collection
            gc.collect()
            gc.freeze()
        elif gc_mode == "threshold":  # what-if: fewer, larger young collections
            gc.set_threshold(50_000, 20, 100)
        beat = asyncio.create_task(heartbeat())

        await asyncio.sleep(warmup)
        skipped0 = scheduler.skipped_runs
        target0 = sum(_safe_cpu(pid) for pid in target_pids)
        user0, sys0 = _common.cpu_split()
        machine0 = _common.machine_busy_seconds()
        if profile:
            import cProfile

            profiler = cProfile.Profile(time.process_time)  # CPU, so waiting in select() is not counted
            profiler.enable()
        t0 = time.perf_counter()
        recording = True
        await asyncio.sleep(seconds)
        recording = False
        elapsed = time.perf_counter() - t0
        if profiler is not None:
            profiler.disable()
        user1, sys1 = _common.cpu_split()
        machine1 = _common.machine_busy_seconds()
        target1 = sum(_safe_cpu(pid) for pid in target_pids)
        skipped = scheduler.skipped_runs - skipped0
    finally:
        if on_gc in gc.callbacks:
            gc.callbacks.remove(on_gc)
        if beat is not None:
            beat.cancel()
        stopping = True
        if drivers:
            await asyncio.wait(drivers, timeout=10)
        if plain is not None:
            await plain.close()
        await agent.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    cpu = (user1 - user0) + (sys1 - sys0)
    if profiler is not None:
        _print_profile(profiler, completed)
    ms = 1000.0
    return {
        "n": n,
        "layer": layer,
        "interval_seconds": round(interval, 4),
        "offered_per_second": round(n / interval, 1),
        "concurrency": concurrency,
        "warmup_seconds": round(warmup, 2),
        "seconds": round(elapsed, 3),
        "completed_checks": completed,
        "checks_per_second": round(completed / elapsed, 1) if elapsed > 0 else 0.0,
        "cpu_seconds": round(cpu, 4),
        "cpu_user_seconds": round(user1 - user0, 4),
        "cpu_system_seconds": round(sys1 - sys0, 4),
        "cpu_ms_per_check": round(cpu * ms / completed, 4) if completed else None,
        "cpu_utilisation": round(cpu / elapsed, 3) if elapsed > 0 else None,
        # the whole machine: > cpu_utilisation + the target's share means other work competed
        "machine_busy_cores": round((machine1 - machine0) / elapsed, 2) if elapsed > 0 else None,
        "lag_p50_ms": _ms(_common.percentile(lags, 50)),
        "lag_p99_ms": _ms(_common.percentile(lags, 99)),
        "duration_p50_ms": _ms(_common.percentile(durations, 50)),
        "duration_p99_ms": _ms(_common.percentile(durations, 99)),
        "skipped_runs": skipped,
        "loop_stall_p99_ms": _ms(_common.percentile(loop_lags, 99)),
        "loop_stall_max_ms": _ms(max(loop_lags, default=None)),
        "gc_collections": len(gc_pauses),
        "gc_pause_total_ms": round(sum(gc_pauses) * 1000, 1),
        "gc_pause_max_ms": _ms(max(gc_pauses, default=None)),
        "gc_cpu_ms_per_check": round(gc_cpu * ms / completed, 4) if completed else None,
        "gc_cpu_share": round(gc_cpu / cpu, 3) if cpu > 0 else None,
        "gc_by_generation": [{"generation": g, "collections": c, "cpu_ms": round(t * 1000, 1)}
                             for g, (c, t) in enumerate(gc_by_generation)],
        "peak_rss_mib": round(_common.peak_rss_mib(), 1),
        "rss_before_checks_mib": round(rss_before, 1),
        "errors": errors,
        "error_samples": dict(sorted(error_samples.items(), key=lambda kv: -kv[1])[:5]),
        "target_cpu_ms_per_request": round((target1 - target0) * ms / completed, 4) if completed and target_pids else None,
        "gc_mode": gc_mode,
        "code_fingerprint": code_fingerprint(),
    }


MEASURED_CODE = ("agent/*.py", "agent/alerting/*.py", "checks/base.py", "checks/http.py", "checks/_tlsinfo.py")


def code_fingerprint() -> str:
    """A short hash of the measured source, so a figure can be tied to the code it measured."""
    import hashlib

    digest = hashlib.sha256()
    for pattern in MEASURED_CODE:
        for path in sorted(ROOT.glob(pattern)):
            digest.update(path.relative_to(ROOT).as_posix().encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def _safe_cpu(pid: int) -> float:
    try:
        return _common.cpu_seconds(pid)
    except Exception:
        return 0.0


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)


def _print_profile(profiler: Any, completed: int) -> None:
    """Top functions by own time, and own time grouped by where the code lives."""
    import pstats

    stats = pstats.Stats(profiler, stream=sys.stderr)
    groups: dict[str, float] = {}
    total = 0.0
    for (filename, _line, _func), (_cc, _nc, tottime, _ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        total += tottime
        groups[_area(filename)] = groups.get(_area(filename), 0.0) + tottime
    print(f"\n=== cProfile of the measured window: {completed} checks, own time by area "
          f"(ms per check; profiling inflates absolute numbers) ===", file=sys.stderr)
    for area, t in sorted(groups.items(), key=lambda kv: -kv[1]):
        print(f"  {area:<32} {t * 1000 / max(completed, 1):8.4f} ms  {100 * t / max(total, 1e-9):5.1f}%", file=sys.stderr)
    print("\n=== top 30 functions by own time ===", file=sys.stderr)
    stats.sort_stats("tottime").print_stats(30)
    print("\n=== top 30 by cumulative time ===", file=sys.stderr)
    stats.sort_stats("cumulative").print_stats(30)


def _area(filename: str) -> str:
    f = filename.replace("\\", "/")
    for marker, name in (("/apscheduler/", "apscheduler"), ("/aiohttp/", "aiohttp"), ("/prometheus_client/", "prometheus_client"),
                         ("/pydantic", "pydantic"), ("/multidict/", "multidict"), ("/yarl/", "yarl"),
                         ("/asyncio/", "asyncio (stdlib)"), ("/checks/http.py", "checks/http.py"),
                         ("/agent/runner.py", "agent/runner.py"), ("/agent/scheduler.py", "agent/scheduler.py"),
                         ("/agent/metrics.py", "agent/metrics.py"), ("/agent/store/", "agent/store"),
                         ("/agent/", "agent (other)"), ("/checks/", "checks (other)"), ("/bench/", "bench"),
                         ("/dateutil/", "dateutil"), ("/tzlocal/", "tzlocal"), ("/ssl.py", "ssl (stdlib)"),
                         ("/socket.py", "socket (stdlib)"), ("/logging/", "logging (stdlib)")):
        if marker in f:
            return name
    if f.startswith("~") or f == "<built-in>":
        return "builtins / C calls"
    if "/lib/python3" in f:
        return "stdlib (other)"
    return "other"


# --- blackbox_exporter ---------------------------------------------------------------

def find_blackbox() -> str | None:
    for name in BLACKBOX_BINARIES:
        path = shutil.which(name) or (f"/usr/bin/{name}" if os.access(f"/usr/bin/{name}", os.X_OK) else None)
        if path:
            return path
    return None


_BLACKBOX_CONFIG = """\
modules:
  http_2xx:
    prober: http
    timeout: 5s
    http:
      preferred_ip_protocol: ip4
      ip_protocol_fallback: false
"""


def _vm_hwm_mib(pid: int) -> float | None:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return None


async def _drive_probes(base: str, target_url: str, count: int, concurrency: int, deadline: float) -> tuple[int, int, dict[str, int]]:
    import aiohttp

    done = failed = 0
    samples: dict[str, int] = {}
    issued = 0
    params = {"target": target_url, "module": "http_2xx"}
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=10)) as session:
        async def worker() -> None:
            nonlocal done, failed, issued
            while issued < count and time.monotonic() < deadline:
                issued += 1
                try:
                    async with session.get(f"{base}/probe", params=params) as resp:
                        text = await resp.text()
                    ok = resp.status == 200 and "\nprobe_success 1" in text
                    why = f"HTTP {resp.status}, probe_success != 1"
                except (aiohttp.ClientError, TimeoutError) as exc:
                    ok, why = False, f"{type(exc).__name__}: {exc}"
                done += 1
                if not ok:
                    failed += 1
                    samples[why[:160]] = samples.get(why[:160], 0) + 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return done, failed, samples


def run_blackbox(binary: str, target_url: str, count: int, concurrency: int, max_seconds: float) -> dict[str, Any]:
    """Start the exporter, warm it up, then time `count` probes (bounded by `max_seconds`)."""
    workdir = Path(tempfile.mkdtemp(prefix="sre-agent-bench-blackbox-"))
    (workdir / "blackbox.yml").write_text(_BLACKBOX_CONFIG)
    port = _common.free_port()
    proc = subprocess.Popen(
        [binary, f"--config.file={workdir / 'blackbox.yml'}", f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=open(workdir / "stderr.log", "wb"),  # noqa: SIM115
    )
    try:
        _common.wait_for_port(port, proc)
        base = f"http://127.0.0.1:{port}"
        asyncio.run(_drive_probes(base, target_url, min(50, count), concurrency, time.monotonic() + 15))
        cpu0 = _common.cpu_seconds(proc.pid)
        t0 = time.perf_counter()
        done, failed, samples = asyncio.run(
            _drive_probes(base, target_url, count, concurrency, time.monotonic() + max_seconds))
        elapsed = time.perf_counter() - t0
        cpu = _common.cpu_seconds(proc.pid) - cpu0
        hwm = _vm_hwm_mib(proc.pid)
    finally:
        _common.stop_process(proc)
        shutil.rmtree(workdir, ignore_errors=True)
    return {
        "binary": binary,
        "probes": done,
        "seconds": round(elapsed, 3),
        "probes_per_second": round(done / elapsed, 1) if elapsed > 0 else 0.0,
        "cpu_seconds": round(cpu, 4),
        "cpu_ms_per_probe": round(cpu * 1000 / done, 4) if done else None,
        "peak_rss_mib": round(hwm, 1) if hwm is not None else None,
        "errors": failed,
        "error_samples": dict(sorted(samples.items(), key=lambda kv: -kv[1])[:5]),
        "concurrency": concurrency,
    }


# --- orchestration --------------------------------------------------------------------

def _run_child(args: argparse.Namespace, n: int, target: _common.Target, layer: str = "scheduler") -> dict[str, Any]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", "--n", str(n), "--target-url", target.url,
           "--seconds", str(args.seconds), "--rate", str(args.rate), "--concurrency", str(args.concurrency),
           "--target-pids", ",".join(map(str, target.pids)), "--layer", layer, "--gc", args.gc]
    if args.warmup is not None:
        cmd += ["--warmup", str(args.warmup)]
    elif layer != "scheduler":
        cmd += ["--warmup", "2"]
    if args.profile:
        cmd.append("--profile")
    budget = args.seconds + (args.warmup or 10.0) + 90.0
    with tempfile.TemporaryFile() as err:
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL, timeout=budget,
                              cwd=ROOT, check=False)
        err.seek(0)
        log = err.read().decode(errors="replace")
    lines = [line for line in proc.stdout.decode().splitlines() if line.strip()]
    if args.profile or proc.returncode != 0 or not lines:
        sys.stderr.write(log[-20000:] if proc.returncode else log)
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"benchmark child for N={n} ({layer}) failed with exit code {proc.returncode}")
    result: dict[str, Any] = json.loads(lines[-1])
    # what the agent logged during the run (e.g. APScheduler's warning per skipped run), counted, not shown
    logged = [line for line in log.splitlines() if line.strip() and not args.profile]
    result["log_lines"] = len(logged)
    messages = [line for line in logged if not line[0].isspace() and not line.startswith("Traceback")]
    result["log_sample"] = list(dict.fromkeys(re.sub(r"\d+", "#", line)[:200] for line in messages))[:4]
    return result


def _run_median(args: argparse.Namespace, n: int, target: _common.Target, layer: str = "scheduler") -> dict[str, Any]:
    """`--repeat` runs of one child; the run with the median CPU per check, and every run's figure."""
    runs = [_run_child(args, n, target, layer) for _ in range(args.repeat)]
    runs.sort(key=lambda r: r["cpu_ms_per_check"] if r["cpu_ms_per_check"] is not None else float("inf"))
    chosen = runs[(len(runs) - 1) // 2]
    chosen["cpu_ms_per_check_all_runs"] = [r["cpu_ms_per_check"] for r in runs]
    return chosen


def run(args: argparse.Namespace) -> dict[str, Any]:
    blackbox = find_blackbox() if args.compare_blackbox else None
    report: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "settings": {"seconds": args.seconds, "rate": args.rate, "repeat": args.repeat, "concurrency": args.concurrency, "gc": args.gc, "smoke": args.smoke},
        "blackbox": {"requested": args.compare_blackbox, "binary": blackbox},
        "runs": [],
        "layers": [],
    }
    with _common.running_target(args.target) as target:
        report["target"] = {"kind": target.kind, "url": target.url}
        for n in args.n:
            result = _run_median(args, n, target)
            if blackbox is not None:
                count = args.blackbox_probes or result["completed_checks"] or n
                bb = run_blackbox(blackbox, target.url, count, args.concurrency, min(args.seconds * 2, MAX_PHASE_SECONDS))
                result["blackbox"] = bb
                if bb["cpu_ms_per_probe"] and result["cpu_ms_per_check"]:
                    result["cpu_ratio_agent_to_blackbox"] = round(result["cpu_ms_per_check"] / bb["cpu_ms_per_probe"], 3)
            report["runs"].append(result)
            if args.layers:
                report["layers"].extend(_run_median(args, n, target, layer) for layer in LAYERS[:-1])
                report["layers"].append(result)
    return report


def _fmt(v: Any, digits: int = 3) -> str:
    return _common.fmt(v, digits)


def format_table(report: dict[str, Any]) -> str:
    runs = report["runs"]
    rows: list[tuple[str, list[str]]] = [
        ("checks (N)", [_fmt(r["n"]) for r in runs]),
        ("interval (s)", [_fmt(r["interval_seconds"]) for r in runs]),
        ("offered checks/s", [_fmt(r["offered_per_second"]) for r in runs]),
        ("measured window (s)", [_fmt(r["seconds"], 1) for r in runs]),
        ("completed checks", [_fmt(r["completed_checks"]) for r in runs]),
        ("checks/s", [_fmt(r["checks_per_second"]) for r in runs]),
        ("CPU-ms per check", [_fmt(r["cpu_ms_per_check"]) for r in runs]),
        ("  every run (median shown)", [" ".join(f"{v:.3f}" for v in r.get("cpu_ms_per_check_all_runs", []) if v)
                                        if len(r.get("cpu_ms_per_check_all_runs", [])) > 1 else "-" for r in runs]),
        ("  of which system", [_fmt(r["cpu_system_seconds"] * 1000 / r["completed_checks"]) if r["completed_checks"] else "-"
                               for r in runs]),
        ("CPU cores busy (agent)", [_fmt(r["cpu_utilisation"], 2) for r in runs]),
        ("CPU cores busy (whole machine)", [_fmt(r["machine_busy_cores"], 2) for r in runs]),
        ("schedule lag p50 (ms)", [_fmt(r["lag_p50_ms"], 2) for r in runs]),
        ("schedule lag p99 (ms)", [_fmt(r["lag_p99_ms"], 2) for r in runs]),
        ("check duration p50 (ms)", [_fmt(r["duration_p50_ms"], 2) for r in runs]),
        ("check duration p99 (ms)", [_fmt(r["duration_p99_ms"], 2) for r in runs]),
        ("runs skipped (still busy)", [_fmt(r["skipped_runs"]) for r in runs]),
        ("event-loop stall p99 (ms)", [_fmt(r["loop_stall_p99_ms"], 2) for r in runs]),
        ("event-loop stall max (ms)", [_fmt(r["loop_stall_max_ms"], 2) for r in runs]),
        ("GC runs / total pause (ms)", [f"{r['gc_collections']:,} / {r['gc_pause_total_ms']:,.0f}" for r in runs]),
        ("GC longest pause (ms)", [_fmt(r["gc_pause_max_ms"], 2) for r in runs]),
        ("GC CPU-ms per check (share)", [f"{_fmt(r['gc_cpu_ms_per_check'])} ({100 * (r['gc_cpu_share'] or 0):.0f}%)"
                                         for r in runs]),
        ("full (gen 2) collections", [_fmt(r["gc_by_generation"][2]["collections"]) for r in runs]),
        ("peak RSS (MiB)", [_fmt(r["peak_rss_mib"], 1) for r in runs]),
        ("log lines written", [_fmt(r["log_lines"]) for r in runs]),
        ("errors (non-OK results)", [_fmt(r["errors"]) for r in runs]),
        (f"target ({report['target']['kind']}) CPU-ms/request", [_fmt(r["target_cpu_ms_per_request"]) for r in runs]),
    ]
    if any("blackbox" in r for r in runs):
        bb = [r.get("blackbox", {}) for r in runs]
        rows += [
            ("blackbox probes", [_fmt(b.get("probes")) for b in bb]),
            ("blackbox probes/s", [_fmt(b.get("probes_per_second")) for b in bb]),
            ("blackbox CPU-ms per probe", [_fmt(b.get("cpu_ms_per_probe")) for b in bb]),
            ("blackbox peak RSS (MiB)", [_fmt(b.get("peak_rss_mib"), 1) for b in bb]),
            ("blackbox errors", [_fmt(b.get("errors")) for b in bb]),
            ("CPU ratio agent/blackbox", [_fmt(r.get("cpu_ratio_agent_to_blackbox")) for r in runs]),
        ]
    layer_lines = _format_layers(report.get("layers", []))
    width = max(len(name) for name, _ in rows)
    cols = [max(12, *(len(v[i]) for _, v in rows)) for i in range(len(runs))]
    lines = [f"sre-agent http checks, target {report['target']['kind']} at {report['target']['url']}, "
             f"concurrency {report['settings']['concurrency']}, {report['machine']['cpus']} CPUs, "
             f"Python {report['machine']['python']}, code {runs[0].get('code_fingerprint', '?') if runs else '?'}"]
    if report["blackbox"]["requested"] and not report["blackbox"]["binary"]:
        lines.append("(--compare-blackbox: no prometheus-blackbox-exporter binary found; skipped)")
    lines.append("")
    for name, values in rows:
        lines.append(f"{name:<{width}}  " + "  ".join(f"{v:>{cols[i]}}" for i, v in enumerate(values)))
    for r in runs:
        for label, samples in (("agent", r["error_samples"]), ("blackbox", r.get("blackbox", {}).get("error_samples", {}))):
            for text, count in samples.items():
                lines.append(f"N={r['n']} {label} error x{count}: {text}")
        for text in r.get("log_sample", []):
            lines.append(f"N={r['n']} logged: {text}")
    return "\n".join(lines + layer_lines)


_LAYER_NAMES = {
    "aiohttp": "bare aiohttp GET (fresh connection)",
    "check": "HttpCheck.run()",
    "execute": "runner.execute() + Agent._publish",
    "scheduler": "full agent: APScheduler + Scheduler",
}


def _format_layers(layers: list[dict[str, Any]]) -> list[str]:
    """CPU per check as each layer is added, and what each layer adds."""
    if not layers:
        return []
    out = ["", "Where the CPU goes (each layer run back to back at the same concurrency, own child process):", ""]
    head = f"{'N':>6}  {'layer':<38} {'checks/s':>9} {'CPU-ms/check':>13} {'added':>8} {'GC CPU-ms':>12} {'errors':>7}"
    out.append(head)
    prev: dict[int, float] = {}
    for r in layers:
        cost = r["cpu_ms_per_check"]
        added = "" if r["n"] not in prev or cost is None else f"{cost - prev[r['n']]:+.3f}"
        gc_per = r["gc_cpu_ms_per_check"]
        out.append(f"{r['n']:>6,}  {_LAYER_NAMES[r['layer']]:<38} {_fmt(r['checks_per_second']):>9} "
                   f"{_fmt(cost):>13} {added:>8} {_fmt(gc_per):>12} {_fmt(r['errors']):>7}")
        if cost is not None:
            prev[r["n"]] = cost
    return out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, nargs="+", default=None, help="numbers of checks (default: 1000 5000)")
    ap.add_argument("--seconds", type=float, default=None, help="measured window per N (default 20, max 120)")
    ap.add_argument("--warmup", type=float, default=None, help="seconds before measuring (default: 1.5 intervals, 2-10 s)")
    ap.add_argument("--rate", type=float, default=None,
                    help="offered checks/s; interval = N / rate (default 1000: about what one core completes today)")
    ap.add_argument("--concurrency", type=int, default=CONCURRENCY, help="scheduler max_concurrency and blackbox client concurrency")
    ap.add_argument("--compare-blackbox", action="store_true", help="also measure prometheus-blackbox-exporter's CPU per probe")
    ap.add_argument("--blackbox-probes", type=int, default=None, help="probes for the blackbox run (default: as many as the agent completed)")
    ap.add_argument("--target", choices=("auto", "nginx", "aiohttp"), default="auto", help="the local server probed")
    ap.add_argument("--profile", action="store_true", help="cProfile the measured window; report on stderr")
    ap.add_argument("--repeat", type=int, default=1,
                    help="runs per figure; the median (by CPU per check) is reported, for a busy machine")
    ap.add_argument("--layers", action="store_true",
                    help="also peel the path: bare aiohttp, HttpCheck.run, runner.execute + publish, full scheduler")
    ap.add_argument("--gc", choices=("default", "freeze", "threshold"), default="default",
                    help="what-if for the owner: gc.freeze() after start-up, or higher gc thresholds (default: untouched)")
    ap.add_argument("--layer", choices=LAYERS, default="scheduler", help=argparse.SUPPRESS)
    ap.add_argument("--smoke", action="store_true", help="20 checks for 3 s (+ a few blackbox probes if installed)")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON instead of a table")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--target-url", help=argparse.SUPPRESS)
    ap.add_argument("--target-pids", default="", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.smoke:
        args.n = args.n or [20]
        args.seconds = args.seconds or 3.0
        args.warmup = args.warmup if args.warmup is not None else 1.0
        args.rate = args.rate or 20.0
        args.compare_blackbox = True
        args.blackbox_probes = args.blackbox_probes or 20
    args.n = args.n or [1000, 5000]
    args.seconds = min(args.seconds or 20.0, MAX_PHASE_SECONDS)
    args.rate = args.rate or 1000.0
    if args.warmup is not None:
        args.warmup = min(args.warmup, MAX_PHASE_SECONDS)
    if any(n < 1 for n in args.n) or args.rate <= 0 or args.concurrency < 1 or not 1 <= args.repeat <= 9:
        ap.error("--n, --rate and --concurrency must be positive, --repeat 1-9")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        pids = [int(p) for p in args.target_pids.split(",") if p]
        result = asyncio.run(run_checks(args.n[0], args.target_url, args.seconds, args.rate, args.warmup,
                                        args.concurrency, pids, args.profile, args.layer, args.gc))
        print(json.dumps(result))
        return 0
    report = run(args)
    print(json.dumps(report, indent=2) if args.json else format_table(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
