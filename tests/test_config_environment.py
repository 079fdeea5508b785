"""What `validate` catches before it loses pages (issue 14, item 7).

A PagerDuty routing key of the wrong length (PagerDuty answers 400, never
retried), a `runbook:` file that does not exist, and a check whose optional
package is not installed are config errors: `validate` exits 2 naming them
and `run` refuses to start. The test environment has every extra installed,
so a missing one is simulated: `importlib.util.find_spec` patched in process,
and an import blocker on `sys.meta_path` in a subprocess.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from agent.check import missing_packages
from agent.config import ConfigError, load_config

KEY = "0123456789abcdef0123456789abcdef"

#: runs the CLI with some top-level packages made impossible to find
BLOCKED_CLI = """
import importlib.abc, sys
BLOCKED = set(sys.argv.pop(1).split(","))
class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
sys.meta_path.insert(0, Blocker())
from agent.cli import main
main()
"""


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text))
    return path


def cli(*args: str, blocked: str = "", cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", BLOCKED_CLI, blocked, *args], capture_output=True, text=True,
                          timeout=60, cwd=cwd)


def issues(path: Path, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as exc:
        load_config(path, env=env or {})
    return [str(i).removeprefix(str(path.parent) + "/") for i in exc.value.issues]


# --- PagerDuty routing keys -------------------------------------------------------------------

def pagerduty_config(tmp_path: Path) -> Path:
    return write(tmp_path / "c.yaml", f"""\
        agent: {{listen: "127.0.0.1:0", state_dir: {tmp_path / 'state'}}}
        checks:
          - {{name: a, type: tcp, host: 127.0.0.1, port: 1}}
        alerting:
          route: {{receiver: pd}}
          receivers:
            - name: pd
              pagerduty: {{routing_key: "${{PD_KEY}}"}}
        """)


@pytest.mark.parametrize("key", [KEY[:-1], KEY + "x", "R0UTINGKEY0123456789"])
def test_a_routing_key_that_is_not_32_characters_is_an_error(tmp_path: Path, key: str) -> None:
    cfg = pagerduty_config(tmp_path)
    assert issues(cfg, {"PD_KEY": key}) == [
        f"c.yaml:8: alerting.receivers[0].pagerduty: routing_key must be the 32-character integration key of an "
        f"Events API v2 integration; got {len(key)} characters"]
    assert load_config(cfg, env={"PD_KEY": KEY}).alerting.receivers[0].settings.routing_key.get_secret_value() == KEY


# --- runbooks ----------------------------------------------------------------------------------

def test_a_runbook_file_that_does_not_exist_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "runbooks").mkdir()
    (tmp_path / "conf" / "runbooks" / "db.md").write_text("# db down\n")
    cfg = write(tmp_path / "conf" / "c.yaml", """\
        checks:
          - {name: next-to-config, type: tcp, host: 127.0.0.1, port: 1, runbook: runbooks/db.md}
          - {name: shipped, type: tcp, host: 127.0.0.1, port: 1, runbook: runbooks/tcp-port-down.md}
          - {name: online, type: tcp, host: 127.0.0.1, port: 1, runbook: "https://wiki.example.invalid/nope"}
          - {name: typo, type: tcp, host: 127.0.0.1, port: 1, runbook: runbooks/db-donw.md}
        slos:
          - {name: web, service: web, objective: 99, sli: {check: shipped}, runbook: runbooks/web-slo.md}
        """)
    [typo, slo] = issues(cfg)
    assert typo.startswith("c.yaml:5: checks[3].runbook: runbook 'runbooks/db-donw.md' not found (looked in: "
                           f"{tmp_path / 'conf' / 'runbooks' / 'db-donw.md'}, ")
    assert typo.endswith("give an existing file, or an http(s) URL for a runbook kept elsewhere")
    assert slo.startswith("c.yaml:7: slos[0]: runbook 'runbooks/web-slo.md' not found")
    (tmp_path / "runbooks").mkdir()
    (tmp_path / "runbooks" / "db-donw.md").write_text("# typo, but it exists in the working directory\n")
    (tmp_path / "conf" / "runbooks" / "web-slo.md").write_text("# web SLO\n")
    assert len(load_config(cfg, env={}).all_checks()) == 5


# --- optional packages ------------------------------------------------------------------------

EXTRAS_CONFIG = """\
    agent: {{listen: "127.0.0.1:0", state_dir: {state}}}
    checks:
      - name: bucket-backup
        type: backup
        source: {{kind: s3, bucket: backups}}
        max_age: 1d
      - name: orders-fresh
        type: freshness
        source: {{kind: sql, dsn: "postgresql://u@127.0.0.1:1/db", query: "select now()"}}
        error_after: 1h
      - name: file-fresh
        type: freshness
        source: {{kind: file, path: /tmp}}
        error_after: 1h
      - {{name: cluster, type: kubernetes, namespace: payments}}
    """


def test_missing_packages_uses_find_spec_without_importing(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str] = []

    def fake_find_spec(name: str, package: str | None = None) -> Any:
        seen.append(name)
        return None if name == "boto3" else object()

    monkeypatch.setattr(importlib.util, "find_spec", fake_find_spec)
    assert missing_packages({"boto3": "s3", "sqlalchemy": "sql"}) == {"boto3": "s3"}
    assert seen == ["boto3", "sqlalchemy"]


def test_a_check_whose_extra_is_missing_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = write(tmp_path / "c.yaml", EXTRAS_CONFIG.format(state=tmp_path / "state"))
    assert load_config(cfg, env={}).check("bucket-backup")  # everything installed: valid
    real = importlib.util.find_spec
    missing = {"boto3", "psycopg", "kubernetes"}
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, package=None: None if name in missing else real(name, package))
    assert issues(cfg) == [
        "c.yaml:4: checks[0].type: needs the Python package 'boto3', not installed: pip install 'sre-agent[s3]'",
        "c.yaml:8: checks[1].type: needs the Python package 'psycopg', not installed: pip install 'sre-agent[sql]'",
        "c.yaml:15: checks[3].type: needs the Python package 'kubernetes', not installed: "
        "pip install 'sre-agent[kubernetes]'",
    ]
    missing.add("sqlalchemy")
    assert issues(cfg)[1] == ("c.yaml:8: checks[1].type: needs the Python packages 'sqlalchemy', 'psycopg', "
                              "not installed: pip install 'sre-agent[sql]'")


def test_validate_and_run_refuse_a_check_whose_extra_is_missing(tmp_path: Path) -> None:
    cfg = write(tmp_path / "c.yaml", EXTRAS_CONFIG.format(state=tmp_path / "state"))
    ok = cli("validate", "-c", str(cfg), cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    for command in ("validate", "run"):
        proc = cli(command, "-c", str(cfg), blocked="boto3,botocore", cwd=tmp_path)
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert "checks[0].type: needs the Python package 'boto3', not installed: pip install 'sre-agent[s3]'" in proc.stderr
        assert "orders-fresh" not in proc.stderr and "checks[1]" not in proc.stderr
    assert not (tmp_path / "state").exists()  # run stopped before anything started


def test_validate_and_run_refuse_a_wrong_routing_key_and_a_missing_runbook(tmp_path: Path) -> None:
    cfg = write(tmp_path / "c.yaml", f"""\
        agent: {{listen: "127.0.0.1:0", state_dir: {tmp_path / 'state'}}}
        checks:
          - {{name: a, type: tcp, host: 127.0.0.1, port: 1, runbook: runbooks/missing.md}}
        alerting:
          route: {{receiver: pd}}
          receivers:
            - {{name: pd, pagerduty: {{routing_key: not-a-real-key}}}}
        """)
    for command in ("validate", "run"):
        proc = cli(command, "-c", str(cfg), cwd=tmp_path)
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert "config invalid: 2 errors" in proc.stderr
        assert "checks[0].runbook: runbook 'runbooks/missing.md' not found" in proc.stderr
        assert "routing_key must be the 32-character integration key" in proc.stderr
        assert "not-a-real-key" not in proc.stderr
    assert not (tmp_path / "state").exists()
