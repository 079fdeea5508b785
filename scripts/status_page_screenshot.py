"""Make `docs/status-page.png`: a running agent's status page, screenshotted by headless chromium.

The agent runs a small demo config (passing, degraded, failing, silenced and
in-maintenance checks, one SLO, one private check) on 127.0.0.1. So that the
uptime bars and sparklines have something to show, the state store is first
seeded with 30 days of synthetic results for the demo checks: the numbers on
the picture are made up, the page rendering them is the real one.

Run: `.venv/bin/python scripts/status_page_screenshot.py [--out docs/status-page.png]`
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agent.core import CheckResult, Status  # noqa: E402
from agent.store import SqliteStore  # noqa: E402

CONFIG = """
agent: {{listen: 127.0.0.1:{port}, state_dir: {state}, history_retention: 31d}}
defaults: {{interval: 2s, timeout: 2s}}
status_page:
  enabled: true
  title: Payments status
  description: Checkout, card payments and the nightly settlement run.
  groups:
    - {{name: Website, checks: [website, checkout]}}
    - {{name: Payments API, checks: [payments-api, card-gateway]}}
    - {{name: Batch, checks: [settlement-run, reports]}}
  private_checks: [orders-db-backup]
checks:
  - {{name: website, type: http, url: "http://127.0.0.1:{port}/healthz", description: www.example.com}}
  - {{name: checkout, type: http, url: "http://127.0.0.1:{port}/readyz", description: checkout flow}}
  - name: payments-api
    type: command
    command: ["sh", "-c", "echo 'p99 latency 840ms (warning at 500ms)'; exit 1"]
  - name: card-gateway
    type: command
    command: ["sh", "-c", "echo 'GET http://10.20.0.7:8443/health returned 503 (expected 200)'; exit 2"]
  - {{name: settlement-run, type: command, command: ["sh", "-c", "echo 'settlement job failed'; exit 2"]}}
  - {{name: reports, type: command, command: ["sh", "-c", "echo 'reports ready'"], labels: {{tier: low}}}}
  - {{name: orders-db-backup, type: command, command: ["sh", "-c", "echo 'no backup today'; exit 2"]}}
slos:
  - {{name: checkout-availability, service: checkout, objective: 99.5, window: 30d, interval: 2s,
     sli: {{check: checkout}}}}
alerting:
  route: {{receiver: log, group_wait: 0s}}
  receivers: [{{name: log, log: {{}}}}]
  silences:
    - {{matchers: {{check: settlement-run}}, starts_at: "{silence_start}", duration: 4h,
       comment: "Settlement run delayed: re-running after the bank's file arrived late"}}
  maintenance_windows:
    - {{name: Reports database upgrade, matchers: {{tier: low}}, cron: "0 * * * *", duration: 3h,
       comment: "Reports database upgrade"}}
"""

#: check -> (share of good results, mean duration in seconds) for the synthetic month
HISTORY = {"website": (0.99995, 0.003), "checkout": (0.9998, 0.004), "payments-api": (0.9993, 0.006),
           "card-gateway": (0.9995, 0.006), "settlement-run": (0.998, 0.006), "reports": (1.0, 0.006)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def seed(state: Path, now: float) -> None:
    store = SqliteStore(state / "state.db", default_retention=31 * 86400)
    await store.open()
    rng = random.Random(13)
    try:
        for check, (good, mean) in HISTORY.items():
            for i in range(30 * 24 * 6):  # every 10 minutes for 30 days
                at = now - 30 * 86400 + i * 600
                bad_day = check == "card-gateway" and 6 <= (now - at) / 86400 < 7
                ok = rng.random() < (0.9 if bad_day else good)
                wave = 1 + 0.35 * ((i % 144) / 144) + rng.random() * 0.25
                store.add_result(CheckResult(Status.OK if ok else Status.CRITICAL, "seed", check=check, type="seed",
                                             timestamp=at, duration_seconds=mean * wave))
        await store.flush()
    finally:
        await store.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "status-page.png")
    parser.add_argument("--size", default="1100,2360", help="window width,height in pixels")
    args = parser.parse_args()
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        print("chromium not found: apt-get install chromium", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        port = free_port()
        config = work / "demo.yaml"
        started = datetime.fromtimestamp(time.time() - 1800, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        config.write_text(CONFIG.format(port=port, state=work / "state", silence_start=started))
        asyncio.run(seed(work / "state", time.time()))
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        agent = subprocess.Popen([sys.executable, "-m", "agent.cli", "run", "-c", str(config)], cwd=work, env=env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    doc = httpx.get(url + "/api/v2/summary.json", timeout=2).json()
                    slo = httpx.get(url + "/api/v1/checks", params={"name": "slo-checkout-availability"},
                                    timeout=2).json()["checks"]
                    if len(doc["incidents"]) >= 3 and slo and slo[0]["last_result"]:
                        break
                except (httpx.HTTPError, ValueError, KeyError):
                    pass
                time.sleep(0.5)
            time.sleep(6)  # past the page's 5 s cache, with every check's latest result in
            args.out.parent.mkdir(parents=True, exist_ok=True)
            subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                            "--no-first-run", f"--user-data-dir={work / 'profile'}", "--hide-scrollbars",
                            f"--window-size={args.size}", "--virtual-time-budget=3000",
                            f"--screenshot={args.out}", url + "/"],
                           check=True, capture_output=True, timeout=120, env={**os.environ, "HOME": str(work)})
        finally:
            agent.terminate()
            agent.wait(10)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
