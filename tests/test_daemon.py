"""`sre-agent run` end to end: metrics, health, reload, clean shutdown."""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.agentproc import AgentProcess, free_port

TOKEN = "daemon-test-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _config(tmp_path: Path, port: int, extra: str = "") -> Path:
    cfg = tmp_path / "agent.yaml"
    cfg.write_text(f"""
agent:
  listen: 127.0.0.1:{port}
  state_dir: {tmp_path / 'state'}
  api_token: {TOKEN}
defaults: {{interval: 200ms, timeout: 2s}}
checks:
  - name: self-healthz
    type: http
    url: http://127.0.0.1:{port}/healthz
    labels: {{service: sre-agent, team: sre}}
  - {{name: self-port, type: tcp, host: 127.0.0.1, port: {port}}}
  - {{name: always-warn, type: command, command: ["sh", "-c", "echo 'disk 81% | used=81%;80;90'; exit 1"]}}
{extra}""")
    return cfg


def _wait_for(predicate, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


@pytest.fixture
def agent(tmp_path: Path):  # type: ignore[no-untyped-def]
    port = free_port()
    proc = AgentProcess(_config(tmp_path, port), port).start()
    yield proc
    proc.stop()


def test_metrics_health_and_promtool(agent: AgentProcess, tmp_path: Path) -> None:
    assert agent.get("/healthz").status_code == 200
    assert agent.get("/readyz").status_code == 200
    _wait_for(lambda: 'sre_agent_check_status{check="always-warn"' in agent.get("/metrics").text)
    _wait_for(lambda: 'check="self-healthz"' in agent.get("/metrics").text)
    text = agent.get("/metrics").text
    for name in ("sre_agent_check_status", "sre_agent_check_up", "sre_agent_check_duration_seconds_bucket",
                 "sre_agent_check_runs_total", "sre_agent_check_last_run_timestamp_seconds",
                 "sre_agent_check_observation", "sre_agent_build_info", "sre_agent_config_last_reload_successful"):
        assert name in text, name
    assert 'sre_agent_check_status{check="always-warn",type="command"} 1.0' in text
    assert 'sre_agent_check_status{check="self-healthz",service="sre-agent",team="sre",type="http"} 0.0' in text
    assert 'sre_agent_check_observation{check="always-warn",name="used"} 81.0' in text
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool missing: run scripts/test-deps.sh (Debian package prometheus)")
    proc = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0 and not proc.stdout.strip() and not proc.stderr.strip(), proc.stdout + proc.stderr


def test_reload_bad_keeps_running_config_then_good_applies(agent: AgentProcess, tmp_path: Path) -> None:
    good = agent.config.read_text()
    agent.config.write_text(good + "  - {name: broken, type: tcp, host: 127.0.0.1, port: 99999}\n")
    agent.send(signal.SIGHUP)
    _wait_for(lambda: "sre_agent_config_last_reload_successful 0.0" in agent.get("/metrics").text)
    checks = {c["name"] for c in agent.get("/api/v1/checks").json()["checks"]}
    assert checks == {"self-healthz", "self-port", "always-warn"}
    assert agent.get("/readyz").status_code == 200

    agent.config.write_text(good.replace("  - {name: self-port", "  - {name: extra-port, type: tcp, host: 127.0.0.1, port: "
                                         f"{agent.port}}}\n  - {{name: self-port"))
    r = agent.post("/-/reload", headers=AUTH)
    assert r.status_code == 200, r.text
    assert "sre_agent_config_last_reload_successful 1.0" in agent.get("/metrics").text
    _wait_for(lambda: 'check="extra-port"' in agent.get("/metrics").text)

    # a removed check's series disappear
    agent.config.write_text(good.replace("  - {name: self-port", "  - {name: gone, type: tcp, host: 127.0.0.1, port: 1, enabled: false}\n  - {name: self-port"))
    assert agent.post("/-/reload", headers=AUTH).status_code == 200
    text = agent.get("/metrics").text
    assert 'check="extra-port"' not in text


def test_sigterm_exits_zero_quickly_with_slow_check_in_flight(tmp_path: Path) -> None:
    port = free_port()
    cfg = _config(tmp_path, port, '  - {name: slow, type: command, command: ["sleep", "30"], timeout: 60s, interval: 100ms}\n')
    proc = AgentProcess(cfg, port).start()
    time.sleep(0.5)
    t0 = time.monotonic()
    code = proc.stop(signal.SIGTERM, timeout=10)
    elapsed = time.monotonic() - t0
    assert code == 0, proc.output()
    assert elapsed < 5, f"shutdown took {elapsed:.1f}s"
    assert (tmp_path / "state" / "state.db").exists()


def test_invalid_config_exits_2_and_nothing_starts(tmp_path: Path) -> None:
    port = free_port()
    cfg = _config(tmp_path, port, "  - {name: bad, type: tcp, host: 127.0.0.1, port: 0}\n")
    proc = AgentProcess(cfg, port).start(wait_ready=False)
    assert proc.proc is not None
    assert proc.proc.wait(30) == 2
    assert "checks[3].port" in proc.output()


def test_second_agent_on_the_same_state_dir_refuses_to_start(agent: AgentProcess, tmp_path: Path) -> None:
    port = free_port()
    other = tmp_path / "other.yaml"
    other.write_text(agent.config.read_text().replace(f"127.0.0.1:{agent.port}", f"127.0.0.1:{port}"))
    second = AgentProcess(other, port).start(wait_ready=False)
    assert second.proc is not None
    assert second.proc.wait(30) == 1
    assert "is in use by another sre-agent" in second.output()
    assert agent.get("/readyz").status_code == 200
