"""Host check: real psutil readings against thresholds forced low or high."""

from __future__ import annotations

import os
import threading
from collections import namedtuple
from pathlib import Path

import psutil
import pytest

from agent.config import ConfigError, load_config
from agent.context import CheckContext
from agent.core import Status
from checks.host import (
    DISK_RATIO,
    DISK_THRESHOLD,
    INODES_RATIO,
    INODES_THRESHOLD,
    HostCheck,
    HostConfig,
    busy_percent,
)

NEVER = {"warning": None, "critical": None}  # a level set to null is off


def host(**kwargs) -> HostCheck:
    kwargs.setdefault("timeout", "1s")
    return HostCheck(HostConfig(name="node", type="host", **kwargs), CheckContext())


def quiet(**kwargs) -> HostCheck:
    """A host check whose thresholds cannot trip, except those given."""
    base = {"cpu_percent": NEVER, "memory_percent": NEVER, "swap_percent": NEVER,
            "load_per_core": NEVER, "disk": [{"path": "/", **NEVER, "inodes": NEVER}]}
    return host(**{**base, **kwargs})


def write_config(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "agent.yaml"
    path.write_text(body)
    return path


async def test_ok_summary_lists_every_resource():
    result = await quiet().run()
    assert result.status == Status.OK, result.summary
    assert result.summary.startswith("cpu ")
    for part in ("memory ", "load/core ", "disk / "):
        assert part in result.summary
    assert set(result.observations) >= {"cpu_percent", "memory_percent", "swap_percent", "load1",
                                        "load_per_core", "disk_used_percent_max"}
    assert result.observations["memory_percent"] == pytest.approx(psutil.virtual_memory().percent, abs=5)
    assert 0 <= result.observations["cpu_percent"] <= 100
    expected_disk = psutil.disk_usage("/").percent
    assert result.observations["disk_used_percent_max"] == pytest.approx(expected_disk, abs=1)


async def test_memory_over_tiny_threshold_is_critical():
    result = await quiet(memory_percent={"warning": 0, "critical": 0.001}).run()
    assert result.status == Status.CRITICAL
    assert result.summary.startswith("memory ")
    assert ">= 0.001%" in result.summary
    assert "cpu" not in result.summary  # only metrics over threshold are listed


async def test_warning_only_threshold_gives_warning():
    result = await quiet(memory_percent={"warning": 0.001, "critical": None}).run()
    assert result.status == Status.WARNING
    assert "memory" in result.summary and ">= 0.001%" in result.summary


async def test_every_metric_over_threshold_is_listed_worst_first():
    result = await quiet(memory_percent={"warning": 0, "critical": None},
                         disk=[{"path": "/", "warning": 0, "critical": 0.001, "inodes": NEVER}]).run()
    assert result.status == Status.CRITICAL
    parts = result.summary.split("; ")
    assert parts[0].startswith("disk / ") and parts[0].endswith(">= 0.001%")
    assert parts[1].startswith("memory ") and parts[1].endswith(">= 0%")


async def test_load_per_core_threshold():
    result = await quiet(load_per_core={"warning": 0, "critical": 0}).run()
    assert result.status == Status.CRITICAL
    assert "load/core" in result.summary
    assert result.observations["load_per_core"] == pytest.approx(
        os.getloadavg()[0] / psutil.cpu_count(), abs=1)


async def test_missing_disk_path_is_critical_and_others_still_measured(tmp_path: Path):
    missing = tmp_path / "nope"
    result = await quiet(disk=[{"path": "/", **NEVER}, {"path": str(missing)}]).run()
    assert result.status == Status.CRITICAL
    assert result.summary == f"path {missing} does not exist"
    assert [s.labels["path"] for s in result.samples if s.metric == DISK_RATIO] == ["/"]
    assert "disk_used_percent_max" in result.observations


async def test_disk_samples_per_path_as_ratio(tmp_path: Path):
    result = await quiet(disk=[{"path": "/", **NEVER}, {"path": str(tmp_path), **NEVER}]).run()
    assert result.status == Status.OK
    disk = {s.labels["path"]: s.value for s in result.samples if s.metric == DISK_RATIO}
    assert set(disk) == {"/", str(tmp_path)}
    assert all(0 <= v <= 1 for v in disk.values())
    assert result.observations["disk_used_percent_max"] == pytest.approx(max(disk.values()) * 100, abs=0.01)
    assert f"disk {tmp_path} " in result.summary
    assert set(HostCheck.metric_families) == {DISK_RATIO, INODES_RATIO, DISK_THRESHOLD, INODES_THRESHOLD}
    assert HostCheck.metric_families[DISK_RATIO].labelnames == ("check", "path")
    assert HostCheck.metric_families[DISK_THRESHOLD].labelnames == ("check", "path", "level")


async def test_configured_levels_are_exported_for_the_dashboards(tmp_path: Path):
    """CPU/memory/swap/load levels per observation, disk and inode levels per path as ratios; a null level is absent."""
    check = host(cpu_percent={"warning": 60}, memory_percent={"critical": None},
                 disk=[{"path": "/", "warning": 80, "critical": 90}, {"path": str(tmp_path / "gone"), "critical": None,
                                                                     "inodes": {"warning": 50}}])
    assert check.config.observation_thresholds() == {
        "cpu_percent": {"warning": 60, "critical": 90}, "memory_percent": {"warning": 80},
        "swap_percent": {"warning": 50, "critical": 80}, "load_per_core": {"warning": 1.5, "critical": 3}}
    result = await check.run()
    levels = {(s.metric, s.labels["path"], s.labels["level"]): s.value for s in result.samples
              if s.metric in (DISK_THRESHOLD, INODES_THRESHOLD)}
    assert levels == {(DISK_THRESHOLD, "/", "warning"): 0.8, (DISK_THRESHOLD, "/", "critical"): 0.9,
                      (INODES_THRESHOLD, "/", "warning"): 0.85, (INODES_THRESHOLD, "/", "critical"): 0.95,
                      # a path that cannot be read still shows what it is judged against
                      (DISK_THRESHOLD, str(tmp_path / "gone"), "warning"): 0.85,
                      (INODES_THRESHOLD, str(tmp_path / "gone"), "warning"): 0.5,
                      (INODES_THRESHOLD, str(tmp_path / "gone"), "critical"): 0.95}


async def test_inodes_threshold_when_filesystem_has_inodes():
    if os.statvfs("/").f_files == 0:
        pytest.skip("root filesystem reports no inode table")
    result = await quiet(disk=[{"path": "/", **NEVER, "inodes": {"warning": 0, "critical": 0.0001}}]).run()
    assert result.status == Status.CRITICAL
    assert result.summary.startswith("inodes / ")
    assert any(s.metric == INODES_RATIO for s in result.samples)


async def test_psutil_runs_off_the_event_loop(monkeypatch: pytest.MonkeyPatch):
    loop_thread = threading.get_ident()
    seen: list[int] = []
    real = psutil.virtual_memory

    def spy():
        seen.append(threading.get_ident())
        return real()

    monkeypatch.setattr(psutil, "virtual_memory", spy)
    await quiet().run()
    assert seen and loop_thread not in seen


async def test_cpu_is_averaged_since_previous_run_of_the_same_instance():
    check = quiet()
    first = await check.run()
    assert check._cpu_prev is not None
    stamp = check._cpu_prev[0]
    second = await check.run()
    assert check._cpu_prev[0] > stamp
    assert 0 <= first.observations["cpu_percent"] <= 100
    assert 0 <= second.observations["cpu_percent"] <= 100


def test_busy_percent_formula():
    T = namedtuple("T", "user nice system idle iowait guest guest_nice")
    before = T(100, 0, 50, 800, 50, 0, 0)
    after = T(130, 0, 70, 830, 70, 10, 0)  # +50 busy, +30 idle, +20 iowait, guest inside user
    assert busy_percent(before, after) == 50.0
    assert busy_percent(before, before) == 0.0


def test_defaults_from_ops_guide_and_partial_override():
    cfg = HostConfig(name="n", type="host", cpu_percent={"warning": 50})
    assert (cfg.cpu_percent.warning, cfg.cpu_percent.critical) == (50, 90)
    assert (cfg.memory_percent.warning, cfg.memory_percent.critical) == (80, 95)
    assert (cfg.swap_percent.warning, cfg.swap_percent.critical) == (50, 80)
    assert (cfg.load_per_core.warning, cfg.load_per_core.critical) == (1.5, 3)
    assert [(d.path, d.warning, d.critical) for d in cfg.disk] == [("/", 85, 95)]
    assert (cfg.disk[0].inodes.warning, cfg.disk[0].inodes.critical) == (85, 95)
    disk = HostConfig(name="n", type="host", disk=[{"path": "/", "warning": 70, "inodes": {"critical": 99}}]).disk[0]
    assert (disk.warning, disk.critical, disk.inodes.warning, disk.inodes.critical) == (70, 95, 85, 99)
    off = HostConfig(name="n", type="host", swap_percent={"critical": None})
    assert off.swap_percent.critical is None and off.swap_percent.warning == 50


def test_config_loads_from_yaml(tmp_path: Path):
    path = write_config(tmp_path, """
checks:
  - name: node
    type: host
    memory_percent: {warning: 60, critical: 70}
    disk: [{path: /, warning: 80, critical: 90}, {path: /tmp}]
""")
    cfg = load_config(path, env={}).checks[0]
    assert isinstance(cfg, HostConfig)
    assert cfg.memory_percent.critical == 70
    assert [d.path for d in cfg.disk] == ["/", "/tmp"]


@pytest.mark.parametrize(("body", "where", "text"), [
    ("cpu_percent: {warning: 120}", "checks[0].cpu_percent.warning", "between 0 and 100"),
    ("memory_percent: {critical: -1}", "checks[0].memory_percent.critical", "between 0 and 100"),
    ("swap_percent: {warning: 90, critical: 10}", "checks[0].swap_percent", "must not be above critical"),
    ("load_per_core: {warning: -1}", "checks[0].load_per_core.warning", "negative"),
    ("load_per_core: {warning: 5, critical: 4}", "checks[0].load_per_core", "must not be above critical"),
    ("disk: [{path: /, warning: 101}]", "checks[0].disk[0].warning", "between 0 and 100"),
    ("disk: [{path: relative/dir}]", "checks[0].disk[0].path", "absolute"),
    ("disk: [{path: /}, {path: /}]", "checks[0].disk", "listed twice"),
    ("disk: [{path: /, inodes: {warning: 200}}]", "checks[0].disk[0].inodes.warning", "between 0 and 100"),
    ("cpu: {warning: 1}", "checks[0].cpu", "unknown key"),
])
def test_invalid_config_names_the_field(tmp_path: Path, body: str, where: str, text: str):
    path = write_config(tmp_path, f"checks:\n  - name: node\n    type: host\n    {body}\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    message = str(info.value)
    assert f"{where}: " in message, message
    assert text in message, message
