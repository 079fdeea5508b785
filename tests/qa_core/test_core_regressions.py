"""Regressions found by trying the agent as a new user: config errors, secrets, shutdown, timeouts."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
from pathlib import Path
from typing import Literal

import pytest

from agent.config import ConfigError, load_config
from agent.context import CheckContext
from agent.core import CheckResult, Status
from agent.runner import execute
from agent.scheduler import Scheduler
from checks.base import Check, CheckConfig
from checks.tls import TlsCheck, TlsConfig


def _errors(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> list[str]:
    p = tmp_path / "c.yaml"
    p.write_text(text)
    with pytest.raises(ConfigError) as exc:
        load_config(p, env=env or {})
    return [str(i) for i in exc.value.issues]


def test_duplicate_names_are_reported_together_with_other_errors(tmp_path: Path) -> None:
    errors = _errors(tmp_path, "checks:\n"
                               "  - {name: a, type: tcp, host: 127.0.0.1, port: 1}\n"
                               "  - {name: a, type: tcp, host: 127.0.0.1, port: 2}\n"
                               "  - {name: b, type: tcp, host: 127.0.0.1, port: 99999}\n")
    assert any("c.yaml:3: checks[1].name: duplicate check name 'a'" in e for e in errors), errors
    assert any("checks[2].port: port must be 1-65535" in e for e in errors), errors


def test_non_positive_timeout_and_interval_name_the_field_and_its_line(tmp_path: Path) -> None:
    errors = _errors(tmp_path, "checks:\n"
                               "  - name: a\n"
                               "    type: tcp\n"
                               "    host: 127.0.0.1\n"
                               "    port: 1\n"
                               "    timeout: 0s\n"
                               "    interval: 0ms\n"
                               "  - {name: b, type: tcp, host: 127.0.0.1, port: 1, interval: 1s,\n"
                               "     cron: '* * * * *'}\n")
    assert any("c.yaml:6: checks[0].timeout: timeout must be positive" in e for e in errors), errors
    assert any("c.yaml:7: checks[0].interval: interval must be positive" in e for e in errors), errors
    assert any("c.yaml:9: checks[1].cron: set either interval or cron" in e for e in errors), errors


def test_zero_default_timeout_and_interval_are_rejected(tmp_path: Path) -> None:
    errors = _errors(tmp_path, "defaults: {timeout: 0s, interval: 0ms}\n"
                               "checks:\n  - {name: a, type: tcp, host: 127.0.0.1, port: 1}\n")
    assert any("defaults.timeout: timeout must be positive" in e for e in errors), errors
    assert any("defaults.interval: interval must be positive" in e for e in errors), errors


def test_config_errors_never_show_an_env_secret(tmp_path: Path) -> None:
    secret = "qa-config-secret-7781"
    errors = _errors(tmp_path, "checks:\n"
                               "  - {name: a, type: http, url: 'http://h/', timeout: '${QA_SECRET}'}\n"
                               "  - {name: b, type: tcp, host: 'http://${QA_SECRET}/', port: 1}\n"
                               "  - {name: c, type: http, url: 'http://h/', expect: {status: ['${QA_SECRET}']}}\n",
                     env={"QA_SECRET": secret})
    assert len(errors) == 3, errors
    assert not [e for e in errors if secret in e], errors


def test_list_json_redacts_secrets(tmp_path: Path) -> None:
    p = tmp_path / "c.yaml"
    p.write_text("checks:\n  - name: api\n    type: http\n    url: 'http://127.0.0.1:1/x?token=${QA_TOK}'\n"
                 "    headers: {Authorization: 'Bearer ${QA_TOK}'}\n")
    proc = subprocess.run([sys.executable, "-m", "agent.cli", "list", "-c", str(p), "-o", "json"],
                          capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "QA_TOK": "qa-list-secret-4411"})
    assert proc.returncode == 0, proc.stderr
    assert "qa-list-secret-4411" not in proc.stdout
    assert "Bearer <redacted>" in proc.stdout


class _Cfg(CheckConfig):
    type: Literal["fake"] = "fake"


class _LeaksInObservationsAndDetails(Check):
    async def run(self) -> CheckResult:
        return self.result(Status.OK, "fine", {"qa-runner-secret-9931": 1.0, "ok": 2.0},
                           perfdata=[{"label": "qa-runner-secret-9931"}], url="http://h/?k=qa-runner-secret-9931")


async def test_runner_redacts_observation_names_and_details() -> None:
    from agent.secrets import REDACTOR

    REDACTOR.add("qa-runner-secret-9931")
    check = _LeaksInObservationsAndDetails(_Cfg(name="leaky", timeout="1s", interval="1s"), CheckContext())
    r = await execute(check)
    assert "qa-runner-secret-9931" not in repr(r.to_dict())
    assert r.observations["ok"] == 2.0


class _Hangs(Check):
    async def run(self) -> CheckResult:
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")


async def test_shutdown_does_not_log_cancelled_runs_as_job_errors(caplog: pytest.LogCaptureFixture) -> None:
    s = Scheduler(lambda r: None, jitter=False)
    s.add(_Hangs(_Cfg(name="hanger", timeout="30s", interval="50ms"), CheckContext()))
    s.start()
    await asyncio.sleep(0.2)
    with caplog.at_level(logging.ERROR):
        await s.shutdown(grace=0.1)
        await asyncio.sleep(0.05)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text


async def test_tls_blackhole_times_out_with_its_own_reason_and_connect_time() -> None:
    # accepts TCP and never says a word (a plain Protocol: no handler task to outlive the test)
    server = await asyncio.get_running_loop().create_server(asyncio.Protocol, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        cfg = TlsConfig(name="bh", type="tls", host="127.0.0.1", port=port, timeout="1s", interval="1m")
        r = await execute(TlsCheck(cfg, CheckContext()))
    finally:
        server.close()
        await server.wait_closed()
    assert r.status == Status.CRITICAL
    assert r.summary == f"timed out after 1s during the TLS handshake to 127.0.0.1:{port}", r.summary
    assert "connect_seconds" in r.observations
    assert r.duration_seconds < 1.1
