"""A running agent emits exactly the metric catalogue: nothing more, nothing missing.

`sre-agent run` starts as a subprocess with one check of every type
(`checks.registry()`), an SLO over probe history and alerting to a log
receiver, all on this machine: its own HTTP port, a UDP DNS responder in this
test, the Kubernetes API emulator of tests/kubeapi.py, a TLS port nobody listens
on, files and an SQLite database in tmp_path.
Once every check has run and every family has samples, one scrape of /metrics
must declare exactly the catalogue's families with their type, help text and
label names, and `promtool check metrics` must be clean on it.
"""

from __future__ import annotations

import gzip
import re
import shutil
import socket
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import dns.message
import dns.rrset
import pytest

from agent.catalogue import CATALOGUE
from checks import registry
from tests.agentproc import AgentProcess, free_port
from tests.kubeapi import KubeApiServer, deployment

#: catalogue metrics this run cannot give a sample, and why (their HELP/TYPE are still asserted)
NO_SAMPLE_IN_THIS_RUN = {
    "sre_agent_backup_restore_duration_seconds": "only a restore drill that reaches pg_restore measures it, which needs "
                                                 "a PostgreSQL server (tests/backup/test_restore_drill.py covers it); "
                                                 "here the drill fails to connect, so only _restore_success is set",
    "sre_agent_check_location_status": "only checks with locations: on replicas sharing a PostgreSQL agent.state "
                                       "have per-location results (tests/test_replicas.py covers it)",
}
DEADLINE = 45.0
CHECK_LABELS = {"service": "sre-agent", "team": "sre"}


class DnsResponder:
    """Answers every A query with 10.0.0.1 on 127.0.0.1 UDP, from a thread."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.port = int(self.sock.getsockname()[1])
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, addr = self.sock.recvfrom(4096)
            except TimeoutError:
                continue
            query = dns.message.from_wire(data)
            response = dns.message.make_response(query)
            response.answer.append(dns.rrset.from_text(query.question[0].name, 60, "IN", "A", "10.0.0.1"))
            self.sock.sendto(response.to_wire(), addr)

    def __enter__(self) -> DnsResponder:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()


def _config(tmp_path: Path, port: int, dns_port: int, kubeconfig: Path) -> Path:
    backups, exports = tmp_path / "backups", tmp_path / "exports"
    backups.mkdir()
    exports.mkdir()
    (backups / "orders.sql.gz").write_bytes(gzip.compress(b"select 1;\n" * 100))
    (exports / "orders.parquet").write_bytes(b"PAR1")
    db = tmp_path / "sales.db"
    with sqlite3.connect(db) as conn:
        conn.execute("create table customers (id integer primary key, email text, created_at integer)")
        conn.executemany("insert into customers (email, created_at) values (?, ?)",
                         [(f"c{i}@example.com", int(time.time()) - 60) for i in range(10)])
    cfg = tmp_path / "agent.yaml"
    cfg.write_text(f"""
agent:
  listen: 127.0.0.1:{port}
  state_dir: {tmp_path / 'state'}
defaults: {{interval: 300ms, timeout: 5s}}
checks:
  - name: self-healthz
    type: http
    url: http://127.0.0.1:{port}/healthz
    labels: {{service: {CHECK_LABELS['service']}, team: {CHECK_LABELS['team']}}}
  - {{name: self-port, type: tcp, host: 127.0.0.1, port: {port}}}
  - name: nobody-tls
    type: tls
    host: 127.0.0.1
    port: {free_port()}
    timeout: 2s
    alert: {{after: 1}}
  - {{name: local-dns, type: dns, query: api.example.internal, record: A, server: "127.0.0.1:{dns_port}",
      expect: {{contains: [10.0.0.1]}}}}
  - {{name: node, type: host, disk: [{{path: {tmp_path}, warning: 99, critical: 100}}]}}
  - {{name: test-runner, type: process, match: "pytest|python", min: 1}}
  - {{name: always-ok, type: command, command: ["true"]}}
  - {{name: slow, type: command, command: ["sleep", "1"], interval: 100ms, timeout: 10s}}
  - {{name: exports-file, type: file, path: {exports}, pattern: "*.parquet", max_age: 1h}}
  - name: orders-backup
    type: backup
    source: {{kind: files, path: {backups}, pattern: "*.gz"}}
    max_age: 1d
    restore_test: {{kind: pg_restore, dsn: "postgresql://nobody@127.0.0.1:{free_port()}/postgres", timeout: 5s}}
    timeout: 5s
  - {{name: exports-fresh, type: freshness, source: {{kind: file, path: {exports}, pattern: "*.parquet"}}, warn_after: 1h}}
  - {{name: payments-workloads, type: kubernetes, kubeconfig: {kubeconfig}, context: prod, namespace: payments}}
data_products:
  - apiVersion: v1
    kind: DataProduct
    metadata: {{name: customers, namespace: sales-domain}}
    spec:
      owner: sales-team@example.com
      slo: {{freshness: "< 1 hour"}}
      source: {{kind: sql, dsn: "sqlite:///{db}", table: customers, timestamp_column: created_at}}
      interval: 300ms
      quality:
        - {{metric: completeness, column: email, threshold: 95%}}
        - {{metric: row_count, min: 1}}
slos:
  - name: healthz-availability
    service: sre-agent
    objective: 99
    window: 1d
    interval: 1s
    sli: {{check: self-healthz}}
alerting:
  route: {{receiver: log, group_wait: 0s, group_interval: 1s}}
  receivers:
    - {{name: log, log: {{}}}}
""")
    return cfg


@dataclass
class Family:
    type: str
    help: str = ""
    samples: list[tuple[str, dict[str, str]]] = field(default_factory=list)


_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? \S+$')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse(text: str) -> dict[str, Family]:
    """Families by name as declared by `# TYPE`, with the samples that follow each."""
    out: dict[str, Family] = {}
    helps: dict[str, str] = {}
    current: Family | None = None
    for line in text.splitlines():
        if line.startswith("# HELP "):
            _, _, name, *rest = line.split(" ", 3)
            helps[name] = rest[0] if rest else ""
        elif line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            current = out[name] = Family(kind, helps.get(name, ""))
        elif line and not line.startswith("#"):
            m = _SAMPLE.match(line)
            assert m and current is not None, f"unparsable exposition line: {line!r}"
            current.samples.append((m.group(1), dict(_LABEL.findall(m.group(2) or ""))))
    return out


def created_families() -> set[str]:
    """prometheus_client's `<name>_created` gauges next to counters and histograms (not catalogue entries)."""
    return {f"{d.client_name}_created" for d in CATALOGUE.values() if d.type in ("counter", "histogram")}


def catalogue_view(families: dict[str, Family]) -> dict[str, Family]:
    created = created_families()
    return {name: fam for name, fam in families.items() if not (name in created and fam.type == "gauge")}


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[AgentProcess]:
    port = free_port()
    with DnsResponder() as dns_server, KubeApiServer() as kube:
        kube.add("deployments", deployment("payments", "api"))
        proc = AgentProcess(_config(tmp_path, port, dns_server.port, kube.kubeconfig(tmp_path / "kubeconfig")),
                            port).start()
        try:
            yield proc
        finally:
            proc.stop()


def test_metrics_are_exactly_the_catalogue(agent: AgentProcess) -> None:
    listed = agent.get("/api/v1/checks").json()["checks"]
    types = {c["type"] for c in listed}
    assert types == set(registry()), f"configure the new check type(s) {sorted(set(registry()) - types)} in this test"
    configured = {c["name"]: c["labels"] for c in listed}
    checks = set(configured)
    expected_with_samples = set(CATALOGUE) - set(NO_SAMPLE_IN_THIS_RUN)
    deadline = time.monotonic() + DEADLINE
    while True:
        text = agent.get("/metrics").text
        families = catalogue_view(parse(text))
        ran = {labels.get("check") for _, labels in families.get("sre_agent_check_status", Family("gauge")).samples}
        sampled = {name for name, fam in families.items() if fam.samples}
        if (checks <= ran and expected_with_samples <= sampled) or time.monotonic() > deadline:
            break
        time.sleep(0.2)

    extra, missing = set(families) - set(CATALOGUE), set(CATALOGUE) - set(families)
    assert not extra and not missing, (f"/metrics and agent/catalogue.py disagree: emitted but not in the catalogue "
                                       f"{sorted(extra)}; in the catalogue but not emitted {sorted(missing)}")
    assert checks <= ran and expected_with_samples <= sampled, (
        f"after {DEADLINE:.0f}s: checks that never ran {sorted(checks - ran)}; catalogue families without samples "
        f"{sorted(expected_with_samples - sampled)} (if one cannot have any in this run, add it to NO_SAMPLE_IN_THIS_RUN "
        f"with the reason)\nagent log:\n{agent.output()[-4000:]}")
    for name, reason in NO_SAMPLE_IN_THIS_RUN.items():
        assert name in CATALOGUE and not families[name].samples, f"{name} now has samples; drop it from the allow-list ({reason})"

    for name, fam in families.items():
        d = CATALOGUE[name]
        assert (fam.type, fam.help) == (d.type, d.help), name
        names = {f"{name}{suffix}" for suffix in ("_bucket", "_sum", "_count")} if d.type == "histogram" else {name}
        for sample, labels in fam.samples:
            assert sample in names, f"sample {sample} in family {name}"
            if d.type == "histogram" and sample == f"{name}_bucket":
                assert labels.pop("le", None) is not None, f"{sample} without le"
            if d.check_labels:
                assert set(labels) == set(d.labels) | set(configured[labels["check"]]), (sample, labels)
            else:
                assert set(labels) == set(d.labels), f"{sample}: labels {sorted(labels)}, catalogue {list(d.labels)}"
    status = {labels["check"]: labels for _, labels in families["sre_agent_check_status"].samples}
    assert status["self-healthz"] == {"check": "self-healthz", "type": "http", **CHECK_LABELS}

    promtool = shutil.which("promtool")
    if promtool is not None:
        proc = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30)
        assert proc.returncode == 0 and not proc.stdout.strip() and not proc.stderr.strip(), proc.stdout + proc.stderr
