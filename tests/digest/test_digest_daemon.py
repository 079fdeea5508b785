"""A running agent sends the digest by email once a day, keeps to it across a restart, and prints it on demand."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from tests.agentproc import AgentProcess, free_port
from tests.notify.smtpserver import SmtpServer


def wait_for(predicate: Callable[[], object], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


def test_the_digest_goes_out_once_per_day_across_a_restart(tmp_path: Path) -> None:
    port = free_port()
    with SmtpServer(None) as smtp:
        config = tmp_path / "agent.yaml"
        config.write_text(f"""
agent: {{listen: 127.0.0.1:{port}, state_dir: {tmp_path / 'state'}}}
defaults: {{interval: 300ms, timeout: 2s}}
digest: {{schedule: "* * * * *", receivers: [email-sre], timezone: UTC}}
checks:
  - {{name: web, type: http, url: "http://127.0.0.1:{port}/healthz"}}
  - {{name: nightly, type: command, command: ["sh", "-c", "echo export job failed; exit 2"]}}
alerting:
  route: {{receiver: log}}
  receivers:
    - {{name: log, log: {{}}}}
    - name: email-sre
      email: {{to: [sre@example.com], from: alerts@example.com, smtp: {{host: 127.0.0.1, port: {smtp.port}, starttls: false}}}}
""")

        def digests() -> list[str]:
            return [str(m.message["Subject"]) for m in smtp.received if "Daily digest" in str(m.message["Subject"])]

        agent = AgentProcess(config, port).start()
        try:
            wait_for(digests)  # the minute's send time has just passed: caught up once every check reported
            [subject] = digests()
            assert subject.startswith(f"[sre-agent] Daily digest {time.strftime('%Y-%m-%d', time.gmtime())}: 1 failing")
            body = smtp.received[-1].part("plain")
            assert "CRITICAL nightly (command): export job failed" in body
            printed = subprocess.run([sys.executable, "-m", "agent.cli", "digest", "--print", "-c", str(config)],
                                     capture_output=True, text=True, timeout=60)
            assert printed.returncode == 0, printed.stderr
            assert "Failing now (1 of 2 checks)" in printed.stdout and "CRITICAL nightly" in printed.stdout
        finally:
            agent.stop()
        again = AgentProcess(config, port)
        before = len(again.output())  # the same log file: look at what the restarted agent writes
        again.start()
        try:
            wait_for(lambda: "was already sent" in again.output()[before:])
        finally:
            again.stop()
        assert len(digests()) == 1, again.output()
    down = subprocess.run([sys.executable, "-m", "agent.cli", "digest", "--print", "-c", str(config)],
                          capture_output=True, text=True, timeout=60)
    assert down.returncode == 1 and "cannot reach the agent" in down.stderr
