"""Heavy third-party packages are imported where they are used, not by discovery or config loading.

`registry.discover()` imports every check type and config section, and loading a config imports
every receiver kind; the packages that send, resolve or parse (httpx, slack-sdk, aiosmtplib,
dnspython, cryptography) must wait for the first send, query or certificate parse. aiohttp is the
daemon's (its server) and the aiohttp receivers' (webhook, Slack): loading a config and
`sre-agent check` must not import it. Each case runs in a fresh interpreter, since this test
process has imported all of them already. Every peer is 127.0.0.1: port 9 refuses, the TLS server
is started by the child itself.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from agent.notify.base import Outcome
from tests.checks.certs import make_ca, make_leaf

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("httpx", "slack_sdk", "aiosmtplib", "dns", "cryptography")
#: httpx's command line (httpx._main) brings these; the daemon has no use for them
HTTPX_CLI = ("rich", "pygments")

HTTP_ONLY = """\
agent: {listen: 127.0.0.1:0, state_dir: STATE}
checks:
  - {name: web, type: http, url: "http://127.0.0.1:9/"}
"""

EVERYTHING = """\
agent: {listen: 127.0.0.1:0, state_dir: STATE}
checks:
  - {name: web, type: http, url: "https://127.0.0.1:9/", timeout: 2s}
  - {name: cert, type: tls, host: 127.0.0.1, port: 9, timeout: 2s}
  - {name: name, type: dns, query: example.internal, server: "127.0.0.1:9", timeout: 1s}
slos:
  - name: api
    service: api
    objective: 99.9
    prometheus: {url: "http://127.0.0.1:9", timeout: 2s}
    sli:
      events:
        error_query: sum(rate(http_requests_total{code=~"5.."}[{{window}}]))
        total_query: sum(rate(http_requests_total[{{window}}]))
alerting:
  route: {receiver: hook}
  receivers:
    - {name: hook, slack: {webhook_url: "http://127.0.0.1:9/services/T0/B0/secret"}}
    - {name: bot, slack: {token: xoxb-not-a-token, channel: "#ops", base_url: "http://127.0.0.1:9/api/"}}
    - {name: pd, pagerduty: {routing_key: 0123456789abcdef0123456789abcdef, url: "http://127.0.0.1:9/v2/enqueue"}}
    - {name: am, alertmanager: {url: "http://127.0.0.1:9"}}
    - {name: mail, email: {to: [sre@example.com], from: alerts@example.com, smtp: {host: 127.0.0.1, port: 9}}}
"""

#: run in the child first: load `CONFIG` as the daemon does, build its checks and receivers
PRELUDE = """\
import asyncio, json, sys
import agent.daemon
from agent import registry
from agent.alerting.engine import build_receiver
from agent.config import load_config
from agent.context import CheckContext
from agent.core import Alert, AlertState, Severity, Status
from agent.notify.base import Notification

registry.discover()
config = load_config(CONFIG)
checks = {c.name: registry.get_type(c.type)(c, CheckContext()) for c in config.all_checks()}
receivers = {r.name: build_receiver(r) for r in config.alerting.receivers} if config.alerting else {}
configured = sorted(m for m in MODULES if m in sys.modules)
out = {"configured": configured, "checks": sorted(checks), "receivers": sorted(receivers)}

def notification():
    alert = Alert(check="web", type="http", state=AlertState.FIRING, severity=Severity.CRITICAL, summary="down",
                  dedup_key="web:down", status=Status.CRITICAL, starts_at=1_700_000_000.0)
    return Notification(receiver="hook", group_key="{}", group_labels={}, alerts=[alert],
                        idempotency_key="n-1", created_at=1_700_000_000.0, kind="firing")

async def send(name):
    receiver = receivers[name]
    try:
        delivery = await receiver.send(notification())
    finally:
        await receiver.close()
    return delivery.outcome.value

async def run(name):
    return (await checks[name].run()).status.name
"""


def fresh(config: Path, code: str = "") -> dict[str, object]:
    """Run PRELUDE + `code` in a new interpreter; `out` (as JSON) plus `used`, the MODULES loaded at the end."""
    return _run(f"CONFIG = {str(config)!r}\nMODULES = {HEAVY + HTTPX_CLI!r}\n" + PRELUDE + textwrap.dedent(code)
                + "\nout['used'] = sorted(m for m in MODULES if m in sys.modules)\nprint(json.dumps(out))\n")


def _run(script: str) -> dict[str, object]:
    """`script` in a new interpreter with the repository on the path; the JSON it printed last."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)}
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          cwd=ROOT, env=env)
    assert proc.returncode == 0, proc.stderr
    result: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sre-agent.yaml"
    path.write_text(text.replace("STATE", str(tmp_path / "state")))
    return path


def test_discovery_and_an_http_config_import_none_of_them(tmp_path: Path) -> None:
    out = fresh(write(tmp_path, HTTP_ONLY))
    assert out["checks"] == ["web"] and out["receivers"] == []
    assert out["used"] == [], f"imported without being used: {out['used']}"


def test_a_config_using_every_kind_validates_and_builds_without_them(tmp_path: Path) -> None:
    """Receivers and checks are built (as the daemon does at start) but nothing is sent or run yet."""
    out = fresh(write(tmp_path, EVERYTHING))
    assert out["checks"] == ["cert", "name", "slo-api", "web"]
    assert out["receivers"] == ["am", "bot", "hook", "mail", "pd"]
    assert out["used"] == [], f"imported before first use: {out['used']}"


SENDS = [
    # receiver, what sending imports; port 9 refuses, which every kind retries
    ("hook", ["slack_sdk"]),
    ("bot", ["slack_sdk"]),
    ("mail", ["aiosmtplib"]),
    ("am", ["httpx", *HTTPX_CLI]),
    ("pd", ["httpx", *HTTPX_CLI]),
]


@pytest.mark.parametrize(("receiver", "imports"), SENDS, ids=[s[0] for s in SENDS])
def test_sending_imports_only_that_kinds_package(tmp_path: Path, receiver: str, imports: list[str]) -> None:
    out = fresh(write(tmp_path, EVERYTHING), f"out['outcome'] = asyncio.run(send({receiver!r}))")
    assert out["configured"] == []
    assert out["outcome"] == "retry"
    assert out["used"] == sorted(imports)


RUNS = [
    # check, its status against a refusing 127.0.0.1:9, what running it imports
    ("name", "CRITICAL", ["dns"]),
    ("slo-api", "UNKNOWN", ["httpx", *HTTPX_CLI]),
    ("web", "CRITICAL", []),   # refused before any TLS handshake: no certificate to parse
    ("cert", "CRITICAL", []),
]


@pytest.mark.parametrize(("check", "status", "imports"), RUNS, ids=[r[0] for r in RUNS])
def test_running_a_check_imports_only_what_it_uses(tmp_path: Path, check: str, status: str,
                                                   imports: list[str]) -> None:
    out = fresh(write(tmp_path, EVERYTHING), f"out['status'] = asyncio.run(run({check!r}))")
    assert out["configured"] == []
    assert out["status"] == status
    assert out["used"] == sorted(imports)


@pytest.mark.parametrize("kind", ["tls", "http"])
def test_the_first_certificate_parsed_imports_cryptography(tmp_path: Path, kind: str) -> None:
    """A TLS server on 127.0.0.1 (started by the child with the files made here) serves a chain to parse."""
    ca = make_ca(tmp_path / "pki")
    leaf = make_leaf(tmp_path / "pki", ca, days=90)
    target = ({"host": "127.0.0.1", "port": "PORT", "ca_file": str(ca.cert_file)} if kind == "tls" else
              {"url": "https://127.0.0.1:PORT/", "tls": {"ca_file": str(ca.cert_file)}, "expect": {"status": [404]}})
    code = f"""
    import ssl
    from aiohttp import web

    async def probe():
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain({str(leaf.cert_file)!r}, {str(leaf.key_file)!r})
        runner = web.AppRunner(web.Application())
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ctx)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        target = json.loads(json.dumps({target!r}).replace("PORT", str(port)))
        if "port" in target:
            target["port"] = int(target["port"])
        cls = registry.get_type({kind!r})
        cfg = cls.Config.model_validate({{"name": "c", "type": {kind!r}, "timeout": "5s", **target}})
        before = "cryptography" in sys.modules
        try:
            result = await cls(cfg, CheckContext()).run()
        finally:
            await runner.cleanup()
        return before, result.status.name, result.observations.get("cert_expiry_days")

    out["before"], out["status"], out["days"] = asyncio.run(probe())
    """
    out = fresh(write(tmp_path, HTTP_ONLY), code)
    assert out["before"] is False
    assert out["status"] == "OK"
    assert isinstance(out["days"], float) and 89 < out["days"] <= 90
    assert out["used"] == ["cryptography"]


def test_transport_errors_name_httpx_once_it_is_loaded() -> None:
    """In this process httpx is loaded: the lazy tuple and the old constant are the same set, and an httpx
    timeout or bad URL is classified as before."""
    import httpx

    from agent.notify import http
    from agent.notify.base import Outcome

    assert set(http.transport_errors()) == set(http.TRANSPORT_ERRORS) >= {httpx.HTTPError, httpx.InvalidURL}
    timed_out = http.transport_failure(httpx.ConnectTimeout("slow"), what="am a", timeout=2)
    assert (timed_out.outcome, timed_out.detail, timed_out.timed_out) == (Outcome.RETRY, "am a: no answer within 2s", True)
    bad = http.transport_failure(httpx.UnsupportedProtocol("ftp://x"), what="am a", timeout=2)
    assert (bad.outcome, bad.detail) == (Outcome.FAILED, "am a: invalid URL (UnsupportedProtocol)")
    with pytest.raises(AttributeError):
        _ = http.NO_SUCH_NAME


#: the config `sre-agent check` loads; `fresh()` imports agent.daemon, which loads aiohttp, so these run without it
AIOHTTP_FREE = """\
agent: {listen: 127.0.0.1:0, state_dir: STATE}
checks:
  - {name: web, type: http, url: "http://127.0.0.1:9/", timeout: 2s}
alerting:
  route: {receiver: hook}
  receivers:
    - {name: hook, webhook: {url: "http://127.0.0.1:9/hook", headers: {Authorization: Bearer not-a-secret}}}
    - {name: chat, slack: {webhook_url: "http://127.0.0.1:9/services/T0/B0/secret"}}
    - {name: pd, pagerduty: {routing_key: 0123456789abcdef0123456789abcdef, url: "http://127.0.0.1:9/v2/enqueue"}}
"""

#: load `CONFIG` and build its receivers as `sre-agent check` / the engine do, without the daemon
LOAD_ONLY = """\
import asyncio, json, sys
from agent.alerting.engine import build_receiver
from agent.config import load_config
from agent.core import Alert, AlertState, Severity, Status
from agent.notify.base import Notification
from agent.notify.http import transport_errors

def aiohttp_loaded():
    return sorted(m for m in sys.modules if m.partition(".")[0] == "aiohttp")

config = load_config(CONFIG)
receivers = {r.name: build_receiver(r) for r in config.alerting.receivers}
out = {"checks": [c.name for c in config.all_checks()], "receivers": sorted(receivers),
       "errors": sorted(e.__module__ + "." + e.__qualname__ for e in transport_errors()),
       "configured": aiohttp_loaded()}
"""


def lean(config: Path, code: str = "") -> dict[str, object]:
    """Run LOAD_ONLY + `code` in a new interpreter (no agent.daemon); `out` as JSON."""
    return _run(f"CONFIG = {str(config)!r}\n" + LOAD_ONLY + textwrap.dedent(code) + "\nprint(json.dumps(out))\n")


def test_loading_a_config_with_aiohttp_receivers_does_not_import_aiohttp(tmp_path: Path) -> None:
    out = lean(write(tmp_path, AIOHTTP_FREE))
    assert out["checks"] == ["web"] and out["receivers"] == ["chat", "hook", "pd"]
    assert out["configured"] == [], f"imported by loading the config: {out['configured']}"
    assert out["errors"] == ["builtins.OSError", "builtins.TimeoutError"]   # no aiohttp exception can exist yet


def test_sre_agent_check_does_not_import_aiohttp(tmp_path: Path) -> None:
    """The CLI in a fresh interpreter; `-X importtime` names every module it imports, on stderr."""
    config = write(tmp_path, AIOHTTP_FREE)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)}
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "agent.cli", "check", "-c", str(config), "web"],
                          capture_output=True, text=True, timeout=120, cwd=ROOT, env=env)
    assert proc.returncode == 2, proc.stdout + proc.stderr   # CRITICAL: 127.0.0.1:9 refuses
    assert "CRITICAL" in proc.stdout and "connection refused" in proc.stdout
    imported = [line.rpartition("|")[2].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")]
    assert "agent.cli" in imported and "checks._http1" in imported
    assert [m for m in imported if m.partition(".")[0] == "aiohttp"] == []


def test_a_webhook_send_imports_aiohttp_and_classifies_as_before(tmp_path: Path) -> None:
    code = """
    async def send():
        receiver = receivers["hook"]
        alert = Alert(check="web", type="http", state=AlertState.FIRING, severity=Severity.CRITICAL, summary="down",
                      dedup_key="web:down", status=Status.CRITICAL, starts_at=1_700_000_000.0)
        notification = Notification(receiver="hook", group_key="{}", group_labels={}, alerts=[alert],
                                    idempotency_key="n-1", created_at=1_700_000_000.0, kind="firing")
        try:
            return await receiver.send(notification)
        finally:
            await receiver.close()

    delivery = asyncio.run(send())
    out["delivery"] = [delivery.outcome.value, delivery.detail, delivery.timed_out]
    out["used"] = "aiohttp" in sys.modules
    out["errors_after"] = sorted(e.__qualname__ for e in transport_errors())
    """
    out = lean(write(tmp_path, AIOHTTP_FREE), code)
    assert out["configured"] == []
    assert out["used"] is True
    delivery = out["delivery"]
    assert isinstance(delivery, list)
    outcome, detail, timed_out = delivery
    assert (outcome, timed_out) == ("retry", False)
    assert detail.startswith("webhook hook: ClientConnectorError: Cannot connect to host 127.0.0.1:9")
    assert "not-a-secret" not in detail
    assert out["errors_after"] == ["ClientError", "OSError", "TimeoutError"]


def test_transport_errors_name_aiohttp_once_it_is_loaded() -> None:
    """In this process aiohttp is loaded: its classes are in the tuples and classified as before."""
    import aiohttp

    from agent.notify import http

    assert aiohttp.ClientError in http.transport_errors()
    assert set(http._BASE_TRANSPORT_ERRORS) == {aiohttp.ClientError, TimeoutError, OSError}
    assert aiohttp.ClientError in http.TRANSPORT_ERRORS
    timed_out = http.transport_failure(aiohttp.ServerTimeoutError("slow"), what="webhook w", timeout=2)
    assert (timed_out.outcome, timed_out.detail, timed_out.timed_out) == (Outcome.RETRY,
                                                                          "webhook w: no answer within 2s", True)
    for exc in (aiohttp.InvalidURL("http://[x"), aiohttp.NonHttpUrlClientError("ftp://x")):
        bad = http.transport_failure(exc, what="webhook w", timeout=2)
        assert (bad.outcome, bad.detail) == (Outcome.FAILED, f"webhook w: invalid URL ({type(exc).__name__})")
    refused = http.transport_failure(aiohttp.ServerDisconnectedError(), what="webhook w", timeout=2)
    assert (refused.outcome, refused.detail) == (Outcome.RETRY, "webhook w: ServerDisconnectedError: Server disconnected")
