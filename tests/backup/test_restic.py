"""restic: a real repository in a temp dir, real snapshots, and a damaged pack caught by `restic check`."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from agent.context import CheckContext
from agent.core import Status
from checks._backup_tools import parse_check_json
from tests.backup.util import HOUR, backup_check, run_at

PASSWORD = "restic-Test-Pass-4821"


@pytest.fixture(scope="module")
def restic_repo(tmp_path_factory) -> dict[str, str]:
    """An initialised repository holding one snapshot of a small directory."""
    if shutil.which("restic") is None:
        pytest.fail("restic is not installed; run scripts/test-deps.sh")
    root = tmp_path_factory.mktemp("restic")
    (root / "pw").write_text(PASSWORD + "\n")
    data = root / "data"
    data.mkdir()
    (data / "a.bin").write_bytes(os.urandom(300_000))
    (data / "b.txt").write_text("hello\n" * 100)
    env = {**os.environ, "RESTIC_REPOSITORY": str(root / "repo"), "RESTIC_PASSWORD_FILE": str(root / "pw"),
           "RESTIC_CACHE_DIR": str(root / "cache")}
    subprocess.run(["restic", "init", "-q"], env=env, check=True, timeout=60, capture_output=True)
    subprocess.run(["restic", "backup", "-q", "--host", "db1", "--tag", "nightly", str(data)], env=env, check=True,
                   timeout=60, capture_output=True)
    return {"repo": str(root / "repo"), "pw": str(root / "pw"), "cache": str(root / "cache"), "root": str(root)}


def source(repo: dict[str, str], **extra: object) -> dict[str, object]:
    return {"kind": "restic", "repository": repo["repo"], "password_file": repo["pw"], "cache_dir": repo["cache"], **extra}


async def test_snapshot_age_ok_then_critical_past_max_age(restic_repo):
    check = backup_check(source=source(restic_repo), max_age="26h")
    result = await run_at(check)
    assert result.status == Status.OK, result.summary
    assert result.observations["count"] == 1
    assert result.observations["age_seconds"] < 120
    assert len(result.details["snapshot"]) == 8
    stale = await run_at(check, time.time() + 27 * HOUR)
    assert stale.status == Status.CRITICAL
    assert "older than max_age 1d2h" in stale.summary


async def test_snapshot_filters(restic_repo):
    tagged = await run_at(backup_check(source=source(restic_repo, host="db1", tags=["nightly"])))
    assert tagged.status == Status.OK, tagged.summary
    other = await run_at(backup_check(source=source(restic_repo, host="elsewhere")))
    assert other.status == Status.CRITICAL
    assert other.summary == "restic repository has no snapshots matching the filters"


async def test_password_from_env_value_works_too(restic_repo):
    src = {"kind": "restic", "repository": restic_repo["repo"], "password": PASSWORD, "cache_dir": restic_repo["cache"]}
    result = await run_at(backup_check(source=src))
    assert result.status == Status.OK, result.summary


async def test_wrong_password_and_missing_repository_are_critical(restic_repo, tmp_path: Path):
    wrong = tmp_path / "wrong"
    wrong.write_text("Wrong-Password-999\n")
    result = await run_at(backup_check(source={**source(restic_repo), "password_file": str(wrong)}))
    assert result.status == Status.CRITICAL
    assert "wrong password" in result.summary
    assert "Wrong-Password-999" not in result.summary

    missing = await run_at(backup_check(source={**source(restic_repo), "repository": str(tmp_path / "nope")}))
    assert missing.status == Status.CRITICAL
    assert "repository does not exist" in missing.summary


async def test_restic_check_passes_then_catches_a_damaged_pack(restic_repo, tmp_path: Path):
    healthy = backup_check(source=source(restic_repo), check={"read_data_subset": "100%"})
    result = await run_at(healthy)
    assert result.status == Status.OK, result.summary
    assert result.observations["check_success"] == 1.0
    assert result.details["check"]["outcome"]["ok"] is True
    assert "restic check: no errors (read 100% of the data)" in result.summary

    damaged = tmp_path / "repo"
    shutil.copytree(restic_repo["repo"], damaged)
    pack = max((p for p in (damaged / "data").rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
    pack.chmod(0o600)
    with pack.open("r+b") as f:
        f.seek(1000)
        f.write(b"\xff" * 64)
    broken = backup_check(source={**source(restic_repo), "repository": str(damaged)}, check={"read_data_subset": "100%"})
    result = await run_at(broken)
    assert result.status == Status.CRITICAL
    assert "restic check failed: Pack ID does not match" in result.summary
    assert result.observations["check_success"] == 0.0


async def test_check_runs_on_its_own_schedule(restic_repo):
    context = CheckContext()
    check = backup_check(context, source=source(restic_repo), check={"schedule": "0 5 * * 0"})
    now = time.time()
    first = await run_at(check, now)
    assert first.details["check"]["ran_this_run"] is True
    second = await run_at(check, now + 60)
    assert second.details["check"]["ran_this_run"] is False
    assert second.details["check"]["outcome"]["ok"] is True
    assert second.observations["check_success"] == 1.0


async def test_check_on_a_locked_repository_is_retried_next_run(restic_repo, tmp_path: Path):
    repo = tmp_path / "repo"
    shutil.copytree(restic_repo["repo"], repo)
    env = {**os.environ, "RESTIC_REPOSITORY": str(repo), "RESTIC_PASSWORD_FILE": restic_repo["pw"],
           "RESTIC_CACHE_DIR": restic_repo["cache"]}
    # A backup reading stdin holds its lock until stdin closes.
    holder = await asyncio.create_subprocess_exec("restic", "backup", "-q", "--stdin", "--stdin-filename", "x",
                                                  stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.DEVNULL,
                                                  stderr=asyncio.subprocess.DEVNULL, env=env)
    try:
        for _ in range(200):  # at most ~10s for the lock file to appear
            if any((repo / "locks").iterdir()):
                break
            await asyncio.sleep(0.05)
        check = backup_check(source={**source(restic_repo), "repository": str(repo)}, check={"schedule": "0 5 * * 0"})
        locked = await run_at(check)
        assert locked.status == Status.WARNING, locked.summary
        assert "restic check skipped: the repository is locked" in locked.summary
        assert locked.details["check"]["ran_this_run"] is False
    finally:
        assert holder.stdin is not None
        holder.stdin.write(b"data")
        holder.stdin.close()
        async with asyncio.timeout(30):
            await holder.wait()
    retried = await run_at(check)  # not the cron slot yet, but the skipped check is retried
    assert retried.details["check"]["ran_this_run"] is True
    assert retried.status == Status.OK, retried.summary


async def test_the_password_reaches_restic_through_its_environment_only(tmp_path: Path):
    record = tmp_path / "record"
    fake = tmp_path / "restic"
    fake.write_text(f"""#!/bin/sh
printf '%s\\n' "$@" > {record}.argv
printf '%s|%s|%s' "$RESTIC_REPOSITORY" "$RESTIC_PASSWORD_FILE" "$RESTIC_PASSWORD" > {record}.env
echo '[{{"time":"2024-05-01T10:00:00.123456789+02:00","id":"abc","short_id":"abc",'
echo '  "summary":{{"backup_start":"2024-05-01T07:58:00Z","backup_end":"2024-05-01T08:00:00Z","total_bytes_processed":4096}}}}]'
""")
    fake.chmod(0o755)
    src = {"kind": "restic", "repository": "s3:s3.example.com/bucket", "password": PASSWORD, "bin": str(fake)}
    result = await run_at(backup_check(source=src), 1714550400 + HOUR)  # 2024-05-01T08:00:00Z + 1h
    assert result.status == Status.OK, result.summary
    assert result.observations["age_seconds"] == HOUR  # restic 0.17+ summary: completion time, size, duration
    assert result.observations["size_bytes"] == 4096
    assert result.observations["last_duration_seconds"] == 120
    argv = (tmp_path / "record.argv").read_text().split()
    assert argv == ["snapshots", "--json", "--no-lock"]
    assert (tmp_path / "record.env").read_text() == f"s3:s3.example.com/bucket||{PASSWORD}"


def test_check_json_of_restic_017_is_understood():
    stdout = "\n".join(json.dumps(m) for m in [
        {"message_type": "error", "message": "pack 5a3c1f: does not match its ID"},
        {"message_type": "summary", "num_errors": 1, "broken_packs": ["5a3c1f"], "suggest_repair_index": False,
         "suggest_prune": False},
    ])
    assert parse_check_json(stdout) == (1, ["pack 5a3c1f: does not match its ID"])
    assert parse_check_json('{"message_type":"summary","num_errors":0}\nnot json\n') == (0, [])
