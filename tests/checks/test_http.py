"""The http check against real aiohttp servers on 127.0.0.1 (plain and TLS)."""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import time
from pathlib import Path

import pytest
from aiohttp import web

from agent.config import ConfigError, load_config
from agent.context import CheckContext
from agent.core import Status
from checks.http import SESSION_KEY, HttpCheck, HttpConfig
from tests.checks.certs import Issued, make_ca, make_leaf, server_context


def _app() -> web.Application:
    async def healthz(_r: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def status(r: web.Request) -> web.Response:
        return web.Response(status=int(r.match_info["code"]), text="status")

    async def data(_r: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "data": {"items": [{"id": 3}, {"id": 4}]}, "flag": True})

    async def slow(r: web.Request) -> web.Response:
        await asyncio.sleep(float(r.query.get("s", "0.2")))
        return web.Response(text="ok")

    async def redirect(_r: web.Request) -> web.Response:
        raise web.HTTPFound("/healthz")

    async def loop(_r: web.Request) -> web.Response:
        raise web.HTTPFound("/loop")

    async def big(_r: web.Request) -> web.Response:
        return web.Response(body=b"x" * (2 << 20))

    async def echo(r: web.Request) -> web.Response:
        body = await r.text()
        return web.Response(status=401, text=f"{r.method} {body} auth={r.headers.get('Authorization')}",
                            headers={"X-Echo": r.headers.get("Authorization", "")})

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/status/{code}", status)
    app.router.add_get("/json", data)
    app.router.add_get("/slow", slow)
    app.router.add_get("/redirect", redirect)
    app.router.add_get("/loop", loop)
    app.router.add_get("/big", big)
    app.router.add_route("*", "/echo", echo)
    return app


@pytest.fixture
async def serve():
    runners: list[web.AppRunner] = []

    async def start(ssl_context: ssl.SSLContext | None = None) -> int:
        runner = web.AppRunner(_app(), handle_signals=False, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context).start()
        runners.append(runner)
        return int(runner.addresses[0][1])

    yield start
    for runner in runners:
        await runner.cleanup()


@pytest.fixture
async def ctx():
    context = CheckContext()
    yield context
    await HttpCheck.close_shared(context)


@pytest.fixture
async def base(serve) -> str:
    return f"http://127.0.0.1:{await serve()}"


def make(ctx: CheckContext, url: str, **kw) -> HttpCheck:
    kw.setdefault("timeout", "2s")
    return HttpCheck(HttpConfig(name="t", type="http", url=url, **kw), ctx)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_ok_reports_phases_and_summary(ctx, base):
    result = await make(ctx, f"{base}/healthz", expect={"status": [200], "body_contains": "ok"}).run()
    assert result.status is Status.OK, result.summary
    assert result.summary.startswith("HTTP 200 in ")
    obs = result.observations
    assert obs["status_code"] == 200 and obs["body_bytes"] == 2
    assert 0 < obs["connect_seconds"] <= obs["first_byte_seconds"] <= obs["latency_seconds"] < 2
    assert "tls_seconds" not in obs and "cert_expiry_days" not in obs
    assert "dns_seconds" not in obs  # an IP literal is not resolved


async def test_host_name_is_resolved_and_timed(ctx, base):
    url = base.replace("127.0.0.1", "localhost")
    result = await make(ctx, f"{url}/healthz").run()
    assert result.status is Status.OK, result.summary
    assert result.observations["dns_seconds"] >= 0


async def test_unexpected_status_is_critical(ctx, base):
    result = await make(ctx, f"{base}/status/503", expect={"status": [200]}).run()
    assert result.status is Status.CRITICAL
    assert result.summary == "HTTP 503 (expected 200)"
    assert result.observations["status_code"] == 503


async def test_default_accepts_200_to_399_only(ctx, base):
    assert (await make(ctx, f"{base}/status/204").run()).status is Status.OK
    result = await make(ctx, f"{base}/status/404").run()
    assert result.status is Status.CRITICAL and result.summary == "HTTP 404 (expected 200-399)"


async def test_status_classes(ctx, base):
    assert (await make(ctx, f"{base}/status/201", expect={"status": ["2xx"]}).run()).status is Status.OK
    result = await make(ctx, f"{base}/status/500", expect={"status": [200, "3xx"]}).run()
    assert result.summary == "HTTP 500 (expected 200 or 3xx)"


async def test_body_contains_mismatch(ctx, base):
    result = await make(ctx, f"{base}/status/200", expect={"body_contains": "ok"}).run()
    assert result.status is Status.CRITICAL
    assert "body does not contain 'ok'" in result.summary
    assert result.summary.startswith("HTTP 200 in ")


async def test_body_regex(ctx, base):
    assert (await make(ctx, f"{base}/json", expect={"body_regex": r'"id":\s*3'}).run()).status is Status.OK
    result = await make(ctx, f"{base}/json", expect={"body_regex": r"^down$"}).run()
    assert result.status is Status.CRITICAL and "body does not match /^down$/" in result.summary


async def test_json_paths(ctx, base):
    ok = await make(ctx, f"{base}/json", expect={"json": {"$.status": "ok", "data.items[0].id": 3,
                                                         "$.data.items[-1].id": "4", "flag": True}}).run()
    assert ok.status is Status.OK, ok.summary
    bad = await make(ctx, f"{base}/json", expect={"json": {"data.items[0].id": 4, "$.missing.x": 1}}).run()
    assert bad.status is Status.CRITICAL
    assert "JSON data.items[0].id is '3' (expected '4')" in bad.summary
    assert "JSON path $.missing.x not found" in bad.summary
    not_json = await make(ctx, f"{base}/healthz", expect={"json": {"status": "ok"}}).run()
    assert "body is not valid JSON" in not_json.summary
    assert (await make(ctx, f"{base}/json", expect={"json": {"flag": 1}}).run()).status is Status.CRITICAL


async def test_expected_response_headers(ctx, base):
    ok = await make(ctx, f"{base}/json", expect={"headers": {"content-type": "application/json"}}).run()
    assert ok.status is Status.OK, ok.summary
    bad = await make(ctx, f"{base}/json", expect={"headers": {"X-Missing": "a", "Content-Type": "text/html"}}).run()
    assert "response header X-Missing is missing" in bad.summary
    assert "response header Content-Type does not contain the expected value" in bad.summary


async def test_latency_thresholds(ctx, base):
    warn = await make(ctx, f"{base}/slow?s=0.15", latency={"warning": "50ms", "critical": "5s"}).run()
    assert warn.status is Status.WARNING, warn.summary
    assert "over warning threshold 50ms" in warn.summary
    crit = await make(ctx, f"{base}/slow?s=0.15", latency={"warning": "10ms", "critical": "100ms"}).run()
    assert crit.status is Status.CRITICAL and "over critical threshold 100ms" in crit.summary
    fast = await make(ctx, f"{base}/healthz", latency={"warning": "1s"}).run()
    assert fast.status is Status.OK


async def test_connection_refused(ctx):
    result = await make(ctx, f"http://127.0.0.1:{free_port()}/").run()
    assert result.status is Status.CRITICAL
    assert result.summary == "connection refused"


async def test_server_that_never_answers_times_out_fast(ctx):
    loop = asyncio.get_running_loop()
    server = await loop.create_server(asyncio.Protocol, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        started = time.perf_counter()
        result = await make(ctx, f"http://127.0.0.1:{port}/", timeout="300ms").run()
        assert time.perf_counter() - started < 1.5
    finally:
        server.close()
        await server.wait_closed()
    assert result.status is Status.CRITICAL
    assert result.summary == "timed out after 300ms waiting for the response"
    assert "connect_seconds" in result.observations


async def test_slow_handler_times_out(ctx, base):
    result = await make(ctx, f"{base}/slow?s=1", timeout="300ms").run()
    assert result.status is Status.CRITICAL and result.summary.startswith("timed out after 300ms")


async def test_redirects_followed_or_not(ctx, base):
    followed = await make(ctx, f"{base}/redirect", expect={"status": [200], "body_contains": "ok"}).run()
    assert followed.status is Status.OK, followed.summary
    assert followed.details["redirects"] == 1
    assert followed.details["final_url"].endswith("/healthz")
    kept = await make(ctx, f"{base}/redirect", follow_redirects=False, expect={"status": [200]}).run()
    assert kept.status is Status.CRITICAL and kept.summary == "HTTP 302 (expected 200)"
    default = await make(ctx, f"{base}/redirect", follow_redirects=False).run()
    assert default.status is Status.OK  # 3xx passes by default


async def test_redirect_loop(ctx, base):
    result = await make(ctx, f"{base}/loop", max_redirects=3).run()
    assert result.status is Status.CRITICAL and result.summary == "too many redirects (more than 3)"


async def test_body_read_is_bounded(ctx, base):
    result = await make(ctx, f"{base}/big", expect={"body_contains": "never"}).run()
    assert result.observations["body_bytes"] == 1 << 20
    assert result.details["body_truncated"] is True
    assert "(first 1 MiB read)" in result.summary


async def test_method_and_body_are_sent(ctx, base):
    result = await make(ctx, f"{base}/echo", method="post", body="ping-123",
                        expect={"status": [401], "body_contains": "POST ping-123"}).run()
    assert result.status is Status.OK, result.summary


async def test_one_shared_session_per_context_for_what_the_lean_path_does_not_send(ctx, base):
    plain = make(ctx, f"{base}/healthz")
    assert (await plain.run()).status is Status.OK and SESSION_KEY not in ctx.shared  # GET: the lean path
    with_auth = base.replace("http://", "http://user:pw@")  # credentials in the URL: aiohttp's session
    a, b = make(ctx, f"{with_auth}/healthz"), make(ctx, f"{with_auth}/json")
    await a.run()
    _, session = ctx.shared[SESSION_KEY]
    await b.run()
    assert ctx.shared[SESSION_KEY][1] is session
    await HttpCheck.close_shared(ctx)
    assert session.closed and SESSION_KEY not in ctx.shared
    assert (await a.run()).status is Status.OK  # a new session after close
    assert ctx.shared[SESSION_KEY][1] is not session


# --- TLS -------------------------------------------------------------------


@pytest.fixture
def ca(tmp_path: Path) -> Issued:
    return make_ca(tmp_path)


async def test_https_ok_with_timings_and_expiry(ctx, serve, ca, tmp_path):
    port = await serve(server_context(make_leaf(tmp_path, ca, days=90)))
    result = await make(ctx, f"https://127.0.0.1:{port}/healthz", tls={"ca_file": str(ca.cert_file)},
                        cert_expiry={"warning": "21d", "critical": "7d"}).run()
    assert result.status is Status.OK, result.summary
    obs = result.observations
    assert obs["tls_seconds"] > 0 and obs["connect_seconds"] > 0
    assert 89 < obs["cert_expiry_days"] <= 90
    assert result.details["certificate"]["subject"] == "CN=localhost"


async def test_https_expiring_soon_warns(ctx, serve, ca, tmp_path):
    port = await serve(server_context(make_leaf(tmp_path, ca, days=5)))
    result = await make(ctx, f"https://127.0.0.1:{port}/healthz", tls={"ca_file": str(ca.cert_file)},
                        cert_expiry={"warning": "21d", "critical": "2d"}).run()
    assert result.status is Status.WARNING, result.summary
    assert "certificate expires in 5 days" in result.summary
    assert 4.9 < result.observations["cert_expiry_days"] <= 5


async def test_https_chain_expiry_uses_earliest(ctx, serve, tmp_path):
    ca = make_ca(tmp_path, "Short CA", days=10)
    port = await serve(server_context(make_leaf(tmp_path, ca, days=300), chain=(ca,)))
    result = await make(ctx, f"https://127.0.0.1:{port}/healthz", tls={"ca_file": str(ca.cert_file)},
                        cert_expiry={"warning": "21d"}).run()
    assert result.status is Status.WARNING, result.summary
    assert "certificate CN=Short CA in the chain expires in 10 days" in result.summary
    assert 9.9 < result.observations["cert_expiry_days"] <= 10


async def test_https_expired_is_critical_with_negative_days(ctx, serve, ca, tmp_path):
    port = await serve(server_context(make_leaf(tmp_path, ca, expired_days_ago=3)))
    verified = await make(ctx, f"https://127.0.0.1:{port}/healthz", tls={"ca_file": str(ca.cert_file)}).run()
    assert verified.status is Status.CRITICAL
    assert "certificate has expired" in verified.summary
    assert "certificate expired 3 days ago" in verified.summary
    assert -3.1 < verified.observations["cert_expiry_days"] < -2.9
    unverified = await make(ctx, f"https://127.0.0.1:{port}/healthz", tls={"verify": False}).run()
    assert unverified.status is Status.CRITICAL
    assert unverified.summary.startswith("HTTP 200 in ")
    assert "certificate expired 3 days ago" in unverified.summary


async def test_https_hostname_mismatch(ctx, serve, ca, tmp_path):
    port = await serve(server_context(make_leaf(tmp_path, ca, "other.example", sans=("other.example",))))
    result = await make(ctx, f"https://127.0.0.1:{port}/healthz", tls={"ca_file": str(ca.cert_file)}).run()
    assert result.status is Status.CRITICAL
    assert "TLS certificate verification failed" in result.summary and "mismatch" in result.summary


async def test_https_untrusted_ca(ctx, serve, ca, tmp_path):
    port = await serve(server_context(make_leaf(tmp_path, ca)))
    result = await make(ctx, f"https://127.0.0.1:{port}/healthz").run()
    assert result.status is Status.CRITICAL
    assert "TLS certificate verification failed" in result.summary


async def test_client_certificate(ctx, serve, ca, tmp_path):
    port = await serve(server_context(make_leaf(tmp_path, ca), client_ca=ca))
    url = f"https://127.0.0.1:{port}/healthz"
    without = await make(ctx, url, tls={"ca_file": str(ca.cert_file)}).run()
    assert without.status is Status.CRITICAL
    client = make_leaf(tmp_path, ca, "probe", sans=(), client=True)
    tls = {"ca_file": str(ca.cert_file), "cert_file": str(client.cert_file), "key_file": str(client.key_file)}
    with_cert = await make(ctx, url, tls=tls).run()
    assert with_cert.status is Status.OK, with_cert.summary


async def test_missing_client_cert_file_is_unknown(ctx, base, tmp_path):
    result = await make(ctx, f"{base}/healthz", tls={"cert_file": str(tmp_path / "nope.pem")}).run()
    assert result.status is Status.UNKNOWN and "cannot load TLS files" in result.summary


# --- secrets and config ----------------------------------------------------

SECRET = "s3cr3t-token-value"


def _load(tmp_path: Path, text: str, env: dict[str, str] | None = None):
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return load_config(path, env=env or {})


async def test_secrets_never_in_summary_or_details(ctx, base, tmp_path):
    config = _load(tmp_path, f"""
checks:
  - name: api
    type: http
    url: "{base}/echo?token=${{API_TOKEN}}"
    timeout: 2s
    headers: {{Authorization: "Bearer ${{API_TOKEN}}"}}
    expect: {{status: [200], body_contains: "${{API_TOKEN}}-nope"}}
  - name: api-body
    type: http
    url: "{base}/echo?token=${{API_TOKEN}}"
    headers: {{Authorization: "Bearer ${{API_TOKEN}}"}}
    expect: {{status: [401], body_contains: "${{API_TOKEN}}-nope"}}
  - name: api-down
    type: http
    url: "http://127.0.0.1:{free_port()}/?token=${{API_TOKEN}}"
""", env={"API_TOKEN": SECRET})
    results = [await HttpCheck(c, ctx).run() for c in config.all_checks()]
    assert [r.status for r in results] == [Status.CRITICAL] * 3
    assert "body does not contain '<redacted>-nope'" in results[1].summary
    for r in results:
        text = r.summary + json.dumps(r.details)
        assert SECRET not in text, text
        assert "Bearer" not in text


@pytest.mark.parametrize(("snippet", "path", "words"), [
    ("url: example.com/healthz", "checks[0].url", "http:// or https://"),
    ("url: ftp://example.com/", "checks[0].url", "http:// or https://"),
    ("url: http://x\n    expect: {body_regex: '(unclosed'}", "checks[0].expect.body_regex", "invalid regular expression"),
    ("url: http://x\n    expect: {status: [700]}", "checks[0].expect.status", "100-599"),
    ("url: http://x\n    expect: {status: [abc]}", "checks[0].expect.status", "'2xx'"),
    ("url: http://x\n    expect: {json: {'a..b': 1}}", "checks[0].expect.json", "invalid JSON path"),
    ("url: http://x\n    method: FETCH", "checks[0].method", "'GET'"),
    ("url: http://x\n    tls: {key_file: k.pem}", "checks[0].tls", "key_file needs cert_file"),
    ("url: http://x\n    expect: {bogus: 1}", "checks[0].expect.bogus", "unknown key"),
])
def test_config_errors_name_the_field(tmp_path, snippet, path, words):
    with pytest.raises(ConfigError) as err:
        _load(tmp_path, f"checks:\n  - name: api\n    type: http\n    {snippet}\n")
    text = str(err.value)
    assert f"{path}:" in text and words in text, text


def test_config_from_yaml_has_defaults(tmp_path):
    config = _load(tmp_path, """
checks:
  - name: api
    type: http
    url: http://127.0.0.1:8080/healthz
    expect: {status: 200, json: {"$.status": ok}}
    latency: {warning: 500ms, critical: 2s}
""")
    check = config.all_checks()[0]
    assert isinstance(check, HttpConfig)
    assert check.expect.status == [200] and check.timeout is not None and check.max_redirects == 10
