"""Host resources (CPU, memory, swap, load, disk space and inodes) via psutil.

The first thing an on-call SRE asks about a misbehaving box is "is it out of
something?". This check answers with one result per host: the worst of every
resource against its threshold, a summary that names each resource over its
threshold, and per-path disk ratios as `sre_agent_host_disk_used_ratio` so a
dashboard can show every mount, not only the fullest one, next to the
configured levels (`sre_agent_host_disk_threshold_ratio{path,level}`; CPU,
memory, swap and load levels go out as `sre_agent_check_threshold`).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import psutil
from pydantic import Field, field_validator, model_validator

from agent import catalogue
from agent.core import CheckResult, Sample, Status
from checks.base import Check, CheckConfig, MetricFamily, Thresholds, named_levels

if TYPE_CHECKING:
    from agent.context import CheckContext

# Ops-guide defaults; a key left out of `cpu_percent: {...}` keeps its default,
# `critical: null` turns a level off.
_DEFAULTS: dict[str, dict[str, float]] = {
    "cpu_percent": {"warning": 70, "critical": 90},
    "memory_percent": {"warning": 80, "critical": 95},
    "swap_percent": {"warning": 50, "critical": 80},
    "load_per_core": {"warning": 1.5, "critical": 3},
}
DISK_RATIO = catalogue.get("sre_agent_host_disk_used_ratio").name
INODES_RATIO = catalogue.get("sre_agent_host_inodes_used_ratio").name
DISK_THRESHOLD = catalogue.get("sre_agent_host_disk_threshold_ratio").name
INODES_THRESHOLD = catalogue.get("sre_agent_host_inodes_threshold_ratio").name
# Shortest window a CPU reading is averaged over; below it the ratio is noise.
_MIN_CPU_WINDOW = 0.25
_PROBLEM_ORDER = {Status.CRITICAL: 0, Status.UNKNOWN: 1, Status.WARNING: 2, Status.OK: 3}


class OrderedThresholds(Thresholds):
    """Thresholds that must be non-negative with `warning <= critical`."""

    @field_validator("warning", "critical")
    @classmethod
    def _range(cls, v: float | None) -> float | None:
        if v is not None and v < 0:
            raise ValueError(f"must not be negative, got {v}")
        return v

    @model_validator(mode="after")
    def _ordered(self) -> OrderedThresholds:
        if self.warning is not None and self.critical is not None and self.warning > self.critical:
            raise ValueError(f"warning ({self.warning}) must not be above critical ({self.critical})")
        return self


class PercentThresholds(OrderedThresholds):
    """Percentages: each level between 0 and 100."""

    @field_validator("warning", "critical")
    @classmethod
    def _range(cls, v: float | None) -> float | None:  # replaces the parent's check
        if v is not None and not 0 <= v <= 100:
            raise ValueError(f"must be a percentage between 0 and 100, got {v}")
        return v


class InodeThresholds(PercentThresholds):
    """Inodes used percent; a level left out keeps its default."""

    warning: float | None = 85
    critical: float | None = 95


class DiskSpec(PercentThresholds):
    """One filesystem: space used percent thresholds, plus inodes used percent."""

    path: str = Field(description="any path on the filesystem to watch, e.g. / or /var/lib/postgresql")
    warning: float | None = 85
    critical: float | None = 95
    inodes: InodeThresholds = Field(default_factory=InodeThresholds,
                                      description="inodes used percent thresholds (skipped where the filesystem has none)")

    @field_validator("path")
    @classmethod
    def _absolute(cls, v: str) -> str:
        if not os.path.isabs(v):
            raise ValueError(f"disk path must be absolute, got {v!r}")
        return v


class HostConfig(CheckConfig):
    """Host resources. In each threshold block a key left out keeps its default; `null` turns a level off."""

    type: Literal["host"]
    cpu_percent: PercentThresholds = Field(PercentThresholds(**_DEFAULTS["cpu_percent"]),
                                           description="CPU busy percent, averaged since the previous run")
    memory_percent: PercentThresholds = Field(PercentThresholds(**_DEFAULTS["memory_percent"]),
                                              description="memory used percent (psutil virtual_memory().percent)")
    swap_percent: PercentThresholds = Field(PercentThresholds(**_DEFAULTS["swap_percent"]),
                                            description="swap used percent (0 where there is no swap)")
    load_per_core: OrderedThresholds = Field(OrderedThresholds(**_DEFAULTS["load_per_core"]),
                                             description="1-minute load average divided by the logical CPU count")
    disk: list[DiskSpec] = Field(default_factory=lambda: [DiskSpec(path="/")],
                                 description="filesystems to watch; default [{path: /}]")

    @model_validator(mode="before")
    @classmethod
    def _merge_defaults(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        merged = dict(data)
        for key, defaults in _DEFAULTS.items():
            if isinstance(merged.get(key), dict):
                merged[key] = {**defaults, **merged[key]}
        return merged

    def observation_thresholds(self) -> dict[str, dict[str, float]]:
        return named_levels(cpu_percent=self.cpu_percent.levels(), memory_percent=self.memory_percent.levels(),
                            swap_percent=self.swap_percent.levels(), load_per_core=self.load_per_core.levels())

    @field_validator("disk")
    @classmethod
    def _unique_paths(cls, v: list[DiskSpec]) -> list[DiskSpec]:
        seen: set[str] = set()
        for spec in v:
            if spec.path in seen:
                raise ValueError(f"disk path {spec.path!r} is listed twice")
            seen.add(spec.path)
        return v


@dataclass
class _Disk:
    path: str
    used_percent: float | None = None
    inodes_percent: float | None = None
    error: str | None = None
    missing: bool = False


@dataclass
class _Snapshot:
    cpu_percent: float
    memory_percent: float
    swap_percent: float
    load1: float
    load_per_core: float
    disks: list[_Disk] = field(default_factory=list)


def busy_percent(before: Any, after: Any) -> float:
    """CPU busy percent between two `psutil.cpu_times()` readings (psutil's own formula)."""
    deltas = {name: max(0.0, getattr(after, name) - getattr(before, name)) for name in after._fields}
    total = sum(deltas.values())
    # On Linux guest time is already counted in user (and guest_nice in nice).
    total -= deltas.get("guest", 0.0) + deltas.get("guest_nice", 0.0)
    busy = total - deltas.get("idle", 0.0) - deltas.get("iowait", 0.0)
    if total <= 0:
        return 0.0
    return round(min(100.0, max(0.0, busy / total * 100)), 1)


def _fmt(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 1:
        return f"{value:.1f}".rstrip("0").rstrip(".")
    return f"{value:.2g}"


class HostCheck(Check):
    type = "host"
    runbooks = {
        "": "runbooks/host-resources.md",
        "cpu": "runbooks/host-cpu-high.md",
        "memory": "runbooks/host-memory-high.md",
        "disk": "runbooks/disk-filling.md",
    }
    Config = HostConfig
    metric_families: ClassVar[dict[str, MetricFamily]] = catalogue.families(
        DISK_RATIO, INODES_RATIO, DISK_THRESHOLD, INODES_THRESHOLD, make=MetricFamily)
    # A host check that hangs is almost always a filesystem that hangs (a stale
    # NFS mount under a watched path): that is an outage, not a blind spot.
    timeout_status = Status.CRITICAL

    config: HostConfig

    def __init__(self, config: CheckConfig, context: CheckContext) -> None:
        super().__init__(config, context)
        # CPU percent is averaged between this instance's own readings of
        # psutil.cpu_times(): psutil.cpu_percent(interval=None) keeps one
        # module-global previous reading that every caller in the process
        # would share (and reset), and sampling a full second per run holds a
        # thread for nothing. Averaging since the previous run also means a
        # 30s interval reports 30s of CPU, not a one-second spike.
        self._cpu_prev: tuple[float, Any] | None = None

    def _cpu_percent(self) -> float:
        now = time.monotonic()
        prev = self._cpu_prev
        if prev is None or now - prev[0] < _MIN_CPU_WINDOW:
            # First run (or runs back to back): sample a short window now.
            start = psutil.cpu_times()
            budget = self.config.timeout.total_seconds() if self.config.timeout is not None else 2.0
            time.sleep(max(_MIN_CPU_WINDOW, min(0.5, budget / 4)))
            prev = (now, start)
        current = psutil.cpu_times()
        self._cpu_prev = (time.monotonic(), current)
        return busy_percent(prev[1], current)

    def _collect(self) -> _Snapshot:
        cpu = self._cpu_percent()
        load1 = psutil.getloadavg()[0]
        cores = psutil.cpu_count() or 1
        snap = _Snapshot(cpu_percent=cpu, memory_percent=psutil.virtual_memory().percent,
                         swap_percent=psutil.swap_memory().percent, load1=load1, load_per_core=load1 / cores)
        for spec in self.config.disk:
            snap.disks.append(_disk(spec.path))
        return snap

    async def run(self) -> CheckResult:
        snap: _Snapshot = await self.in_thread(self._collect)
        cfg = self.config
        problems: list[tuple[Status, str]] = []
        ok_parts = [f"cpu {_fmt(snap.cpu_percent)}%", f"memory {_fmt(snap.memory_percent)}%",
                    f"load/core {_fmt(snap.load_per_core)}"]

        def judge(label: str, value: float, limits: Thresholds, unit: str) -> None:
            status = limits.evaluate(value)
            if status != Status.OK:
                level = limits.critical if status == Status.CRITICAL else limits.warning
                assert level is not None
                problems.append((status, f"{label} {_fmt(value)}{unit} >= {_fmt(level)}{unit}"))

        judge("cpu", snap.cpu_percent, cfg.cpu_percent, "%")
        judge("memory", snap.memory_percent, cfg.memory_percent, "%")
        judge("swap", snap.swap_percent, cfg.swap_percent, "%")
        judge("load/core", snap.load_per_core, cfg.load_per_core, "")

        samples: list[Sample] = []
        disk_max: float | None = None
        inodes_max: float | None = None
        for spec, disk in zip(cfg.disk, snap.disks, strict=True):
            # The configured levels, whatever the reading: what the dashboard draws the ratios against.
            samples += [Sample(DISK_THRESHOLD, value, {"path": spec.path, "level": level})
                        for level, value in spec.levels(scale=0.01).items()]
            samples += [Sample(INODES_THRESHOLD, value, {"path": spec.path, "level": level})
                        for level, value in spec.inodes.levels(scale=0.01).items()]
            if disk.error is not None:
                problems.append((Status.CRITICAL if disk.missing else Status.UNKNOWN, disk.error))
                continue
            assert disk.used_percent is not None
            disk_max = max(disk_max or 0.0, disk.used_percent)
            samples.append(Sample(DISK_RATIO, round(disk.used_percent / 100, 6), {"path": spec.path}))
            ok_parts.append(f"disk {spec.path} {_fmt(disk.used_percent)}%")
            judge(f"disk {spec.path}", disk.used_percent, spec, "%")
            if disk.inodes_percent is not None:
                inodes_max = max(inodes_max or 0.0, disk.inodes_percent)
                samples.append(Sample(INODES_RATIO, round(disk.inodes_percent / 100, 6), {"path": spec.path}))
                judge(f"inodes {spec.path}", disk.inodes_percent, spec.inodes, "%")

        observations = {"cpu_percent": snap.cpu_percent, "memory_percent": snap.memory_percent,
                        "swap_percent": snap.swap_percent, "load1": snap.load1,
                        "load_per_core": round(snap.load_per_core, 4)}
        if disk_max is not None:
            observations["disk_used_percent_max"] = disk_max
        if inodes_max is not None:
            observations["inodes_used_percent_max"] = inodes_max

        if problems:
            # Worst first so a truncated summary still leads with what pages.
            problems.sort(key=lambda p: _PROBLEM_ORDER[p[0]])
            status = Status.worst([s for s, _ in problems])
            summary = "; ".join(text for _, text in problems)
        else:
            status, summary = Status.OK, ", ".join(ok_parts)
        return self.result(status, summary, observations, samples=samples,
                           disks={d.path: {"used_percent": d.used_percent, "inodes_percent": d.inodes_percent,
                                           "error": d.error} for d in snap.disks})


def _disk(path: str) -> _Disk:
    try:
        usage = psutil.disk_usage(path)
        vfs = os.statvfs(path)
    except FileNotFoundError:
        return _Disk(path, error=f"path {path} does not exist", missing=True)
    except OSError as exc:
        return _Disk(path, error=f"cannot read disk usage of {path}: {exc.strerror or exc}")
    # Filesystems without a fixed inode table (btrfs, some FUSE) report 0 inodes.
    inodes = (vfs.f_files - vfs.f_ffree) / vfs.f_files * 100 if vfs.f_files > 0 else None
    return _Disk(path, used_percent=usage.percent, inodes_percent=round(inodes, 2) if inodes is not None else None)
