"""The CLI as an SRE uses it: Nagios exit codes, JSON output, clear errors."""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import sys
import threading
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


AGENT_ONLY_CONFIG = """
agent: {{listen: "127.0.0.1:{port}"}}
checks:
  - {{name: db, type: http, url: http://127.0.0.1:1/, headers: {{Authorization: "Bearer ${{DB_TOKEN}}"}}}}
  - {{name: needs-a-missing-runbook, type: tcp, host: 127.0.0.1, port: 1, runbook: runbooks/not-here.md}}
alerting:
  route: {{receiver: hook}}
  receivers:
    - {{name: hook, webhook: {{url: "${{HOOK_SECRET}}"}}}}
"""


class _FakeAgent(http.server.BaseHTTPRequestHandler):
    """Answers the two read endpoints the CLI calls, like a running agent with nothing firing."""

    def do_GET(self) -> None:  # noqa: N802 - the http.server API
        body = {"/api/v1/alerts": {"alerts": []}, "/api/v1/silences": {"silences": []}}.get(self.path.split("?")[0])
        data = json.dumps(body).encode()
        self.send_response(200 if body is not None else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_commands_talking_to_the_agent_need_only_its_address(tmp_path: Path) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _FakeAgent)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        cfg = tmp_path / "c.yaml"
        cfg.write_text(AGENT_ONLY_CONFIG.format(port=server.server_address[1]))
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}  # neither HOOK_SECRET nor DB_TOKEN is set
        assert sre("validate", "-c", str(cfg), env=env).returncode == 2  # the full config is not valid here
        r = sre("alerts", "-c", str(cfg), env=env)
        assert r.returncode == 0 and r.stdout.strip() == "no alerts", r.stdout + r.stderr
        r = sre("silence", "list", "-c", str(cfg), "-o", "json", env=env)
        assert r.returncode == 0 and json.loads(r.stdout) == [], r.stdout + r.stderr
        cfg.write_text(AGENT_ONLY_CONFIG.format(port="${AGENT_PORT}"))
        r = sre("alerts", "-c", str(cfg), env=env)
        assert r.returncode == 2 and "agent.listen: environment variable AGENT_PORT is not set" in r.stderr
        r = sre("alerts", "-c", str(cfg), env={**env, "AGENT_PORT": str(server.server_address[1])})
        assert r.returncode == 0 and "no alerts" in r.stdout, r.stderr
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_starting_the_cli_does_not_import_what_only_some_commands_use() -> None:
    """`sre-agent check` pays the import of every module `agent.cli` pulls in: keep httpx (API commands),
    rule generation and dashboards out of it until their command runs."""
    import subprocess
    import sys

    code = ("import sys, agent.cli; print(','.join(m for m in ('httpx', 'agent.codegen.rules', 'agent.codegen.dashboards',"
            " 'grafanalib', 'kubernetes') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert proc.stdout.strip() == "", f"imported at start-up: {proc.stdout.strip()}"
