"""The CLI as an SRE uses it: Nagios exit codes, JSON output, clear errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

CONFIG = """
defaults: {timeout: 5s}
checks:
  - {name: ok, type: command, command: ["sh", "-c", "echo all good"]}
  - {name: warn, type: command, command: ["sh", "-c", "echo getting full; exit 1"]}
  - {name: crit, type: command, command: ["sh", "-c", "echo on fire; exit 2"]}
  - {name: unknown, type: command, command: ["sh", "-c", "echo no idea; exit 3"]}
  - {name: refused, type: tcp, host: 127.0.0.1, port: 1, labels: {team: sre}}
"""


def sre(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agent.cli", *args], capture_output=True, text=True, timeout=60,
                          cwd=cwd, env=env)


@pytest.fixture
def cfg(tmp_path: Path) -> Path:
    p = tmp_path / "c.yaml"
    p.write_text(CONFIG)
    return p


@pytest.mark.parametrize(("name", "code"), [("ok", 0), ("warn", 1), ("crit", 2), ("unknown", 3), ("refused", 2)])
def test_check_exit_code_is_the_status(cfg: Path, name: str, code: int) -> None:
    r = sre("check", "-c", str(cfg), name)
    assert r.returncode == code, r.stdout + r.stderr
    assert name in r.stdout


def test_check_worst_status_wins_and_json(cfg: Path) -> None:
    r = sre("check", "-c", str(cfg), "ok", "warn", "--output", "json")
    assert r.returncode == 1
    data = json.loads(r.stdout)
    assert [d["check"] for d in data] == ["ok", "warn"]
    assert data[1]["status"] == "WARNING" and data[1]["summary"] == "getting full"
    assert {"observations", "duration_seconds", "labels", "code"} <= set(data[0])
    r = sre("check", "-c", str(cfg), "--all")
    assert r.returncode == 2  # CRITICAL beats UNKNOWN
    assert "connection refused" in r.stdout.lower() or "refused" in r.stdout.lower()


def test_unknown_check_name_lists_names(cfg: Path) -> None:
    r = sre("check", "-c", str(cfg), "nope")
    assert r.returncode == 3
    assert "unknown check: nope" in r.stderr
    assert "ok, warn, crit, unknown, refused" in r.stderr


def test_validate_list_schema_version(cfg: Path) -> None:
    r = sre("validate", "-c", str(cfg))
    assert r.returncode == 0 and "config valid: 5 checks" in r.stdout
    assert len([line for line in r.stdout.splitlines() if line.startswith("ok ")]) == 5
    r = sre("list", "-c", str(cfg))
    assert r.returncode == 0 and "refused" in r.stdout and "team=sre" in r.stdout
    r = sre("config", "schema")
    assert r.returncode == 0 and json.loads(r.stdout)["title"] == "sre-agent configuration"
    r = sre("--version")
    assert r.returncode == 0 and "sre-agent, version" in r.stdout


@pytest.mark.parametrize("command", [[], ["run"], ["check"], ["validate"], ["list"], ["config"], ["config", "schema"]])
def test_help_everywhere(command: list[str]) -> None:
    r = sre(*command, "--help")
    assert r.returncode == 0 and "Usage:" in r.stdout


def test_embedded_quickstart_validates() -> None:
    r = sre("validate")
    assert r.returncode == 0, r.stderr
    assert "agent-healthz" in r.stdout and "node" in r.stdout
