"""A real Prometheus on 127.0.0.1 holding 30 days of synthetic traffic with known error ratios.

The data is generated per minute from closed-form functions of time, written as
OpenMetrics (one file per day, so each `promtool tsdb create-blocks-from
openmetrics` run parses only its own day: ~10x faster than one big file),
backfilled into a TSDB and served by `prometheus`. The same functions give the
analytic error ratio of any window, which the tests compare with what the agent
computes through the HTTP API.

Traffic (job="api"): 2000 requests/min in even epoch hours, 4000 in odd ones.
Errors (code="500"): 2% in the last hour, 0.5% in the rest of the last day,
0.05% before. Latency histogram: 0.5% of requests slower than 0.3s, always.
Data ends at `end` (now rounded down to the minute); queries at `end` see
window boundaries exactly on samples, so rates carry no extrapolation.
"""

from __future__ import annotations

import concurrent.futures
import json
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

DAY = 86400
MINUTE = 60
HISTORY = timedelta(days=30, hours=1)
SLOW_RATIO = 0.005
LATENCY_THRESHOLD = "0.3"


def requests_per_minute(t: int) -> int:
    return 2000 if (t // 3600) % 2 == 0 else 4000


def error_fraction(t: int, end: int) -> float:
    age = end - t
    if age < 3600:
        return 0.02
    if age < DAY:
        return 0.005
    return 0.0005


def errors_per_minute(t: int, end: int) -> int:
    return round(requests_per_minute(t) * error_fraction(t, end))


def slow_per_minute(t: int) -> int:
    return round(requests_per_minute(t) * SLOW_RATIO)


def analytic(end: int, window: timedelta, bad: str = "errors") -> tuple[float, int]:
    """(error ratio, events) over the minutes (end - window, end], from the generating functions."""
    total = bad_count = 0
    for t in range(end - int(window.total_seconds()) + MINUTE, end + 1, MINUTE):
        n = requests_per_minute(t)
        total += n
        bad_count += errors_per_minute(t, end) if bad == "errors" else slow_per_minute(t)
    return bad_count / total, total


def _write(path: Path, rows: list[tuple[int, int, int, int, int]]) -> None:
    """One OpenMetrics file; rows are (t, ok, err, fast, count) counter values at t."""
    lines = ["# TYPE http_requests counter"]
    lines += [f'http_requests_total{{code="200",job="api"}} {ok} {t}' for t, ok, _, _, _ in rows]
    lines += [f'http_requests_total{{code="500",job="api"}} {err} {t}' for t, _, err, _, _ in rows]
    lines.append("# TYPE http_request_duration_seconds histogram")
    for t, _, _, fast, count in rows:
        lines.append(f'http_request_duration_seconds_bucket{{job="api",le="{LATENCY_THRESHOLD}"}} {fast} {t}')
        lines.append(f'http_request_duration_seconds_bucket{{job="api",le="+Inf"}} {count} {t}')
        lines.append(f'http_request_duration_seconds_count{{job="api"}} {count} {t}')
    lines.append("# EOF")
    path.write_text("\n".join(lines) + "\n", encoding="ascii")


def backfill(data_dir: Path, tsdb: Path, end: int, workers: int = 2) -> int:
    """Write one file per UTC day (counter value at t = events in (start, t]) and backfill them."""
    start = end - int(HISTORY.total_seconds())
    data_dir.mkdir(parents=True, exist_ok=True)
    days: dict[int, list[tuple[int, int, int, int, int]]] = {}
    ok = err = slow = count = 0
    for t in range(start, end + 1, MINUTE):
        if t > start:
            n, e = requests_per_minute(t), errors_per_minute(t, end)
            ok, err, count, slow = ok + n - e, err + e, count + n, slow + slow_per_minute(t)
        days.setdefault(t // DAY * DAY, []).append((t, ok, err, count - slow, count))
    files = []
    for day, rows in days.items():
        path = data_dir / f"{day}.om"
        _write(path, rows)
        files.append(path)
    promtool = shutil.which("promtool")
    assert promtool is not None

    def run(path: Path) -> None:
        proc = subprocess.run([promtool, "tsdb", "create-blocks-from", "openmetrics", "-q", str(path), str(tsdb)],
                              capture_output=True, text=True, timeout=60, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"promtool backfill of {path.name} failed: {proc.stderr.strip()[-2000:]}")

    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        list(pool.map(run, files))
    return len(files)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PromServer:
    url: str
    end: int
    process: subprocess.Popen[bytes]
    log: Path
    startup_seconds: float

    def query(self, expr: str, at: float | None = None) -> list[dict[str, object]]:
        params = {"query": expr, "time": f"{self.end if at is None else at:.3f}"}
        url = f"{self.url}/api/v1/query?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, timeout=10) as response:
            body = json.load(response)
        assert body["status"] == "success", body
        return list(body["data"]["result"])


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return int(response.status)
    except OSError:
        return 0


def start_prometheus(root: Path) -> Iterator[PromServer]:
    """Backfill, start, wait until the data answers; stop on exit (generator for a fixture)."""
    prometheus = shutil.which("prometheus")
    assert prometheus is not None
    began = time.monotonic()
    end = int(time.time()) // MINUTE * MINUTE
    tsdb = root / "tsdb"
    backfill(root / "openmetrics", tsdb, end)
    config = root / "prometheus.yml"
    config.write_text("global:\n  scrape_interval: 1m\n  evaluation_interval: 1m\n", encoding="ascii")
    port = free_port()
    log = root / "prometheus.log"
    with log.open("wb") as log_fh:
        process = subprocess.Popen(
            [prometheus, f"--config.file={config}", f"--storage.tsdb.path={tsdb}",
             f"--web.listen-address=127.0.0.1:{port}", "--storage.tsdb.retention.time=60d", "--log.level=warn"],
            stdout=log_fh, stderr=subprocess.STDOUT)
    server = PromServer(f"http://127.0.0.1:{port}", end, process, log, 0.0)
    try:
        deadline = time.monotonic() + 30
        while _get(f"{server.url}/-/ready") != 200:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"prometheus did not become ready:\n{log.read_text()[-3000:]}")
            time.sleep(0.1)
        while not server.query('count(http_requests_total{job="api"})'):
            if time.monotonic() > deadline:
                raise RuntimeError("backfilled data never became queryable")
            time.sleep(0.2)
        server.startup_seconds = time.monotonic() - began
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
