"""HTTP(S) probe: one request per run, timed phase by phase, asserted against `expect`.

The hot path of most configs, so it must be cheap: one aiohttp `ClientSession`
per event loop is shared by every http check (`context.shared["http.session"]`)
and TLS contexts come from `CheckContext.ssl_context` (built once). Its
connector closes each connection after use, so every probe measures a fresh
DNS lookup, TCP connect and TLS handshake, as a new client would see them.
aiohttp's trace hooks time the phases; `_tlsinfo.RecordingSSLObject` splits
connect from handshake and keeps the served chain, even when verification
fails, so an expired certificate still yields its negative `cert_expiry_days`.
"""

from __future__ import annotations

import asyncio
import functools
import json
import re
import ssl
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BeforeValidator, Field, ValidationInfo, field_validator

from agent import __version__
from agent.context import CheckContext
from agent.core import CheckResult, Status
from agent.durations import human
from agent.secrets import SecretHeaders, clip, redact
from checks import _http1, _tlsinfo
from checks.base import Check, CheckConfig, DurationThresholds, Model, named_levels
from checks.tcp import connect_error, latency_finding, seconds_text

if TYPE_CHECKING:
    import aiohttp

SESSION_KEY = "http.session"
MAX_BODY = 1 << 20
USER_AGENT = f"sre-agent/{__version__}"
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_STATUS_CLASS = re.compile(r"^[1-5]xx$")
_PATH_PART = re.compile(r"\.?([^.\[\]]+)|\[(-?\d+)\]")
_MISSING = object()


def parse_json_path(path: str) -> tuple[str | int, ...]:
    """`$.data.items[0].id` or `data.items[0].id` -> ("data", "items", 0, "id")."""
    text = path[1:] if path.startswith("$") else path
    parts: list[str | int] = []
    pos = 0
    while pos < len(text):
        m = _PATH_PART.match(text, pos)
        if m is None or (m.group(1) is not None and pos > 0 and text[pos] != "."):
            raise ValueError(f"invalid JSON path {path!r}: use dotted names and [index], e.g. $.data.items[0].id")
        parts.append(m.group(1) if m.group(1) is not None else int(m.group(2)))
        pos = m.end()
    if not parts:
        raise ValueError(f"invalid JSON path {path!r}: it selects nothing; e.g. $.status")
    return tuple(parts)


def _lookup(doc: Any, path: tuple[str | int, ...]) -> Any:
    for part in path:
        if isinstance(part, int) and isinstance(doc, list) and -len(doc) <= part < len(doc):
            doc = doc[part]
        elif isinstance(part, str) and isinstance(doc, dict) and part in doc:
            doc = doc[part]
        else:
            return _MISSING
    return doc


def _same(actual: Any, expected: Any) -> bool:
    if isinstance(actual, bool) != isinstance(expected, bool) and not isinstance(expected, str):
        return False
    if actual == expected:
        return True
    # `${ENV}` values and quoted YAML are strings: "3" matches 3, "true" matches true
    return isinstance(expected, str) and not isinstance(actual, str | list | dict) and json.dumps(actual) == expected


class HttpExpect(Model):
    """What a passing response looks like."""

    status: list[int | str] | None = Field(default=None, description="accepted codes (200) or classes ('2xx'); default 200-399")
    body_contains: str | None = None
    body_regex: str | None = Field(default=None, description="Python regular expression searched in the body")
    json_paths: dict[str, Any] | None = Field(default=None, alias="json", description="JSON path -> expected value")
    headers: dict[str, str] = Field(default_factory=dict, description="response header -> expected substring")

    @field_validator("status", mode="before")
    @classmethod
    def _status(cls, v: Any) -> Any:
        out: list[int | str] = []
        for item in v if isinstance(v, list) else [v] if v is not None else []:
            code = int(item) if isinstance(item, str) and item.strip().isdigit() else item
            if isinstance(code, int) and not isinstance(code, bool):
                if not 100 <= code <= 599:
                    raise ValueError(f"status {code} is out of range; use 100-599 or a class such as '2xx'")
                out.append(code)
            elif isinstance(code, str) and _STATUS_CLASS.match(code.strip().lower()):
                out.append(code.strip().lower())
            else:
                raise ValueError(f"invalid status {item!r}; use a code 100-599 or a class such as '2xx'")
        if v is not None and not out:
            raise ValueError("status must list at least one code, e.g. [200]")
        return out or None

    @field_validator("body_regex", "json_paths")
    @classmethod
    def _patterns(cls, v: Any, info: ValidationInfo) -> Any:
        if info.field_name == "json_paths":
            for path in v or {}:
                parse_json_path(path)
        elif v is not None:
            try:
                re.compile(v)
            except re.error as exc:
                raise ValueError(f"invalid regular expression {v!r}: {exc}") from None
        return v

    def status_ok(self, code: int) -> bool:
        if self.status is None:
            return 200 <= code <= 399
        return code in self.status or f"{code // 100}xx" in self.status

    def describe_status(self) -> str:
        if self.status is None:
            return "200-399"
        shown = [str(s) for s in self.status]
        return shown[0] if len(shown) == 1 else ", ".join(shown[:-1]) + " or " + shown[-1]


#: a response as the checks of `expect` read it (the lean path's type; the aiohttp path makes one too)
Response = _http1.Fetched


def _quote(text: str, limit: int = 60) -> str:
    return repr(clip(text, limit + 3))


def check_response(expect: HttpExpect, resp: Response) -> list[tuple[Status, str]]:
    """Findings (all CRITICAL) for a response that does not look as expected."""
    if not expect.status_ok(resp.status):
        return [(Status.CRITICAL, f"HTTP {resp.status} (expected {expect.describe_status()})")]
    out: list[str] = []
    for name, wanted in expect.headers.items():
        got = resp.headers.get(name)
        if got is None:
            out.append(f"response header {name} is missing")
        elif wanted not in got:
            out.append(f"response header {name} does not contain the expected value")  # values stay out
    text = resp.body.decode(resp.charset or "utf-8", errors="replace")
    cut = " (first 1 MiB read)" if resp.truncated else ""
    if expect.body_contains is not None and expect.body_contains not in text:
        out.append(f"body does not contain {_quote(expect.body_contains)}{cut}")
    if expect.body_regex is not None and re.search(expect.body_regex, text) is None:
        out.append(f"body does not match /{expect.body_regex}/{cut}")
    if expect.json_paths:
        try:
            doc = json.loads(text)
        except ValueError:
            out.append(f"body is not valid JSON{cut}")
        else:
            for path, wanted in expect.json_paths.items():
                got = _lookup(doc, parse_json_path(path))
                if got is _MISSING:
                    out.append(f"JSON path {path} not found")
                elif not _same(got, wanted):
                    out.append(f"JSON {path} is {_quote(json.dumps(got))} (expected {_quote(json.dumps(wanted))})")
    return [(Status.CRITICAL, m) for m in out]


class HttpConfig(CheckConfig):
    type: Literal["http"]
    url: str = Field(description="http:// or https:// URL to request")
    method: Annotated[Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
                      BeforeValidator(lambda v: v.upper() if isinstance(v, str) else v)] = "GET"
    headers: SecretHeaders = Field(default_factory=dict, description="request headers (values are secret, e.g. ${ENV})")
    body: str | None = Field(default=None, description="request body")
    expect: HttpExpect = Field(default_factory=HttpExpect)
    latency: DurationThresholds | None = Field(default=None, description="total request time thresholds")
    cert_expiry: DurationThresholds | None = Field(
        default=None, description="https: time left on the served chain; unset = only an expired certificate fails")
    follow_redirects: bool = True
    max_redirects: int = Field(default=10, ge=1, le=100)
    tls: _tlsinfo.TlsOptions = Field(default_factory=_tlsinfo.TlsOptions)

    def observation_thresholds(self) -> dict[str, dict[str, float]]:
        return named_levels(latency_seconds=self.latency.levels() if self.latency else {},
                            cert_expiry_days=self.cert_expiry.levels(timedelta(days=1)) if self.cert_expiry else {})

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        scheme, sep, rest = v.partition("://")
        if not sep or scheme.lower() not in ("http", "https"):
            raise ValueError(f"url must start with http:// or https://, got {redact(v)!r}")
        if not rest or rest[0] in "/?#":
            raise ValueError(f"url has no host: {redact(v)!r}")
        return v

    @field_validator("headers")
    @classmethod
    def _headers(cls, v: dict[str, str]) -> dict[str, str]:
        bad = [name for name in v if not _HEADER_NAME.match(name)]
        if bad:
            raise ValueError(f"invalid header name {bad[0]!r}: use letters, digits and -")
        return v


@dataclass
class _Probe:
    """Timings of one run, filled by the trace hooks and the handshake recorder."""

    started: float = field(default_factory=time.perf_counter)
    phase: str = "connecting"
    dns_seconds: float | None = None
    connect_seconds: float | None = None
    tls_seconds: float | None = None
    first_byte_seconds: float | None = None
    redirects: int = 0
    handshake: _tlsinfo.HandshakeRecord = field(default_factory=_tlsinfo.HandshakeRecord)
    _at: dict[str, float] = field(default_factory=dict)

    def on(self, event: str) -> None:
        """One trace event; durations add up over redirect hops."""
        now = time.perf_counter()
        if event == "dns_start":
            self._at["dns"], self.phase = now, "resolving the host"
        elif event == "dns_end":
            self.dns_seconds = (self.dns_seconds or 0.0) + now - self._at["dns"]
        elif event == "connect_start":
            self._at["connect"], self.phase, self.handshake.started = now, "connecting", None
        elif event == "connect_end":
            tls_at = self.handshake.started
            self.connect_seconds = (self.connect_seconds or 0.0) + (tls_at or now) - self._at["connect"]
            if tls_at is not None:
                self.tls_seconds = (self.tls_seconds or 0.0) + now - tls_at
            self.phase = "sending the request"
        elif event == "headers_sent":
            self.phase = "waiting for the response"
        elif event == "redirect":
            self.redirects += 1
        elif event == "request_end":
            self.first_byte_seconds, self.phase = now - self.started, "reading the body"

    @property
    def where(self) -> str:
        if self.phase == "connecting" and self.handshake.started is not None:
            return "during the TLS handshake"
        return self.phase


_EVENTS = {
    "on_dns_resolvehost_start": "dns_start", "on_dns_resolvehost_end": "dns_end",
    "on_connection_create_start": "connect_start", "on_connection_create_end": "connect_end",
    "on_request_headers_sent": "headers_sent", "on_request_redirect": "redirect", "on_request_end": "request_end",
}


async def _fire(event: str, _session: Any, ctx: Any, _params: Any) -> None:
    ctx.trace_request_ctx.on(event)


def _trace_config() -> aiohttp.TraceConfig:
    import aiohttp

    tc = aiohttp.TraceConfig()
    for signal, event in _EVENTS.items():
        getattr(tc, signal).append(functools.partial(_fire, event))
    return tc


async def shared_session(context: CheckContext) -> aiohttp.ClientSession:
    """The http type's session for the running loop, created on first use (probes `_http1` cannot make)."""
    import aiohttp

    loop = asyncio.get_running_loop()
    owner, session = context.shared.get(SESSION_KEY, (None, None))
    if owner is loop and session is not None and not session.closed:
        return session  # type: ignore[no-any-return]
    connector = aiohttp.TCPConnector(force_close=True, limit=0, use_dns_cache=False)
    session = aiohttp.ClientSession(
        connector=connector, trace_configs=[_trace_config()], cookie_jar=aiohttp.DummyCookieJar(),
        timeout=aiohttp.ClientTimeout(total=None), headers={"User-Agent": USER_AGENT},
    )
    context.shared[SESSION_KEY] = (loop, session)
    return session


async def close_session(context: CheckContext) -> None:
    """Close the shared session; the owner of the event loop calls this at shutdown."""
    owner, session = context.shared.pop(SESSION_KEY, (None, None))
    if session is not None and not session.closed and owner is asyncio.get_running_loop():
        await session.close()


def describe_error(exc: BaseException, max_redirects: int) -> str:
    """A short, secret-free sentence for a failed request."""
    import aiohttp

    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        cert_err = exc.certificate_error
        text = f"TLS certificate verification failed: {getattr(cert_err, 'verify_message', None) or cert_err}"
    elif isinstance(exc, aiohttp.ClientConnectorSSLError):
        text = f"TLS handshake failed: {getattr(exc.os_error, 'reason', None) or exc.os_error}"
    elif isinstance(exc, aiohttp.ClientConnectorDNSError):
        text = f"cannot resolve host {exc.host!r}"
    elif isinstance(exc, aiohttp.ClientConnectorError):
        text = connect_error(exc.os_error, exc.host)
    elif isinstance(exc, aiohttp.TooManyRedirects):
        text = f"too many redirects (more than {max_redirects})"
    elif isinstance(exc, aiohttp.ServerDisconnectedError):
        text = "server closed the connection without a complete response"
    elif isinstance(exc, aiohttp.ClientPayloadError):
        text = f"response body incomplete: {exc}"
    elif isinstance(exc, aiohttp.ClientResponseError):
        text = f"invalid HTTP response: {exc.message}"
    else:
        text = f"request failed: {type(exc).__name__}: {exc}"
    return redact(text)


class HttpCheck(Check):
    type = "http"
    runbooks = {
        "": "runbooks/http-endpoint-down.md",
        "latency": "runbooks/slow-api-responses.md",
        "tls": "runbooks/tls-certificate-expiring.md",
    }
    Config = HttpConfig
    timeout_status = Status.CRITICAL
    config: HttpConfig

    def __init__(self, config: HttpConfig, context: CheckContext) -> None:
        super().__init__(config, context)
        #: the lean path's prepared request, on the first run; False: this probe takes the aiohttp path
        self._lean: _http1.Target | bool | None = None

    @classmethod
    async def close_shared(cls, context: CheckContext) -> None:
        """Type-level teardown: closes the session every http check shares."""
        await close_session(context)

    async def run(self) -> CheckResult:
        cfg, tls = self.config, self.config.tls
        try:
            sslctx = _tlsinfo.recording(self.context.ssl_context(tls.verify, tls.ca_file, tls.cert_file, tls.key_file))
        except (OSError, ssl.SSLError) as exc:
            return self.result(Status.UNKNOWN, redact(f"cannot load TLS files: {exc}"), url=redact(cfg.url))
        probe = _Probe()
        token = _tlsinfo.RECORDING.set(probe.handshake)
        try:
            async with asyncio.timeout(self.timeout):
                return self._evaluate(probe, await self._request(probe, sslctx))
        except TimeoutError:
            return self._evaluate(probe, f"timed out after {seconds_text(self.timeout)} {probe.where}")
        except _http1.ProbeFailure as exc:
            return self._evaluate(probe, str(exc))
        except (OSError, ssl.SSLError) as exc:
            return self._evaluate(probe, describe_error(exc, cfg.max_redirects))
        finally:
            _tlsinfo.RECORDING.reset(token)

    async def _request(self, probe: _Probe, sslctx: ssl.SSLContext) -> Response:
        cfg = self.config
        target = self._lean
        if target is None:
            eligible = _http1.eligible(cfg.method, cfg.url, cfg.body)
            # kept: the same every run (a header that cannot be sent raises each time, as it should)
            target = self._lean = _http1.prepare(cfg.method, cfg.url, cfg.headers, USER_AGENT) if eligible else False
        if isinstance(target, _http1.Target):
            return await _http1.fetch(target, sslctx, probe.on, follow=cfg.follow_redirects,
                                      max_redirects=cfg.max_redirects, max_body=MAX_BODY)
        return await self._request_aiohttp(probe, sslctx)

    async def _request_aiohttp(self, probe: _Probe, sslctx: ssl.SSLContext) -> Response:
        """Requests the lean path does not make (a body, other methods, credentials in the URL)."""
        import aiohttp

        cfg = self.config
        session = await shared_session(self.context)
        try:
            async with session.request(
                cfg.method, cfg.url, headers=cfg.headers, data=cfg.body, ssl=sslctx,
                allow_redirects=cfg.follow_redirects, max_redirects=cfg.max_redirects, trace_request_ctx=probe,
            ) as resp:
                body = bytearray()
                while len(body) < MAX_BODY and (chunk := await resp.content.read(MAX_BODY - len(body))):
                    body += chunk
                return Response(status=resp.status, headers=resp.headers, body=bytes(body), charset=resp.charset,
                                truncated=len(body) >= MAX_BODY and not resp.content.at_eof(), url=str(resp.url))
        except aiohttp.ClientError as exc:
            raise _http1.ProbeFailure(describe_error(exc, cfg.max_redirects)) from None

    def _evaluate(self, probe: _Probe, outcome: Response | str) -> CheckResult:
        """A result from a response, or from the sentence saying why there is none."""
        cfg = self.config
        total = time.perf_counter() - probe.started
        obs = {"latency_seconds": total}
        for name in ("dns_seconds", "connect_seconds", "tls_seconds", "first_byte_seconds"):
            if (value := getattr(probe, name)) is not None:
                obs[name] = value
        details: dict[str, Any] = {"url": redact(cfg.url), "method": cfg.method, "redirects": probe.redirects}
        cert: tuple[Status, str] | None = None
        if probe.handshake.chain:
            chain = _tlsinfo.parse_chain(probe.handshake.chain)
            obs["cert_expiry_days"] = _tlsinfo.expiry_days(chain)
            details["certificate"] = chain[0].to_dict()
            cert = _tlsinfo.expiry_finding(chain, cfg.cert_expiry)
        if isinstance(outcome, str):
            if cert is not None and cert[0] is not Status.OK and "certificate" in outcome:
                outcome = f"{outcome}; {cert[1]}"
            return self.result(Status.CRITICAL, redact(outcome), obs, **details)
        obs.update(status_code=float(outcome.status), body_bytes=float(len(outcome.body)))
        if outcome.url != cfg.url:
            details["final_url"] = redact(outcome.url)
        if outcome.truncated:
            details["body_truncated"] = True
        findings = check_response(cfg.expect, outcome)
        findings += [f for f in (latency_finding(cfg.latency, total), cert) if f is not None and f[0] is not Status.OK]
        head = f"HTTP {outcome.status} in {human(total)}"
        if not findings:
            return self.result(Status.OK, head, obs, **details)
        findings.sort(key=lambda f: f[0] is not Status.CRITICAL)
        messages = "; ".join(redact(m) for _, m in findings)
        summary = messages if messages.startswith("HTTP ") else f"{head}: {messages}"
        return self.result(Status.worst([s for s, _ in findings]), summary, obs, **details)
