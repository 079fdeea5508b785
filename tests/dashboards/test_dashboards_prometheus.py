"""Every query of every generated dashboard returns data from a real Prometheus scraping a real agent.

A real `prometheus` (Debian package) scrapes a running `sre-agent run` every
second. The agent's config has a passing and a failing http check, a tcp, tls
(against a TLS server in this test) and host check, an SLO over the passing
check's history, a files backup of a real pg_dump with a restore drill on the
session's PostgreSQL, a freshness check and a data product (SQLite), a check
that overruns its interval (skipped runs) and alerting to the log receiver.

The dashboards are built from that config (so the SLO dashboard has a row for
its SLO); each target expression, with the template variables substituted the
way Grafana does (one job and instance selected, All for the others,
`$__rate_interval` = 1m), goes to Prometheus' query API: none may fail, none
may come back empty. Every variable's `label_values` query must offer values.
The committed dashboards (built from examples/slo.yaml) differ only in their
SLO rows: each of their expressions is one of these, up to the SLO's name.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import sqlite3
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.agentproc import AgentProcess, free_port
from tests.checks.certs import make_ca, make_leaf, server_context
from tests.dashboards.util import Query, build, committed, queries, regex_escape, substitute, variables

pytestmark = pytest.mark.integration

JOB = "sre-agent"
RATE_INTERVAL = "1m"
DEADLINE = 60.0
#: panels that are empty for this config, and why (each must really be empty, or leave this list)
LEGITIMATELY_EMPTY: dict[tuple[str, str, str], str] = {
    ("agent.json", "Quorum checks by location", "A"): "only a check with `locations:` run by several replicas "
                                                      "exports it (tests/test_replicas.py); this agent runs alone",
}
SLO = "healthz-availability"


class TlsServer:
    """Accepts TLS handshakes on 127.0.0.1 with a certificate of a throwaway CA, from its own event loop."""

    def __init__(self, tmp_path: Path) -> None:
        self.ca = make_ca(tmp_path / "pki")
        self.ctx = server_context(make_leaf(tmp_path / "pki", self.ca, days=60))
        self.loop = asyncio.new_event_loop()
        self.port = 0
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        server = self.loop.run_until_complete(
            self.loop.create_server(asyncio.Protocol, "127.0.0.1", 0, ssl=self.ctx))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self.loop.run_forever()
        server.close()
        self.loop.run_until_complete(server.wait_closed())
        self.loop.close()

    def __enter__(self) -> TlsServer:
        self._thread.start()
        assert self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)


def _get(url: str, timeout: float = 5) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.load(response)


class Prometheus:
    """A real Prometheus on 127.0.0.1 scraping the agent every second; stopped on exit."""

    def __init__(self, root: Path, target: str) -> None:
        root.mkdir(parents=True, exist_ok=True)
        binary = shutil.which("prometheus")
        assert binary is not None
        config = root / "prometheus.yml"
        config.write_text(f"""
global: {{scrape_interval: 1s, evaluation_interval: 1s}}
scrape_configs:
  - job_name: {JOB}
    static_configs: [{{targets: ["{target}"]}}]
""", encoding="ascii")
        self.url = f"http://127.0.0.1:{free_port()}"
        self.log = root / "prometheus.log"
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [binary, f"--config.file={config}", f"--storage.tsdb.path={root / 'tsdb'}",
                 f"--web.listen-address={self.url.removeprefix('http://')}", "--log.level=warn"],
                stdout=log, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log.read_text()[-3000:]
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"prometheus not ready:\n{self.log.read_text()[-3000:]}")

    def query(self, expr: str) -> dict[str, Any]:
        """The API's answer to an instant query now (status, data or error)."""
        params = urllib.parse.urlencode({"query": expr})
        try:
            return _get(f"{self.url}/api/v1/query?{params}")  # type: ignore[no-any-return]
        except urllib.error.HTTPError as exc:  # 400/422: a bad query, with the error in the body
            return json.loads(exc.read())  # type: ignore[no-any-return]

    def label_values(self, label: str, selector: str) -> list[str]:
        params = urllib.parse.urlencode({"match[]": selector, "start": f"{time.time() - 300:.0f}"})
        body = _get(f"{self.url}/api/v1/label/{label}/values?{params}")
        assert body["status"] == "success", body
        return list(body["data"])

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)


def agent_config(tmp_path: Path, port: int, tls_port: int, ca_file: Path, dump_dir: Path, drill_dsn: str) -> Path:
    exports = tmp_path / "exports"
    exports.mkdir()
    (exports / "orders.parquet").write_bytes(b"PAR1" * 100)
    db = tmp_path / "sales.db"
    with sqlite3.connect(db) as conn:
        conn.execute("create table customers (id integer primary key, email text, created_at integer)")
        conn.executemany("insert into customers (email, created_at) values (?, ?)",
                         [(f"c{i}@example.com" if i % 10 else None, int(time.time()) - 60) for i in range(20)])
    cfg = tmp_path / "agent.yaml"
    cfg.write_text(f"""
agent:
  listen: 127.0.0.1:{port}
  state_dir: {tmp_path / 'state'}
defaults: {{interval: 500ms, timeout: 5s}}
checks:
  - name: healthz
    type: http
    url: http://127.0.0.1:{port}/healthz
    latency: {{warning: 1s, critical: 2s}}
    labels: {{service: sre-agent, team: sre}}
  - name: missing-api
    type: http
    url: http://127.0.0.1:{free_port()}/healthz
    timeout: 1s
    alert: {{after: 1}}
    labels: {{service: api, team: payments}}
  - {{name: agent-port, type: tcp, host: 127.0.0.1, port: {port}, latency: {{warning: 1s}}}}
  - {{name: local-cert, type: tls, host: 127.0.0.1, port: {tls_port}, ca_file: "{ca_file}", interval: 1s}}
  - {{name: node, type: host, interval: 1s, disk: [{{path: {tmp_path}, warning: 98, critical: 99.5}}]}}
  - {{name: slow, type: command, command: ["sleep", "1"], interval: 200ms, timeout: 10s}}
  - name: orders-backup
    type: backup
    source: {{kind: files, path: {dump_dir}, pattern: "*.dump"}}
    max_age: 1d
    min_size: 100B
    interval: 1s
    timeout: 10s
    restore_test:
      kind: pg_restore
      dsn: "{drill_dsn}"
      schedule: "0 4 * * *"
      timeout: 30s
      assertions:
        - {{query: "select count(*) from orders", min: 10}}
        - {{name: newest order, query: "select max(created_at) from orders", max_age: 26h}}
  - {{name: exports-fresh, type: freshness, source: {{kind: file, path: {exports}, pattern: "*.parquet"}},
      warn_after: 1h, error_after: 4h}}
data_products:
  - apiVersion: v1
    kind: DataProduct
    metadata: {{name: customers, namespace: sales-domain}}
    spec:
      owner: sales-team@example.com
      slo: {{freshness: "< 1 hour"}}
      source: {{kind: sql, dsn: "sqlite:///{db}", table: customers, timestamp_column: created_at}}
      interval: 1s
      quality:
        - {{metric: completeness, column: email, threshold: 95%}}
        - {{metric: row_count, min: 1}}
slos:
  - name: {SLO}
    service: sre-agent
    objective: 99
    window: 1d
    interval: 1s
    sli: {{check: healthz}}
alerting:
  route: {{receiver: log, group_wait: 0s, group_interval: 1s}}
  receivers:
    - {{name: log, log: {{}}}}
""")
    return cfg


@pytest.fixture
def orders_dump(pg_cluster, tmp_path: Path) -> Path:
    db = pg_cluster.create_database("dash")
    pg_cluster.psql("CREATE TABLE orders(id int PRIMARY KEY, created_at timestamptz NOT NULL); INSERT INTO orders "
                    "SELECT g, now() - interval '1 hour' - (g || ' minutes')::interval FROM generate_series(1, 50) g", db)
    out = tmp_path / "dumps" / "orders.dump"
    out.parent.mkdir()
    return pg_cluster.pg_dump(db, out)


@pytest.fixture
def stack(tmp_path: Path, pg_cluster, orders_dump: Path) -> Iterator[tuple[AgentProcess, Prometheus, Path]]:
    if shutil.which("prometheus") is None:
        pytest.skip("prometheus not installed (Debian package `prometheus`)")
    port = free_port()
    with TlsServer(tmp_path) as tls:
        cfg = agent_config(tmp_path, port, tls.port, tls.ca.cert_file, orders_dump.parent, pg_cluster.app_dsn())
        agent = AgentProcess(cfg, port).start()
        prom = Prometheus(tmp_path / "prometheus", f"127.0.0.1:{port}")
        try:
            prom.wait_ready()
            yield agent, prom, cfg
        finally:
            prom.stop()
            agent.stop()


def grafana_values(instance: str, dashboard: dict[str, Any]) -> dict[str, str]:
    """One job and one instance selected (escaped as Grafana's Prometheus data source does), All elsewhere."""
    values = {"__rate_interval": RATE_INTERVAL}
    for name, var in variables(dashboard).items():
        if var["type"] == "query":
            values[name] = var["allValue"]
    values["job"], values["instance"] = regex_escape(JOB), regex_escape(instance)
    return values


def evaluate(prom: Prometheus, dashboards: dict[str, dict[str, Any]], instance: str
             ) -> tuple[list[tuple[Query, str]], list[Query]]:
    errors, empty = [], []
    for q in queries(dashboards):
        answer = prom.query(substitute(q.expr, grafana_values(instance, dashboards[q.dashboard])))
        if answer.get("status") != "success":
            errors.append((q, f"{answer.get('errorType')}: {answer.get('error')}"))
        elif not answer["data"]["result"] and (q.dashboard, q.panel, q.ref) not in LEGITIMATELY_EMPTY:
            empty.append(q)
    return errors, empty


def test_every_query_of_every_dashboard_returns_data(stack: tuple[AgentProcess, Prometheus, Path]) -> None:
    agent, prom, cfg = stack
    instance = f"127.0.0.1:{agent.port}"
    dashboards = build(cfg)
    assert set(dashboards) == set(committed()), "the test builds every dashboard the repository ships"
    assert any(p["title"].startswith(f"SLO {SLO} ") for p in dashboards["slos.json"]["panels"])

    deadline = time.monotonic() + DEADLINE
    while True:
        errors, empty = evaluate(prom, dashboards, instance)
        assert not errors, "queries Prometheus refused:\n" + "\n".join(f"{q}\n  -> {e}" for q, e in errors)
        if not empty or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert not empty, (f"after {DEADLINE:.0f}s these queries still return nothing (if one is legitimately empty for "
                       "this config, name it in LEGITIMATELY_EMPTY with the reason):\n"
                       + "\n".join(map(str, empty)) + f"\nagent log:\n{agent.output()[-3000:]}")
    for key, reason in LEGITIMATELY_EMPTY.items():
        q = next(q for q in queries(dashboards) if (q.dashboard, q.panel, q.ref) == key)
        answer = prom.query(substitute(q.expr, grafana_values(instance, dashboards[q.dashboard])))
        assert not answer["data"]["result"], f"{key} returns data now; drop it from LEGITIMATELY_EMPTY ({reason})"

    # Every variable offers values (label_values(selector, label) asked the way Grafana asks it).
    for name, dashboard in dashboards.items():
        values = grafana_values(instance, dashboard)
        for var in variables(dashboard).values():
            if var["type"] != "query":
                continue
            m = re.fullmatch(r"label_values\((.+), (\w+)\)", var["query"])
            assert m, var["query"]
            offered = prom.label_values(m.group(2), substitute(m.group(1), values))
            assert offered, f"{name}: variable {var['name']} ({var['query']}) offers no value"

    # The committed dashboards differ from these only in their SLO rows (other SLO names and windows).
    proven = {q.expr for q in queries(dashboards)}
    window = '"1d"'
    for q in queries(committed()):
        expr = re.sub(r'slo="[^"]+"', f'slo="{SLO}"', q.expr)
        expr = re.sub(r'(window=)"[^"]+"', rf"\g<1>{window}", expr)
        assert expr in proven, f"committed query not proven against Prometheus: {q}"
