"""Regenerate the README's metrics table from the metric catalogue.

`agent.catalogue.CATALOGUE` is the single source of truth for metric names;
`tests/test_docs.py` fails when the README is stale.
Run: `.venv/bin/python scripts/gen_metrics_docs.py` (`--check` only compares).
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from _readme import update_block  # noqa: E402

START, END = "<!-- metrics-reference:start -->", "<!-- metrics-reference:end -->"

_COMPONENTS = {"core": "core", "alerting": "alerting", "slo": "`slo` checks", "backup": "`backup` checks",
               "command": "`command` checks", "host": "`host` checks", "freshness": "`freshness` checks", "data_product": "`data_product` checks"}


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def render() -> str:
    from agent.catalogue import CATALOGUE

    lines = [START, "", "Generated from `agent/catalogue.py` by `scripts/gen_metrics_docs.py`. Counters and "
             "histograms expose prometheus_client's `<name>_created` (without `_total`) only with `agent.created_series: true`.", "",
             "| metric | type | unit | labels | emitted by | description |", "|---|---|---|---|---|---|"]
    for d in CATALOGUE.values():
        labels = ", ".join(d.labels) + (" + the check's labels" if d.check_labels else "")
        kind: str = d.type
        if d.buckets is not None:
            kind += " (le: " + ", ".join(f"{b:g}" for b in d.buckets) + ")"
        lines.append(f"| `{d.name}` | {kind} | {d.unit} | {labels} | {_COMPONENTS[d.component]} | {_cell(d.help)} |")
    lines += ["", END]
    return "\n".join(lines)


def main() -> int:
    return update_block(START, END, render, "metrics table", "gen_metrics_docs.py")


if __name__ == "__main__":
    raise SystemExit(main())
