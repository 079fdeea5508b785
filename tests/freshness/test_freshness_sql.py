"""SQL freshness against a real PostgreSQL (and SQLite): rows with chosen timestamps decide the status."""

from __future__ import annotations

import json
import socket
import sqlite3
import time
from pathlib import Path

import pytest

from agent.core import Status
from tests.freshness.util import HOUR, freshness_check, run
from tests.pgcluster import APP_PASSWORD


@pytest.fixture(scope="module")
def orders_db(pg_cluster) -> str:
    db = pg_cluster.create_database("fresh")
    pg_cluster.psql('CREATE TABLE orders(id serial PRIMARY KEY, updated_at timestamptz); '
                    'CREATE TABLE "Events"("When" timestamp); '
                    'GRANT ALL ON ALL TABLES IN SCHEMA public TO sre_app', db)
    return db


def set_newest(pg_cluster, db: str, minutes_ago: float) -> None:
    pg_cluster.psql(f"TRUNCATE orders; INSERT INTO orders(updated_at) VALUES "
                    f"(now() - interval '{minutes_ago} minutes'), (now() - interval '3 days')", db)


def sql(pg_cluster, db: str, query: str = "select max(updated_at) from orders", **extra: object) -> dict[str, object]:
    return {"kind": "sql", "dsn": pg_cluster.app_dsn(db), "query": query, **extra}


@pytest.mark.parametrize(("minutes_ago", "status", "text"), [
    (10, Status.OK, "last updated 10m"),
    (90, Status.WARNING, "older than warn_after 1h"),
    (300, Status.CRITICAL, "older than error_after 4h"),
])
async def test_ok_warning_critical_from_real_rows(pg_cluster, orders_db, minutes_ago, status, text):
    set_newest(pg_cluster, orders_db, minutes_ago)
    check = freshness_check(source=sql(pg_cluster, orders_db), warn_after="1h", error_after="4h",
                            labels={"domain": "orders"})
    result = await run(check)
    assert result.status == status, result.summary
    assert text in result.summary
    assert result.observations["age_seconds"] == pytest.approx(minutes_ago * 60, abs=30)
    [s] = result.samples
    assert s.metric == "sre_agent_data_freshness_seconds"
    assert s.labels == {"dataset": "orders-fresh", "domain": "orders"}
    assert APP_PASSWORD not in json.dumps(result.to_dict())


async def test_table_and_timestamp_column_are_quoted_identifiers(pg_cluster, orders_db):
    pg_cluster.psql("""TRUNCATE "Events"; INSERT INTO "Events" VALUES ((now() at time zone 'UTC') - interval '30 minutes')""",
                    orders_db)
    src = {"kind": "sql", "dsn": pg_cluster.app_dsn(orders_db), "table": "public.Events", "timestamp_column": "When"}
    result = await run(freshness_check(source=src, error_after="1h"))
    assert result.status == Status.OK, result.summary
    assert result.details["dataset"] == "public.Events"
    # A naive timestamp is UTC unless the source names a zone:
    assert result.observations["age_seconds"] == pytest.approx(1800, abs=30)


async def test_naive_timestamps_in_a_named_timezone(pg_cluster, orders_db):
    pg_cluster.psql("""TRUNCATE "Events"; INSERT INTO "Events" VALUES """
                    """((now() at time zone 'America/New_York') - interval '30 minutes')""", orders_db)
    src = {"kind": "sql", "dsn": pg_cluster.app_dsn(orders_db), "table": "Events", "timestamp_column": "When",
           "timezone": "America/New_York"}
    result = await run(freshness_check(source=src, error_after="1h"))
    assert result.status == Status.OK, result.summary
    assert result.observations["age_seconds"] == pytest.approx(1800, abs=30)


async def test_epoch_results_in_seconds_and_milliseconds(pg_cluster, orders_db):
    seconds = sql(pg_cluster, orders_db, "select extract(epoch from now() - interval '3 hours')")
    result = await run(freshness_check(source=seconds, warn_after="1h", error_after="4h"))
    assert result.status == Status.WARNING
    assert result.observations["age_seconds"] == pytest.approx(3 * HOUR, abs=30)
    millis = sql(pg_cluster, orders_db, "select (extract(epoch from now()) * 1000)::bigint", epoch_unit="ms")
    assert (await run(freshness_check(source=millis, error_after="1h"))).observations["age_seconds"] < 30


async def test_null_and_no_rows_are_no_data(pg_cluster, orders_db):
    pg_cluster.psql("TRUNCATE orders", orders_db)
    null = await run(freshness_check(source=sql(pg_cluster, orders_db), error_after="1h"))
    assert null.status == Status.CRITICAL
    assert null.summary == "no data: the query result is NULL or there are no rows"
    none = await run(freshness_check(source=sql(pg_cluster, orders_db, "select updated_at from orders where false"),
                                     error_after="1h"))
    assert none.status == Status.CRITICAL
    assert none.summary.startswith("no data")


async def test_non_timestamp_result_is_unknown_with_the_type(pg_cluster, orders_db):
    result = await run(freshness_check(source=sql(pg_cluster, orders_db, "select 'alice'::text"), error_after="1h"))
    assert result.status == Status.UNKNOWN
    assert result.summary == "query result is not a timestamp: got str 'alice'"
    assert result.details["value_type"] == "str"
    boolean = await run(freshness_check(source=sql(pg_cluster, orders_db, "select true"), error_after="1h"))
    assert boolean.status == Status.UNKNOWN
    assert "got bool" in boolean.summary


async def test_unreachable_database_and_wrong_password_are_critical_without_secrets(pg_cluster, orders_db):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    down = f"postgresql://sre_app:{APP_PASSWORD}@127.0.0.1:{port}/x"
    result = await run(freshness_check(source={"kind": "sql", "dsn": down, "query": "select now()"}, error_after="1h"))
    assert result.status == Status.CRITICAL
    assert result.summary.startswith("database unreachable or query failed: OperationalError: connection failed")
    wrong = pg_cluster.app_dsn(orders_db, password="Wrong-Secret-Pw-1")
    bad = await run(freshness_check(source={"kind": "sql", "dsn": wrong, "query": "select now()"}, error_after="1h"))
    assert bad.status == Status.CRITICAL
    assert "password authentication failed" in bad.summary
    for r in (result, bad):
        text = json.dumps(r.to_dict())
        assert APP_PASSWORD not in text and "Wrong-Secret-Pw-1" not in text


async def test_sqlite_is_built_in(tmp_path: Path):
    path = tmp_path / "events.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE events(ts TEXT)")
        conn.execute("INSERT INTO events VALUES (?)", (time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(time.time() - 600)),))
    src = {"kind": "sql", "dsn": f"sqlite:///{path}", "table": "events", "timestamp_column": "ts"}
    result = await run(freshness_check(source=src, warn_after="5m", error_after="1h"))
    assert result.status == Status.WARNING, result.summary
    assert result.observations["age_seconds"] == pytest.approx(600, abs=10)


async def test_future_timestamps_count_as_fresh_and_are_flagged(pg_cluster, orders_db):
    src = sql(pg_cluster, orders_db, "select now() + interval '1 hour'")
    result = await run(freshness_check(source=src, error_after="1h"))
    assert result.status == Status.OK
    assert result.observations["age_seconds"] == 0
    assert result.details["in_future"] is True
