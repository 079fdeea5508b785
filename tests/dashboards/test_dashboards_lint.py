"""The generated dashboards pass Grafana's dashboard-linter rules, parse, name only catalogue metrics, and use
only panel types and fields that Grafana 10+ has.

The linter rules are ported from grafana/dashboard-linter (template-datasource,
template-job/instance, template-on-time-change-reload, panel-datasource,
panel-title-description, panel-units, target-promql, target-rate-interval,
target-job/instance, target-counter-agg, template-unused), plus what the linter
leaves out: no two panels overlap on the grid and uids are stable and unique.
Expressions are parsed with `promql-parser` (the Rust PromQL parser's bindings).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import promql_parser
import pytest

from agent.catalogue import CATALOGUE
from tests.dashboards.util import UIDS, VARIABLE, build, committed, panels, queries, variables

#: series Prometheus itself writes for every scrape target; the agent dashboard shows the agent's own scrape
PROMETHEUS_SERIES = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}
#: catalogue metrics no dashboard draws, and why
NOT_DRAWN = {
    "sre_agent_check_up": "the 0/1 view of sre_agent_check_status, for alert rules (SreAgentCheckDown); the "
                          "dashboards show the status itself",
    "sre_agent_backup_last_success_timestamp_seconds": "the same fact as sre_agent_backup_age_seconds, for "
                                                       "`time() - x > RPO` alert rules",
}
RATE_MAGIC = timedelta(seconds=1234)  # what $__rate_interval becomes while parsing
RANGE_FUNCTIONS = {"rate", "irate", "increase"}

# The linter's valid units (grafana-data's valueFormats categories), the ones a dashboard here could use.
VALID_UNITS = {"none", "short", "percent", "percentunit", "bytes", "decbytes", "s", "ms", "m", "h", "d",
               "dtdurations", "dateTimeAsIso", "dateTimeFromNow", "reqps", "ops", "bool", "bool_yes_no"}


@pytest.fixture(scope="module")
def dashboards() -> dict[str, dict[str, Any]]:
    return build()


def data_panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    return (p for p in panels(dashboard) if p["type"] != "row")


def parse(expr: str) -> Any:
    """The expression as the linter parses it: the rate interval as a magic duration, variables as placeholders."""
    text = expr.replace("$__rate_interval", f"{int(RATE_MAGIC.total_seconds())}s")
    return promql_parser.parse(VARIABLE.sub(lambda m: f"placeholder_{m.group(1) or m.group(2)}", text))


def walk(expr: str) -> list[tuple[Any, list[Any]]]:
    """Every node with its ancestors, outermost first."""
    out: list[tuple[Any, list[Any]]] = []
    stack: list[Any] = []

    def pre(node: Any) -> None:
        out.append((node, list(stack)))
        stack.append(node)

    def post(node: Any) -> None:
        stack.pop()

    promql_parser.walk(parse(expr), pre, post)
    return out


def selectors(expr: str) -> list[Any]:
    return [n for n, _ in walk(expr) if isinstance(n, promql_parser.VectorSelector)]


def catalogue_name(series: str) -> str | None:
    if series in CATALOGUE:
        return series
    for suffix in ("_bucket", "_sum", "_count"):
        base = series.removesuffix(suffix)
        if base != series and CATALOGUE.get(base) is not None and CATALOGUE[base].type == "histogram":
            return base
    return None


# --- the set of dashboards -------------------------------------------------------------------

def test_committed_dashboards_are_regenerated_byte_for_byte() -> None:
    from agent.codegen.dashboards import build_dashboards
    from agent.config import load_config
    from tests.dashboards.util import EXAMPLE, GENERATED

    files = build_dashboards(load_config(EXAMPLE, env={}))
    assert sorted(files) == sorted(UIDS) == sorted(p.name for p in GENERATED.glob("*.json"))
    for name, text in files.items():
        assert (GENERATED / name).read_text(encoding="utf-8") == text, \
            f"{name} drifted: run sre-agent dashboards build -c examples/slo.yaml -o dashboards/generated"


def test_uids_are_stable_unique_and_do_not_depend_on_the_config(dashboards) -> None:
    from tests.dashboards.util import ROOT

    other = build(ROOT / "examples" / "quickstart.yaml")
    assert {name: d["uid"] for name, d in dashboards.items()} == UIDS
    assert {name: d["uid"] for name, d in other.items()} == UIDS
    assert len(set(UIDS.values())) == len(UIDS)
    assert all(re.fullmatch(r"[a-zA-Z0-9_-]{1,40}", uid) for uid in UIDS.values())


def test_every_dashboard_has_tags_a_title_and_a_description(dashboards) -> None:
    for name, d in dashboards.items():
        assert "sre-agent" in d["tags"] and len(d["tags"]) >= 2, name
        assert d["title"].startswith("sre-agent: ") and d["description"].strip(), name


# --- template rules --------------------------------------------------------------------------

def test_template_datasource_rule(dashboards) -> None:
    for name, d in dashboards.items():
        ds = [v for v in d["templating"]["list"] if v["type"] == "datasource"]
        assert len(ds) == 1, name
        assert (ds[0]["name"], ds[0]["label"], ds[0]["query"]) == ("datasource", "Data source", "prometheus"), name


@pytest.mark.parametrize("var", ["job", "instance"])
def test_template_job_and_instance_rules(dashboards, var: str) -> None:
    for name, d in dashboards.items():
        v = variables(d)[var]
        assert v["type"] == "query" and v["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, name
        assert v["label"] == var.capitalize() and v["multi"] is True and v["allValue"] == ".+", name


def test_every_dashboard_has_the_common_variables(dashboards) -> None:
    for name, d in dashboards.items():
        expected = ["datasource", "job", "instance", "service", "team", "check"]
        if name == "backups-and-data.json":
            expected.insert(5, "domain")
        assert list(variables(d)) == expected, name
        for var in variables(d).values():
            if var["type"] == "query":
                assert var["query"].startswith("label_values(") and var["definition"] == var["query"], var
                assert var["includeAll"] and var["current"]["value"] == ["$__all"], var


def test_template_on_time_change_reload_rule(dashboards) -> None:
    for name, d in dashboards.items():
        for var in variables(d).values():
            if var["type"] == "query":
                assert var["refresh"] == 2, (name, var["name"])


def test_every_variable_is_defined_and_used(dashboards) -> None:
    for name, d in dashboards.items():
        defined = set(variables(d)) | {"__rate_interval"}
        texts = [q.expr for q in queries({name: d})] + [v["query"] for v in variables(d).values()
                                                        if v["type"] == "query"]
        datasources = [p["datasource"]["uid"] for p in data_panels(d)]
        used = {m.group(1) or m.group(2) for text in texts + datasources for m in VARIABLE.finditer(text)}
        assert used <= defined, (name, used - defined)
        assert defined - {"__rate_interval"} <= used, (name, "unused variables", defined - used)


# --- panel rules -----------------------------------------------------------------------------

def test_panel_datasource_rule(dashboards) -> None:
    for name, d in dashboards.items():
        for p in data_panels(d):
            assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, (name, p["title"])
            assert p["targets"], (name, p["title"], "panel-no-targets")
            for t in p["targets"]:
                assert t["datasource"] == p["datasource"], (name, p["title"], t["refId"])


def test_panel_title_description_and_units_rules(dashboards) -> None:
    for name, d in dashboards.items():
        for p in data_panels(d):
            where = (name, p.get("title"))
            assert p["title"].strip() and p["description"].strip(), where
            assert p["fieldConfig"]["defaults"]["unit"] in VALID_UNITS, where


def test_no_two_panels_overlap_and_all_fit_the_grid(dashboards) -> None:
    for name, d in dashboards.items():
        taken: dict[tuple[int, int], str] = {}
        for p in panels(d):
            pos = p["gridPos"]
            assert 0 < pos["w"] <= 24 and pos["h"] > 0 and 0 <= pos["x"] and pos["x"] + pos["w"] <= 24, (name, pos)
            if p["type"] == "row":
                assert (pos["x"], pos["w"], pos["h"]) == (0, 24, 1), (name, p["title"])
            for x in range(pos["x"], pos["x"] + pos["w"]):
                for y in range(pos["y"], pos["y"] + pos["h"]):
                    assert (x, y) not in taken, f"{name}: {p['title']!r} overlaps {taken[(x, y)]!r} at {(x, y)}"
                    taken[(x, y)] = p["title"]


def test_panel_ids_are_unique(dashboards) -> None:
    for name, d in dashboards.items():
        ids = [p["id"] for p in panels(d)]
        assert len(ids) == len(set(ids)), name


# --- target rules ----------------------------------------------------------------------------

def test_every_expression_parses(dashboards) -> None:
    for q in queries(dashboards):
        try:
            parse(q.expr)
        except Exception as exc:  # the parser raises ValueError with the position
            pytest.fail(f"{q}: {exc}")


def test_target_rate_interval_rule(dashboards) -> None:
    """Every range in rate/irate/increase (and any other range here) is $__rate_interval."""
    for q in queries(dashboards):
        for node, _ in walk(q.expr):
            if isinstance(node, promql_parser.MatrixSelector):
                assert node.range == RATE_MAGIC, f"{q}: range {node.range} is not $__rate_interval"
            if isinstance(node, promql_parser.Call) and node.func.name in RANGE_FUNCTIONS:
                assert isinstance(node.args[0], promql_parser.MatrixSelector), q


@pytest.mark.parametrize("label", ["job", "instance"])
def test_target_job_and_instance_rules(dashboards, label: str) -> None:
    for q in queries(dashboards):
        for s in selectors(q.expr):
            found = [m for m in s.matchers.matchers if m.name == label]
            assert len(found) == 1 and found[0].op == promql_parser.MatchOp.Re, f"{q}: {s.name} has no {label}=~"
            assert found[0].value == f"placeholder_{label}", f"{q}: {s.name}'s {label} is not ${label}"


def test_target_counter_agg_rule(dashboards) -> None:
    """A counter is only read through rate/irate/increase (its raw value means nothing on a graph)."""
    for q in queries(dashboards):
        for node, parents in walk(q.expr):
            if not isinstance(node, promql_parser.VectorSelector):
                continue
            base = catalogue_name(node.name or "")
            is_counter = node.name.endswith("_total") or (base is not None and CATALOGUE[base].type == "counter")
            if is_counter:
                assert len(parents) >= 2 and isinstance(parents[-1], promql_parser.MatrixSelector) and \
                    isinstance(parents[-2], promql_parser.Call) and parents[-2].func.name in RANGE_FUNCTIONS, \
                    f"{q}: counter {node.name} is not read through rate/irate/increase"


def test_histograms_are_read_through_their_buckets_with_le(dashboards) -> None:
    for q in queries(dashboards):
        if "_bucket" in q.expr:
            assert "histogram_quantile(" in q.expr and re.search(r"by \([^)]*\ble\b", q.expr), q


# --- catalogue -------------------------------------------------------------------------------

def test_every_metric_a_dashboard_names_is_in_the_catalogue(dashboards) -> None:
    for q in queries(dashboards) + queries(committed()):
        for s in selectors(q.expr):
            assert s.name, f"{q}: a selector without a metric name"
            assert catalogue_name(s.name) is not None or s.name in PROMETHEUS_SERIES, \
                f"{q}: {s.name} is not in agent/catalogue.py: the agent does not emit it"
    for d in dashboards.values():
        for var in variables(d).values():
            if var["type"] == "query":
                metric = re.match(r"label_values\((\w+)", var["query"])
                assert metric and metric.group(1) in CATALOGUE, var["query"]


def test_label_names_are_the_catalogues(dashboards) -> None:
    """Matchers and `by`/`on` labels exist on the metric (or are target labels or a check's own labels)."""
    for q in queries(dashboards):
        for s in selectors(q.expr):
            base = catalogue_name(s.name)
            if base is None:
                continue
            d = CATALOGUE[base]
            allowed = {"job", "instance", *d.labels, *(("le",) if s.name.endswith("_bucket") else ())}
            if d.check_labels:
                allowed |= {"service", "team", "domain", "owner"}
            for m in s.matchers.matchers:
                assert m.name in allowed, f"{q}: {s.name} has no label {m.name} (catalogue: {d.labels})"


def test_every_catalogue_metric_is_drawn_somewhere(dashboards) -> None:
    drawn = {catalogue_name(s.name) for q in queries(dashboards) for s in selectors(q.expr)}
    missing = set(CATALOGUE) - drawn - set(NOT_DRAWN)
    assert not missing, f"catalogue metrics no dashboard shows (draw them, or say why in NOT_DRAWN): {sorted(missing)}"
    assert not (drawn & set(NOT_DRAWN)), f"now drawn, drop from NOT_DRAWN: {sorted(drawn & set(NOT_DRAWN))}"
