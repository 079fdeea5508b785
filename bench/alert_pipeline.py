"""How fast a failing check reaches its receiver, and how the outbox drains a slow one.

A real alerting engine (`agent.alerting.engine.build_component`, the daemon's
seam: wall clock, background tasks) with a real SQLite store in a temp dir
and a config loaded by `load_config`: N checks with `alert: {after: 1}`, one
route with `group_by: [check]` and `group_wait: 0s` (so each alert is its own
notification), and a webhook receiver pointing at a local aiohttp server.
CRITICAL results go in through `on_result`, as the scheduler's publish does.

The receiver runs in its own process, so it never shares the measured
process's CPU; it notes the wall-clock arrival time of every alert's
`dedup_key` and can be told to answer slowly (`delay_ms`) or to answer the
first K requests with 429 + `Retry-After: 1`. Each phase runs the engine in a
fresh child process, so its CPU time and peak RSS are its own.

Latency per alert = arrival at the receiver - the moment its result was handed
to `on_result` (both `time.time()` on the same machine). The measured window
runs from the first result to the last accepted notification; the end is seen
by wrapping the engine's `AlertingMetrics.outcome` (no polling task in the
measured loop), and the queue depth peak by wrapping `queue_depth`, so every
value the `sre_agent_notification_queue_depth` gauge took counts, not only
what a scrape would catch.

Phases (full run):
  paced      N results spread at --rate/s, prompt receiver: latency at a steady load
  burst      N results at once (every check failing together), prompt receiver:
             latency under queueing and unthrottled outbox throughput
  slow-20ms  burst against a receiver that takes 20 ms per answer (and 100 ms; see --delays)
  429        burst; the first K requests get 429 + Retry-After: 1

    .venv/bin/python bench/alert_pipeline.py                  # N = 1000, all phases (about 2.5 min)
    .venv/bin/python bench/alert_pipeline.py --json
    .venv/bin/python bench/alert_pipeline.py --phases burst --profile   # + cProfile of the window (stderr)
    .venv/bin/python bench/alert_pipeline.py --smoke --json   # tiny, for tests/test_bench_alerts_smoke.py

Figures, not assertions: nothing here fails on a slow machine. It does fail
(exit 1) when a phase loses or duplicates an alert, because that is a bug.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for p in (str(HERE), str(ROOT)):
    if p not in sys.path:
        sys.path.insert(0, p)

import _common  # noqa: E402

MAX_PHASE_SECONDS = 120.0
RECEIVER = "bench"
#: a slow-receiver phase sends at most this many seconds' worth of answers (the worker is serial)
SLOW_PHASE_BUDGET = 50.0
#: after the last expected delivery, keep listening this long for a duplicate
DUPLICATE_GRACE = 0.5
PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")


@dataclass
class Phase:
    name: str
    n: int
    feed: str  # "paced" or "burst"
    rate: float = 0.0  # results/s for "paced"
    delay_ms: float = 0.0
    reject_first: int = 0
    retry_after: float = 1.0

    @property
    def budget(self) -> float:
        """Wall-clock bound of the measured window."""
        feed = self.n / self.rate if self.feed == "paced" else 0.0
        serve = self.n * self.delay_ms / 1000 + self.reject_first * self.retry_after
        return min(MAX_PHASE_SECONDS, 30.0 + 2 * (feed + serve))


def phases(args: argparse.Namespace) -> list[Phase]:
    n = args.n
    out = [Phase("paced", n, "paced", rate=args.rate), Phase("burst", n, "burst")]
    for delay in args.delays:
        out.append(Phase(f"slow-{delay:g}ms", min(n, max(1, int(SLOW_PHASE_BUDGET * 1000 / delay))), "burst",
                         delay_ms=delay))
    if args.reject_first:
        out.append(Phase("429", n, "burst", reject_first=args.reject_first))
    if args.phases:
        out = [p for p in out if p.name in args.phases or p.name.split("-")[0] in args.phases]
    return out


def smoke_phases() -> list[Phase]:
    return [Phase("paced", 20, "paced", rate=100.0),
            Phase("burst", 20, "burst"),
            Phase("slow-20ms+429", 20, "burst", delay_ms=20.0, reject_first=2)]


# --- the receiver: an aiohttp server in its own process --------------------------------

async def _serve_receiver() -> None:
    from aiohttp import web

    settings = {"delay_ms": 0.0, "reject_first": 0, "retry_after": 1.0}
    requests = 0
    accepted: list[list[Any]] = []  # [arrival, dedup_key, state, idempotency_key]
    rejected = 0

    async def hook(request: web.Request) -> web.Response:
        nonlocal requests, rejected
        arrival = time.time()
        body = await request.read()
        requests += 1
        nth = requests  # this request's position, before concurrent requests bump the counter
        if settings["delay_ms"]:
            await asyncio.sleep(settings["delay_ms"] / 1000)
        if nth <= settings["reject_first"]:
            rejected += 1
            return web.Response(status=429, text="slow down", headers={"Retry-After": f"{settings['retry_after']:g}"})
        doc = json.loads(body)
        for alert in doc["alerts"]:
            accepted.append([arrival, alert["dedup_key"], alert["state"], doc["idempotency_key"]])
        return web.json_response({"status": "accepted"})

    async def reset(request: web.Request) -> web.Response:
        nonlocal requests, rejected
        settings.update(await request.json())
        requests = rejected = 0
        accepted.clear()
        return web.json_response(settings)

    async def report(request: web.Request) -> web.Response:
        return web.json_response({"requests": requests, "rejected": rejected, "accepted": accepted})

    app = web.Application(client_max_size=16 * 1024 * 1024)
    app.router.add_post("/hook", hook)
    app.router.add_post("/-/reset", reset)
    app.router.add_get("/-/report", report)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
    await site.start()
    port = runner.addresses[0][1]
    print(port, flush=True)
    await asyncio.Event().wait()  # until SIGTERM


_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class ReceiverProcess:
    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--serve-receiver"],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     env=_child_env())
        try:
            assert self.proc.stdout is not None
            line = self.proc.stdout.readline().decode().strip()  # the server prints its port once listening
            self.port = int(line)
            _common.wait_for_port(self.port, self.proc)  # type: ignore[arg-type]
        except Exception:
            _common.stop_process(self.proc)  # type: ignore[arg-type]
            raise

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def _call(self, path: str, payload: dict[str, Any] | None = None) -> Any:
        data = json.dumps(payload).encode() if payload is not None else None
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=data,
                                     headers={"Content-Type": "application/json"})
        with _NO_PROXY.open(req, timeout=30) as resp:
            return json.loads(resp.read())

    def reset(self, phase: Phase) -> None:
        self._call("/-/reset", {"delay_ms": phase.delay_ms, "reject_first": phase.reject_first,
                                "retry_after": phase.retry_after})

    def report(self) -> dict[str, Any]:
        return self._call("/-/report")  # type: ignore[no-any-return]

    def cpu_seconds(self) -> float:
        return _common.cpu_seconds(self.proc.pid)

    def stop(self) -> None:
        _common.stop_process(self.proc)  # type: ignore[arg-type]


def _child_env() -> dict[str, str]:
    """Everything goes to 127.0.0.1: no proxy may sit in between (the HTTP clients honour these variables)."""
    env = {k: v for k, v in os.environ.items() if k not in PROXY_VARS}
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    return env


# --- one phase, in a child process ------------------------------------------------------

def check_name(i: int) -> str:
    return f"bench-alert-{i:05d}"


def write_config(n: int, url: str, state_dir: Path) -> Path:
    doc = {
        "agent": {"listen": "127.0.0.1:0", "state_dir": str(state_dir)},
        "checks": [{"name": check_name(i), "type": "command", "command": ["true"], "interval": "1h",
                    "alert": {"after": 1}, "labels": {"team": "bench", "service": f"svc-{i % 50}"}}
                   for i in range(n)],
        "alerting": {
            "route": {"receiver": RECEIVER, "group_by": ["check"], "group_wait": "0s", "group_interval": "1m",
                      "repeat_interval": "24h"},
            "receivers": [{"name": RECEIVER, "webhook": {"url": url, "timeout": "10s"}}],
        },
    }
    path = state_dir / "config.yaml"
    path.write_text(json.dumps(doc))  # JSON is YAML
    return path


def _thread_cpu() -> dict[str, float]:
    """CPU seconds per thread name (the event loop is MainThread, SQL runs on sre-agent-store_0)."""
    import psutil

    names = {t.native_id: t.name for t in threading.enumerate()}
    out: dict[str, float] = {}
    for t in psutil.Process().threads():
        name = names.get(t.id, "other")
        out[name] = out.get(name, 0.0) + t.user_time + t.system_time
    return out


async def run_phase(phase: Phase, url: str, profile: bool, state_dir: Path) -> dict[str, Any]:
    from prometheus_client import CollectorRegistry

    from agent.alerting.engine import build_component
    from agent.alerting.lifecycle import dedup_key
    from agent.config import load_config
    from agent.core import CheckResult, Status
    from agent.store import for_state_dir as store_for_state_dir

    config = load_config(write_config(phase.n, url, state_dir))
    store = store_for_state_dir(state_dir, 3600.0)
    await store.open()
    registry = CollectorRegistry(auto_describe=True)
    engine = build_component(config, store, registry)
    await engine.start()

    def sample(name: str, **labels: str) -> float:
        return registry.get_sample_value(name, {"receiver": RECEIVER, **labels}) or 0.0

    rss_before = _common.rss_mib()
    published: dict[str, float] = {}

    def publish(i: int) -> None:
        now = time.time()
        name = check_name(i)
        published[dedup_key(name)] = now
        engine.on_result(CheckResult(status=Status.CRITICAL, summary=f"{name}: connection refused", check=name,
                                     type="command", timestamp=now, observations={"latency_seconds": 0.0}))

    profiler = None
    if profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    threads0 = _thread_cpu()
    busy0 = _common.machine_busy_seconds()
    user0, sys0 = _common.cpu_split()
    t0 = time.perf_counter()
    deadline = t0 + phase.budget
    depth_peak = 0
    all_sent = asyncio.Event()
    set_depth = engine.metrics.queue_depth

    def record_depth(receiver: str, depth: int) -> None:
        # every value the engine gives sre_agent_notification_queue_depth, not just what a scrape would catch
        nonlocal depth_peak
        depth_peak = max(depth_peak, depth)
        set_depth(receiver, depth)

    count_outcome = engine.metrics.outcome
    sent = 0

    def record_outcome(receiver: str, outcome: str, n: int = 1) -> None:
        # the moment the last notification is accepted ends the window, without a polling task in the measured loop
        nonlocal sent
        count_outcome(receiver, outcome, n)
        if outcome == "sent":
            sent += n
            if sent >= phase.n:
                all_sent.set()

    engine.metrics.queue_depth = record_depth  # type: ignore[method-assign]
    engine.metrics.outcome = record_outcome  # type: ignore[method-assign]
    if phase.feed == "burst":
        for i in range(phase.n):
            publish(i)
    else:
        for i in range(phase.n):
            wait = t0 + i / phase.rate - time.perf_counter()
            if wait > 0:
                await asyncio.sleep(wait)
            publish(i)
    feed_seconds = time.perf_counter() - t0
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(all_sent.wait(), max(0.0, deadline - time.perf_counter()))
    elapsed = time.perf_counter() - t0
    user1, sys1 = _common.cpu_split()
    busy1 = _common.machine_busy_seconds()
    threads1 = _thread_cpu()
    if profiler is not None:
        profiler.disable()
    timed_out = not all_sent.is_set()
    await asyncio.sleep(DUPLICATE_GRACE)
    outcomes = {o: int(sample("sre_agent_notifications_total", outcome=o)) for o in ("sent", "retried", "failed", "dropped")}
    left = sum((await store.outbox_depth()).values())
    rss_after = _common.rss_mib()
    await engine.stop()
    await store.close()
    if profiler is not None:
        _print_profile(profiler, phase, outcomes["sent"])
    cpu = (user1 - user0) + (sys1 - sys0)
    return {
        "published": published,
        "feed_seconds": feed_seconds,
        "window_seconds": elapsed,
        "timed_out": timed_out,
        "cpu_seconds": cpu,
        "cpu_system_seconds": sys1 - sys0,
        "machine_busy_cores": round((busy1 - busy0) / elapsed, 2) if elapsed > 0 else None,
        "cpu_by_thread": {k: round(v - threads0.get(k, 0.0), 4) for k, v in threads1.items()
                          if v - threads0.get(k, 0.0) > 0.0005},
        "queue_depth_peak": int(depth_peak),
        "outbox_rows_left": int(left),
        "engine_outcomes": outcomes,
        "peak_rss_mib": round(_common.peak_rss_mib(), 1),
        "rss_growth_mib": round(rss_after - rss_before, 1),
    }


#: (file suffix, function) whose cumulative time says where the event loop goes
KEY_FUNCTIONS = (
    ("agent/alerting/engine.py", "process", "engine cycle: AlertingEngine.process"),
    ("agent/alerting/engine.py", "_mute", "  of which _mute (silences/inhibition)"),
    ("agent/alerting/engine.py", "_alert", "  of which _alert -> to_alert"),
    ("agent/alerting/engine.py", "_apply_result", "  of which _apply_result"),
    ("agent/alerting/dispatch.py", "update", "  of which Dispatcher.update"),
    ("agent/alerting/outbox.py", "_deliver", "delivery: one send (_deliver)"),
    ("agent/alerting/outbox.py", "after", "  Outbox.after (store hop)"),
    ("agent/alerting/outbox.py", "delete_many", "  Outbox.delete_many (store hop)"),
    ("agent/notify/webhook.py", "send", "  of which WebhookReceiver.send (aiohttp)"),
)


def _print_profile(profiler: Any, phase: Phase, sent: int) -> None:
    import pstats

    print(f"\n=== cProfile, phase {phase.name} ({phase.n} alerts, {sent} sent; event-loop thread only, "
          f"profiling inflates absolute numbers) ===", file=sys.stderr)
    stats = pstats.Stats(profiler, stream=sys.stderr)
    entries = stats.stats  # type: ignore[attr-defined]
    idle = sum(tt for (_f, _line, fn), (_cc, _nc, tt, _ct, _callers) in entries.items() if "epoll" in fn)
    total = sum(tt for (_cc, _nc, tt, _ct, _callers) in entries.values()) - idle
    print(f"profiled busy time (without {idle:.2f} s waiting in epoll): {total:.2f} s = "
          f"{total * 1000 / max(sent, 1):.2f} ms per notification", file=sys.stderr)
    print(f"{'':<48} {'calls':>8} {'cum s':>7} {'share':>6} {'ms/notification':>16}", file=sys.stderr)
    for suffix, func, label in KEY_FUNCTIONS:
        found = [(nc, ct) for (f, _line, fn), (_cc, nc, _tt, ct, _callers) in entries.items()
                 if fn == func and f.replace("\\", "/").endswith(suffix)]
        calls, cum = sum(nc for nc, _ in found), sum(ct for _, ct in found)
        print(f"{label:<48} {calls:>8,} {cum:>7.2f} {100 * cum / max(total, 1e-9):>5.1f}% "
              f"{cum * 1000 / max(sent, 1):>16.3f}", file=sys.stderr)
    stats.sort_stats("tottime").print_stats(25)
    stats.sort_stats("cumulative").print_stats(30)


# --- orchestration --------------------------------------------------------------------

def _run_child(phase: Phase, receiver: ReceiverProcess, profile: bool) -> tuple[dict[str, Any], str]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(asdict(phase)), "--url", receiver.url]
    if profile:
        cmd.append("--profile")
    with tempfile.TemporaryFile() as err:
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL, cwd=ROOT,
                              timeout=phase.budget + 60, env=_child_env(), check=False)
        err.seek(0)
        log = err.read().decode(errors="replace")
    lines = [line for line in proc.stdout.decode().splitlines() if line.strip()]
    if proc.returncode != 0 or not lines:
        sys.stderr.write(log[-20000:])
        raise RuntimeError(f"benchmark child for phase {phase.name} failed with exit code {proc.returncode}")
    return json.loads(lines[-1]), log


def measure(phase: Phase, receiver: ReceiverProcess, profile: bool) -> dict[str, Any]:
    receiver.reset(phase)
    server_cpu0 = receiver.cpu_seconds()
    child, log = _run_child(phase, receiver, profile)
    server_cpu = receiver.cpu_seconds() - server_cpu0
    got = receiver.report()
    if profile:
        sys.stderr.write(log)
    published: dict[str, float] = child.pop("published")
    firing: dict[str, list[float]] = {}
    other_states = 0
    for arrival, key, state, _idem in got["accepted"]:
        if state == "firing":
            firing.setdefault(key, []).append(arrival)
        else:
            other_states += 1
    in_order = sorted(published.items(), key=lambda kv: kv[1])
    latencies = [min(firing[k]) - t for k, t in in_order if k in firing]
    tenth = max(1, len(latencies) // 10)
    delivered = sum(1 for k in published if k in firing)
    duplicates = sum(len(v) - 1 for v in firing.values())
    strangers = sum(1 for k in firing if k not in published)
    arrivals = [a for v in firing.values() for a in v]
    span = (max(arrivals) - min(published.values())) if arrivals and published else 0.0
    sent = child["engine_outcomes"]["sent"]

    def ms(q: float, values: list[float] = latencies) -> float | None:
        v = _common.percentile(values, q)
        return round(v * 1000, 2) if v is not None else None

    logged = [line for line in log.splitlines() if line.strip() and not profile]
    return {
        "phase": phase.name,
        "settings": asdict(phase),
        "expected": phase.n,
        "delivered": delivered,
        "lost": phase.n - delivered,
        "duplicates": duplicates,
        "unexpected_keys": strangers,
        "non_firing_received": other_states,
        "requests_seen": got["requests"],
        "answered_429": got["rejected"],
        "latency_min_ms": round(min(latencies) * 1000, 2) if latencies else None,
        "latency_p50_ms": ms(50),
        "latency_p90_ms": ms(90),
        "latency_p99_ms": ms(99),
        "latency_max_ms": round(max(latencies) * 1000, 2) if latencies else None,
        # as alerts pile up: the first tenth published meets an engine with few firing alerts, the last with N
        "latency_p50_first_tenth_ms": ms(50, latencies[:tenth]),
        "latency_p50_last_tenth_ms": ms(50, latencies[-tenth:]),
        "notifications_per_second": round(delivered / span, 1) if span > 0 else None,
        "offered_per_second": round(phase.rate, 1) if phase.feed == "paced" else None,
        "cpu_ms_per_notification": round(child["cpu_seconds"] * 1000 / sent, 3) if sent else None,
        "receiver_cpu_ms_per_request": round(server_cpu * 1000 / got["requests"], 3) if got["requests"] else None,
        "log_lines": len(logged),
        **child,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    selected = smoke_phases() if args.smoke else phases(args)
    report: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "settings": {"n": args.n, "rate": args.rate, "delays_ms": args.delays, "reject_first": args.reject_first,
                     "smoke": args.smoke},
        "receiver": {"kind": "aiohttp", "process": "separate"},
        "phases": [],
    }
    receiver = ReceiverProcess()
    try:
        for phase in selected:
            report["phases"].append(measure(phase, receiver, args.profile))
    finally:
        receiver.stop()
    return report


def _fmt(v: Any, digits: int = 2) -> str:
    return _common.fmt(v, digits)


def format_table(report: dict[str, Any]) -> str:
    ps = report["phases"]
    rows: list[tuple[str, list[str]]] = [
        ("alerts (checks failing)", [_fmt(p["expected"]) for p in ps]),
        ("feed", [p["settings"]["feed"] + (f" {p['settings']['rate']:g}/s" if p["settings"]["feed"] == "paced" else "")
                  for p in ps]),
        ("receiver delay per answer (ms)", [_fmt(p["settings"]["delay_ms"], 0) for p in ps]),
        ("first requests answered 429", [_fmt(p["settings"]["reject_first"]) for p in ps]),
        ("delivered", [_fmt(p["delivered"]) for p in ps]),
        ("lost", [_fmt(p["lost"]) for p in ps]),
        ("duplicates", [_fmt(p["duplicates"]) for p in ps]),
        ("latency min (ms)", [_fmt(p["latency_min_ms"]) for p in ps]),
        ("latency p50 (ms)", [_fmt(p["latency_p50_ms"]) for p in ps]),
        ("latency p90 (ms)", [_fmt(p["latency_p90_ms"]) for p in ps]),
        ("latency p99 (ms)", [_fmt(p["latency_p99_ms"]) for p in ps]),
        ("latency max (ms)", [_fmt(p["latency_max_ms"]) for p in ps]),
        ("latency p50, first / last tenth (ms)", [f"{_fmt(p['latency_p50_first_tenth_ms'], 0)} / "
                                                  f"{_fmt(p['latency_p50_last_tenth_ms'], 0)}" for p in ps]),
        ("notifications/s delivered", [_fmt(p["notifications_per_second"], 1) for p in ps]),
        ("queue depth peak", [_fmt(p["queue_depth_peak"]) for p in ps]),
        ("outbox rows left", [_fmt(p["outbox_rows_left"]) for p in ps]),
        ("engine: sent / retried", [f"{p['engine_outcomes']['sent']:,} / {p['engine_outcomes']['retried']:,}" for p in ps]),
        ("engine: failed / dropped", [f"{p['engine_outcomes']['failed']:,} / {p['engine_outcomes']['dropped']:,}" for p in ps]),
        ("requests seen / answered 429", [f"{p['requests_seen']:,} / {p['answered_429']:,}" for p in ps]),
        ("CPU-ms per notification", [_fmt(p["cpu_ms_per_notification"], 3) for p in ps]),
        ("  event loop / store thread (s)", [f"{p['cpu_by_thread'].get('MainThread', 0):.2f} / "
                                             f"{sum(v for k, v in p['cpu_by_thread'].items() if 'store' in k):.2f}"
                                             for p in ps]),
        ("measured window (s)", [_fmt(p["window_seconds"], 1) for p in ps]),
        ("CPU cores busy (whole machine)", [_fmt(p["machine_busy_cores"]) for p in ps]),
        ("peak RSS (MiB)", [_fmt(p["peak_rss_mib"], 1) for p in ps]),
        ("RSS growth in window (MiB)", [_fmt(p["rss_growth_mib"], 1) for p in ps]),
        ("receiver CPU-ms per request", [_fmt(p["receiver_cpu_ms_per_request"], 3) for p in ps]),
        ("timed out", [_fmt(p["timed_out"]) for p in ps]),
    ]
    width = max(len(name) for name, _ in rows)
    cols = [max(12, len(p["phase"]), *(len(v[i]) for _, v in rows)) for i, p in enumerate(ps)]
    lines = [f"sre-agent alert pipeline: engine + SQLite outbox + webhook -> aiohttp receiver (separate process), "
             f"{report['machine']['cpus']} CPUs, Python {report['machine']['python']}", ""]
    lines.append(f"{'phase':<{width}}  " + "  ".join(f"{p['phase']:>{cols[i]}}" for i, p in enumerate(ps)))
    for name, values in rows:
        lines.append(f"{name:<{width}}  " + "  ".join(f"{v:>{cols[i]}}" for i, v in enumerate(values)))
    return "\n".join(lines)


def problems(report: dict[str, Any]) -> list[str]:
    """Correctness, not speed: a lost or doubled page is a bug whatever the machine."""
    out = []
    for p in report["phases"]:
        for key in ("lost", "duplicates", "unexpected_keys", "outbox_rows_left"):
            if p[key]:
                out.append(f"phase {p['phase']}: {key} = {p[key]}")
    return out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1000, help="alerting checks per phase (default 1000)")
    ap.add_argument("--rate", type=float, default=100.0, help="results/s in the paced phase (default 100)")
    ap.add_argument("--delays", type=float, nargs="*", default=[20.0, 100.0],
                    help="slow-receiver phases: ms per answer (default 20 100)")
    ap.add_argument("--reject-first", type=int, default=5,
                    help="429 phase: this many first requests get 429 + Retry-After: 1 (0: no such phase)")
    ap.add_argument("--phases", nargs="+", help="only these phases (paced, burst, slow, slow-20ms, 429)")
    ap.add_argument("--profile", action="store_true", help="cProfile each phase's window; report on stderr")
    ap.add_argument("--smoke", action="store_true", help="20 alerts: paced, burst, and 20 ms + two 429s")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON instead of a table")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--url", help=argparse.SUPPRESS)
    ap.add_argument("--serve-receiver", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.n < 1 or args.rate <= 0 or any(d <= 0 for d in args.delays) or args.reject_first < 0:
        ap.error("--n, --rate and --delays must be positive, --reject-first at least 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.serve_receiver:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(_serve_receiver())
        return 0
    if args.worker:
        phase = Phase(**json.loads(args.worker))
        with tempfile.TemporaryDirectory(prefix="sre-agent-bench-alerts-") as state_dir:
            print(json.dumps(asyncio.run(run_phase(phase, args.url, args.profile, Path(state_dir)))))
        return 0
    report = run(args)
    print(json.dumps(report, indent=2) if args.json else format_table(report))
    bad = problems(report)
    for line in bad:
        print(f"PROBLEM: {line}", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
