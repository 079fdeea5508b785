"""Start the real `sre-agent run` as a subprocess, the way a user does."""

from __future__ import annotations

import os
import resource
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class AgentProcess:
    def __init__(self, config: Path, port: int, env: dict[str, str] | None = None, cwd: Path | None = None,
                 open_files: tuple[int, int] | None = None) -> None:
        self.config, self.port = config, port
        self.open_files = open_files  # (soft, hard) RLIMIT_NOFILE for the agent, as systemd's LimitNOFILE= sets it
        self.url = f"http://127.0.0.1:{port}"
        self.env = {**os.environ, **(env or {})}
        self.cwd = cwd or config.parent
        self.proc: subprocess.Popen[str] | None = None
        self.log = self.cwd / f"agent-{port}.log"

    def start(self, wait_ready: bool = True) -> AgentProcess:
        out = self.log.open("a")
        limits = self.open_files

        def preexec() -> None:
            if limits is not None:
                resource.setrlimit(resource.RLIMIT_NOFILE, limits)

        self.proc = subprocess.Popen([sys.executable, "-m", "agent.cli", "run", "-c", str(self.config)],
                                     cwd=self.cwd, env=self.env, stdout=out, stderr=subprocess.STDOUT, text=True,
                                     preexec_fn=preexec if limits is not None else None)
        if wait_ready:
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"agent exited with {self.proc.returncode}:\n{self.output()}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise TimeoutError(f"agent not ready after {timeout}s:\n{self.output()}")

    def output(self) -> str:
        return self.log.read_text() if self.log.exists() else ""

    def get(self, path: str, **kw: object) -> httpx.Response:
        return httpx.get(self.url + path, timeout=5, **kw)  # type: ignore[arg-type]

    def post(self, path: str, **kw: object) -> httpx.Response:
        return httpx.post(self.url + path, timeout=10, **kw)  # type: ignore[arg-type]

    def send(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return int(self.proc.returncode)

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(5)
