"""The metric catalogue (`agent.catalogue`) is well-formed and is what emitters use.

Dashboards and alert rules depend on these names; this file checks the
catalogue's own rules (unique, valid Prometheus names, units in names) and
that every check type's `metric_families` are catalogue entries.
`tests/test_catalogue_agent.py` proves a running agent emits exactly them.
"""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from agent import catalogue
from agent.catalogue import CATALOGUE, METRIC_NAME, MetricDef
from agent.metrics import Metrics, check_type_families
from checks import registry

UNIT_SUFFIXES = ("seconds", "bytes", "ratio")


def test_names_are_unique_and_keyed_by_their_own_name() -> None:
    assert all(key == d.name for key, d in CATALOGUE.items())
    with pytest.raises(ValueError, match="twice"):
        catalogue._defs(CATALOGUE["sre_agent_check_up"], CATALOGUE["sre_agent_check_up"])


@pytest.mark.parametrize("d", CATALOGUE.values(), ids=list(CATALOGUE))
def test_definition_is_valid_prometheus(d: MetricDef) -> None:
    assert METRIC_NAME.match(d.name) and d.name.startswith("sre_agent_") and ":" not in d.name
    assert d.help.strip() and "\n" not in d.help
    assert len(set(d.labels)) == len(d.labels)
    for label in d.labels:
        assert catalogue.LABEL_NAME.match(label) and not label.startswith("__"), label
        assert label not in ("le", "quantile"), f"{d.name}: {label} is reserved by histograms/summaries"


@pytest.mark.parametrize("d", CATALOGUE.values(), ids=list(CATALOGUE))
def test_units_and_types_are_in_the_name(d: MetricDef) -> None:
    base = d.name.removesuffix("_total")
    if d.type == "counter":
        assert d.name.endswith("_total"), f"counter {d.name} must end with _total"
    else:
        assert not d.name.endswith("_total"), f"only counters end with _total: {d.name}"
        assert not d.name.endswith(("_count", "_sum", "_bucket", "_created")), d.name
    if d.unit:
        assert base.endswith(f"_{d.unit}"), f"{d.name} has unit {d.unit} but not _{d.unit} in its name"
    for unit in UNIT_SUFFIXES:
        if base.endswith(f"_{unit}"):
            assert d.unit == unit, f"{d.name} ends with _{unit}: its unit must be {unit!r}"
    if d.type == "histogram":
        assert d.buckets and list(d.buckets) == sorted(set(d.buckets)), d.name
    else:
        assert d.buckets is None, d.name
    assert d.client_name == (base if d.type == "counter" else d.name)


def test_only_gauges_from_the_results_collector_carry_the_checks_labels() -> None:
    assert [d.name for d in CATALOGUE.values() if d.check_labels] == ["sre_agent_check_status"]


def test_every_check_type_declares_exactly_its_catalogue_entries() -> None:
    types = registry()
    for component in {d.component for d in CATALOGUE.values()} - {"core", "alerting"}:
        assert component in types, f"catalogue component {component} is not a check type"
    for type_name, cls in types.items():
        expected = {d.name: (d.help, d.labels) for d in CATALOGUE.values() if d.component == type_name}
        declared = {name: (fam.documentation, fam.labelnames) for name, fam in cls.metric_families.items()}
        assert declared == expected, type_name
    assert set(check_type_families()) == {d.name for d in CATALOGUE.values() if d.component not in ("core", "alerting")}


def test_constructors_take_everything_from_the_definition() -> None:
    reg = CollectorRegistry()
    runs = catalogue.counter("sre_agent_check_runs_total", reg)
    runs.labels("c", "t", "OK").inc()
    lag = catalogue.histogram("sre_agent_check_schedule_lag_seconds", reg)
    lag.observe(0.2)
    catalogue.gauge("sre_agent_build_info", reg).labels("1.2.3").set(1)
    text = generate_latest(reg).decode()
    assert "# HELP sre_agent_check_runs_total Check runs by resulting status\n# TYPE sre_agent_check_runs_total counter" in text
    assert 'sre_agent_check_runs_total{check="c",status="OK",type="t"} 1.0' in text
    assert 'sre_agent_check_schedule_lag_seconds_bucket{le="0.5"} 1.0' in text
    buckets = [line for line in text.splitlines() if line.startswith("sre_agent_check_schedule_lag_seconds_bucket")]
    assert len(buckets) == len(catalogue.SCHEDULE_LAG_BUCKETS) + 1  # + Inf
    fam = catalogue.gauge_family("sre_agent_check_up")
    assert (fam.name, fam.documentation, fam.type) == ("sre_agent_check_up", CATALOGUE["sre_agent_check_up"].help, "gauge")


def test_constructors_refuse_the_wrong_type_and_unknown_names() -> None:
    with pytest.raises(TypeError, match="is a gauge in the catalogue, not a counter"):
        catalogue.counter("sre_agent_check_up", CollectorRegistry())
    with pytest.raises(TypeError, match="is a histogram"):
        catalogue.family("sre_agent_check_duration_seconds")
    with pytest.raises(KeyError, match="not in agent.catalogue.CATALOGUE"):
        catalogue.get("sre_agent_nope")


def test_metrics_registers_every_core_and_check_type_family() -> None:
    reg = CollectorRegistry(auto_describe=True)
    Metrics(reg)
    from agent.alerting.metrics import AlertingMetrics

    AlertingMetrics(reg)
    text = generate_latest(reg).decode()
    declared = {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE ")}
    created = {f"{d.client_name}_created" for d in CATALOGUE.values() if d.type in ("counter", "histogram")}
    assert declared - created == set(CATALOGUE)
    for d in CATALOGUE.values():
        assert f"# HELP {d.name} {d.help}\n# TYPE {d.name} {d.type}\n" in text
