"""Reading generated dashboards: their panels, targets and variables, and PromQL as Grafana would send it."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.config import load_config

ROOT = Path(__file__).resolve().parents[2]
GENERATED = ROOT / "dashboards" / "generated"
EXAMPLE = ROOT / "examples" / "slo.yaml"
#: the dashboards (file -> uid): uids are what links and bookmarks point at, so they never change
UIDS = {"agent.json": "sre-agent-agent", "backups-and-data.json": "sre-agent-backups-and-data",
        "health-checks.json": "sre-agent-health-checks", "host.json": "sre-agent-host",
        "overview.json": "sre-agent-overview", "slos.json": "sre-agent-slos"}
# $var and ${var} (Grafana's syntax; $1 in label_replace is a regex group, not a variable)
VARIABLE = re.compile(r"\$(?:\{([A-Za-z_]\w*)(?::\w+)?\}|([A-Za-z_]\w*))")


@dataclass(frozen=True)
class Query:
    dashboard: str
    panel: str
    ref: str
    expr: str

    def __str__(self) -> str:
        return f"{self.dashboard} / {self.panel} / {self.ref}: {self.expr}"


def build(config_path: Path = EXAMPLE) -> dict[str, dict[str, Any]]:
    from agent.codegen.dashboards import build_dashboards

    files = build_dashboards(load_config(config_path, env={}))
    return {name: json.loads(text) for name, text in files.items()}


def committed() -> dict[str, dict[str, Any]]:
    return {p.name: json.loads(p.read_text(encoding="utf-8")) for p in sorted(GENERATED.glob("*.json"))}


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for p in dashboard["panels"]:
        yield p
        yield from p.get("panels", [])


def queries(dashboards: dict[str, dict[str, Any]]) -> list[Query]:
    return [Query(name, p["title"], t["refId"], t["expr"])
            for name, d in dashboards.items() for p in panels(d) if p["type"] != "row" for t in p["targets"]]


def variables(dashboard: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in dashboard["templating"]["list"]}


def regex_escape(value: str) -> str:
    """What Grafana's Prometheus data source puts in `=~"..."` for one selected value (backslash-escaped)."""
    return re.sub(r"([\\^$*+?.()|{}\[\]])", r"\\\\\1", value)


def substitute(expr: str, values: dict[str, str]) -> str:
    """Replace the dashboard's variables; a variable with no value given is an error (no silent leftovers)."""

    def one(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2)
        if name not in values:
            raise KeyError(f"no value for ${name} in {expr}")
        return values[name]

    return VARIABLE.sub(one, expr)
