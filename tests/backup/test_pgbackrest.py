"""pgBackRest: `info --output=json` for every stanza status code, and the real binary on an empty repo.

The fixtures were recorded from pgBackRest 2.45 against a throwaway cluster
(full, diff and incr backups; a second empty repo for code 4; a missing
backup.info for 3; a garbage backup.info for 99; `--set` of an unknown label for 6),
except status 5 (two repos of different clusters), written in the same format.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from agent.core import Status
from checks._backup_tools import parse_pgbackrest_info
from tests.backup.util import HOUR, backup_check, run_at, sample

FIXTURES = Path(__file__).parents[1] / "fixtures" / "pgbackrest"
NEWEST_STOP = 1795421239  # the incr backup in status_0_ok.json


def from_fixture(name: str, **extra: object):
    return backup_check(source={"kind": "pgbackrest", "stanza": "main", "command": ["cat", str(FIXTURES / name)]},
                        **extra)


async def test_status_0_reports_newest_backup_wal_range_and_last_of_each_type():
    result = await run_at(from_fixture("status_0_ok.json"), NEWEST_STOP + HOUR)
    assert result.status == Status.OK, result.summary
    assert result.summary == "newest backup 20261123-080708F_20261123-080718I is 1h old, 23MB (3 backups)"
    assert result.observations["age_seconds"] == pytest.approx(HOUR)
    assert result.observations["size_bytes"] == 22992598
    assert result.observations["last_duration_seconds"] == 1
    assert result.observations["repository_size_bytes"] == 3043464
    assert result.observations["last_full_timestamp_seconds"] == 1795421234
    assert result.details["type"] == "incr"
    assert result.details["last"]["diff"]["label"] == "20261123-080708F_20261123-080715D"
    assert result.details["wal_archive"] == {"min": "000000010000000000000001", "max": "000000010000000000000006"}
    assert result.details["backup_running"] is False
    assert sample(result, "sre_agent_backup_last_success_timestamp_seconds") == NEWEST_STOP


async def test_status_0_but_too_old_is_critical():
    result = await run_at(from_fixture("status_0_ok.json"), NEWEST_STOP + 27 * HOUR)
    assert result.status == Status.CRITICAL
    assert "older than max_age 1d2h" in result.summary


async def test_a_running_backup_is_shown_not_failed():
    result = await run_at(from_fixture("status_0_backup_running.json"), NEWEST_STOP + HOUR)
    assert result.status == Status.OK
    assert result.details["backup_running"] is True


@pytest.mark.parametrize(("fixture", "status", "text"), [
    ("status_1_missing_stanza_path.json", Status.CRITICAL, "stanza main: missing stanza path (pgBackRest status 1)"),
    ("status_2_no_valid_backups.json", Status.CRITICAL, "stanza main: no valid backups (pgBackRest status 2)"),
    ("status_3_missing_stanza_data.json", Status.CRITICAL, "stanza main: missing stanza data (pgBackRest status 3)"),
    ("status_4_different_across_repos.json", Status.WARNING,
     "stanza main: different across repos (pgBackRest status 4); repo2: missing stanza path"),
    ("status_5_database_mismatch.json", Status.CRITICAL, "stanza main: database mismatch across repos (pgBackRest status 5)"),
    ("status_6_requested_backup_not_found.json", Status.CRITICAL,
     "stanza main: requested backup not found (pgBackRest status 6)"),
    ("status_99_other.json", Status.CRITICAL,
     "stanza main: other (pgBackRest status 99); repo1: [FormatError] unable to load info file"),
])
async def test_every_status_code(fixture: str, status: Status, text: str):
    result = await run_at(from_fixture(fixture), NEWEST_STOP + HOUR)
    assert result.status == status, result.summary
    assert text in result.summary


def test_fixtures_follow_the_documented_layout():
    for path in sorted(FIXTURES.glob("*.json")):
        [stanza] = json.loads(path.read_text())
        assert {"archive", "backup", "cipher", "db", "name", "repo", "status"} <= set(stanza), path.name
        assert set(stanza["status"]) == {"code", "lock", "message"}
        for b in stanza["backup"]:
            assert b["type"] in ("full", "diff", "incr")
            assert set(b["timestamp"]) == {"start", "stop"}
            assert set(b["info"]) == {"delta", "repository", "size"}


def test_unknown_stanza_and_invalid_json():
    from checks._backup_sources import SourceError

    text = (FIXTURES / "status_0_ok.json").read_text()
    with pytest.raises(SourceError, match="pgbackrest knows no stanza 'other'"):
        parse_pgbackrest_info(text, "other")
    with pytest.raises(SourceError, match="invalid JSON") as exc:
        parse_pgbackrest_info("WARN: not json", "main")
    assert exc.value.status == Status.UNKNOWN


async def test_real_pgbackrest_on_an_empty_repository(tmp_path: Path):
    binary = shutil.which("pgbackrest")
    if binary is None:
        pytest.fail("pgbackrest is not installed; run scripts/test-deps.sh")
    conf = tmp_path / "pgbackrest.conf"
    conf.write_text(f"[global]\nrepo1-path={tmp_path / 'repo'}\nlog-path={tmp_path}\nlock-path={tmp_path}\n"
                    f"[main]\npg1-path={tmp_path / 'pgdata'}\n")
    result = await run_at(backup_check(source={"kind": "pgbackrest", "stanza": "main", "config": str(conf)}))
    assert result.status == Status.CRITICAL
    assert result.summary == "stanza main: missing stanza path (pgBackRest status 1); repo1: missing stanza path"

    broken = await run_at(backup_check(source={"kind": "pgbackrest", "stanza": "main", "config": str(tmp_path / "no.conf")}))
    assert broken.status == Status.CRITICAL
    assert "pgbackrest info failed (exit 55)" in broken.summary


async def test_missing_binary_is_unknown():
    result = await run_at(backup_check(source={"kind": "pgbackrest", "stanza": "main", "bin": "/nonexistent/pgbackrest"}))
    assert result.status == Status.UNKNOWN
    assert result.summary == "/nonexistent/pgbackrest not found (install it or set `bin:` to its path)"
