"""Process check: real processes, started by the test, counted by regex."""

from __future__ import annotations

import getpass
import re
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

from agent.config import ConfigError, load_config
from agent.context import CheckContext
from agent.core import Status
from checks.process import ProcessCheck, ProcessConfig

Spawn = Callable[[str], subprocess.Popen[bytes]]


@pytest.fixture
def marker() -> str:
    return f"sre-agent-test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def spawn() -> Iterator[Spawn]:
    """Start sleeping python processes tagged with a marker argv; kill them all afterwards."""
    started: list[subprocess.Popen[bytes]] = []

    def start(tag: str) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", tag])
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.kill()
        proc.wait(timeout=5)
    assert not any(psutil.pid_exists(p.pid) and psutil.Process(p.pid).status() != psutil.STATUS_ZOMBIE
                   for p in started)


def check(match: str, **kwargs) -> ProcessCheck:
    return ProcessCheck(ProcessConfig(name="worker", type="process", match=match, timeout="5s", **kwargs),
                        CheckContext())


async def test_counts_matching_processes(spawn: Spawn, marker: str):
    procs = [spawn(marker), spawn(marker)]
    spawn(marker + "-other")  # matches too: the regex is searched, not anchored
    result = await check(rf"{marker}$", min=2).run()
    assert result.status == Status.OK, result.summary
    assert result.observations == {"count": 2.0}
    assert sorted(result.details["pids"]) == sorted(p.pid for p in procs)
    assert result.summary.startswith(f"2 processes match '{marker}$'")
    assert str(procs[0].pid) in result.summary


async def test_below_min_is_critical(spawn: Spawn, marker: str):
    spawn(marker)
    result = await check(marker, min=2).run()
    assert result.status == Status.CRITICAL
    assert result.summary == f"1 process match '{marker}', expected at least 2"
    assert result.observations["count"] == 1


async def test_none_running_is_critical_by_default(marker: str):
    result = await check(marker).run()
    assert result.status == Status.CRITICAL
    assert result.summary == f"0 processes match '{marker}', expected at least 1"
    assert result.observations["count"] == 0


async def test_above_max_is_critical(spawn: Spawn, marker: str):
    spawn(marker)
    spawn(marker)
    result = await check(marker, min=0, max=1).run()
    assert result.status == Status.CRITICAL
    assert "expected at most 1" in result.summary
    assert result.observations["count"] == 2


async def test_max_zero_asserts_nothing_runs(marker: str):
    result = await check(marker, min=0, max=0).run()
    assert result.status == Status.OK
    assert result.observations["count"] == 0


async def test_killed_process_is_no_longer_counted(spawn: Spawn, marker: str):
    proc = spawn(marker)
    assert (await check(marker).run()).status == Status.OK
    proc.kill()
    proc.wait(timeout=5)
    result = await check(marker).run()
    assert result.status == Status.CRITICAL
    assert result.observations["count"] == 0


async def test_matches_process_name():
    me = psutil.Process()
    parent = me.parent()
    assert parent is not None
    # The agent's own pid is never counted, so match something else by name.
    result = await check(rf"^{re.escape(parent.name())}$", min=1).run()
    assert result.status == Status.OK
    assert parent.pid in result.details["pids"]


async def test_own_process_is_excluded(marker: str):
    # This test process's command line does not hold the marker; its name does match.
    own = psutil.Process().name()
    result = await check(rf"^{re.escape(own)}$", min=0).run()
    assert psutil.Process().pid not in result.details["pids"]


async def test_user_filter(spawn: Spawn, marker: str):
    spawn(marker)
    mine = await check(marker, user=getpass.getuser()).run()
    assert mine.observations["count"] == 1
    assert "owned by" in mine.summary
    other = await check(marker, user="no-such-user-xyz").run()
    assert other.status == Status.CRITICAL
    assert other.observations["count"] == 0


async def test_process_table_is_read_off_the_event_loop(monkeypatch: pytest.MonkeyPatch, marker: str):
    loop_thread = threading.get_ident()
    seen: list[int] = []
    real = psutil.process_iter

    def spy(*args, **kwargs):
        seen.append(threading.get_ident())
        return real(*args, **kwargs)

    monkeypatch.setattr(psutil, "process_iter", spy)
    await check(marker, min=0).run()
    assert seen and loop_thread not in seen


def write_config(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "agent.yaml"
    path.write_text(f"checks:\n  - {body}\n")
    return path


def test_config_from_yaml(tmp_path: Path):
    path = write_config(tmp_path, '{name: worker, type: process, match: "celery worker", min: 2, max: 4, user: app}')
    cfg = load_config(path, env={}).checks[0]
    assert isinstance(cfg, ProcessConfig)
    assert (cfg.match, cfg.min, cfg.max, cfg.user) == ("celery worker", 2, 4, "app")


@pytest.mark.parametrize(("body", "where", "text"), [
    ('{name: w, type: process, match: "celery[worker"}', "checks[0].match", "invalid regular expression"),
    ('{name: w, type: process, match: ""}', "checks[0].match", "must not be empty"),
    ("{name: w, type: process}", "checks[0].match", "required"),
    ("{name: w, type: process, match: x, min: -1}", "checks[0].min", "greater than or equal to 0"),
    ("{name: w, type: process, match: x, min: 3, max: 2}", "checks[0].max", "max (2) must not be below min (3)"),
])
def test_invalid_config_names_the_field(tmp_path: Path, body: str, where: str, text: str):
    with pytest.raises(ConfigError) as info:
        load_config(write_config(tmp_path, body), env={})
    message = str(info.value)
    assert f"{where}: " in message, message
    assert text in message, message
