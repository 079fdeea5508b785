"""The API can no longer blind the agent (issue 14.13): a real `sre-agent run` under bounded raw-socket loads.

About a thousand idle connections used to exhaust the descriptors under systemd's
LimitNOFILE=1024 (every check CRITICAL, "Too many open files"); idle and half-sent
requests were never closed. Every load here is bounded in count and time, and
only 127.0.0.1 receives it.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from agent.web import HEADER_TIMEOUT, KEEPALIVE_TIMEOUT
from tests.agentproc import AgentProcess, free_port

# How long the agent may take beyond its own timeouts before the test calls it a failure.
SLACK = 5.0


def config(tmp_path: Path, port: int, extra: str = "") -> Path:
    path = tmp_path / "agent.yaml"
    path.write_text(f"""
agent:
  listen: 127.0.0.1:{port}
  state_dir: {tmp_path / "state"}
{extra}
checks:
  - {{name: plugin, type: command, command: ["true"], interval: 200ms, timeout: 2s}}
  - {{name: test-runner, type: process, match: "pytest", interval: 200ms, timeout: 2s}}
  - {{name: state-dir, type: file, path: "{tmp_path}/agent.yaml", max_age: 1h, interval: 200ms, timeout: 2s}}
""")
    return path


@pytest.fixture
def agent(tmp_path):
    started: list[AgentProcess] = []

    def start(open_files: tuple[int, int] | None = None, extra: str = "") -> AgentProcess:
        port = free_port()
        proc = AgentProcess(config(tmp_path, port, extra), port, open_files=open_files).start()
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop()


def failed_runs(proc: AgentProcess) -> dict[str, float]:
    """Runs per check that did not end OK, from the agent's own counter."""
    text = proc.get("/metrics").text
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name == "sre_agent_check_runs":
            for s in family.samples:
                if s.name.endswith("_total") and s.labels["status"] != "OK":
                    out[s.labels["check"]] = out.get(s.labels["check"], 0) + s.value
    return out


def sample(proc: AgentProcess, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(proc.get("/metrics").text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
    raise AssertionError(f"no sample {name}{labels}")


def runs(proc: AgentProcess, check: str) -> float:
    return sum(s.value for f in text_string_to_metric_families(proc.get("/metrics").text)
               if f.name == "sre_agent_check_runs" for s in f.samples
               if s.name.endswith("_total") and s.labels["check"] == check)


def connect_many(port: int, count: int) -> list[socket.socket]:
    out = []
    for _ in range(count):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        out.append(s)
    return out


def closed_by_peer(s: socket.socket, within: float) -> bool:
    """True once the server has closed `s` (EOF or reset), reading whatever it answered first."""
    deadline = time.monotonic() + within
    s.settimeout(0.2)
    while time.monotonic() < deadline:
        try:
            if s.recv(4096) == b"":
                return True
        except TimeoutError:
            continue
        except OSError:
            return True
    return False


def wait_closed(sockets: list[socket.socket], within: float) -> list[socket.socket]:
    """The sockets still open after `within` seconds."""
    deadline = time.monotonic() + within
    still = list(sockets)
    while still and time.monotonic() < deadline:
        still = [s for s in still if not closed_by_peer(s, 0.01)]
        if still:
            time.sleep(0.2)
    return still


def test_idle_connections_cannot_exhaust_descriptors(agent):
    """600 idle sockets against a 512-descriptor agent: checks stay OK, /healthz answers, idle ones get closed."""
    proc = agent(open_files=(512, 512))
    time.sleep(1)
    assert failed_runs(proc) == {}
    idle: list[socket.socket] = []
    try:
        idle = connect_many(proc.port, 600)
        held_until = time.monotonic() + 3
        while time.monotonic() < held_until:
            assert proc.get("/healthz").status_code == 200
            time.sleep(0.3)
        before = runs(proc, "plugin")
        time.sleep(1)
        assert runs(proc, "plugin") > before  # checks kept running, not just kept quiet
        assert failed_runs(proc) == {}, proc.output()[-3000:]
        assert wait_closed(idle, HEADER_TIMEOUT + SLACK) == []
        assert sample(proc, "sre_agent_api_connections_rejected_total", reason="evicted") > 0
    finally:
        for s in idle:
            s.close()
    assert "Too many open files" not in proc.output()
    assert "Traceback" not in proc.output()


def test_half_sent_request_line_is_closed(agent):
    proc = agent()
    with socket.create_connection(("127.0.0.1", proc.port), timeout=5) as half, \
            socket.create_connection(("127.0.0.1", proc.port), timeout=5) as dribble:
        half.sendall(b"GET /metr")
        dribble.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        started = time.monotonic()
        answered = b""
        # A byte at a time keeps the connection busy but never finishes the head.
        while time.monotonic() - started < HEADER_TIMEOUT + SLACK:
            with contextlib.suppress(OSError):
                dribble.sendall(b"X")
            half.settimeout(0.3)
            try:
                chunk = half.recv(4096)
            except TimeoutError:
                continue
            answered += chunk
            if chunk == b"":
                break
        assert answered.startswith(b"HTTP/1.1 408"), answered
        assert closed_by_peer(dribble, SLACK)
    assert sample(proc, "sre_agent_api_connections_rejected_total", reason="header_timeout") >= 2


def test_idle_keepalive_connection_is_closed(agent):
    proc = agent()
    with socket.create_connection(("127.0.0.1", proc.port), timeout=5) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert s.recv(4096).startswith(b"HTTP/1.1 200")
        assert closed_by_peer(s, KEEPALIVE_TIMEOUT + SLACK)


def test_soft_open_files_limit_is_raised_to_the_hard_limit(agent):
    proc = agent(open_files=(256, 4096))
    assert proc.proc is not None
    limits = Path(f"/proc/{proc.proc.pid}/limits").read_text()
    [line] = [row for row in limits.splitlines() if row.startswith("Max open files")]
    assert line.split()[3:5] == ["4096", "4096"], line
    assert "raised the open-files limit (RLIMIT_NOFILE) from 256 to 4096" in proc.output()


async def _get(port: int, path: str, stats: dict[str, int]) -> None:
    try:
        async with asyncio.timeout(30):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
            await writer.drain()
            status = (await reader.readline()).split(b" ")[1:2]
            await reader.read()
            writer.close()
            key = status[0].decode() if status else "closed"
    except ConnectionResetError:
        key = "reset"  # refused over the cap before the 503 was read: the client's request was still unread
    except (OSError, TimeoutError, asyncio.IncompleteReadError) as exc:
        key = type(exc).__name__
    stats[key] = stats.get(key, 0) + 1


async def test_concurrent_complete_gets_do_not_starve_checks(agent):
    """2,000 concurrent GETs of /metrics and /api/v1/checks: API work must not make checks time out."""
    proc = await asyncio.to_thread(agent)
    await asyncio.sleep(1)
    assert await asyncio.to_thread(failed_runs, proc) == {}, proc.get("/api/v1/checks").text
    stats: dict[str, int] = {}
    paths = ["/metrics", "/api/v1/checks", "/api/v1/alerts"]
    load = asyncio.gather(*(_get(proc.port, paths[i % len(paths)], stats) for i in range(2000)))
    health = []
    while not load.done():
        async with httpx.AsyncClient(timeout=10) as client:
            health.append((await client.get(f"{proc.url}/healthz")).status_code)
        await asyncio.sleep(0.5)
    await load
    assert sum(stats.values()) == 2000
    assert stats.get("200", 0) > 0, stats
    assert set(stats) <= {"200", "503", "reset"}, stats  # answered or refused at once: no timeouts, no hang
    # Probes have slots of their own past the cap, but a burst can still take them for a moment.
    assert health and set(health) <= {200, 503}, health
    async with httpx.AsyncClient(timeout=10) as client:
        assert (await client.get(f"{proc.url}/healthz")).status_code == 200
    assert await asyncio.to_thread(failed_runs, proc) == {}, proc.output()[-3000:]
