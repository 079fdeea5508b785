"""The generated JSON uses only panel types and fields that exist in Grafana 10+.

grafanalib writes an old schemaVersion (12) and some keys Grafana dropped
long ago; `agent.codegen.grafana.to_json` writes Grafana 10.0's model
(schemaVersion 38). This test walks every key of every dashboard and checks it
against Grafana's own schema of that model, written out below from Grafana's
CUE kinds: the dashboard kind (`kinds/dashboard/dashboard_kind.cue`: Panel,
RowPanel, GridPos, FieldConfig, ThresholdsConfig, ValueMapping, VariableModel,
DashboardLink), the panel plugins' `panelcfg.cue` (timeseries, stat, table,
state-timeline, bargauge, gauge) with the shared types of
`packages/grafana-schema/src/common` (VizLegendOptions, VizTooltipOptions,
ReduceDataOptions, GraphFieldConfig, TableFieldOptions) and the Prometheus
query (`dataquery.cue`). A key that is not listed here, a panel type outside
the list, or a value outside an enumeration fails the test: an unknown key is
silently ignored by Grafana, so the dashboard would not look the way its
source says.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.dashboards.util import build, committed, panels

GRAFANA_10_SCHEMA_VERSION = 38
#: the panel plugins of Grafana 10 core that the dashboards use (all still core in 11 and 12)
PANEL_TYPES = {"row", "timeseries", "stat", "table", "state-timeline", "bargauge", "gauge"}

DASHBOARD_KEYS = {"annotations", "description", "editable", "graphTooltip", "links", "panels", "refresh",
                  "schemaVersion", "tags", "templating", "time", "timepicker", "timezone", "title", "uid", "version",
                  "fiscalYearStartMonth", "liveNow", "weekStart"}
TIMEPICKER_KEYS = {"hidden", "refresh_intervals", "collapse", "enable", "time_options", "nowDelay"}
LINK_KEYS = {"title", "type", "icon", "tooltip", "url", "tags", "asDropdown", "targetBlank", "includeVars", "keepTime"}
LINK_TYPES = {"link", "dashboards"}
VARIABLE_TYPES = {"query", "adhoc", "constant", "datasource", "interval", "textbox", "custom", "system"}
VARIABLE_KEYS = {"type", "name", "label", "hide", "skipUrlSync", "description", "query", "datasource", "current",
                 "options", "multi", "includeAll", "allValue", "refresh", "regex", "sort", "definition"}

PANEL_KEYS = {"type", "id", "pluginVersion", "tags", "targets", "title", "description", "transparent", "datasource",
              "gridPos", "links", "repeat", "repeatDirection", "maxDataPoints", "transformations", "interval",
              "timeFrom", "timeShift", "options", "fieldConfig"}
ROW_KEYS = {"type", "collapsed", "title", "datasource", "gridPos", "id", "panels", "repeat"}
GRIDPOS_KEYS = {"h", "w", "x", "y", "static"}
PANEL_LINK_KEYS = {"title", "url", "targetBlank"}
FIELD_DEFAULT_KEYS = {"displayName", "displayNameFromDS", "description", "path", "writeable", "filterable", "unit",
                      "decimals", "min", "max", "mappings", "thresholds", "color", "links", "noValue", "custom"}
COLOR_MODES = {"thresholds", "palette-classic", "palette-saturated", "continuous-GrYlRd", "fixed"}
MAPPING_TYPES = {"value", "range", "regex", "special"}
MAPPING_RESULT_KEYS = {"text", "color", "icon", "index"}
THRESHOLD_MODES = {"absolute", "percentage"}
TRANSFORMATIONS = {"organize"}
ORGANIZE_OPTIONS = {"excludeByName", "renameByName", "indexByName"}
TARGET_KEYS = {"refId", "hide", "queryType", "datasource", "expr", "instant", "range", "exemplar", "editorMode",
               "format", "legendFormat", "interval"}
TARGET_FORMATS = {"time_series", "table", "heatmap"}

LEGEND_KEYS = {"displayMode", "placement", "showLegend", "asTable", "isVisible", "sortBy", "sortDesc", "width", "calcs"}
LEGEND_REQUIRED = {"displayMode", "placement", "showLegend", "calcs"}
TOOLTIP_KEYS = {"mode", "sort"}
REDUCE_KEYS = {"values", "limit", "calcs", "fields"}
GRAPH_FIELD_KEYS = {"lineColor", "lineWidth", "lineInterpolation", "lineStyle", "spanNulls", "fillColor", "fillOpacity",
                    "fillBelowTo", "showPoints", "pointSize", "pointColor", "pointSymbol", "axisPlacement",
                    "axisColorMode", "axisLabel", "axisWidth", "axisSoftMin", "axisSoftMax", "axisGridShow",
                    "scaleDistribution", "axisCenteredZero", "barAlignment", "barWidthFactor", "barMaxWidth",
                    "stacking", "hideFrom", "drawStyle", "gradientMode", "thresholdsStyle", "transform"}

#: per panel type: (allowed options, required options, allowed fieldConfig.defaults.custom)
PANEL_SCHEMAS: dict[str, tuple[set[str], set[str], set[str]]] = {
    "timeseries": ({"legend", "tooltip", "timezone", "orientation", "annotations"}, {"legend", "tooltip"},
                   GRAPH_FIELD_KEYS),
    "stat": ({"text", "reduceOptions", "orientation", "graphMode", "colorMode", "justifyMode", "textMode"},
             {"reduceOptions", "orientation", "graphMode", "colorMode", "justifyMode", "textMode"}, set()),
    "table": ({"frameIndex", "showHeader", "showRowNumbers", "showTypeIcons", "sortBy", "cellHeight", "footer"},
              {"showHeader"}, {"width", "minWidth", "align", "displayMode", "cellOptions", "hidden", "inspect",
                               "filterable", "hideHeader"}),
    "state-timeline": ({"legend", "tooltip", "timezone", "annotations", "showValue", "rowHeight", "mergeValues",
                        "alignValue", "perPage"}, {"legend", "tooltip", "showValue", "rowHeight"},
                       {"axisPlacement", "axisColorMode", "axisLabel", "axisWidth", "axisSoftMin", "axisSoftMax",
                        "axisGridShow", "scaleDistribution", "axisCenteredZero", "hideFrom", "lineWidth",
                        "fillOpacity"}),
    "bargauge": ({"text", "reduceOptions", "orientation", "legend", "displayMode", "valueMode", "namePlacement",
                  "showUnfilled", "sizing", "minVizWidth", "minVizHeight", "maxVizHeight"},
                 {"reduceOptions", "orientation", "displayMode"}, {"scaleDistribution"}),
    "gauge": ({"text", "reduceOptions", "orientation", "showThresholdLabels", "showThresholdMarkers"},
              {"reduceOptions", "orientation", "showThresholdLabels", "showThresholdMarkers"}, set()),
}
ENUMS: dict[tuple[str, str], set[Any]] = {
    ("legend", "displayMode"): {"list", "table", "hidden"},
    ("legend", "placement"): {"bottom", "right"},
    ("tooltip", "mode"): {"single", "multi", "none"},
    ("tooltip", "sort"): {"asc", "desc", "none"},
    ("options", "orientation"): {"auto", "vertical", "horizontal"},
    ("stat", "graphMode"): {"none", "line", "area"},
    ("stat", "colorMode"): {"value", "background", "background_no_gradient", "none"},
    ("stat", "justifyMode"): {"auto", "center"},
    ("stat", "textMode"): {"auto", "value", "value_and_name", "name", "none"},
    ("bargauge", "displayMode"): {"basic", "lcd", "gradient"},
    ("bargauge", "valueMode"): {"color", "text", "hidden"},
    ("bargauge", "namePlacement"): {"auto", "top", "left", "hidden"},
    ("bargauge", "sizing"): {"auto", "manual"},
    ("state-timeline", "showValue"): {"auto", "never", "always"},
    ("table", "cellHeight"): {"sm", "md", "lg", "auto"},
    ("custom", "drawStyle"): {"line", "bars", "points"},
    ("custom", "lineInterpolation"): {"linear", "smooth", "stepBefore", "stepAfter"},
    ("custom", "showPoints"): {"auto", "never", "always"},
    ("custom", "gradientMode"): {"none", "opacity", "hue", "scheme"},
    ("custom", "axisPlacement"): {"auto", "top", "right", "bottom", "left", "hidden"},
    ("custom", "align"): {"auto", "left", "right", "center"},
    ("stacking", "mode"): {"none", "normal", "percent"},
    ("scaleDistribution", "type"): {"linear", "log", "ordinal", "symlog"},
    ("thresholdsStyle", "mode"): {"off", "line", "dashed", "area", "line+area", "dashed+area", "series"},
    ("cellOptions", "type"): {"auto", "color-text", "color-background", "gauge", "json-view", "image", "sparkline",
                              "data-links"},
}
#: override properties used: field config keys (custom.* as in each panel's custom schema)
OVERRIDE_MATCHERS = {"byName", "byRegexp", "byType", "byFrameRefID", "byValue"}


def subset(keys: Any, allowed: set[str], where: str) -> None:
    extra = set(keys) - allowed
    assert not extra, f"{where}: {sorted(extra)} are not in Grafana 10's model (allowed: {sorted(allowed)})"


def enum(kind: str, key: str, value: Any, where: str) -> None:
    allowed = ENUMS.get((kind, key))
    if allowed is not None:
        assert value in allowed, f"{where}: {key}={value!r}; Grafana 10 has {sorted(map(str, allowed))}"


def check_thresholds(th: dict[str, Any], where: str) -> None:
    subset(th, {"mode", "steps"}, where)
    assert th["mode"] in THRESHOLD_MODES, where
    values = [s["value"] for s in th["steps"]]
    for s in th["steps"]:
        subset(s, {"value", "color", "index", "state"}, where)
        assert isinstance(s["color"], str) and s["color"], where
        assert s["value"] is None or isinstance(s["value"], int | float) and not isinstance(s["value"], bool), where
    assert values and values[0] is None, f"{where}: the first step is the base (-Infinity, null)"
    assert values[1:] == sorted(values[1:]), f"{where}: steps must be sorted by value"


def check_mappings(mappings: list[dict[str, Any]], where: str) -> None:
    for m in mappings:
        assert m["type"] in MAPPING_TYPES, where
        if m["type"] == "value":
            for key, result in m["options"].items():
                assert isinstance(key, str), where
                subset(result, MAPPING_RESULT_KEYS, where)


def check_custom(kind: str, custom: dict[str, Any], allowed: set[str], where: str) -> None:
    subset(custom, allowed, where + ".custom")
    for key, value in custom.items():
        enum("custom", key, value, where)
        if key == "stacking":
            enum("stacking", "mode", value["mode"], where)
        if key == "scaleDistribution":
            enum("scaleDistribution", "type", value["type"], where)
        if key == "thresholdsStyle":
            enum("thresholdsStyle", "mode", value["mode"], where)
        if key == "cellOptions":
            enum("cellOptions", "type", value["type"], where)
        if key == "hideFrom":
            subset(value, {"tooltip", "legend", "viz"}, where)
        if key == "lineStyle":
            subset(value, {"fill", "dash"}, where)


def check_field_defaults(kind: str, defaults: dict[str, Any], custom_keys: set[str], where: str) -> None:
    subset(defaults, FIELD_DEFAULT_KEYS, where + ".fieldConfig.defaults")
    assert isinstance(defaults.get("unit"), str), f"{where}: no unit"
    if "thresholds" in defaults:
        check_thresholds(defaults["thresholds"], where)
    if "color" in defaults:
        assert defaults["color"]["mode"] in COLOR_MODES, where
    check_mappings(defaults.get("mappings", []), where)
    for link in defaults.get("links", []):
        subset(link, PANEL_LINK_KEYS, where + ".links")
        assert link["title"] and link["url"], where
    check_custom(kind, defaults.get("custom", {}), custom_keys, where)


def check_override(kind: str, override: dict[str, Any], custom_keys: set[str], where: str) -> None:
    subset(override, {"matcher", "properties"}, where)
    assert override["matcher"]["id"] in OVERRIDE_MATCHERS, where
    for prop in override["properties"]:
        subset(prop, {"id", "value"}, where)
        pid = prop["id"]
        if pid.startswith("custom."):
            check_custom(kind, {pid.removeprefix("custom."): prop["value"]}, custom_keys, where)
        else:
            assert pid in FIELD_DEFAULT_KEYS, f"{where}: override property {pid}"
        if pid == "mappings":
            check_mappings(prop["value"], where)
        if pid == "color":
            assert prop["value"]["mode"] in COLOR_MODES, where
        if pid == "links":
            for link in prop["value"]:
                subset(link, PANEL_LINK_KEYS, where)


def check_panel(p: dict[str, Any], where: str) -> None:
    kind = p["type"]
    assert kind in PANEL_TYPES, f"{where}: panel type {kind!r} is not one of Grafana 10's {sorted(PANEL_TYPES)}"
    pos = p["gridPos"]
    subset(pos, GRIDPOS_KEYS, where + ".gridPos")
    assert pos["h"] > 0 and 0 < pos["w"] <= 24 and 0 <= pos["x"] < 24 and pos["y"] >= 0, where
    assert isinstance(p["id"], int) and p["id"] >= 0, where
    if kind == "row":
        subset(p, ROW_KEYS, where)
        assert isinstance(p["collapsed"], bool) and isinstance(p["panels"], list), where
        return
    subset(p, PANEL_KEYS, where)
    for required in ("options", "fieldConfig", "transformations", "targets", "datasource"):
        assert required in p, f"{where}: {required} is required"
    subset(p["datasource"], {"type", "uid"}, where + ".datasource")
    for link in p["links"]:
        subset(link, PANEL_LINK_KEYS, where + ".links")
    for t in p["transformations"]:
        assert t["id"] in TRANSFORMATIONS, where
        subset(t["options"], ORGANIZE_OPTIONS, where)
    for t in p["targets"]:
        subset(t, TARGET_KEYS, where + ".targets")
        assert t["refId"] and t["expr"] and t["format"] in TARGET_FORMATS, where
        assert isinstance(t["instant"], bool) and isinstance(t["range"], bool) and t["range"] != t["instant"], where
        assert t["editorMode"] in ("code", "builder"), where
    assert len({t["refId"] for t in p["targets"]}) == len(p["targets"]), f"{where}: refIds repeat"
    allowed, required, custom_keys = PANEL_SCHEMAS[kind]
    options = p["options"]
    subset(options, allowed, where + ".options")
    assert required <= set(options), f"{where}: options {sorted(required - set(options))} are required"
    for key, value in options.items():
        enum(kind, key, value, where)
        if key == "orientation":
            enum("options", key, value, where)
        if key == "legend":
            subset(value, LEGEND_KEYS, where + ".legend")
            assert LEGEND_REQUIRED <= set(value), f"{where}: legend needs {sorted(LEGEND_REQUIRED)}"
            enum("legend", "displayMode", value["displayMode"], where)
            enum("legend", "placement", value["placement"], where)
        if key == "tooltip":
            subset(value, TOOLTIP_KEYS, where + ".tooltip")
            assert set(value) == TOOLTIP_KEYS, where
            enum("tooltip", "mode", value["mode"], where)
            enum("tooltip", "sort", value["sort"], where)
        if key == "reduceOptions":
            subset(value, REDUCE_KEYS, where + ".reduceOptions")
            assert isinstance(value["calcs"], list) and value["calcs"], where
        if key == "sortBy":
            for s in value:
                subset(s, {"displayName", "desc"}, where)
        if key == "footer":
            subset(value, {"show", "reducer", "fields", "enablePagination", "countRows"}, where)
    fc = p["fieldConfig"]
    subset(fc, {"defaults", "overrides"}, where + ".fieldConfig")
    check_field_defaults(kind, fc["defaults"], custom_keys, where)
    for o in fc["overrides"]:
        check_override(kind, o, custom_keys, where + ".overrides")


def check_dashboard(name: str, d: dict[str, Any]) -> None:
    subset(d, DASHBOARD_KEYS, name)
    assert d["schemaVersion"] == GRAFANA_10_SCHEMA_VERSION, name
    assert d["graphTooltip"] in (0, 1, 2) and isinstance(d["editable"], bool), name
    subset(d["time"], {"from", "to"}, name)
    subset(d["timepicker"], TIMEPICKER_KEYS, name + ".timepicker")
    subset(d["annotations"], {"list"}, name)
    for link in d["links"]:
        subset(link, LINK_KEYS, name + ".links")
        assert link["type"] in LINK_TYPES, name
    for var in d["templating"]["list"]:
        subset(var, VARIABLE_KEYS, f"{name}: variable {var['name']}")
        assert var["type"] in VARIABLE_TYPES and var.get("hide", 0) in (0, 1, 2), var
        if var["type"] == "query":
            assert var["refresh"] in (1, 2) and var["datasource"]["type"] == "prometheus", var
    top = [p["type"] for p in d["panels"]]
    assert top[0] == "row", f"{name}: panels start with a row"
    for p in panels(d):
        check_panel(p, f"{name}: panel {p['title']!r}")


@pytest.mark.parametrize("source", ["built", "committed"])
def test_every_panel_type_and_field_exists_in_grafana_10(source: str) -> None:
    dashboards = build() if source == "built" else committed()
    assert dashboards
    used_types = {p["type"] for d in dashboards.values() for p in panels(d)}
    assert used_types == PANEL_TYPES, "every listed panel type is used (the list is the dashboards', not a wish list)"
    for name, d in dashboards.items():
        check_dashboard(name, d)


def test_a_legacy_grafanalib_key_would_fail() -> None:
    """The walk is not vacuous: grafanalib's raw output (schemaVersion 12, old keys) is refused."""
    import json

    from grafanalib._gen import DashboardEncoder

    from agent.codegen.dashboards import load_source, sources
    from agent.codegen.grafana import Context

    raw = json.loads(json.dumps(load_source(sources()[0]).build(Context()).to_json_data(), cls=DashboardEncoder))
    with pytest.raises(AssertionError, match="not in Grafana 10's model"):
        check_dashboard("raw", raw)
