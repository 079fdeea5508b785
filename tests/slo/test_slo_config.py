"""The `slos:` section: native entries, OpenSLO documents, and errors by field path."""

from __future__ import annotations

import textwrap
from datetime import timedelta
from pathlib import Path

import pytest

from agent.config import ConfigError, load_config
from agent.slo.config import slo_specs
from agent.slo.spec import SloCheckConfig

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "slo.yaml"

OPENSLO = """
apiVersion: openslo/v1
kind: SLO
metadata:
  name: checkout
  labels: {team: [payments, checkout]}
  annotations: {sre-agent/runbook: runbooks/slo-burn.md, sre-agent/interval: 2m, sre-agent/min-events: "50"}
spec:
  service: shop
  timeWindow: [{duration: 28d, isRolling: true}]
  objectives: [{targetPercent: 99.5}]
  indicator:
    spec:
      ratioMetric:
        counter: true
        good: {metricSource: {type: Prometheus, spec: {query: 'http_requests_total{code!~"5.."}'}}}
        total: {metricSource: {type: Prometheus, spec: {query: 'sum(rate(http_requests_total[{{window}}]))'}}}
"""


def load(tmp_path: Path, text: str, **files: str):
    for name, body in files.items():
        (tmp_path / name).write_text(textwrap.dedent(body))
    path = tmp_path / "config.yaml"
    path.write_text(textwrap.dedent(text))
    return load_config(path, env={})


def errors(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, text)
    return [f"{i.path}: {i.message}" for i in info.value.issues]


def test_native_slo_becomes_one_slo_check(tmp_path: Path) -> None:
    config = load(tmp_path, """
        agent: {prometheus_url: "http://127.0.0.1:9090/"}
        slos:
          - name: api-availability
            service: api
            objective: 99.9
            labels: {team: payments}
            runbook: runbooks/slo-burn.md
            sli: {events: {error_query: 'sum(rate(e[{{window}}]))', total_query: 'sum(rate(t[{{window}}]))'}}
    """)
    [check] = [c for c in config.all_checks() if c.type == "slo"]
    assert isinstance(check, SloCheckConfig)
    assert check.name == "slo-api-availability"
    assert check.labels == {"team": "payments", "service": "api"}
    assert check.interval == timedelta(minutes=1) and check.timeout == timedelta(seconds=15)
    assert check.prometheus_url == "http://127.0.0.1:9090"
    assert check.slo.window == timedelta(days=30) and check.slo.objective_ratio == 0.999
    assert check.alert.after == 1 and check.runbook == "runbooks/slo-burn.md"
    assert check.history_needs() == {}


def test_openslo_document_from_an_included_file(tmp_path: Path) -> None:
    config = load(tmp_path, """
        agent: {prometheus_url: "http://127.0.0.1:9090"}
        include: [slos/*.yaml]
    """)
    assert slo_specs(config) == []
    (tmp_path / "slos").mkdir()
    (tmp_path / "slos" / "checkout.yaml").write_text(OPENSLO)
    config = load_config(tmp_path / "config.yaml", env={})
    [spec] = slo_specs(config)
    assert (spec.name, spec.service, spec.objective, spec.window) == ("checkout", "shop", 99.5, timedelta(days=28))
    assert spec.labels == {"team": "payments,checkout"}
    assert (spec.runbook, spec.interval, spec.min_events) == ("runbooks/slo-burn.md", timedelta(minutes=2), 50)
    assert spec.sli.events is not None
    # good/total -> error = total - good; a bare counter selector gets sum(rate(...[{{window}}]))
    assert spec.sli.events.error_query == ("(sum(rate(http_requests_total[{{window}}]))) - "
                                           '(sum(rate(http_requests_total{code!~"5.."}[{{window}}])))')
    assert spec.sli.events.total_query == "sum(rate(http_requests_total[{{window}}]))"
    assert [c.name for c in config.all_checks()] == ["slo-checkout"]


def test_openslo_target_ratio_and_bad_query(tmp_path: Path) -> None:
    doc = OPENSLO.replace("{targetPercent: 99.5}", "{target: 0.999}").replace("good:", "bad:")
    config = load(tmp_path, "agent: {prometheus_url: 'http://127.0.0.1:9090'}\nslos:\n" + textwrap.indent(
        "- " + textwrap.indent(doc.strip(), "  ").lstrip(), ""))
    [spec] = slo_specs(config)
    assert spec.objective_ratio == 0.999
    assert spec.sli.events is not None
    assert spec.sli.events.error_query == 'sum(rate(http_requests_total{code!~"5.."}[{{window}}]))'


def test_example_config_loads_with_every_sli_kind() -> None:
    config = load_config(EXAMPLE, env={})
    kinds = {s.name: s.sli.kind for s in slo_specs(config)}
    assert kinds == {"api-availability": "events", "api-latency": "latency", "agent-probe-availability": "check",
                     "checkout-availability": "events"}
    probe = config.check("slo-agent-probe-availability")
    assert probe.history_needs() == {"agent-healthz": (7 * 86400 + 3600)}


@pytest.mark.parametrize(("body", "expected"), [
    ("objective: 100", "slos[0].objective: objective is a percentage and must be between 0 and 100 (exclusive), "
                       "e.g. 99.9; got 100.0"),
    ("objective: 0", "slos[0].objective: objective is a percentage and must be between 0 and 100"),
    ("window: month", "slos[0].window: invalid duration 'month'"),
    ("window: 12h", "slos[0].window: window must be between 1d and 365d"),
    ("labels: {service: x}", "slos[0].labels: label name 'service' is reserved"),
    ("min_events: 0", "slos[0].min_events: Input should be greater than or equal to 1"),
    ("windw: 7d", "slos[0].windw: unknown key 'windw'; did you mean 'window'?"),
    ("sli: {check: api, events: {error_query: 'a[{{window}}]', total_query: 'b[{{window}}]'}}",
     "slos[0].sli: set exactly one of events, latency, check; got events, check"),
    ("sli: {events: {error_query: 'sum(rate(e[5m]))', total_query: 'b[{{window}}]'}}",
     "slos[0].sli.events.error_query: query must contain {{window}}"),
    ("sli: {latency: {histogram: 'h-x', threshold: 0.3}}", "slos[0].sli.latency.histogram: histogram must be a metric name"),
    ("prometheus: {url: 'localhost:9090'}", "slos[0].prometheus.url: url must start with http:// or https://"),
])
def test_invalid_fields_name_the_path(tmp_path: Path, body: str, expected: str) -> None:
    base = {"name": "a", "service": "api", "objective": "99.9", "sli": "{check: api}"}
    key = body.split(":", 1)[0]
    base.pop(key, None)
    lines = [f"    {k}: {v}" for k, v in base.items()] + [f"    {body}"]
    text = "checks:\n  - {name: api, type: tcp, host: 127.0.0.1, port: 9}\nslos:\n  -" + "\n".join(lines)[3:] + "\n"
    found = errors(tmp_path, text)
    assert any(e.startswith(expected) for e in found), found


def test_unknown_probe_check_and_missing_prometheus(tmp_path: Path) -> None:
    found = errors(tmp_path, """
        checks:
          - {name: api, type: tcp, host: 127.0.0.1, port: 9}
        slos:
          - {name: probes, service: api, objective: 99, sli: {check: apj}}
          - name: requests
            service: api
            objective: 99.9
            sli: {events: {error_query: 'e[{{window}}]', total_query: 't[{{window}}]'}}
          - {name: probes, service: api, objective: 99, sli: {check: api}}
    """)
    assert "slos[0].sli.check: unknown check 'apj'; did you mean 'api'? (checks: api)" in found
    assert ("slos[1].prometheus: the events SLI needs a Prometheus: set prometheus.url here or agent.prometheus_url"
            in found)
    assert "slos[2].name: duplicate SLO name 'probes' (also used by slos[0])" in found


@pytest.mark.parametrize(("old", "new", "expected"), [
    ("{targetPercent: 99.5}", "{target: 99.5}", "slos[0].spec.objectives[0]: target is a ratio between 0 and 1"),
    ("isRolling: true", "isRolling: false", "slos[0].spec.timeWindow[0]: calendar time windows are not supported"),
    ("type: Prometheus, spec: {query: 'http", "type: Datadog, spec: {query: 'http",
     "slos[0].spec.indicator.spec.ratioMetric.good.metricSource.type: metric source type 'Datadog' is not supported"),
    ("'http_requests_total{code!~\"5..\"}'", "'rate(x[5m])'",
     "slos[0].spec.indicator.spec.ratioMetric: good.metricSource.spec.query: with counter: true give a metric selector"),
    ("sre-agent/interval: 2m", "sre-agent/intervals: 2m", "slos[0].metadata.annotations: unknown annotation "
                                                          "'sre-agent/intervals'"),
    ("{team: [payments, checkout]}", "{service: x}", "slos[0].metadata.labels: label name 'service' is reserved"),
])
def test_invalid_openslo_names_the_openslo_field(tmp_path: Path, old: str, new: str, expected: str) -> None:
    assert old in OPENSLO
    doc = OPENSLO.replace(old, new, 1)
    text = "agent: {prometheus_url: 'http://127.0.0.1:9090'}\nslos:\n- " + textwrap.indent(doc.strip(), "  ").lstrip()
    path = tmp_path / "config.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    found = [f"{i.path}: {i.message}" for i in info.value.issues]
    assert any(e.startswith(expected) for e in found), found
