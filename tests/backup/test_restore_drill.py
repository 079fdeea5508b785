"""The restore drill against a real PostgreSQL: restore, assert, and always drop the scratch database."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agent.context import CheckContext
from agent.core import Status
from checks._restore import SCRATCH_PREFIX
from checks.backup import next_slot
from tests.backup.util import backup_check, run_at, sample, write
from tests.pgcluster import APP_PASSWORD

ROWS = 1500


@pytest.fixture(scope="module")
def orders_dump(pg_cluster, tmp_path_factory) -> Path:
    """A real `pg_dump -Fc` of an orders table whose newest row is 2 hours old."""
    db = pg_cluster.create_database("orders")
    pg_cluster.psql("CREATE TABLE orders(id int PRIMARY KEY, created_at timestamptz NOT NULL, amount numeric); "
                    f"INSERT INTO orders SELECT g, now() - interval '2 hours' - (g || ' minutes')::interval, g * 1.5 "
                    f"FROM generate_series(1, {ROWS}) g", db)
    out = tmp_path_factory.mktemp("dumps") / "orders.dump"
    return pg_cluster.pg_dump(db, out)


def scratch_databases(pg_cluster) -> list[str]:
    return [d for d in pg_cluster.databases() if d.startswith(SCRATCH_PREFIX)]


def gone(pid: int) -> bool:
    """No such process, or only its zombie is left."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def drill_check(dump_dir: Path, dsn: str, context: CheckContext | None = None, verify: bool = True, **drill):
    drill.setdefault("assertions", [{"query": "select count(*) from orders", "min": 1000},
                                    {"name": "newest order", "query": "select max(created_at) from orders",
                                     "max_age": "26h"}])
    return backup_check(context, source={"kind": "files", "path": str(dump_dir), "pattern": "*.dump", "verify": verify},
                        restore_test={"kind": "pg_restore", "dsn": dsn, **drill})


async def test_real_dump_is_restored_asserted_and_dropped(pg_cluster, orders_dump):
    check = drill_check(orders_dump.parent, pg_cluster.app_dsn())
    result = await run_at(check)
    assert result.status == Status.OK, result.summary
    drill = result.details["restore_test"]
    assert drill["ran_this_run"] is True
    assert drill["outcome"]["ok"] is True
    assert drill["outcome"]["dropped"] is True
    assert [a["ok"] for a in drill["outcome"]["assertions"]] == [True, True]
    assert drill["outcome"]["assertions"][0]["result"] == f"= {ROWS}"
    assert sample(result, "sre_agent_backup_restore_success") == 1.0
    assert sample(result, "sre_agent_backup_restore_duration_seconds") > 0
    assert result.observations["restore_data_age_seconds"] == pytest.approx(2 * 3600 + 60, abs=120)
    assert "2 assertion(s) passed" in result.summary
    assert scratch_databases(pg_cluster) == []
    assert APP_PASSWORD not in json.dumps(result.to_dict())


async def test_failed_assertion_is_critical_with_the_reason(pg_cluster, orders_dump):
    check = drill_check(orders_dump.parent, pg_cluster.app_dsn(),
                        assertions=[{"query": "select count(*) from orders", "min": 5000}])
    result = await run_at(check)
    assert result.status == Status.CRITICAL
    assert "restore drill failed: restored in" in result.summary
    assert f"{ROWS} < min 5000" in result.summary
    assert sample(result, "sre_agent_backup_restore_success") == 0.0
    assert scratch_databases(pg_cluster) == []


async def test_truncated_dump_fails_the_drill_and_leaves_no_scratch_db(pg_cluster, orders_dump, tmp_path):
    data = orders_dump.read_bytes()
    write(tmp_path / "orders.dump", data[: len(data) // 2])
    result = await run_at(drill_check(tmp_path, pg_cluster.app_dsn(), verify=False))
    assert result.status == Status.CRITICAL
    assert "restore drill failed: pg_restore failed" in result.summary
    assert result.details["restore_test"]["outcome"]["dropped"] is True
    assert sample(result, "sre_agent_backup_restore_success") == 0.0
    assert scratch_databases(pg_cluster) == []


async def test_drill_timeout_kills_the_query_and_drops_the_scratch_db(pg_cluster, orders_dump):
    check = drill_check(orders_dump.parent, pg_cluster.app_dsn(), timeout="1500ms",
                        assertions=[{"query": "select pg_sleep(5)", "min": 0}])
    started = time.monotonic()
    result = await run_at(check)
    assert time.monotonic() - started < 4.5
    assert result.status == Status.CRITICAL
    assert "restore drill failed: restore drill exceeded its timeout of 1.5s; stopped" in result.summary
    assert scratch_databases(pg_cluster) == []
    assert pg_cluster.psql("SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'select pg_sleep%'") == "0"


async def test_runner_cancellation_still_drops_the_scratch_db(pg_cluster, orders_dump):
    check = drill_check(orders_dump.parent, pg_cluster.app_dsn(), assertions=[{"query": "select pg_sleep(30)", "min": 0}])
    task = asyncio.create_task(run_at(check))
    sleeping = "SELECT count(*) FROM pg_stat_activity WHERE query = 'select pg_sleep(30)'"
    for _ in range(400):  # at most ~20s: restore done, the assertion query is running
        if pg_cluster.psql(sleeping) == "1":
            break
        await asyncio.sleep(0.05)
    assert scratch_databases(pg_cluster), "the drill never created its scratch database"
    assert pg_cluster.psql(sleeping) == "1"
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert scratch_databases(pg_cluster) == []


async def test_a_hanging_pg_restore_is_killed_with_its_children(pg_cluster, orders_dump, tmp_path):
    """pg_restore gets the password through PGPASSWORD, not argv; on timeout its whole process group dies."""
    record = tmp_path / "record"
    fake = tmp_path / "pg_restore"
    fake.write_text(f"""#!/bin/sh
printf '%s\\n' "$@" > {record}.argv
printf '%s' "$PGPASSWORD" > {record}.env
sleep 60 &
echo $! > {record}.child
wait
""")
    fake.chmod(0o755)
    check = drill_check(orders_dump.parent, pg_cluster.app_dsn(), timeout="1500ms", pg_restore=str(fake))
    started = time.monotonic()
    result = await run_at(check)
    assert time.monotonic() - started < 5
    assert result.status == Status.CRITICAL
    assert "exceeded its timeout of 1.5s" in result.summary
    argv = (tmp_path / "record.argv").read_text()
    assert APP_PASSWORD not in argv and "--no-owner" in argv and SCRATCH_PREFIX in argv
    assert (tmp_path / "record.env").read_text() == APP_PASSWORD
    child = int((tmp_path / "record.child").read_text())
    for _ in range(100):  # the kill is immediate; reaping by init may take a moment
        if gone(child):
            break
        await asyncio.sleep(0.05)
    assert gone(child), f"pg_restore's child {child} survived the drill"
    assert scratch_databases(pg_cluster) == []


async def test_wrong_password_is_critical_and_never_shown(pg_cluster, orders_dump):
    bad = "Not-The-Password-77"
    result = await run_at(drill_check(orders_dump.parent, pg_cluster.app_dsn(password=bad)))
    assert result.status == Status.CRITICAL
    assert "password authentication failed" in result.summary
    assert bad not in json.dumps(result.to_dict())
    assert scratch_databases(pg_cluster) == []


async def test_drill_runs_on_start_then_only_when_its_cron_slot_has_passed(pg_cluster, orders_dump):
    context = CheckContext()
    check = drill_check(orders_dump.parent, pg_cluster.app_dsn(), context=context, schedule="0 4 * * *",
                        assertions=[{"query": "select count(*) from orders", "min": 1}])
    t0 = time.time()
    first = await run_at(check, t0)
    assert first.details["restore_test"]["ran_this_run"] is True
    assert first.status == Status.OK, first.summary
    second = await run_at(check, t0 + 1)
    assert second.details["restore_test"]["ran_this_run"] is False
    assert second.details["restore_test"]["outcome"]["ok"] is True  # the last outcome is carried
    assert sample(second, "sre_agent_backup_restore_success") == 1.0
    slot = next_slot("0 4 * * *", t0)
    assert second.details["restore_test"]["next_due"].startswith(time.strftime("%Y-%m-%dT04:00:00", time.gmtime(slot)))
    # A new Check object (a config reload) shares the state through the context.
    reloaded = drill_check(orders_dump.parent, pg_cluster.app_dsn(), context=context, schedule="0 4 * * *",
                           assertions=[{"query": "select count(*) from orders", "min": 1}])
    assert (await run_at(reloaded, slot - 1)).details["restore_test"]["ran_this_run"] is False
    third = await run_at(reloaded, slot + 1)
    assert third.details["restore_test"]["ran_this_run"] is True


async def test_run_on_start_false_waits_for_the_first_slot(pg_cluster, orders_dump):
    check = drill_check(orders_dump.parent, pg_cluster.app_dsn(), schedule="0 4 * * *", run_on_start=False)
    result = await run_at(check)
    assert result.status == Status.OK, result.summary
    assert result.details["restore_test"]["ran_this_run"] is False
    assert result.details["restore_test"]["last_run"] is None
    assert sample(result, "sre_agent_backup_restore_success") is None
    assert scratch_databases(pg_cluster) == []


def test_sre_agent_check_runs_the_drill(pg_cluster, orders_dump, tmp_path):
    """`sre-agent check NAME` is a fresh process: the drill runs, its result decides the exit code."""
    config = tmp_path / "agent.yaml"
    config.write_text(f"""
agent: {{state_dir: {tmp_path / 'state'}}}
checks:
  - name: orders-db-backup
    type: backup
    timeout: 20s
    source: {{kind: files, path: {orders_dump.parent}, pattern: "*.dump"}}
    max_age: 26h
    restore_test:
      kind: pg_restore
      dsn: ${{SCRATCH_PG_DSN}}
      schedule: "0 4 * * *"
      assertions: [{{query: "select count(*) from orders", min: 1000}}]
""")
    env = {**os.environ, "SCRATCH_PG_DSN": pg_cluster.app_dsn()}
    out = subprocess.run([sys.executable, "-m", "agent.cli", "check", "-c", str(config), "-o", "json", "orders-db-backup"],
                         capture_output=True, text=True, timeout=60, env=env, cwd=Path(__file__).parents[2])
    assert out.returncode == 0, out.stderr + out.stdout
    [result] = json.loads(out.stdout)
    assert result["details"]["restore_test"]["ran_this_run"] is True
    assert result["observations"]["restore_success"] == 1.0
    assert APP_PASSWORD not in out.stdout + out.stderr
    assert scratch_databases(pg_cluster) == []
