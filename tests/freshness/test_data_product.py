"""DataProduct documents: accepted as written (inline or included), turned into labelled checks that measure real rows."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path

import pytest
from prometheus_client import generate_latest

from agent.alerting.route import build_routes
from agent.config import ConfigError, load_config
from agent.context import CheckContext
from agent.core import Status
from agent.metrics import Metrics
from agent.runner import execute
from checks import get_type
from tests.pgcluster import APP_PASSWORD

EXAMPLE = Path(__file__).parents[2] / "examples" / "data.yaml"

PRODUCT = """apiVersion: v1
kind: DataProduct
metadata: {name: customer-data-product, namespace: sales-domain}
spec:
  owner: sales-team@company.com
  slo: {freshness: "< 1 hour"}
  source: {kind: sql, dsn: "${SALES_DSN}", table: customers, timestamp_column: created_at}
  quality:
    - {metric: completeness, column: email, threshold: 95%}
    - {metric: uniqueness, column: email, threshold: 100%}
    - {metric: row_count, min: 1}
"""


@pytest.fixture(scope="module")
def sales_db(pg_cluster) -> str:
    db = pg_cluster.create_database("sales")
    pg_cluster.psql("CREATE TABLE customers(id int PRIMARY KEY, email text, created_at timestamptz); "
                    "GRANT ALL ON customers TO sre_app", db)
    return db


def fill(pg_cluster, db: str, rows: int, null_emails: int, newest_minutes_ago: int) -> None:
    pg_cluster.psql(f"TRUNCATE customers; INSERT INTO customers SELECT g, "
                    f"CASE WHEN g <= {null_emails} THEN NULL ELSE 'c' || g || '@example.com' END, "
                    f"now() - interval '{newest_minutes_ago} minutes' - (g || ' seconds')::interval "
                    f"FROM generate_series(1, {rows}) g", db)


def load_product(tmp_path: Path, dsn: str, inline: bool = True):
    path = tmp_path / "agent.yaml"
    if inline:
        body = "\n".join("    " + line if i else "  - " + line for i, line in enumerate(PRODUCT.splitlines()))
        path.write_text("data_products:\n" + body + "\n")
    else:
        (tmp_path / "products").mkdir(exist_ok=True)
        (tmp_path / "products" / "customers.yaml").write_text(PRODUCT)
        path.write_text("include: [products/*.yaml]\n")
    return load_config(path, env={"SALES_DSN": dsn})


@pytest.mark.parametrize("inline", [True, False])
def test_document_becomes_labelled_freshness_and_quality_checks(tmp_path: Path, inline: bool):
    config = load_product(tmp_path, "postgresql://reader:Pw-For-Sales-1@db/sales", inline)
    fresh, quality = config.all_checks()
    assert (fresh.name, fresh.type) == ("customer-data-product-freshness", "freshness")
    assert (quality.name, quality.type) == ("customer-data-product-quality", "data_product")
    for c in (fresh, quality):
        assert c.labels == {"domain": "sales-domain", "owner": "sales-team@company.com"}
    assert fresh.error_after.total_seconds() == 3600
    assert fresh.warn_after.total_seconds() == 48 * 60
    assert fresh.dataset_name == "customer-data-product"


def test_a_product_without_severity_warns_on_warning_and_pages_on_critical(tmp_path: Path):
    config = load_product(tmp_path, "postgresql://reader:Pw-For-Sales-1@db/sales")
    for c in config.all_checks():
        # freshness is WARNING from 80% of the SLO: that is a warning, not a page
        assert (c.severity_for(Status.WARNING), c.severity_for(Status.CRITICAL)) == ("warning", "critical")


async def test_quality_below_threshold_is_critical_with_the_ratio(tmp_path: Path, pg_cluster, sales_db):
    fill(pg_cluster, sales_db, rows=200, null_emails=20, newest_minutes_ago=5)
    config = load_product(tmp_path, pg_cluster.app_dsn(sales_db))
    quality = config.check("customer-data-product-quality")
    result = await execute(get_type("data_product")(quality, CheckContext(config=config)))
    assert result.status == Status.CRITICAL
    assert result.summary == "customers: completeness(email) 90.0% < 95%"
    assert result.observations["completeness_email_ratio"] == pytest.approx(0.9)
    assert result.observations["uniqueness_email_ratio"] == 1.0
    assert result.observations["row_count"] == 200
    assert result.labels == {"domain": "sales-domain", "owner": "sales-team@company.com"}
    ratios = {(s.labels["metric"], s.labels["column"]): s.value for s in result.samples}
    assert ratios == {("completeness", "email"): pytest.approx(0.9), ("uniqueness", "email"): 1.0}
    assert APP_PASSWORD not in json.dumps(result.to_dict())


async def test_quality_passes_and_freshness_follows_the_slo(tmp_path: Path, pg_cluster, sales_db):
    fill(pg_cluster, sales_db, rows=100, null_emails=2, newest_minutes_ago=50)
    config = load_product(tmp_path, pg_cluster.app_dsn(sales_db))
    context = CheckContext(config=config)
    quality = await execute(get_type("data_product")(config.check("customer-data-product-quality"), context))
    assert quality.status == Status.OK, quality.summary
    assert quality.summary == "customers: completeness(email) 98.0%, uniqueness(email) 100.0%, row_count 100"
    fresh = await execute(get_type("freshness")(config.check("customer-data-product-freshness"), context))
    assert fresh.status == Status.WARNING  # 50m old: past 80% of the 1h objective
    assert "older than warn_after 48m" in fresh.summary
    [s] = fresh.samples
    assert s.labels == {"dataset": "customer-data-product", "domain": "sales-domain"}


async def test_empty_table_and_missing_column(tmp_path: Path, pg_cluster, sales_db):
    pg_cluster.psql("TRUNCATE customers", sales_db)
    config = load_product(tmp_path, pg_cluster.app_dsn(sales_db))
    empty = await execute(get_type("data_product")(config.check("customer-data-product-quality"), CheckContext()))
    assert empty.status == Status.CRITICAL
    assert "completeness(email): no data (no rows)" in empty.summary
    assert "row_count 0 < min 1" in empty.summary
    fresh = await execute(get_type("freshness")(config.check("customer-data-product-freshness"), CheckContext()))
    assert fresh.status == Status.CRITICAL
    assert fresh.summary.startswith("no data")

    renamed = PRODUCT.replace("column: email, threshold: 95%", "column: e_mail, threshold: 95%")
    path = tmp_path / "renamed.yaml"
    path.write_text("data_products:\n" + "\n".join(
        ("  - " if i == 0 else "    ") + line for i, line in enumerate(renamed.splitlines())) + "\n")
    config = load_config(path, env={"SALES_DSN": pg_cluster.app_dsn(sales_db)})
    broken = await execute(get_type("data_product")(config.check("customer-data-product-quality"), CheckContext()))
    assert broken.status == Status.CRITICAL
    assert 'column "e_mail" does not exist' in broken.summary


@pytest.mark.parametrize(("old", "new", "expected"), [
    ('"< 1 hour"', '"< 1 fortnight"', "data_products[0].spec.slo.freshness: invalid freshness objective '< 1 fortnight'"),
    ("threshold: 95%", "threshold: 95", "data_products[0].spec.quality[0].threshold: invalid percentage 95"),
    ("table: customers", "table: customers;drop", "data_products[0].spec.source.table: invalid table 'customers;drop'"),
    ("kind: DataProduct", "kind: DataSet", "data_products[0].kind: Input should be 'DataProduct'"),
    ("metric: row_count, min: 1", "metric: freshness", "data_products[0].spec.quality[2]"),
    ("table: customers, timestamp_column: created_at", "query: select now()",
     "data_products[0]: spec.quality needs spec.source of kind sql with a table"),
])
def test_bad_documents_name_the_field(tmp_path: Path, old: str, new: str, expected: str):
    doc = PRODUCT.replace(old, new)
    assert doc != PRODUCT
    path = tmp_path / "agent.yaml"
    path.write_text("data_products:\n" + "\n".join(
        ("  - " if i == 0 else "    ") + line for i, line in enumerate(doc.splitlines())) + "\n")
    with pytest.raises(ConfigError) as exc:
        load_config(path, env={"SALES_DSN": "postgresql://r@db/sales"})
    found = [f"{i.path}: {i.message}" for i in exc.value.issues]
    assert any(f.startswith(expected) for f in found), found


def test_example_config_routes_sales_alerts_to_the_sales_receiver(tmp_path: Path):
    secret = tmp_path / "restic"
    secret.write_text("restic-pass\n")
    config = load_config(EXAMPLE, env={
        "SCRATCH_PG_DSN": "postgresql://drill@scratch:5432/postgres", "ORDERS_DSN": "postgresql://r@orders/db",
        "SALES_DSN": "postgresql://r@sales/db", "RESTIC_PASSWORD_FILE": str(secret),
        "BACKUP_S3_ACCESS_KEY_ID": "AKIAEXAMPLE", "BACKUP_S3_SECRET_ACCESS_KEY": "example-secret"})
    root = build_routes(config.alerting.route)
    by_check = {c.name: c for c in config.all_checks()}
    for name in ("customer-data-product-freshness", "customer-data-product-quality"):
        labels = {**by_check[name].labels, "check": name}
        assert [r.receiver for r in root.destinations(labels)] == ["sales"]
    assert [r.receiver for r in root.destinations({**by_check["orders-db-backup"].labels, "check": "x"})] == ["orders"]
    assert [r.receiver for r in root.destinations({**by_check["pg-cluster"].labels, "check": "x"})] == ["platform"]


async def test_metrics_pass_promtool(tmp_path: Path, pg_cluster, sales_db):
    """The backup, freshness and quality families as /metrics shows them are valid exposition."""
    from tests.backup.util import backup_check, run_at, write

    fill(pg_cluster, sales_db, rows=50, null_emails=0, newest_minutes_ago=1)
    config = load_product(tmp_path, pg_cluster.app_dsn(sales_db))
    metrics = Metrics()
    for name in ("customer-data-product-quality", "customer-data-product-freshness"):
        metrics.observe(await execute(get_type(config.check(name).type)(config.check(name), CheckContext())))
    write(tmp_path / "b" / "x.bin", b"x" * 100)
    metrics.observe(await run_at(backup_check(source={"kind": "files", "path": str(tmp_path / "b")})))
    text = generate_latest(metrics.registry).decode()
    assert 'sre_agent_data_quality_ratio{check="customer-data-product-quality",column="email",metric="completeness"} 1.0' in text
    assert 'sre_agent_data_freshness_seconds{check="customer-data-product-freshness",dataset="customer-data-product",' \
           'domain="sales-domain"}' in text
    assert 'sre_agent_backup_size_bytes{check="orders-db-backup"} 100.0' in text
    out = await asyncio.to_thread(subprocess.run, ["promtool", "check", "metrics"], input=text, capture_output=True,
                                  text=True, timeout=30)
    assert out.returncode == 0, out.stdout + out.stderr
