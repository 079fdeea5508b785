"""State files hold alert text and delivery errors: owner-only (0600), whatever the umask (issue 14)."""

from __future__ import annotations

import os
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from agent.core import CheckResult, Status
from agent.daemon import Agent
from agent.store import SqliteStore


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)  # the usual default, which made these files 0644
    try:
        yield
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _config(tmp_path: Path) -> Path:
    p = tmp_path / "agent.yaml"
    p.write_text(f"agent: {{listen: '127.0.0.1:0', state_dir: {tmp_path / 'state'}}}\n"
                 "checks:\n  - {name: a, type: tcp, host: 127.0.0.1, port: 1, interval: 1h}\n")
    return p


async def test_a_running_agent_creates_its_database_wal_shm_and_lock_0600(tmp_path: Path, umask_022: None) -> None:
    agent = Agent(_config(tmp_path), registry=CollectorRegistry())
    await agent.start()
    try:
        assert agent.store is not None
        agent.store.add_result(CheckResult(status=Status.OK, summary="s", check="a", type="tcp", timestamp=1.0))
        await agent.store.flush()
        state = tmp_path / "state"
        files = {name: state / name for name in ("state.db", "state.db-wal", "state.db-shm", "agent.lock")}
        assert {name: oct(_mode(p)) for name, p in files.items()} == {name: "0o600" for name in files}
    finally:
        await agent.stop()


async def test_files_left_0644_by_an_older_release_are_tightened_on_open(tmp_path: Path, umask_022: None) -> None:
    db = tmp_path / "state.db"
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE t (x)")
    conn.execute("INSERT INTO t VALUES (1)")
    conn.commit()
    wal = tmp_path / "state.db-wal"
    for path in (db, wal):
        os.chmod(path, 0o644)
    store = SqliteStore(db)
    await store.open()
    try:
        assert _mode(db) == 0o600
        assert _mode(wal) == 0o600
    finally:
        await store.close()
        conn.close()
