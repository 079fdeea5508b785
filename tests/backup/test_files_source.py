"""Backups as files: age, size, shrink, checksum sidecars and integrity reads of real archives."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tarfile
import zipfile
from pathlib import Path

import pytest

from agent.core import Status
from tests.backup.util import HOUR, backup_check, run_at, sample, write


def gz(payload: bytes) -> bytes:
    return gzip.compress(payload, mtime=0)


def tar_gz(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def zip_bytes(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buf.getvalue()


async def test_newest_valid_gzip_is_ok_with_age_size_count_and_metrics(tmp_path: Path):
    write(tmp_path / "orders-1.sql.gz", gz(os.urandom(30_000)), age=30 * HOUR)
    newest = write(tmp_path / "orders-2.sql.gz", gz(os.urandom(31_000)), age=2 * HOUR)
    write(tmp_path / "notes.txt", b"not a backup", age=0)
    result = await run_at(backup_check(source={"kind": "files", "path": str(tmp_path), "pattern": "*.sql.gz"}))
    assert result.status == Status.OK, result.summary
    assert result.observations["count"] == 2
    assert result.observations["age_seconds"] == pytest.approx(2 * HOUR, abs=5)
    assert result.observations["size_bytes"] == newest.stat().st_size
    assert result.details["newest"] == str(newest)
    assert result.details["format"] == "gzip"
    assert result.details["verify_gzip"]["ok"] is True
    assert sample(result, "sre_agent_backup_age_seconds") == pytest.approx(2 * HOUR, abs=5)
    assert sample(result, "sre_agent_backup_size_bytes") == newest.stat().st_size
    assert sample(result, "sre_agent_backup_last_success_timestamp_seconds") == pytest.approx(newest.stat().st_mtime)
    assert result.summary.startswith("newest backup orders-2.sql.gz is 2h old, ")


async def test_truncated_gzip_is_critical(tmp_path: Path):
    data = gz(os.urandom(50_000))
    write(tmp_path / "orders.sql.gz", data[: len(data) // 2])
    result = await run_at(backup_check(source={"kind": "files", "path": str(tmp_path)}))
    assert result.status == Status.CRITICAL
    assert "gzip file is corrupt or truncated" in result.summary


async def test_tar_gz_members_are_read_and_a_corrupt_one_fails(tmp_path: Path):
    good = tar_gz({"a.csv": os.urandom(20_000), "b.csv": b"x" * 5000})
    write(tmp_path / "ok" / "files.tar.gz", good)
    result = await run_at(backup_check(source={"kind": "files", "path": str(tmp_path / "ok")}))
    assert result.status == Status.OK, result.summary
    assert result.details["verify_tar+gz"]["members"] == 2

    broken = bytearray(good)
    broken[len(broken) // 2: len(broken) // 2 + 64] = b"\0" * 64  # damage the deflate stream
    write(tmp_path / "bad" / "files.tar.gz", bytes(broken))
    result = await run_at(backup_check(source={"kind": "files", "path": str(tmp_path / "bad")}))
    assert result.status == Status.CRITICAL
    assert "corrupt or truncated" in result.summary


async def test_zip_crc_mismatch_is_critical(tmp_path: Path):
    payload = b"customer,email\n" + b"alice,a@example.com\n" * 500
    data = bytearray(zip_bytes({"customers.csv": payload}))
    offset = data.find(b"alice")
    data[offset: offset + 5] = b"ALICE"  # stored entry: flip data, keep the recorded CRC
    write(tmp_path / "customers.zip", bytes(data))
    result = await run_at(backup_check(source={"kind": "files", "path": str(tmp_path)}))
    assert result.status == Status.CRITICAL
    assert "customers.csv" in result.summary and "CRC" in result.summary


async def test_checksum_sidecar_match_mismatch_and_required(tmp_path: Path):
    data = gz(b"payload" * 1000)
    dump = write(tmp_path / "orders.sql.gz", data)
    (tmp_path / "orders.sql.gz.sha256").write_text(f"{hashlib.sha256(data).hexdigest()}  orders.sql.gz\n")
    src = {"kind": "files", "path": str(tmp_path)}
    ok = await run_at(backup_check(source=src))
    assert ok.status == Status.OK, ok.summary
    assert ok.details["verify_sha256"]["ok"] is True
    assert ok.observations["count"] == 1  # the sidecar is not a backup

    (tmp_path / "orders.sql.gz.sha256").write_text("0" * 64 + "  orders.sql.gz\n")
    bad = await run_at(backup_check(source=src))
    assert bad.status == Status.CRITICAL
    assert "SHA-256 mismatch" in bad.summary

    (tmp_path / "orders.sql.gz.sha256").unlink()
    assert (await run_at(backup_check(source=src))).status == Status.OK  # sidecar mode: none is fine
    required = await run_at(backup_check(source=src, checksum="required"))
    assert required.status == Status.CRITICAL
    assert "orders.sql.gz.sha256 is missing" in required.summary
    assert dump.exists()


async def test_sudden_shrink_beyond_max_size_change_is_critical(tmp_path: Path):
    write(tmp_path / "d1.bin", b"a" * 100_000, age=25 * HOUR)
    write(tmp_path / "d2.bin", b"a" * 30_000, age=1 * HOUR)
    src = {"kind": "files", "path": str(tmp_path), "pattern": "*.bin", "verify": False}
    result = await run_at(backup_check(source=src, max_size_change="50%"))
    assert result.status == Status.CRITICAL
    assert "shrank 70% vs the previous backup (100KB -> 30KB; max_size_change 50%)" in result.summary
    assert result.observations["size_change_ratio"] == pytest.approx(-0.7)

    write(tmp_path / "d3.bin", b"a" * 27_000, age=0)  # -10% vs d2: within bounds
    assert (await run_at(backup_check(source=src, max_size_change="50%"))).status == Status.OK


async def test_age_thresholds_use_the_injected_clock(tmp_path: Path):
    f = write(tmp_path / "orders.dump.gz", gz(b"x" * 100))
    mtime = f.stat().st_mtime
    src = {"kind": "files", "path": str(tmp_path)}
    check = backup_check(source=src, max_age="26h")
    assert (await run_at(check, mtime + 20 * HOUR)).status == Status.OK
    warn = await run_at(check, mtime + 21 * HOUR)  # 80% of 26h = 20.8h
    assert warn.status == Status.WARNING
    assert "older than warn_age 20h48m" in warn.summary
    crit = await run_at(check, mtime + 27 * HOUR)
    assert crit.status == Status.CRITICAL
    assert crit.summary.endswith("is 1d3h old: older than max_age 1d2h")
    explicit = backup_check(source=src, max_age="26h", warn_age="12h")
    assert (await run_at(explicit, mtime + 13 * HOUR)).status == Status.WARNING


async def test_min_size_and_missing_backups(tmp_path: Path):
    write(tmp_path / "tiny.dump.gz", gz(b""))
    small = await run_at(backup_check(source={"kind": "files", "path": str(tmp_path)}, min_size="10MB"))
    assert small.status == Status.CRITICAL
    assert "< min_size 10MB" in small.summary

    none = await run_at(backup_check(source={"kind": "files", "path": str(tmp_path), "pattern": "*.dump"}))
    assert none.status == Status.CRITICAL
    assert none.summary == f"no backup file matches {tmp_path}/*.dump"
    gone = await run_at(backup_check(source={"kind": "files", "path": str(tmp_path / "nope")}))
    assert gone.status == Status.CRITICAL
    assert "does not exist" in gone.summary


async def test_pg_dump_custom_archive_is_read_by_pg_restore(tmp_path: Path, pg_cluster):
    db = pg_cluster.create_database("dump")
    pg_cluster.psql("CREATE TABLE orders(id int primary key, note text); "
                    "INSERT INTO orders SELECT g, md5(g::text) FROM generate_series(1, 3000) g", db)
    (tmp_path / "good").mkdir()
    dump = pg_cluster.pg_dump(db, tmp_path / "good" / "orders.dump")
    ok = await run_at(backup_check(source={"kind": "files", "path": str(tmp_path / "good"), "pattern": "*.dump"}))
    assert ok.status == Status.OK, ok.summary
    assert ok.details["format"] == "pg_dump_custom"
    assert ok.details["verify_pg_dump_custom"]["toc_entries"] >= 3

    data = dump.read_bytes()
    write(tmp_path / "bad" / "orders.dump", data[: len(data) - 500])
    bad = await run_at(backup_check(source={"kind": "files", "path": str(tmp_path / "bad"), "pattern": "*.dump"}))
    assert bad.status == Status.CRITICAL
    assert "pg_restore cannot read the whole dump" in bad.summary
