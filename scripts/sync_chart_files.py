"""Copy the generated rules and dashboards into the Helm chart, which cannot read files outside itself.

Helm's `.Files` sees only files inside the chart directory (it does not follow
symlinks out of it), so the chart carries copies: `alert_rules/*.yml` ->
`helm/sre-agent/files/alert_rules/`, `dashboards/generated/*.json` ->
`helm/sre-agent/files/dashboards/`. Run it after `sre-agent rules build` or
regenerating the dashboards; `--check` (used by tests/helm/test_chart.py)
exits 1 and lists the differences instead of writing.

Run: `.venv/bin/python scripts/sync_chart_files.py [--check]`.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHART_FILES = ROOT / "helm" / "sre-agent" / "files"
#: source directory, glob, destination directory
PAIRS = [
    (ROOT / "alert_rules", "*.yml", CHART_FILES / "alert_rules"),
    (ROOT / "dashboards" / "generated", "*.json", CHART_FILES / "dashboards"),
]


def differences() -> list[str]:
    """What a sync would change, one line each (empty: in sync)."""
    out = []
    for source, pattern, dest in PAIRS:
        wanted = {p.name: p.read_bytes() for p in sorted(source.glob(pattern))} if source.is_dir() else {}
        present = {p.name: p.read_bytes() for p in sorted(dest.glob(pattern))} if dest.is_dir() else {}
        for name, data in wanted.items():
            if name not in present:
                out.append(f"missing {dest.relative_to(ROOT) / name} (copy of {source.relative_to(ROOT) / name})")
            elif present[name] != data:
                out.append(f"stale {dest.relative_to(ROOT) / name} (differs from {source.relative_to(ROOT) / name})")
        for name in present.keys() - wanted.keys():
            out.append(f"extra {dest.relative_to(ROOT) / name} (no {source.relative_to(ROOT) / name})")
    return sorted(out)


def sync() -> list[str]:
    changes = differences()
    for source, pattern, dest in PAIRS:
        dest.mkdir(parents=True, exist_ok=True)
        wanted = {p.name: p for p in source.glob(pattern)} if source.is_dir() else {}
        for stale in dest.glob(pattern):
            if stale.name not in wanted:
                stale.unlink()
        for name, path in wanted.items():
            target = dest / name
            if not target.exists() or target.read_bytes() != path.read_bytes():
                target.write_bytes(path.read_bytes())
    return changes


def main(argv: list[str]) -> int:
    if "--check" in argv:
        changes = differences()
        for line in changes:
            print(line)
        if changes:
            print("the chart's copies are out of date: run python scripts/sync_chart_files.py", file=sys.stderr)
        return 1 if changes else 0
    for line in sync():
        print(f"fixed: {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
