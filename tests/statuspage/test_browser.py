"""The status page of a running agent, loaded by a real browser (Debian's chromium, headless).

The agent runs passing, failing, silenced and private checks; chromium loads
`GET /` as a visitor would, the test reads the DOM chromium built and saves a
screenshot under the test's temp dir. `scripts/status_page_screenshot.py`
makes the README's `docs/status-page.png` the same way.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import struct
import subprocess
import time
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest

from tests.agentproc import AgentProcess, free_port

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SECRET = "sp-t0ken-3c1b2a9f"


def agent_config(tmp_path: Path, port: int, enabled: bool) -> Path:
    path = tmp_path / "agent.yaml"
    path.write_text(f"""
agent: {{listen: 127.0.0.1:{port}, state_dir: {tmp_path / 'state'}}}
defaults: {{interval: 300ms, timeout: 2s}}
status_page:
  enabled: {str(enabled).lower()}
  title: Payments status
  description: Payments API and website
  groups:
    - {{name: Web, checks: [web-ok, web-fail]}}
    - {{name: Batch, checks: [nightly]}}
  private_checks: [db-backup]
checks:
  - {{name: web-ok, type: http, url: "http://127.0.0.1:{port}/healthz", labels: {{service: web}}, description: Website}}
  - name: web-fail
    type: command
    command: ["sh", "-c", "echo 'upstream http://10.9.8.7:8080/health failed (key=${{SP_TOKEN}})'; exit 2"]
    labels: {{service: web}}
  - {{name: nightly, type: command, command: ["sh", "-c", "echo job failed; exit 2"], labels: {{service: batch}}}}
  - {{name: db-backup, type: command, command: ["sh", "-c", "echo orders-db backup missing; exit 2"]}}
alerting:
  route: {{receiver: log, group_wait: 0s}}
  receivers: [{{name: log, log: {{}}}}]
  silences:
    - {{matchers: {{check: nightly}}, starts_at: 2020-01-01T00:00:00Z, duration: 36500d, comment: Nightly job rework}}
""")
    return path


class Dom(HTMLParser):
    """Elements carrying `data-check` / `data-status` / `data-indicator`, and all visible text."""

    def __init__(self) -> None:
        super().__init__()
        self.checks: dict[str, str] = {}
        self.incidents: dict[str, str] = {}
        self.indicator: str | None = None
        self.title = ""
        self.text: list[str] = []
        self.links: list[str] = []
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "li" and a.get("data-check"):
            self.checks[str(a["data-check"])] = str(a.get("data-status"))
        if tag == "article" and "incident" in (a.get("class") or ""):
            self.incidents[str(a.get("data-check"))] = str(a.get("data-status"))
        if a.get("data-indicator"):
            self.indicator = a["data-indicator"]
        if tag in ("a", "link", "script", "img", "form", "iframe"):
            self.links.append(f"{tag} {a.get('href') or a.get('src') or a.get('action') or ''}")
        self._in_title = tag == "title" and not self.title  # the document's, not an SVG's

    def handle_endtag(self, tag: str) -> None:
        self._in_title = False

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data
        self.text.append(data)


def chromium(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
             "--disable-extensions", f"--user-data-dir={home / 'profile'}", "--virtual-time-budget=3000"]
    return subprocess.run([CHROMIUM, *flags, *args], capture_output=True, text=True, timeout=90,
                          env={**os.environ, "HOME": str(home)})


def wait_for(predicate, timeout: float = 20.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


@pytest.fixture
def agent(tmp_path: Path):  # type: ignore[no-untyped-def]
    port = free_port()
    proc = AgentProcess(agent_config(tmp_path, port, enabled=False), port, env={"SP_TOKEN": SECRET}).start()
    yield proc
    proc.stop()


def enable(agent: AgentProcess, tmp_path: Path) -> None:
    """Turn the page on the way an operator does: edit the config, SIGHUP."""
    agent_config(tmp_path, agent.port, enabled=True)
    agent.send(signal.SIGHUP)
    wait_for(lambda: agent.get("/status").status_code == 200)


def _ready(agent: AgentProcess) -> dict[str, object] | None:
    doc = agent.get("/api/v2/summary.json").json()
    statuses = {c["id"]: c["status"] for c in doc["components"] if not c["group"]}
    incidents = {i["name"] for i in doc["incidents"]}
    want = {"web-ok": "operational", "web-fail": "major_outage", "nightly": "under_maintenance"}
    return doc if statuses == want and incidents == {"web-fail", "nightly"} else None


def test_the_page_is_off_until_enabled_then_served_and_reloadable(agent: AgentProcess, tmp_path: Path) -> None:
    for path in ("/", "/status", "/status.css", "/api/v2/summary.json"):
        r = agent.get(path)
        assert r.status_code == 404 and "status_page.enabled" in r.text, path
    enable(agent, tmp_path)
    doc = wait_for(lambda: _ready(agent))
    assert doc["status"] == {"indicator": "critical", "description": "Major System Outage"}
    assert doc["page"]["name"] == "Payments status"
    groups = [c for c in doc["components"] if c["group"]]
    assert [(g["name"], g["status"], g["components"]) for g in groups] == [
        ("Web", "partial_outage", ["web-ok", "web-fail"]), ("Batch", "under_maintenance", ["nightly"])]
    [maintenance] = doc["scheduled_maintenances"]
    assert maintenance["name"] == "Nightly job rework" and maintenance["status"] == "in_progress"
    page = agent.get("/status")
    assert page.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert agent.get("/status.css").headers["content-type"].startswith("text/css")
    everything = page.text + json.dumps(doc)
    for hidden in ("db-backup", "orders-db", SECRET, "10.9.8.7", "/api/v1", "/-/reload", "/metrics"):
        assert hidden not in everything, hidden


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (scripts/test-deps.sh installs it)")
def test_chromium_renders_passing_failing_and_silenced_checks(agent: AgentProcess, tmp_path: Path) -> None:
    enable(agent, tmp_path)
    wait_for(lambda: _ready(agent))
    time.sleep(1.0)  # a few results more, so the sparkline has points
    dumped = chromium("--dump-dom", agent.url + "/", home=tmp_path)
    assert dumped.returncode == 0, dumped.stderr[-2000:]
    dom = Dom()
    dom.feed(dumped.stdout)
    assert dom.title == "Payments status: Major System Outage"
    assert dom.indicator == "critical"
    assert dom.checks == {"web-ok": "operational", "web-fail": "major_outage", "nightly": "under_maintenance"}
    assert dom.incidents == {"web-fail": "investigating", "nightly": "identified"}
    text = " ".join(" ".join(dom.text).split())
    assert "upstream [private] failed (key=<redacted>)" in text
    assert "Nightly job rework" in text and "Payments API and website" in text
    for hidden in ("db-backup", "orders-db", SECRET, "10.9.8.7"):
        assert hidden not in dumped.stdout, hidden
    assert dom.links == ["link /status.css"]  # one same-origin stylesheet: no CDN, no scripts, no API links
    shot = tmp_path / "status-page.png"
    taken = chromium("--hide-scrollbars", "--window-size=1100,1400", f"--screenshot={shot}", agent.url + "/",
                     home=tmp_path)
    assert taken.returncode == 0, taken.stderr[-2000:]
    assert png_size(shot) == (1100, 1400)
    assert shot.stat().st_size > 20_000  # a rendered page, not a blank canvas


def test_summary_json_answers_cross_origin_readers(agent: AgentProcess, tmp_path: Path) -> None:
    enable(agent, tmp_path)
    r = httpx.get(agent.url + "/api/v2/summary.json", headers={"Origin": "https://example.com"}, timeout=5)
    assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "*"
