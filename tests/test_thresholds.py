"""Configured thresholds are exported as metrics, so dashboards draw what the config says.

`sre_agent_check_threshold{check,name,level}` carries each check's levels per
observation name (from `CheckConfig.observation_thresholds()`, attached by the
runner whatever the run's outcome), so changing a threshold in the config moves
the line on the dashboard without regenerating it.
"""

from __future__ import annotations

import asyncio
import textwrap
from pathlib import Path

from prometheus_client import generate_latest

from agent.config import load_config
from agent.context import CheckContext
from agent.metrics import Metrics
from agent.registry import get_type
from agent.runner import execute
from tests.test_catalogue_agent import parse

DAY = 86400.0


def load(tmp_path: Path, body: str):
    path = tmp_path / "agent.yaml"
    path.write_text(textwrap.dedent(body))
    return load_config(path, env={"DSN": "sqlite:///x.db"})


def thresholds_of(tmp_path: Path, body: str) -> dict[str, dict[str, dict[str, float]]]:
    return {c.name: c.observation_thresholds() for c in load(tmp_path, body).all_checks()}


def test_each_check_type_names_the_observation_its_levels_apply_to(tmp_path: Path) -> None:
    got = thresholds_of(tmp_path, f"""
        checks:
          - {{name: web, type: http, url: "https://127.0.0.1:1/", latency: {{warning: 500ms, critical: 2s}},
              cert_expiry: {{warning: 30d, critical: 10d}}}}
          - {{name: plain, type: http, url: "http://127.0.0.1:1/"}}
          - {{name: port, type: tcp, host: 127.0.0.1, port: 1, latency: {{critical: 250ms}}}}
          - {{name: ns, type: dns, query: example.internal, server: 127.0.0.1, latency: {{warning: 100ms}}}}
          - {{name: cert, type: tls, host: 127.0.0.1, port: 1}}
          - {{name: drop, type: file, path: {tmp_path}, max_age: 1h, warn_age: 30m}}
          - {{name: dump, type: backup, source: {{kind: files, path: {tmp_path}}}, max_age: 10h, min_size: 1KB}}
          - {{name: fresh, type: freshness, source: {{kind: file, path: {tmp_path}}}, warn_after: 1h, error_after: 4h}}
          - {{name: cmd, type: command, command: ["true"]}}
        data_products:
          - apiVersion: v1
            kind: DataProduct
            metadata: {{name: orders}}
            spec:
              owner: team
              source: {{kind: sql, dsn: "${{DSN}}", table: orders, timestamp_column: ts}}
              quality:
                - {{metric: completeness, column: email, threshold: 95%}}
                - {{metric: uniqueness, column: id}}
                - {{metric: row_count, min: 1}}
    """)
    assert got["web"] == {"latency_seconds": {"warning": 0.5, "critical": 2.0},
                          "cert_expiry_days": {"warning": 30.0, "critical": 10.0}}
    assert got["plain"] == {}
    assert got["port"] == {"latency_seconds": {"critical": 0.25}}
    assert got["ns"] == {"query_seconds": {"warning": 0.1}}
    assert got["cert"] == {"cert_expiry_days": {"warning": 21.0, "critical": 7.0}}  # the type's defaults
    assert got["drop"] == {"age_seconds": {"warning": 1800.0, "critical": 3600.0}}
    # backup: warn_age defaults to 80% of max_age, and min_size is a level on the size
    assert got["dump"] == {"age_seconds": {"warning": 8 * 3600.0, "critical": 10 * 3600.0},
                           "size_bytes": {"critical": 1000.0}}
    assert got["fresh"] == {"age_seconds": {"warning": 3600.0, "critical": 4 * 3600.0}}
    assert got["cmd"] == {}
    # a data product's freshness SLO: error_after = the objective, warn_after 80% of it; quality per ratio
    assert got["orders-quality"] == {"completeness_email_ratio": {"critical": 0.95},
                                     "uniqueness_id_ratio": {"critical": 1.0}}


def scrape_thresholds(metrics: Metrics) -> dict[tuple[str, str, str], float]:
    text = generate_latest(metrics.registry).decode()
    fam = parse(text)["sre_agent_check_threshold"]
    values = [line.rsplit(" ", 1)[1] for line in text.splitlines() if line.startswith("sre_agent_check_threshold{")]
    return {(labels["check"], labels["name"], labels["level"]): float(v) for (_, labels), v in zip(fam.samples, values,
                                                                                                   strict=True)}


def run_once(config, metrics: Metrics) -> None:
    for cfg in config.all_checks():
        metrics.observe(asyncio.run(execute(get_type(cfg.type)(cfg, CheckContext()))))


def test_the_levels_go_out_on_metrics_and_follow_a_config_change(tmp_path: Path) -> None:
    metrics = Metrics()
    body = """
        checks:
          - {{name: exports, type: file, path: {path}, max_age: {max_age}}}
          - {{name: gone, type: freshness, source: {{kind: file, path: {path}/missing}}, warn_after: 1h, error_after: 2h}}
    """
    run_once(load(tmp_path, body.format(path=tmp_path, max_age="1d")), metrics)
    assert scrape_thresholds(metrics) == {("exports", "age_seconds", "critical"): DAY,
                                          # the freshness check failed to read anything: its levels are still there
                                          ("gone", "age_seconds", "warning"): 3600.0,
                                          ("gone", "age_seconds", "critical"): 7200.0}
    run_once(load(tmp_path, body.format(path=tmp_path, max_age="2d")), metrics)
    assert scrape_thresholds(metrics)[("exports", "age_seconds", "critical")] == 2 * DAY
