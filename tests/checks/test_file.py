"""File check: real files whose ages are set with os.utime, sizes, globs, and parse_size."""

from __future__ import annotations

import os
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import BaseModel, ValidationError

from agent.config import ConfigError, load_config
from agent.context import CheckContext
from agent.core import Status
from checks.file import FileCheck, FileConfig, Size, format_size, parse_size

HOUR = 3600


def make(path: Path, age_seconds: float = 0, size: int = 10) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    stamp = time.time() - age_seconds
    os.utime(path, (stamp, stamp))
    return path


def check(path: Path | str, **kwargs) -> FileCheck:
    return FileCheck(FileConfig(name="exports", type="file", path=str(path), timeout="5s", **kwargs), CheckContext())


async def test_newest_matching_file_is_judged(tmp_path: Path):
    make(tmp_path / "old.parquet", age_seconds=5 * HOUR, size=5000)
    newest = make(tmp_path / "new.parquet", age_seconds=10 * 60, size=2000)
    make(tmp_path / "newer.csv", age_seconds=1)  # does not match the pattern
    result = await check(tmp_path, pattern="*.parquet", max_age="1h").run()
    assert result.status == Status.OK, result.summary
    assert result.observations["count"] == 2
    assert result.observations["size_bytes"] == 2000
    assert result.observations["age_seconds"] == pytest.approx(600, abs=5)
    assert result.details["file"] == str(newest)
    assert result.summary == f"newest {newest}: 10m old, 2KB (2 files match)"


async def test_too_old_is_critical(tmp_path: Path):
    f = make(tmp_path / "a.parquet", age_seconds=2 * HOUR)
    result = await check(tmp_path, pattern="*.parquet", max_age="1h", warn_age="30m").run()
    assert result.status == Status.CRITICAL
    assert result.summary == f"newest {f} is 2h old (max_age 1h)"
    assert result.observations["age_seconds"] == pytest.approx(2 * HOUR, abs=5)


async def test_warn_age_is_warning(tmp_path: Path):
    make(tmp_path / "a.parquet", age_seconds=45 * 60)
    result = await check(tmp_path, pattern="*.parquet", max_age="1h", warn_age="30m").run()
    assert result.status == Status.WARNING
    assert "45m old (warn_age 30m)" in result.summary


async def test_no_age_threshold_means_any_age_is_fine(tmp_path: Path):
    make(tmp_path / "a.parquet", age_seconds=400 * 24 * HOUR)
    assert (await check(tmp_path, pattern="*.parquet").run()).status == Status.OK


async def test_size_thresholds(tmp_path: Path):
    f = make(tmp_path / "dump.sql", size=500)
    small = await check(f, min_size="1KB").run()
    assert small.status == Status.CRITICAL
    assert small.summary == f"newest {f} is 500B < min_size 1KB"
    big = await check(f, max_size="100B").run()
    assert big.status == Status.CRITICAL
    assert "500B > max_size 100B" in big.summary
    assert (await check(f, min_size="500B", max_size="1KiB").run()).status == Status.OK


async def test_every_problem_is_listed(tmp_path: Path):
    f = make(tmp_path / "dump.sql", size=0, age_seconds=3 * HOUR)
    result = await check(f, max_age="1h", min_size="1B").run()
    assert result.status == Status.CRITICAL
    assert result.summary == f"newest {f} is 3h old (max_age 1h); 0B < min_size 1B"


async def test_no_match_is_critical(tmp_path: Path):
    make(tmp_path / "a.csv")
    result = await check(tmp_path, pattern="*.parquet").run()
    assert result.status == Status.CRITICAL
    assert result.summary == f"no file matches {tmp_path}/*.parquet"
    assert result.observations == {"count": 0.0}


async def test_directories_do_not_match(tmp_path: Path):
    (tmp_path / "dir.parquet").mkdir()
    result = await check(tmp_path, pattern="*.parquet").run()
    assert result.status == Status.CRITICAL


async def test_missing_path_is_critical(tmp_path: Path):
    result = await check(tmp_path / "nope", pattern="*").run()
    assert (result.status, result.summary) == (Status.CRITICAL, f"path {tmp_path / 'nope'} does not exist")


async def test_recursive_glob(tmp_path: Path):
    make(tmp_path / "top.parquet", age_seconds=HOUR)
    deep = make(tmp_path / "2024" / "06" / "part-1.parquet", age_seconds=5)
    flat = await check(tmp_path, pattern="*.parquet").run()
    assert flat.observations["count"] == 1
    result = await check(tmp_path, pattern="**/*.parquet", max_age="10m").run()
    assert result.status == Status.OK
    assert result.observations["count"] == 2
    assert result.details["file"] == str(deep)


async def test_directory_without_pattern_means_files_directly_in_it(tmp_path: Path):
    newest = make(tmp_path / "b.log", age_seconds=5)
    make(tmp_path / "a.log", age_seconds=50)
    make(tmp_path / "sub" / "c.log", age_seconds=0)
    result = await check(tmp_path).run()
    assert result.details["file"] == str(newest)
    assert result.observations["count"] == 2


async def test_single_file_path(tmp_path: Path):
    f = make(tmp_path / "heartbeat", age_seconds=20, size=3)
    result = await check(f, max_age="1m").run()
    assert result.status == Status.OK
    assert result.observations["count"] == 1
    assert result.observations["size_bytes"] == 3


async def test_pattern_with_glob_characters_in_path(tmp_path: Path):
    base = tmp_path / "exports[prod]"
    make(base / "a.parquet")
    result = await check(base, pattern="*.parquet").run()
    assert result.status == Status.OK


async def test_mtime_in_the_future_counts_as_fresh(tmp_path: Path):
    make(tmp_path / "a", age_seconds=-HOUR)
    result = await check(tmp_path / "a", max_age="1m").run()
    assert result.status == Status.OK
    assert result.observations["age_seconds"] == 0
    assert result.details["mtime_in_future"] is True


async def test_unreadable_directory_is_unknown(tmp_path: Path):
    locked = tmp_path / "locked"
    make(locked / "a.parquet")
    locked.chmod(0)
    try:
        if os.access(locked, os.R_OK):
            pytest.skip("running as a user that may read anything")
        result = await check(locked, pattern="*.parquet").run()
        assert result.status == Status.UNKNOWN
        assert "permission denied" in result.summary
    finally:
        locked.chmod(0o755)


async def test_filesystem_work_runs_off_the_event_loop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    import checks.file as module

    loop_thread = threading.get_ident()
    seen: list[int] = []
    real = module.find_newest

    def spy(*args):
        seen.append(threading.get_ident())
        return real(*args)

    monkeypatch.setattr(module, "find_newest", spy)
    make(tmp_path / "a")
    await check(tmp_path).run()
    assert seen and loop_thread not in seen


def test_timeout_status_is_critical():
    assert FileCheck.timeout_status == Status.CRITICAL


@pytest.mark.parametrize(("text", "size"), [
    ("500B", 500), ("500", 500), (500, 500), ("0", 0), ("1KB", 1000), ("1kb", 1000), ("1KiB", 1024),
    ("10MB", 10_000_000), ("10 MB", 10_000_000), ("1.5GB", 1_500_000_000), ("2GiB", 2 * 1024**3),
    ("1TB", 10**12), ("1TiB", 1024**4), ("1PB", 10**15), (" 3mib ", 3 * 1024**2),
])
def test_parse_size(text: str | int, size: int):
    assert parse_size(text) == size


@pytest.mark.parametrize("bad", ["10 megs", "", "MB", "-1KB", "1.2.3MB", "10K", "1e3B", True, 1.5, None, -5, [1]])
def test_parse_size_rejects_bad_input(bad: object):
    with pytest.raises(ValueError, match="invalid size") as info:
        parse_size(bad)
    if isinstance(bad, str):
        assert "KiB" in str(info.value)  # says what is allowed


def test_format_size():
    assert [format_size(n) for n in (0, 999, 1000, 1500, 2_000_000, 3 * 10**12)] == ["0B", "999B", "1KB", "1.5KB", "2MB", "3TB"]


def test_size_type_in_other_models():
    class Backup(BaseModel):
        min_size: Size

    assert Backup(min_size="1KiB").min_size == 1024
    with pytest.raises(ValidationError, match="invalid size"):
        Backup(min_size="big")
    schema = Backup.model_json_schema()["properties"]["min_size"]
    assert {"type": "integer", "minimum": 0} in schema["anyOf"]


def write_config(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "agent.yaml"
    path.write_text(f"checks:\n  - {body}\n")
    return path


def test_config_from_yaml(tmp_path: Path):
    path = write_config(tmp_path, '{name: exports, type: file, path: /data/exports, pattern: "*.parquet", '
                                  "max_age: 1h, warn_age: 30m, min_size: 1KB, max_size: 2GiB}")
    cfg = load_config(path, env={}).checks[0]
    assert isinstance(cfg, FileConfig)
    assert (cfg.max_age, cfg.warn_age) == (timedelta(hours=1), timedelta(minutes=30))
    assert (cfg.min_size, cfg.max_size) == (1000, 2 * 1024**3)


@pytest.mark.parametrize(("body", "where", "text"), [
    ("{name: f, type: file, path: /d, min_size: 10 megs}", "checks[0].min_size", "invalid size '10 megs'"),
    ("{name: f, type: file, path: /d, max_size: lots}", "checks[0].max_size", "KiB"),
    ("{name: f, type: file, path: /d, max_age: 1 hour}", "checks[0].max_age", "invalid duration"),
    ("{name: f, type: file, path: /d, max_age: 30m, warn_age: 1h}", "checks[0].warn_age", "warn_age (1h) must be shorter than max_age (30m)"),
    ("{name: f, type: file, path: /d, min_size: 2KB, max_size: 1KB}", "checks[0].max_size", "min_size (2KB) must not be above max_size (1KB)"),
    ("{name: f, type: file, path: /d, pattern: /abs/*.csv}", "checks[0].pattern", "relative to path"),
    ("{name: f, type: file, path: /d, max_age: 0s}", "checks[0].max_age", "max_age must be positive"),
    ("{name: f, type: file}", "checks[0].path", "required"),
])
def test_invalid_config_names_the_field(tmp_path: Path, body: str, where: str, text: str):
    with pytest.raises(ConfigError) as info:
        load_config(write_config(tmp_path, body), env={})
    message = str(info.value)
    assert f"{where}: " in message, message
    assert text in message, message
