"""S3 backups against a local moto server on 127.0.0.1: listing, shrink, failures, and a drill from a bucket."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.core import Status
from tests.backup.util import HOUR, backup_check, run_at, sample
from tests.pgcluster import APP_PASSWORD

ACCESS_KEY = "AKIATESTLOCAL0001"
SECRET_KEY = "s3-Secret-Key-Local-5511"


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def bucket(s3_endpoint: str, request) -> tuple[object, str]:
    import boto3

    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1",
                          aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY)
    name = "backups-" + request.node.name.replace("_", "-")[:40].lower()
    client.create_bucket(Bucket=name)
    return client, name


def s3_source(endpoint: str, bucket: str, secret_file: Path | None = None, **extra: object) -> dict[str, object]:
    src: dict[str, object] = {"kind": "s3", "bucket": bucket, "endpoint_url": endpoint, "access_key_id": ACCESS_KEY}
    if secret_file is not None:
        src["secret_access_key_file"] = str(secret_file)
    else:
        src["secret_access_key"] = SECRET_KEY
    return {**src, **extra}


async def test_newest_object_under_prefix(s3_endpoint, bucket):
    client, name = bucket
    client.put_object(Bucket=name, Key="orders/2024-01-01.dump.gz", Body=b"a" * 4000)
    client.put_object(Bucket=name, Key="orders/2024-01-02.dump.gz", Body=b"a" * 5000)
    client.put_object(Bucket=name, Key="orders/2024-01-02.log", Body=b"log")
    client.put_object(Bucket=name, Key="other/2024-01-03.dump.gz", Body=b"a")
    check = backup_check(source=s3_source(s3_endpoint, name, prefix="orders/", pattern="*.dump.gz"))
    result = await run_at(check)
    assert result.status == Status.OK, result.summary
    assert result.observations["count"] == 2
    assert result.observations["size_bytes"] == 5000
    assert result.details["object"] == f"s3://{name}/orders/2024-01-02.dump.gz"
    late = await run_at(check, time.time() + 27 * HOUR)
    assert late.status == Status.CRITICAL
    assert sample(late, "sre_agent_backup_age_seconds") == pytest.approx(27 * HOUR, abs=60)


async def test_shrink_and_empty_prefix(s3_endpoint, bucket, tmp_path: Path):
    client, name = bucket
    client.put_object(Bucket=name, Key="db/1.dump", Body=b"a" * 10_000)
    client.put_object(Bucket=name, Key="db/2.dump", Body=b"a" * 1_000)
    secret = tmp_path / "secret"
    secret.write_text(SECRET_KEY + "\n")
    shrunk = await run_at(backup_check(source=s3_source(s3_endpoint, name, secret, prefix="db/"), max_size_change="50%"))
    assert shrunk.status == Status.CRITICAL
    assert "shrank 90%" in shrunk.summary
    empty = await run_at(backup_check(source=s3_source(s3_endpoint, name, prefix="nothing/")))
    assert empty.status == Status.CRITICAL
    assert empty.summary == f"no backup object under s3://{name}/nothing/"


async def test_missing_bucket_and_unreachable_endpoint_are_critical_without_secrets(s3_endpoint):
    missing = await run_at(backup_check(source=s3_source(s3_endpoint, "no-such-bucket")))
    assert missing.status == Status.CRITICAL
    assert "s3://no-such-bucket: NoSuchBucket" in missing.summary

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}"
    down = await run_at(backup_check(source=s3_source(closed, "b")))
    assert down.status == Status.CRITICAL
    assert f"cannot reach {closed}" in down.summary
    for r in (missing, down):
        assert SECRET_KEY not in json.dumps(r.to_dict())


async def test_restore_drill_from_a_bucket(s3_endpoint, bucket, pg_cluster, tmp_path: Path):
    client, name = bucket
    db = pg_cluster.create_database("s3src")
    pg_cluster.psql("CREATE TABLE orders(id int); INSERT INTO orders SELECT generate_series(1, 1200)", db)
    dump = pg_cluster.pg_dump(db, tmp_path / "orders.dump")
    client.upload_file(str(dump), name, "pg/orders.dump")
    check = backup_check(source=s3_source(s3_endpoint, name, prefix="pg/"),
                         restore_test={"kind": "pg_restore", "dsn": pg_cluster.app_dsn(),
                                       "assertions": [{"query": "select count(*) from orders", "min": 1000}]})
    result = await run_at(check)
    assert result.status == Status.OK, result.summary
    assert sample(result, "sre_agent_backup_restore_success") == 1.0
    assert result.details["restore_test"]["outcome"]["assertions"][0]["result"] == "= 1200"
    assert APP_PASSWORD not in json.dumps(result.to_dict())
