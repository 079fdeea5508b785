"""`agent.event_loop`: uvloop by default where installed, the standard loop on request, a clear error otherwise."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from agent.config import ConfigError, load_config
from agent.eventloop import loop_factory
from tests.agentproc import AgentProcess, free_port

uvloop = pytest.importorskip("uvloop")


def _config(tmp_path: Path, port: int, event_loop: str) -> Path:
    cfg = tmp_path / "agent.yaml"
    cfg.write_text(f"""
agent: {{listen: "127.0.0.1:{port}", state_dir: "{tmp_path / 'state'}", event_loop: {event_loop}}}
checks:
  - {{name: self, type: http, url: "http://127.0.0.1:{port}/healthz", interval: 1s}}
""")
    return cfg


@pytest.mark.parametrize(("choice", "loop"), [("auto", "uvloop"), ("uvloop", "uvloop"), ("asyncio", "asyncio")])
def test_the_daemon_runs_on_the_loop_the_config_names(tmp_path: Path, choice: str, loop: str) -> None:
    port = free_port()
    proc = AgentProcess(_config(tmp_path, port, choice), port).start()
    try:
        assert proc.get("/metrics").status_code == 200
    finally:
        proc.stop()
    assert f"event loop: {loop}" in proc.output()


def test_without_uvloop_auto_falls_back_and_uvloop_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # import uvloop -> ImportError
    assert loop_factory("auto") is None
    with pytest.raises(RuntimeError, match=r"agent\.event_loop is 'uvloop' but uvloop is not installed"):
        loop_factory("uvloop")
    monkeypatch.undo()
    assert loop_factory("auto") is uvloop.new_event_loop
    assert loop_factory("asyncio") is None


def test_an_unknown_loop_is_a_config_error_naming_the_choices(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(_config(tmp_path, 9, "fast"))
    text = str(err.value.issues)
    assert "agent.event_loop" in text and "'auto', 'asyncio' or 'uvloop'" in text
