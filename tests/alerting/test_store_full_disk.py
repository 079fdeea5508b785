"""The real daemon on a filesystem that fills up: the page about it still goes out, once.

The agent's state directory is a 4 MiB tmpfs (mounted by the test; skipped
where mounting is not allowed). Once the agent runs, a filler file takes every
free byte, then a check starts failing: its alert reaches a local webhook at
once although nothing can be written, `/readyz` says why the agent is not ready
and `sre_agent_store_errors_total` counts the failures, and the log says so a
few times, not on every cycle. When the filler is deleted, the state is written
again, `/readyz` recovers, the alert's resolve arrives, and no notification was
sent twice.
"""

from __future__ import annotations

import asyncio
import errno
import os
import signal
import subprocess
from pathlib import Path

import httpx
import pytest
from aiohttp import web

from tests.alerting.helpers import write_config
from tests.alerting.test_daemon_restart import Endpoint, start_agent, until

TOKEN = "a-token-for-the-full-disk-test-0123"


@pytest.fixture
def small_fs(tmp_path: Path):
    mount = tmp_path / "state"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], capture_output=True,
                          text=True, timeout=10)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True, timeout=10)


def fill(directory: Path) -> Path:
    """Take every free byte of the filesystem (unbuffered, so the last write is the one refused)."""
    filler = directory / "filler"
    with filler.open("wb", buffering=0) as out:
        for size in (65536, 4096, 512, 1):
            try:
                while True:
                    out.write(b"\0" * size)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
    return filler


async def test_a_full_disk_does_not_stop_the_page(tmp_path: Path, small_fs: Path) -> None:
    endpoint = Endpoint()
    endpoint.accepting = True
    app = web.Application()
    app.router.add_post("/alerts", endpoint.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    hook_port = runner.addresses[0][1]
    broken = tmp_path / "broken"
    config = write_config(tmp_path, f"""
agent: {{listen: "127.0.0.1:0", state_dir: {small_fs}, api_token: {TOKEN}}}
checks:
  - name: disk-space
    type: command
    command: [sh, -c, "test -e {broken} && exit 2; exit 0"]
    interval: 200ms
    timeout: 2s
    alert: {{after: 2, resolve_after: 1}}
alerting:
  route: {{receiver: hook, group_wait: 0s, group_interval: 300ms, repeat_interval: 1h}}
  outbox: {{initial_backoff: 100ms, max_backoff: 300ms, max_age: 1h}}
  receivers:
    - name: hook
      webhook: {{url: "http://127.0.0.1:{hook_port}/alerts", timeout: 2s}}
""")
    log = tmp_path / "agent.log"
    agent = start_agent(config, log)
    try:
        await until(lambda: "metrics on http://" in log.read_text(), "the agent to start", log)
        port = int(log.read_text().split("metrics on http://127.0.0.1:")[1].split("/")[0])
        url = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(timeout=5) as client:
            filler = await asyncio.to_thread(fill, small_fs)
            broken.touch()
            await until(lambda: any(r["body"]["status"] == "firing" for r in endpoint.requests),
                        "the page while the disk is full", log)
            ready = await client.get(url + "/readyz")
            assert ready.status_code == 503 and "state store cannot be written" in ready.text, ready.text
            metrics = (await client.get(url + "/metrics")).text
            errors = next(float(line.split()[-1]) for line in metrics.splitlines()
                          if line.startswith("sre_agent_store_errors_total "))
            assert errors > 0
            await asyncio.sleep(3)  # a few seconds of a full disk: a few log lines, not one per cycle
            text = log.read_text()
            assert 1 <= text.count("could not write alert state") <= 2, text[-3000:]
            assert text.count("could not write") <= 6, text[-3000:]

            filler.unlink()

            async def recovered() -> bool:
                return (await client.get(url + "/readyz")).status_code == 200

            for _ in range(200):
                if await recovered():
                    break
                await asyncio.sleep(0.1)
            assert await recovered(), log.read_text()[-3000:]
            broken.unlink()
            await until(lambda: any(r["body"]["status"] == "resolved" for r in endpoint.requests),
                        "the resolve after the disk was freed", log)
            await asyncio.sleep(1.5)  # room for a duplicate to show up
    finally:
        if agent.poll() is None:
            agent.send_signal(signal.SIGTERM)
            try:
                agent.wait(timeout=10)
            except subprocess.TimeoutExpired:
                agent.kill()
                agent.wait()
        await runner.cleanup()
    statuses = [r["body"]["status"] for r in endpoint.requests]
    assert statuses == ["firing", "resolved"], endpoint.requests
    assert len({r["key"] for r in endpoint.requests}) == 2  # each notification sent once
