"""Secrets that still leaked (issue 14 item 16 a, d, e, f, g): each through the path a user sees.

b, c and the receiver side of d (echoed by a failing receiver into the log
and the outbox) are in tests/alerting/test_secret_leaks.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Literal

import pytest
from aiohttp import web

from agent.config import ConfigError, load_config
from agent.context import CheckContext
from agent.core import CheckResult, Status
from agent.runner import build_checks, execute
from agent.secrets import REDACTOR
from checks.base import Check, CheckConfig
from checks.http import HttpCheck


def pieces(secret: str, size: int = 12) -> list[str]:
    """Every `size`-character slice: none may appear, or part of the secret leaked."""
    return [secret[i:i + size] for i in range(len(secret) - size + 1)]


def leaked(secret: str, text: str) -> list[str]:
    return [p for p in pieces(secret) if p in text]


@pytest.fixture
async def echo_server() -> AsyncIterator[str]:
    """Answers every request with its headers as JSON (like httpbin's /headers)."""

    async def headers(request: web.Request) -> web.Response:
        return web.json_response({"headers": dict(request.headers)})

    app = web.Application()
    app.router.add_get("/headers", headers)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    await runner.cleanup()


def _config(tmp_path: Path, text: str, env: dict[str, str] | None = None):
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return load_config(path, env=env or {})


async def _run_all(config) -> list[CheckResult]:  # type: ignore[no-untyped-def]
    context = CheckContext(config=config)
    try:
        return [await execute(check) for check in build_checks(config, context)]
    finally:
        await HttpCheck.close_shared(context)


# --- a. redact before truncating -------------------------------------------------------

LONG_TOKEN = "lt-" + "".join(f"{i:02d}x" for i in range(33)) + "Zz"  # 104 characters


async def test_a_long_bearer_token_echoed_into_a_json_mismatch_is_redacted_whole(tmp_path, echo_server):
    config = _config(tmp_path, f"""
checks:
  - name: api
    type: http
    url: "{echo_server}/headers"
    timeout: 2s
    headers: {{Authorization: "Bearer ${{API_TOKEN}}"}}
    expect: {{json: {{headers.Authorization: "something else"}}}}
""", env={"API_TOKEN": LONG_TOKEN})
    [result] = await _run_all(config)
    assert result.status is Status.CRITICAL
    assert "JSON headers.Authorization is " in result.summary
    text = result.summary + json.dumps(result.to_dict())
    assert leaked(LONG_TOKEN, text) == [], text


class _Cfg(CheckConfig):
    type: Literal["fake"] = "fake"


class _RaisesWithTokenAtTheCut(Check):
    async def run(self) -> CheckResult:
        raise RuntimeError("x" * 280 + " token " + LONG_TOKEN)


async def test_an_exception_is_redacted_before_the_runner_cuts_it() -> None:
    REDACTOR.add(LONG_TOKEN)
    result = await execute(_RaisesWithTokenAtTheCut(_Cfg(name="boom", timeout="1s", interval="1s"), CheckContext()))
    assert result.status is Status.UNKNOWN and result.summary.startswith("check raised RuntimeError: xxx")
    assert leaked(LONG_TOKEN, result.summary) == [], result.summary


# --- d. escaped forms --------------------------------------------------------------------

def test_bytes_and_escaped_reprs_of_a_secret_are_redacted() -> None:
    secret = "pässwörd-ünï-4471"
    REDACTOR.add(secret + "\n")  # an env value or file read the way it was written
    for text in (f"Illegal header value {('Bearer ' + secret + chr(10)).encode()!r}",
                 f"value {secret!r}", json.dumps({"v": secret}), json.dumps({"v": secret + "\n"})):
        clean = REDACTOR.redact(text)
        assert "ssw" not in clean and "4471" not in clean, clean


def test_env_values_lose_their_trailing_newline(tmp_path: Path) -> None:
    config = _config(tmp_path, 'checks:\n  - {name: a, type: http, url: "http://127.0.0.1:1/",'
                               ' headers: {X-Token: "${TOK}"}}\n', env={"TOK": "from-file-token-3391\r\n"})
    assert config.all_checks()[0].headers == {"X-Token": "from-file-token-3391"}  # type: ignore[attr-defined]


# --- e. perfdata labels ---------------------------------------------------------------

async def test_a_secret_perfdata_label_is_redacted_before_it_becomes_a_name(tmp_path: Path) -> None:
    secret = "QaPerf-Label-Secret-8842"
    config = _config(tmp_path, """
checks:
  - name: plugin
    type: command
    timeout: 5s
    command: ["sh", "-c", "echo \\"OK | '${PLUGIN_KEY}'=1;;;; used=3\\""]
""", env={"PLUGIN_KEY": secret})
    [result] = await _run_all(config)
    assert result.status is Status.OK, result.summary
    assert result.observations.get("used") == 3.0
    names = " ".join(result.observations)
    assert "qaperf" not in names.lower() and "8842" not in names, names
    assert secret not in json.dumps(result.to_dict())


# --- f. http-check header values --------------------------------------------------------

INLINE_KEY = "inline-api-key-6612-value"


def test_list_json_hides_inline_header_values(tmp_path: Path) -> None:
    p = tmp_path / "c.yaml"
    p.write_text("checks:\n  - name: api\n    type: http\n    url: 'http://127.0.0.1:1/x'\n"
                 f"    headers: {{X-Api-Key: {INLINE_KEY}, Authorization: 'Bearer {INLINE_KEY}-2',"
                 " Accept: application/json}\n")
    proc = subprocess.run([sys.executable, "-m", "agent.cli", "list", "-c", str(p), "-o", "json"],
                          capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr
    assert INLINE_KEY not in proc.stdout, proc.stdout
    [check] = json.loads(proc.stdout)
    assert check["headers"] == {"X-Api-Key": "<redacted>", "Authorization": "Bearer <redacted>",
                                "Accept": "application/json"}  # content negotiation stays readable


async def test_inline_header_values_stay_out_of_json_mismatch_summaries(tmp_path, echo_server):
    config = _config(tmp_path, f"""
checks:
  - name: api
    type: http
    url: "{echo_server}/headers"
    timeout: 2s
    headers: {{X-Api-Key: {INLINE_KEY}-3}}
    expect: {{json: {{headers.X-Api-Key: "expected"}}}}
""")
    [result] = await _run_all(config)
    assert result.status is Status.CRITICAL
    assert "JSON headers.X-Api-Key is '\"<redacted>\"'" in result.summary, result.summary
    assert f"{INLINE_KEY}-3" not in json.dumps(result.to_dict())


# --- g. a receiver given as a bare string -----------------------------------------------

def test_a_bare_string_slack_receiver_is_an_error_without_the_url(tmp_path: Path) -> None:
    url = "https://hooks.slack.com/services/T0BARE/B0BARE/b4reStr1ngT0ken"
    with pytest.raises(ConfigError) as exc:
        _config(tmp_path, f"""
checks:
  - {{name: a, type: tcp, host: 127.0.0.1, port: 1}}
alerting:
  route: {{receiver: chat}}
  receivers:
    - {{name: chat, slack: "{url}"}}
""")
    [issue] = exc.value.issues
    assert issue.path == "alerting.receivers[0].slack"
    assert "must be a mapping" in issue.message and "webhook_url" in issue.message
    assert "b4reStr1ngT0ken" not in str(exc.value) and "hooks.slack.com" not in str(exc.value)
