"""The http check's lean path: one HTTP/1.1 request per connection, parsed by llhttp.

A health probe opens a connection, sends one request and reads one bounded
response: a client session's pooling, cookie jar, middleware and trace
signals are cost without use. Here an asyncio protocol sends request bytes
prepared once per check and feeds the answer to httptools (Node.js's llhttp
parser, the one uvicorn uses), reporting the same timing events as the
aiohttp trace hooks (`dns_start` ... `request_end`), for GET and HEAD probes
of http:// and https:// URLs without credentials in them (`eligible`); every
other probe keeps the aiohttp path (an aiohttp session costs about 0.27 CPU-ms
per request against a local server; the whole check's CPU on this path is in
bench/README.md).

Failures are `ProbeFailure` with the sentence the result shows, the same
sentences as the aiohttp path. Redirects are followed like aiohttp follows
them (303, and GET for a 301/302 of a POST, which this path never sends; the
`Authorization`, `Cookie` and `Proxy-Authorization` headers are dropped when
the redirect leaves the origin).
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import SplitResult, urljoin, urlsplit

import httptools
from multidict import CIMultiDict, CIMultiDictProxy

from agent.secrets import clip, redact

REDIRECTS = (301, 302, 303, 307, 308)
_CROSS_ORIGIN_DROPPED = ("authorization", "cookie", "proxy-authorization")
_URL_CHARS = frozenset(chr(c) for c in range(0x21, 0x7F))
#: status line and headers larger than this are refused (what h11 and aiohttp allow, about)
MAX_HEAD = 64 * 1024
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_BAD_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


class ProbeFailure(Exception):
    """Why there is no response, as the result's sentence."""


@dataclass
class Fetched:
    status: int
    headers: CIMultiDictProxy[str]
    body: bytes
    truncated: bool
    charset: str | None
    url: str


def eligible(method: str, url: str, body: str | None) -> bool:
    """Whether this path can make the request exactly as configured (else the aiohttp path does)."""
    if body is not None or method not in ("GET", "HEAD") or not set(url) <= _URL_CHARS:
        return False
    try:
        parts = urlsplit(url)
        _ = parts.port
    except ValueError:
        return False
    return parts.scheme.lower() in ("http", "https") and bool(parts.hostname) and "@" not in parts.netloc


async def fetch(target: Target, sslctx: ssl.SSLContext, on: Callable[[str], None], *, follow: bool,
                max_redirects: int, max_body: int) -> Fetched:
    """One probe of a `prepare`d request, redirects followed (`on` gets the trace events)."""
    hops = 0
    while True:
        got = await _one(target, sslctx, on, max_body)
        location = got.headers.get("Location")
        if not follow or got.status not in REDIRECTS or not location:
            return got
        hops += 1
        if hops > max_redirects:
            raise ProbeFailure(f"too many redirects (more than {max_redirects})")
        on("redirect")
        url = urljoin(target.url, location)
        if not eligible("GET", url, None):
            raise ProbeFailure(clip(f"request failed: cannot follow the redirect to {url!r}", 300))
        headers = target.headers
        if _origin(url) != _origin(target.url):
            headers = tuple((k, v) for k, v in headers if k.lower() not in _CROSS_ORIGIN_DROPPED)
        method = "GET" if got.status == 303 and target.method != "HEAD" else target.method
        target = prepare(method, url, headers, target.user_agent)


def _origin(url: str) -> tuple[str, str | None, int | None]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, parts.hostname, parts.port or (443 if scheme == "https" else 80)


@dataclass(frozen=True, slots=True)
class Target:
    """What a probe's method, URL and headers make, the same every run: an http check keeps its own."""

    method: str
    url: str
    headers: tuple[tuple[str, str], ...]  # as configured; a redirect to another origin drops credentials
    user_agent: str
    tls: bool
    host: str
    port: int
    family: int | None  # an IP literal's address family; None: a name to resolve
    request: bytes
    head: bool  # a HEAD request: the answer has no body, whatever its headers say


def prepare(method: str, url: str, headers: dict[str, str] | tuple[tuple[str, str], ...], user_agent: str) -> Target:
    """The request for an `eligible` method and URL; raises ProbeFailure when a header cannot be sent."""
    parts = urlsplit(url)
    tls = parts.scheme.lower() == "https"
    host = parts.hostname or ""
    port = parts.port or (443 if tls else 80)
    try:
        family: int | None = socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
    except ValueError:
        family = None
    pairs = tuple(headers.items()) if isinstance(headers, dict) else headers
    return Target(method, url, pairs, user_agent, tls, host, port, family,
                  _request(method, parts, host, port, tls, dict(pairs), user_agent), method == "HEAD")


async def _one(target: Target, sslctx: ssl.SSLContext, on: Callable[[str], None], max_body: int) -> Fetched:
    tls, host, port = target.tls, target.host, target.port
    loop = asyncio.get_running_loop()
    infos: list[Any] | None = None
    if target.family is None:
        on("dns_start")
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError):
            raise ProbeFailure(f"cannot resolve host {host!r}") from None
        on("dns_end")
    on("connect_start")
    protocol = _Protocol(target.request, target.head, max_body, on)
    transport = await _connect(loop, protocol, target, infos, sslctx if tls else None)
    try:
        on("connect_end")
        protocol.send()
        status, raw_headers, body, truncated = await protocol.done
    finally:
        transport.close()
        if not protocol.done.done():
            protocol.done.cancel()  # nobody waits for it any more (timeout, cancel)
        protocol.release()
    response_headers: CIMultiDict[str] = CIMultiDict((k.decode("latin-1"), v.decode("latin-1")) for k, v in raw_headers)
    return Fetched(status, CIMultiDictProxy(response_headers), body, truncated,
                   _charset(response_headers.get("Content-Type")), target.url)


def _request(method: str, parts: SplitResult, host: str, port: int, tls: bool, headers: dict[str, str],
             user_agent: str) -> bytes:
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    shown = f"[{host}]" if ":" in host else host
    given = {k.lower() for k in headers}
    out = [] if "host" in given else [("Host", shown if port == (443 if tls else 80) else f"{shown}:{port}")]
    if "user-agent" not in given:
        out.append(("User-Agent", user_agent))
    if "accept" not in given:
        out.append(("Accept", "*/*"))
    out += list(headers.items())
    if "connection" not in given:
        out.append(("Connection", "close"))
    lines = [f"{method} {target} HTTP/1.1"]
    for name, value in out:
        value = value.strip(" \t")
        if not _TOKEN.fullmatch(name):
            raise ProbeFailure(f"request failed: invalid request (header name {name!r} is not a token)")
        if _BAD_VALUE.search(value):
            raise ProbeFailure(f"request failed: invalid request (the value of header {name!r} has a control character)")
        lines.append(f"{name}: {value}")
    try:
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    except UnicodeEncodeError:
        raise ProbeFailure("request failed: invalid request (a header value is not Latin-1 text)") from None


async def _connect(loop: asyncio.AbstractEventLoop, protocol: _Protocol, target: Target, infos: list[Any] | None,
                   sslctx: ssl.SSLContext | None) -> asyncio.BaseTransport:
    """A connection to an IP literal, or to the first of a name's addresses that answers.

    Several addresses are raced as aiohttp does (Happy Eyeballs, RFC 8305, 0.25 s apart), so an
    unreachable IPv6 address does not hold a probe up until its timeout.
    """
    host = target.host
    # server_hostname: SNI for a name, and what the certificate is checked against (an IP too)
    server_hostname = host if sslctx is not None else None
    try:
        if infos is None:
            transport, _ = await loop.create_connection(lambda: protocol, host, target.port, family=target.family or 0,
                                                        ssl=sslctx, server_hostname=server_hostname)
        else:
            import aiohappyeyeballs

            sock = await aiohappyeyeballs.start_connection(infos, happy_eyeballs_delay=0.25, interleave=1)
            transport, _ = await loop.create_connection(lambda: protocol, sock=sock, ssl=sslctx,
                                                        server_hostname=server_hostname)
    except ssl.SSLCertVerificationError as exc:
        raise ProbeFailure(f"TLS certificate verification failed: {exc.verify_message or exc}") from None
    except ssl.SSLError as exc:
        raise ProbeFailure(f"TLS handshake failed: {exc.reason or exc}") from None
    except OSError as exc:
        from checks.tcp import connect_error

        raise ProbeFailure(connect_error(exc, host)) from None
    return transport


def _charset(content_type: str | None) -> str | None:
    """The `charset` parameter of a Content-Type, as aiohttp's `ClientResponse.charset` gives it."""
    for param in (content_type or "").split(";")[1:]:
        name, _, value = param.strip().partition("=")
        if name.strip().lower() == "charset":
            return value.strip().strip('"') or None
    return None


class _Protocol(asyncio.Protocol):
    """Sends the request (`send`, once connected); resolves `done` with (status, headers, body, truncated).

    httptools calls `on_header`, `on_headers_complete`, `on_body` and `on_message_complete` from
    inside `feed_data`. An answer without a length (no Content-Length, not chunked) ends when the
    server closes the connection, which llhttp cannot tell from an early close: `_eof` decides.
    """

    def __init__(self, request: bytes, head: bool, max_body: int, on: Callable[[str], None]) -> None:
        self.request, self.head, self.max_body, self.on = request, head, max_body, on
        self.parser = httptools.HttpResponseParser(self)
        self.done: asyncio.Future[tuple[int, list[tuple[bytes, bytes]], bytes, bool]] = \
            asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None
        self.status = 0  # of the final answer, once its headers are complete
        self.headers: list[tuple[bytes, bytes]] = []
        self.head_bytes = 0  # read before the final answer's headers were complete
        self.until_close = False  # the body ends when the connection does
        self.informational = False  # a 1xx answer is being read (skipped)
        self.body = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's transports are not asyncio.Transport subclasses

    def release(self) -> None:
        """Drop the references that make cycles (parser <-> protocol <-> transport), once the probe is over.

        Freed at once, not by the next garbage collection: with 10,000 checks that is megabytes.
        """
        self.parser = None  # type: ignore[assignment]
        self.transport = None

    def send(self) -> None:
        assert self.transport is not None
        self.transport.write(self.request)
        self.on("headers_sent")

    def data_received(self, data: bytes) -> None:
        if self.done.done():
            return
        if not self.status:
            self.head_bytes += len(data)
        try:
            self.parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade) as exc:
            if not self.done.done():
                what = "invalid HTTP response" if not self.status else "response body incomplete"
                self._fail(redact(clip(f"{what}: {exc}", 300)))
            return
        if not self.status and self.head_bytes > MAX_HEAD and not self.done.done():
            self._fail(f"invalid HTTP response: status line and headers over {MAX_HEAD // 1024} KiB")

    def eof_received(self) -> bool | None:
        self._eof()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._eof()

    def _eof(self) -> None:
        if self.done.done():
            return
        if not self.status:
            self._fail("server closed the connection without a complete response")
        elif self.until_close:
            self._finish(truncated=False)
        else:
            self._fail("response body incomplete: the server closed the connection")

    # -- httptools' callbacks ------------------------------------------------------
    def on_header(self, name: bytes, value: bytes) -> None:
        if self.done.done():
            return
        self.headers.append((name, value.strip(b" \t")))

    def on_headers_complete(self) -> None:
        if self.done.done():
            return
        status = self.parser.get_status_code()
        if status < 200 and status != 101:  # 100 Continue, 103 Early Hints: the answer comes after
            self.informational, self.headers = True, []
            return
        if sum(len(name) + len(value) + 4 for name, value in self.headers) > MAX_HEAD:
            self._fail(f"invalid HTTP response: status line and headers over {MAX_HEAD // 1024} KiB")
            return
        self.status = status
        self.on("request_end")
        if self.head or status in (204, 304) or 100 <= status < 200:
            self._finish(truncated=False)
            return
        names = {name.lower() for name, _ in self.headers}
        chunked = any(name.lower() == b"transfer-encoding" and b"chunked" in value.lower()
                      for name, value in self.headers)
        self.until_close = b"content-length" not in names and not chunked

    def on_body(self, body: bytes) -> None:
        if self.done.done():
            return
        room = self.max_body - len(self.body)
        self.body += body[:room]
        if len(body) > room:
            self._finish(truncated=True)

    def on_message_complete(self) -> None:
        if self.informational:
            self.informational = False
            return
        if not self.done.done():
            self._finish(truncated=False)

    def _finish(self, truncated: bool) -> None:
        self.done.set_result((self.status, self.headers, bytes(self.body), truncated))
        if self.transport is not None:
            self.transport.close()

    def _fail(self, sentence: str) -> None:
        if not self.done.done():
            self.done.set_exception(ProbeFailure(sentence))
        if self.transport is not None:
            self.transport.close()
