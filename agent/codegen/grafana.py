"""What every dashboard in `dashboards/*.dashboard.py` shares, so no source repeats it.

The sources are written with grafanalib; this module is the one thing they
import besides it:

- the variables: `${datasource}` (Prometheus), `job` and `instance` (multi,
  All = `.+`), `service`, `team`, `domain` and `check` from `label_values`
  (All = `.*`, so a check without that label stays in);
- selectors that carry them (`sel`), and `scoped` / `slo_scoped`, the join
  that narrows any per-check (or per-SLO) series to the selected service and
  team, since only `sre_agent_check_status` carries the check's own labels;
- the panel kinds, built on grafanalib's classes and filled in the way current
  Grafana (10+) models them: time series, stat, table, state timeline, bar
  gauge and gauge, each with the datasource variable, a unit and a description;
- threshold styles: status colours and value mappings, and the configured
  levels the agent exports (`sre_agent_check_threshold`, ...) drawn as dashed
  series next to what they judge; runbook links;
- the grid: rows of panels laid out left to right (`dashboard`), so no two
  panels overlap;
- `to_json`: grafanalib's output as Grafana 10's dashboard model (schemaVersion
  38) without the legacy keys grafanalib still writes.

`Context` is what only the config knows: its SLOs (one row each on the SLO
dashboard), the runbook base URL and where the agent is reached (runbook links).
Everything else on a dashboard comes from the metrics, thresholds included, so
changing a threshold in the config shows without regenerating anything.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import attr
from grafanalib import core as g
from grafanalib._gen import DashboardEncoder

from agent.config import ConfigBase
from agent.slo.spec import SloSpec

SCHEMA_VERSION = 38  # Grafana 10.0's dashboard model; 10.x and 11.x only add migrations that leave these fields alone
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
RATE = "$__rate_interval"
TAGS = ("sre-agent",)
GRID_WIDTH = 24

STATUS_NAMES = ("OK", "WARNING", "CRITICAL", "UNKNOWN")
STATUS_COLORS = ("green", "yellow", "red", "purple")
#: sre_agent_check_status values as words and colours (tables, stats, state timelines)
STATUS_MAPPINGS: list[dict[str, Any]] = [{"type": "value", "options": {
    str(i): {"text": name, "color": color, "index": i}
    for i, (name, color) in enumerate(zip(STATUS_NAMES, STATUS_COLORS, strict=True))}}]
#: 1/0 results (restore drill, config load, scrape up)
PASS_FAIL_MAPPINGS: list[dict[str, Any]] = [{"type": "value", "options": {
    "1": {"text": "passed", "color": "green", "index": 0}, "0": {"text": "failed", "color": "red", "index": 1}}}]
UP_MAPPINGS: list[dict[str, Any]] = [{"type": "value", "options": {
    "1": {"text": "up", "color": "green", "index": 0}, "0": {"text": "down", "color": "red", "index": 1}}}]

#: legend suffixes of the configured-level series (`levels()`), matched by `LEVEL_OVERRIDES`
WARNING_LEVEL, CRITICAL_LEVEL = "warning level", "critical level"


def steps(*levels: tuple[str, float | None]) -> list[dict[str, Any]]:
    """Threshold steps, lowest first: `steps(("green", None), ("red", 0.9))` (None is -Infinity)."""
    return [{"color": color, "value": value} for color, value in levels]


BASE_STEPS = steps(("green", None))
BUDGET_STEPS = steps(("red", None), ("orange", 0.25), ("green", 0.5))


def _dashed(color: str) -> list[dict[str, Any]]:
    return [{"id": "color", "value": {"mode": "fixed", "fixedColor": color}},
            {"id": "custom.lineStyle", "value": {"fill": "dash", "dash": [10, 10]}},
            {"id": "custom.fillOpacity", "value": 0}]


#: configured levels drawn as dashed orange (warning) and red (critical) lines
LEVEL_OVERRIDES: list[dict[str, Any]] = [
    {"matcher": {"id": "byRegexp", "options": f".* {WARNING_LEVEL}$"}, "properties": _dashed("orange")},
    {"matcher": {"id": "byRegexp", "options": f".* {CRITICAL_LEVEL}$"}, "properties": _dashed("red")},
]


# --- what the config adds -------------------------------------------------------------------

@dataclass(frozen=True)
class Context:
    """What only the config knows; everything else a dashboard shows comes from the metrics."""

    slos: tuple[SloSpec, ...] = ()
    runbook_base_url: str | None = None
    #: where people reach the agent (`agent.external_url`); runbook links go through its API
    external_url: str | None = None

    @classmethod
    def from_config(cls, config: ConfigBase) -> Context:
        from agent.slo.config import slo_specs

        alerting = getattr(config, "alerting", None)
        agent = getattr(config, "agent", None)
        return cls(tuple(slo_specs(config)), getattr(alerting, "runbook_base_url", None),
                   getattr(agent, "external_url", None))

    def runbook_url(self, runbook: str) -> str:
        from agent.codegen.rules import runbook_url

        return runbook_url(runbook, self.runbook_base_url)

    def check_runbook_link(self) -> dict[str, Any]:
        """A data link from a row's `check` to its runbook, through the agent's `/api/v1/runbooks/{check}`
        (which serves the file or redirects to the URL the check names): per check, and current after a reload."""
        base = self.external_url.rstrip("/") if self.external_url else "http://${__data.fields.instance}"
        return {"title": "Runbook of ${__data.fields.check}", "targetBlank": True,
                "url": base + "/api/v1/runbooks/${__data.fields.check}"}


# --- variables and selectors ----------------------------------------------------------------

FILTER_LABELS = ("job", "instance")


def eq(label: str, value: str) -> str:
    """`label="value"`, for `sel(..., eq("name", "cpu_percent"))`."""
    return f'{label}={json.dumps(value)}'


def like(label: str, regex: str) -> str:
    """`label=~"regex"`."""
    return f'{label}=~{json.dumps(regex)}'


def threshold(name: str, level: str | None = None) -> str:
    """The configured level(s) of the observation `name` of the selected checks (`sre_agent_check_threshold`)."""
    return sel("sre_agent_check_threshold", eq("name", name), *([eq("level", level)] if level else []))


def matchers(*extra: str, check: bool = True, labels: bool = False) -> str:
    """`job=~"$job",instance=~"$instance"` (+ `check=~"$check"`, + `service`/`team`), then `extra`."""
    parts = [f'{name}=~"${name}"' for name in FILTER_LABELS]
    if check:
        parts.append('check=~"$check"')
    if labels:
        parts += ['service=~"$service"', 'team=~"$team"']
    return ",".join([*parts, *extra])


def sel(metric: str, *extra: str, check: bool = True, labels: bool = False) -> str:
    """A selector with the dashboard's variables: `sel("sre_agent_check_up", 'type="http"')`."""
    return f"{metric}{{{matchers(*extra, check=check, labels=labels)}}}"


def status_sel(*extra: str) -> str:
    """`sre_agent_check_status` for the selected job, instance, check, service and team."""
    return sel("sre_agent_check_status", *extra, labels=True)


def scoped(expr: str, *extra: str) -> str:
    """Keep the series of checks in the selected service/team (and `extra`, e.g. `type="host"`)."""
    return f"({expr}) and on(job, instance, check) {status_sel(*extra)}"


def slo_scoped(expr: str) -> str:
    """Per-SLO series of the SLOs whose check (`slo-<name>`) is in the selected check/service/team."""
    slo_checks = status_sel('type="slo"')
    checks = f'label_replace({slo_checks}, "slo", "$1", "check", "slo-(.+)")'
    return f"({expr}) and on(job, instance, slo) {checks}"


def rate(selector: str) -> str:
    return f"rate({selector}[{RATE}])"


def increase(selector: str) -> str:
    return f"increase({selector}[{RATE}])"


def quantiles(bucket_expr: str, by: str, legend: str) -> list[g.Target]:
    """p50 / p95 / p99 of a histogram: `bucket_expr` is a rate() of its `_bucket` series."""
    return [target(f"histogram_quantile({q}, sum by ({by}, le) ({bucket_expr}))", f"{legend} p{round(q * 100)}")
            for q in (0.5, 0.95, 0.99)]


def levels(name_matcher: str, *, only: str | None = None, where: Sequence[str] = (), label: str = "{{check}}",
           kinds: Sequence[str] = ("warning", "critical")) -> list[g.Target]:
    """The configured levels of an observation (`sre_agent_check_threshold`) of the selected checks (narrowed
    by `where`, e.g. `type="host"`), one dashed series per level; `only` keeps the checks that also have that
    series (`... and on(job, instance, check) <only>`)."""
    out = []
    for level, suffix in (("warning", WARNING_LEVEL), ("critical", CRITICAL_LEVEL)):
        if level not in kinds:
            continue
        expr = sel("sre_agent_check_threshold", name_matcher, eq("level", level))
        if only is not None:
            expr = f"{expr} and on(job, instance, check) {only}"
        out.append(target(scoped(expr, *where), f"{label} {suffix}"))
    return out


def _query_variable(name: str, query: str, *, all_value: str) -> g.Template:
    t = g.Template(name=name, label=name.capitalize(), query=query, dataSource=DATASOURCE, multi=True,
                   includeAll=True, allValue=all_value, refresh=g.REFRESH_ON_TIME_RANGE_CHANGE, sort=g.SORT_ALPHA_ASC)
    t._current = {"selected": True, "text": ["All"], "value": ["$__all"]}
    return t


def variables(*, check_types: str | None = None, domain: bool = False) -> list[g.Template]:
    """datasource, job, instance, service, team, [domain], check: each narrows the ones after it.

    `check_types` restricts the `check` list (`"host"`, `"backup|freshness|data_product"`)."""
    datasource = g.Template(name="datasource", label="Data source", query="prometheus", type="datasource",
                            refresh=g.REFRESH_ON_DASHBOARD_LOAD)
    datasource._current = {}
    out = [datasource,
           _query_variable("job", "label_values(sre_agent_build_info, job)", all_value=".+"),
           _query_variable("instance", 'label_values(sre_agent_build_info{job=~"$job"}, instance)', all_value=".+")]
    scope = matchers(check=False)
    for label in ("service", "team"):
        out.append(_query_variable(label, f"label_values(sre_agent_check_status{{{scope}}}, {label})", all_value=".*"))
    check_scope = matchers('service=~"$service"', 'team=~"$team"', check=False)
    if domain:
        data_types = 'type=~"freshness|data_product"'
        out.append(_query_variable("domain", f"label_values(sre_agent_check_status{{{scope},{data_types}}}, domain)",
                                   all_value=".*"))
        check_scope += ',domain=~"$domain"'
    if check_types:
        check_scope += f',type=~"{check_types}"'
    out.append(_query_variable("check", f"label_values(sre_agent_check_status{{{check_scope}}}, check)",
                               all_value=".*"))
    return out


# --- panels ---------------------------------------------------------------------------------

def target(expr: str, legend: str = "", *, instant: bool = False, table: bool = False) -> g.Target:
    return g.Target(expr=expr, legendFormat=legend, instant=instant, datasource=DATASOURCE,
                    format=g.TABLE_TARGET_FORMAT if table else g.TIME_SERIES_TARGET_FORMAT)


def _targets(targets: Sequence[g.Target | str]) -> list[g.Target]:
    out = []
    for i, t in enumerate(targets):
        t = t if isinstance(t, g.Target) else target(t)
        out.append(attr.evolve(t, refId=chr(ord("A") + i)))
    return out


@dataclass
class Cell:
    """A panel and its size on the grid; `dashboard()` places it."""

    panel: g.Panel
    w: int
    h: int


@dataclass
class Row:
    title: str
    cells: list[Cell]
    collapsed: bool = False


def _common(title: str, description: str, targets: Sequence[g.Target | str],
            links: Iterable[dict[str, Any]] = ()) -> dict[str, Any]:
    return {"title": title, "description": description, "dataSource": DATASOURCE, "targets": _targets(targets),
            "links": list(links)}


def timeseries(title: str, description: str, unit: str, targets: Sequence[g.Target | str], *, w: int = 12, h: int = 8,
               thresholds: list[dict[str, Any]] | None = None, threshold_style: str = "off",
               overrides: Sequence[dict[str, Any]] = (), stacked: bool = False, bars: bool = False,
               min: int | None = None, max: int | None = None, log: bool = False,
               links: Iterable[dict[str, Any]] = ()) -> Cell:
    panel = g.TimeSeries(
        **_common(title, description, targets, links), unit=unit, thresholds=thresholds or BASE_STEPS,
        thresholdsStyleMode=threshold_style, overrides=list(overrides), valueMin=min, valueMax=max,
        drawStyle="bars" if bars else "line", fillOpacity=80 if bars else 10, lineWidth=1,
        stacking={"mode": "normal", "group": "A"} if stacked else {"mode": "none", "group": "A"},
        scaleDistributionType="log" if log else "linear", scaleDistributionLog=10 if log else 2,
        tooltipMode="multi", tooltipSort="desc", showPoints="never", spanNulls=False,
        extraJson={"options": {"legend": {"showLegend": True}}})
    return Cell(panel, w, h)


def stat(title: str, description: str, unit: str, targets: Sequence[g.Target | str], *, w: int = 6, h: int = 4,
         thresholds: list[dict[str, Any]] | None = None, mappings: list[dict[str, Any]] | None = None,
         overrides: Sequence[dict[str, Any]] = (), text_mode: str = "value_and_name", color_mode: str = "value",
         links: Iterable[dict[str, Any]] = ()) -> Cell:
    panel = g.Stat(**_common(title, description, targets, links), format=unit, thresholds=thresholds or BASE_STEPS,
                   mappings=mappings or [], overrides=list(overrides), reduceCalc="lastNotNull", graphMode="none",
                   textMode=text_mode, colorMode=color_mode, color={"mode": "thresholds"}, noValue="no data")
    return Cell(panel, w, h)


def table(title: str, description: str, unit: str, targets: Sequence[g.Target | str], *, w: int = 24, h: int = 8,
          hide: Sequence[str] = ("Time", "__name__"), rename: dict[str, str] | None = None,
          overrides: Sequence[dict[str, Any]] = (), sort_by: str | None = None,
          links: Iterable[dict[str, Any]] = ()) -> Cell:
    """An instant table: one row per series, its labels as columns (`hide` drops some), the value last."""
    organize = {"id": "organize", "options": {"excludeByName": {name: True for name in hide},
                                              "renameByName": dict(rename or {})}}
    panel = g.Table(
        **_common(title, description, targets, links), unit=unit, overrides=list(overrides), filterable=True,
        transformations=[organize], thresholds=BASE_STEPS,
        sortBy=[g.TableSortByField(displayName=sort_by, desc=True)] if sort_by else [],
        extraJson={"fieldConfig": {"defaults": {"custom": {"cellOptions": {"type": "auto"}, "inspect": False}}},
                   "options": {"cellHeight": "sm", "footer": {"show": False, "reducer": ["sum"], "countRows": False}}})
    return Cell(panel, w, h)


def state_timeline(title: str, description: str, targets: Sequence[g.Target | str], *, w: int = 24, h: int = 8,
                   mappings: list[dict[str, Any]] | None = None, unit: str = "none",
                   links: Iterable[dict[str, Any]] = ()) -> Cell:
    panel = g.StateTimeline(
        **_common(title, description, targets), mappings=mappings or STATUS_MAPPINGS, thresholds=BASE_STEPS,
        colorMode="thresholds", fillOpacity=80, rowHeight=0.9, mergeValues=True, showValue="never",
        tooltipMode="single", legendDisplayMode="list",
        extraJson={"fieldConfig": {"defaults": {"unit": unit, "links": list(links)}},
                   "options": {"legend": {"showLegend": False, "calcs": []}, "tooltip": {"sort": "none"}}})
    return Cell(panel, w, h)


def _single_value(unit: str, min: float | None, max: float | None, decimals: int | None) -> dict[str, Any]:
    return {"unit": unit, "min": min, "max": max, "decimals": decimals, "color": {"mode": "thresholds"}}


_ALL_VALUES = {"calcs": ["lastNotNull"], "fields": "", "values": False}


def bar_gauge(title: str, description: str, unit: str, targets: Sequence[g.Target | str], *, w: int = 12, h: int = 8,
              thresholds: list[dict[str, Any]] | None = None, min: float | None = 0, max: float | None = None,
              decimals: int | None = None, links: Iterable[dict[str, Any]] = ()) -> Cell:
    panel = g.BarGauge(
        **_common(title, description, targets, links), thresholds=thresholds or BASE_STEPS,
        displayMode=g.GAUGE_DISPLAY_MODE_BASIC, orientation=g.ORIENTATION_HORIZONTAL,
        extraJson={"fieldConfig": {"defaults": _single_value(unit, min, max, decimals), "overrides": []},
                   "options": {"reduceOptions": _ALL_VALUES, "showUnfilled": True, "valueMode": "color",
                               "namePlacement": "auto", "sizing": "auto", "minVizWidth": 8, "minVizHeight": 16,
                               "maxVizHeight": 300}})
    return Cell(panel, w, h)


def gauge(title: str, description: str, unit: str, targets: Sequence[g.Target | str], *, w: int = 6, h: int = 8,
          thresholds: list[dict[str, Any]] | None = None, min: float = 0, max: float = 1,
          links: Iterable[dict[str, Any]] = ()) -> Cell:
    panel = g.GaugePanel(
        **_common(title, description, targets, links), thresholds=thresholds or BASE_STEPS,
        extraJson={"fieldConfig": {"defaults": _single_value(unit, min, max, None), "overrides": []},
                   "options": {"reduceOptions": _ALL_VALUES, "orientation": "auto", "showThresholdLabels": False,
                               "showThresholdMarkers": True}})
    return Cell(panel, w, h)


# --- the dashboard and its grid ---------------------------------------------------------------

def dashboard(*, uid: str, title: str, description: str, tags: Sequence[str], rows: Sequence[Row],
              templating: list[g.Template], ctx: Context) -> g.Dashboard:
    """A dashboard whose rows are laid out top to bottom and panels left to right, wrapping at 24 columns."""
    panels: list[g.Panel] = []
    y = 0
    for row in rows:
        panels.append(g.RowPanel(title=row.title, collapsed=row.collapsed, gridPos=g.GridPos(h=1, w=GRID_WIDTH, x=0, y=y)))
        y += 1
        x, line_height = 0, 0
        for cell in row.cells:
            if not 0 < cell.w <= GRID_WIDTH or cell.h <= 0:
                raise ValueError(f"panel {cell.panel.title!r} is {cell.w}x{cell.h}; width 1-{GRID_WIDTH}, height >= 1")
            if x + cell.w > GRID_WIDTH:
                y, x, line_height = y + line_height, 0, 0
            panels.append(attr.evolve(cell.panel, gridPos=g.GridPos(h=cell.h, w=cell.w, x=x, y=y)))
            x += cell.w
            line_height = max(line_height, cell.h)
        y += line_height
    links = [g.DashboardLink(title="sre-agent dashboards", type="dashboards", tags=list(TAGS), asDropdown=True,
                             includeVars=True, keepTime=True, icon="dashboard")]
    if ctx.runbook_base_url:
        links.append(g.DashboardLink(title="Runbooks", type="link", uri=ctx.runbook_url("runbooks/README.md"),
                                     targetBlank=True, keepTime=False, icon="doc", tooltip="the sre-agent runbooks"))
    return g.Dashboard(uid=uid, title=title, description=description, tags=[*TAGS, *tags], panels=panels,
                       templating=g.Templating(list=templating), links=links, time=g.Time("now-6h", "now"),
                       timezone="browser", refresh="1m", graphTooltip=g.GRAPH_TOOLTIP_MODE_SHARED_CROSSHAIR,
                       editable=True).auto_panel_ids()


# --- grafanalib's output as Grafana 10 reads it ---------------------------------------------------

#: keys grafanalib writes that Grafana 10's model no longer has (or that only pin old defaults)
_LEGACY_DASHBOARD_KEYS = ("__inputs", "gnetId", "hideControls", "id", "rows", "sharedCrosshair", "style")
_LEGACY_PANEL_KEYS = ("cacheTimeout", "editable", "error", "height", "hideTimeOverride", "maxDataPoints", "minSpan",
                      "span", "columns", "fontSize", "mappings", "color", "repeatDirection", "maxPerRow")
_LEGACY_TARGET_KEYS = ("query", "target", "metric", "step", "intervalFactor", "hide")
_LEGACY_TEMPLATE_KEYS = ("useTags", "tagsQuery", "tagValuesQuery", "auto", "auto_min", "auto_count")
#: the gauge's old per-field reduce options (now `options.reduceOptions`) and thresholds-marker flags
_LEGACY_GAUGE_DEFAULTS = ("calcs", "limit", "override", "values", "title")


def _strip_none(value: Any, step: bool = False) -> Any:
    """Drop null optionals, except a threshold step's `value` (null there is -Infinity, the base step)."""
    if isinstance(value, dict):
        return {k: _strip_none(v, step=k == "steps") for k, v in value.items() if v is not None or (step and k == "value")}
    if isinstance(value, list):
        return [_strip_none(v, step=step) for v in value]
    return value


def _panel(p: dict[str, Any]) -> dict[str, Any]:
    for key in _LEGACY_PANEL_KEYS:
        p.pop(key, None)
    kind = p["type"]
    if kind == "row":
        p.pop("fieldConfig", None)
        p.pop("targets", None)
        p.pop("transformations", None)
        p.pop("links", None)
        p.pop("description", None)
        p.pop("datasource", None)
        p.pop("timeFrom", None)
        p.pop("timeShift", None)
        p.pop("interval", None)
        p.pop("transparent", None)
        p.pop("repeat", None)
        return p
    for t in p.get("targets", []):
        for key in _LEGACY_TARGET_KEYS:
            t.pop(key, None)
        if not t.get("interval"):
            t.pop("interval", None)
        t["range"] = not t["instant"]
        t["editorMode"] = "code"
    options = p.setdefault("options", {})
    field_config = p["fieldConfig"]
    defaults = field_config["defaults"]
    if kind == "bargauge":
        options.pop("fieldOptions", None)
        options.pop("showThresholdLabels", None)
        options.pop("showThresholdMarkers", None)
    if kind == "gauge":
        for key in _LEGACY_GAUGE_DEFAULTS:
            defaults.pop(key, None)
        field_config.pop("showThresholdLabels", None)
        field_config.pop("showThresholdMarkers", None)
    if kind == "table":
        defaults["custom"].pop("displayMode", None)
        options["sortBy"] = [{"displayName": s["displayName"], "desc": s["desc"]} for s in options.get("sortBy", [])]
    if kind == "stat":
        defaults.pop("custom", None)
    return p


def to_json(dashboard: g.Dashboard) -> dict[str, Any]:
    """The dashboard as Grafana 10+ imports it: schemaVersion 38, no legacy keys, no null optionals."""
    data: dict[str, Any] = json.loads(json.dumps(dashboard.to_json_data(), cls=DashboardEncoder))
    for key in _LEGACY_DASHBOARD_KEYS:
        data.pop(key, None)
    data["schemaVersion"] = SCHEMA_VERSION
    data["panels"] = [_panel(p) for p in data["panels"]]
    for t in data["templating"]["list"]:
        for key in _LEGACY_TEMPLATE_KEYS:
            t.pop(key, None)
        if t["type"] == "query":
            t["definition"] = t["query"]
    for link in data["links"]:
        if link["type"] == "dashboards":
            link.pop("url", None)
            link.pop("tooltip", None)
    return _strip_none(data)  # type: ignore[no-any-return]
