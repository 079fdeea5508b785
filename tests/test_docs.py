"""The README's config reference (from the models) and metrics table (from the catalogue) must not go stale,
and what it states matches the code."""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

from agent.slo.windows import AlertKind, alert_table

ROOT = Path(__file__).resolve().parent.parent


def test_config_reference_is_current() -> None:
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "gen_config_docs.py"), "--check"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


def test_metrics_table_is_current() -> None:
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "gen_metrics_docs.py"), "--check"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


def test_readme_opens_with_the_two_commands_ci_runs() -> None:
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1].strip()
    first_block = readme.split("```sh", 1)[1].split("```", 1)[0]
    assert "make run" in first_block
    assert ci in first_block


def test_readme_states_the_scaled_page_windows_the_code_uses() -> None:
    readme = " ".join((ROOT / "README.md").read_text().split())
    found = re.search(r"a 7d SLO pages on (\S+)/(\S+) and (\S+)/(\S+);", readme)
    assert found, "the README no longer says which windows a 7d SLO pages on"
    pages = [(row.long_label, row.short_label) for row in alert_table(timedelta(days=7)) if row.kind is AlertKind.PAGE]
    assert [found.group(1, 2), found.group(3, 4)] == pages
