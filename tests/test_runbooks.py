"""Runbooks: every alert links to one that exists and has the sections on-call expects."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from agent.runbooks import default_runbook, runbook_families
from checks import registry

ROOT = Path(__file__).resolve().parent.parent
RUNBOOKS = ROOT / "runbooks"
SECTIONS = ["## What this alert means", "## Impact", "## First five minutes", "## Diagnosis",
            "## Mitigation", "## Escalation"]
RUNBOOK_FILES = sorted(p for p in RUNBOOKS.glob("*.md") if p.name != "README.md")
# What a diagnosis section is for: commands to paste, not prose alone.
COMMANDS = re.compile(r"\b(curl|openssl|dig|ss|top|ps|df|du|journalctl|restic|pg_restore|sre-agent|systemctl|"
                      r"kubectl|free|nc|psql|find|lsof|uptime)\b")


def _sections(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.startswith("## ")]


def test_the_shipped_families_have_runbooks():
    names = {p.name for p in RUNBOOK_FILES}
    assert names >= {
        "http-endpoint-down.md", "slow-api-responses.md", "tls-certificate-expiring.md", "host-cpu-high.md",
        "host-memory-high.md", "disk-filling.md", "host-resources.md", "process-missing.md",
        "dns-resolution-failed.md", "tcp-port-down.md", "command-check-failed.md", "file-stale.md",
        "slo-burn.md", "backup-stale.md", "backup-failed.md", "restore-drill-failed.md", "data-stale.md",
        "agent-notification-failing.md"}


@pytest.mark.parametrize("path", RUNBOOK_FILES, ids=lambda p: p.name)
def test_runbook_has_exactly_the_six_sections(path: Path):
    text = path.read_text(encoding="utf-8")
    assert text.startswith("# "), "a runbook starts with its title"
    assert _sections(text) == SECTIONS
    bodies = re.split(r"^## .*$", text, flags=re.M)[1:]
    for title, body in zip(SECTIONS, bodies, strict=True):
        assert len(body.strip()) >= 80, f"{path.name}: {title} is nearly empty"
    diagnosis = bodies[SECTIONS.index("## Diagnosis")]
    assert "```" in diagnosis and COMMANDS.search(diagnosis), f"{path.name}: diagnosis without commands"


@pytest.mark.parametrize("path", RUNBOOK_FILES, ids=lambda p: p.name)
def test_links_between_runbooks_resolve(path: Path):
    for target in re.findall(r"\]\(([^)#]+\.md)\)", path.read_text(encoding="utf-8")):
        assert (RUNBOOKS / target).is_file(), f"{path.name} links to missing {target}"


def test_readme_lists_every_runbook():
    readme = (RUNBOOKS / "README.md").read_text(encoding="utf-8")
    listed = set(re.findall(r"\]\(([^)]+\.md)\)", readme))
    assert listed == {p.name for p in RUNBOOK_FILES}


def test_every_family_points_at_an_existing_runbook():
    for family, path in runbook_families().items():
        assert (ROOT / path).is_file(), f"{family} -> {path} does not exist"
    assert {Path(p).name for p in runbook_families().values()} == {p.name for p in RUNBOOK_FILES}, \
        "every runbook is some family's default, so no runbook is orphaned"


def test_registered_check_types_with_a_default_have_the_file():
    types = registry()
    mapped = [t for t in types if default_runbook(t)]
    assert mapped, "no registered check type has a default runbook"
    for check_type in mapped:
        assert (ROOT / default_runbook(check_type)).is_file()
    for family in ("slo", "backup", "freshness"):
        assert (ROOT / default_runbook(family)).is_file()


def test_narrow_families_win_over_the_type():
    assert default_runbook("host", "disk") == "runbooks/disk-filling.md"
    assert default_runbook("host", "nonsense") == "runbooks/host-resources.md"
    assert default_runbook("http", "latency") == "runbooks/slow-api-responses.md"
    assert default_runbook("no-such-type") is None


def _runbook_refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "runbook" and isinstance(value, str):
                yield value
            else:
                yield from _runbook_refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _runbook_refs(item)


EXAMPLES = sorted((ROOT / "examples").glob("**/*.yaml"))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: str(p.relative_to(ROOT)))
def test_runbooks_referenced_by_examples_exist(path: Path):
    for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
        for ref in _runbook_refs(doc):
            if "://" in ref:
                continue
            candidates = [ROOT / ref, RUNBOOKS / ref]
            assert any(c.is_file() for c in candidates), f"{path.name}: runbook {ref!r} does not exist"


def test_examples_reference_runbooks_at_all():
    refs = [r for p in EXAMPLES for d in yaml.safe_load_all(p.read_text(encoding="utf-8")) for r in _runbook_refs(d)]
    assert refs, "the examples should show `runbook:` in use"
