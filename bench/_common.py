"""Shared helpers for the benchmarks: CPU time, RSS, percentiles and a local target.

A benchmark measures one process (the agent, or a blackbox_exporter) while a
target answers on 127.0.0.1. The target runs in its own process so it never
shares the measured process's CPU time: nginx when it is installed (its cost
per request is tiny and it is what a real service would look like), else a
small aiohttp server in a subprocess. Every connection is closed by the
target after one response (`keepalive_timeout 0`), so each probe pays a
fresh TCP connect and the TIME_WAIT sockets land on the server side instead
of eating the client's ephemeral ports.
"""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psutil

NGINX_CANDIDATES = ("/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx")


# --- measuring ----------------------------------------------------------------

def cpu_seconds(pid: int | None = None) -> float:
    """User + system CPU seconds of a process (all its threads); this process by default."""
    if pid is None or pid == os.getpid():
        ru = resource.getrusage(resource.RUSAGE_SELF)
        return ru.ru_utime + ru.ru_stime
    t = psutil.Process(pid).cpu_times()
    return t.user + t.system


def cpu_split(pid: int | None = None) -> tuple[float, float]:
    """(user, system) CPU seconds; this process by default."""
    if pid is None or pid == os.getpid():
        ru = resource.getrusage(resource.RUSAGE_SELF)
        return ru.ru_utime, ru.ru_stime
    t = psutil.Process(pid).cpu_times()
    return t.user, t.system


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine spent not idle (all cores): shows competing load."""
    t = psutil.cpu_times()
    return sum(t) - t.idle - getattr(t, "iowait", 0.0) - getattr(t, "guest", 0.0) - getattr(t, "guest_nice", 0.0)


def peak_rss_mib() -> float:
    """High-water mark of this process's resident set (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_mib(pid: int | None = None) -> float:
    return psutil.Process(pid or os.getpid()).memory_info().rss / (1024 * 1024)


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100) of unsorted values; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-q * len(ordered) // 100))))  # ceil(q/100 * n)
    return ordered[rank - 1]


def fmt(v: object, digits: int = 3) -> str:
    """A figure for the printed tables: thousands separators, '-' for missing."""
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:,.{digits}f}" if abs(v) < 100 else f"{v:,.1f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, proc: subprocess.Popen[bytes] | None = None, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with code {proc.returncode} before listening on {port}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listening on 127.0.0.1:{port} after {timeout:.0f}s")


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 5.0) -> None:
    """Stop one process we started, by its own id: TERM, then KILL."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=timeout)


# --- the target ------------------------------------------------------------------

@dataclass
class Target:
    """A local HTTP server answering `200 ok` on every path."""

    kind: str  # "nginx" or "aiohttp"
    port: int
    proc: subprocess.Popen[bytes]
    workdir: Path
    pids: list[int] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def cpu_seconds(self) -> float:
        """CPU of the target's processes (nginx master + workers), for its cost per request."""
        total = 0.0
        for pid in self.pids:
            with contextlib.suppress(psutil.Error):
                total += cpu_seconds(pid)
        return total


def find_nginx() -> str | None:
    for path in NGINX_CANDIDATES:
        if os.access(path, os.X_OK):
            return path
    return shutil.which("nginx")


_NGINX_CONF = """\
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    keepalive_timeout 0;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location / {{
            default_type text/plain;
            return 200 "ok";
        }}
    }}
}}
"""

_AIOHTTP_SERVER = """\
import sys
from aiohttp import web

async def ok(request):
    return web.Response(text="ok", headers={"Connection": "close"})

app = web.Application()
app.router.add_get("/{tail:.*}", ok)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None, backlog=4096,
            keepalive_timeout=0)
"""


def start_target(prefer: str = "auto") -> Target:
    """Start nginx (`prefer` = "auto"/"nginx") or the aiohttp fallback on a free port."""
    workdir = Path(tempfile.mkdtemp(prefix="sre-agent-bench-target-"))
    nginx = find_nginx() if prefer in ("auto", "nginx") else None
    if prefer == "nginx" and nginx is None:
        raise RuntimeError("nginx is not installed")
    last_error: Exception | None = None
    for _ in range(3):  # a free port can be taken between probing and binding
        port = free_port()
        if nginx:
            (workdir / "nginx.conf").write_text(_NGINX_CONF.format(dir=workdir, port=port))
            cmd = [nginx, "-p", str(workdir), "-c", str(workdir / "nginx.conf"), "-e", str(workdir / "error.log")]
            kind = "nginx"
        else:
            script = workdir / "server.py"
            script.write_text(_AIOHTTP_SERVER)
            cmd = [sys.executable, str(script), str(port)]
            kind = "aiohttp"
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=open(workdir / "stderr.log", "wb"))  # noqa: SIM115
        try:
            wait_for_port(port, proc)
        except RuntimeError as exc:
            stop_process(proc)
            last_error = exc
            continue
        pids = [proc.pid]
        with contextlib.suppress(psutil.Error):
            pids += [c.pid for c in psutil.Process(proc.pid).children(recursive=True)]
        return Target(kind, port, proc, workdir, pids)
    log = (workdir / "stderr.log").read_text(errors="replace")[-2000:] if (workdir / "stderr.log").exists() else ""
    raise RuntimeError(f"cannot start the {('nginx' if nginx else 'aiohttp')} target: {last_error}\n{log}")


def stop_target(target: Target) -> None:
    stop_process(target.proc)
    shutil.rmtree(target.workdir, ignore_errors=True)


@contextlib.contextmanager
def running_target(prefer: str = "auto") -> Iterator[Target]:
    target = start_target(prefer)
    try:
        yield target
    finally:
        stop_target(target)


def results_path() -> Path:
    """Where figures go: bench/results/latest.json, or $SRE_AGENT_BENCH_RESULTS (the suite's smoke runs)."""
    override = os.environ.get("SRE_AGENT_BENCH_RESULTS")
    return Path(override) if override else Path(__file__).resolve().parent / "results" / "latest.json"


def machine() -> dict[str, object]:
    import platform

    return {"cpus": os.cpu_count(), "memory_gib": round(psutil.virtual_memory().total / (1 << 30), 1),
            "python": platform.python_version(), "system": platform.platform()}


def revision() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def write_results(key: str, figures: dict[str, object]) -> Path:
    """Merge one benchmark's figures into the results file under `key` (atomically: temp file + rename)."""
    import json

    path = results_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        data = {}
    data[key] = {"figures": figures, "machine": machine(), "revision": revision(),
                 "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path
