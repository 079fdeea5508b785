"""The HTTP helpers every API route shares, and the guard in front of the listener.

A floor below `agent.api` and the domain routes (`agent.alerting.api`), so
neither reaches up to the daemon: routes see the agent through `AgentView`,
the few attributes they read, not the `Agent` class.

The listener must never blind the agent: about a thousand idle connections
once used up the file descriptors and every check failed with "Too many open
files". So the daemon raises the soft RLIMIT_NOFILE to the hard limit at
start, and serves through `GuardedSite`:

- at most `agent.api_max_connections` connections are open at once, lowered
  to half of what the open-files limit leaves after `FD_RESERVE` and
  `ACCEPT_BACKLOG`, so checks keep the rest;
- one more takes the place of the oldest connection that has not sent a
  request yet; when there is none it gets one of a few slots kept for
  /healthz and /readyz (any other request there is answered 503), and past
  those it is answered 503 and closed at once;
- a connection that has not sent a complete request head within
  `HEADER_TIMEOUT` is answered 408 and closed (aiohttp has no header
  timeout), and idle keep-alive connections close after `KEEPALIVE_TIMEOUT`.

Accept errors are logged once per interval by `AcceptErrorReporter`, and
malformed requests as one line each (`BadRequestLog`), never as tracebacks.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import resource
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, cast

from aiohttp import web

from agent.secrets import REDACTOR

if TYPE_CHECKING:
    from agent.config import ConfigBase
    from agent.metrics import Metrics
    from agent.scheduler import Scheduler
    from agent.store import Store

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class AgentView(Protocol):
    """What the API reads of the running agent."""

    config: ConfigBase | None
    metrics: Metrics
    scheduler: Scheduler | None
    store: Store | None
    ready: bool
    port: int | None

    @property
    def components(self) -> Sequence[Any]: ...

    async def reload(self) -> tuple[bool, list[str]]: ...


AGENT_KEY: web.AppKey[AgentView] = web.AppKey("agent")


def json_response(data: Any, status: int = 200) -> web.Response:
    body = json.dumps(REDACTOR.redact_obj(data), indent=None, default=str)
    return web.Response(text=body, status=status, content_type="application/json")


def error(status: int, message: str) -> web.Response:
    return json_response({"error": message}, status=status)


def require_token(handler: Handler) -> Handler:
    """Decorator for write endpoints."""

    async def wrapped(request: web.Request) -> web.StreamResponse:
        agent = request.app[AGENT_KEY]
        token = agent.config.agent.api_token if agent.config else None
        expected = token.get_secret_value().encode() if token is not None else b""
        if not expected:  # the config refuses an empty token; never let one mean "anyone"
            return error(403, "write API disabled: set agent.api_token or agent.api_token_file")
        header = request.headers.get("Authorization", "")
        scheme, _, given = header.partition(" ")
        credential = given.strip().encode()
        if scheme.lower() != "bearer" or not credential or not hmac.compare_digest(credential, expected):
            return web.Response(status=401, text=json.dumps({"error": "missing or wrong bearer token"}),
                                content_type="application/json", headers={"WWW-Authenticate": "Bearer"})
        return await handler(request)

    return wrapped


# -- the listener's guard ---------------------------------------------------------------------------

log = logging.getLogger("sre_agent.api")
#: a connection must send a complete request head this soon after it opens
HEADER_TIMEOUT = 5.0
#: an idle keep-alive connection is closed after this long (aiohttp's keepalive_timeout)
KEEPALIVE_TIMEOUT = 5.0
#: descriptors never counted for API connections: the agent's own (store, logs, executor) and headroom
FD_RESERVE = 128
#: accepted per wake-up; connections refused over the cap hold a descriptor until the next loop turn
ACCEPT_BACKLOG = 128
ACCEPT_LOG_INTERVAL = 60.0
#: connections admitted past the cap, for /healthz and /readyz only
PROBE_SLOTS = 8
PROBE_PATHS = frozenset({"/healthz", "/readyz"})
_FIRST_LINE_MAX = 8192
_BUSY = (b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Type: text/plain\r\n"
         b"Retry-After: 1\r\nContent-Length: 40\r\n\r\ntoo many connections to the agent's API\n")
_SLOW = (b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Type: text/plain\r\n"
         b"Content-Length: 31\r\n\r\nrequest head not sent in time\n")
_HEAD_END = (b"\r\n\r\n", b"\n\n")


def raise_open_files_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit (systemd's default soft 1024 is low); the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft == resource.RLIM_INFINITY or soft >= target:
        return soft if soft != resource.RLIM_INFINITY else target
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError) as exc:
        log.warning("cannot raise the open-files limit from %d to %d: %s", soft, target, exc)
        return soft
    log.info("raised the open-files limit (RLIMIT_NOFILE) from %d to %d", soft, target)
    return target


def connection_cap(configured: int, open_files_limit: int) -> int:
    """`configured`, lowered so API connections take at most half of the descriptors left after `FD_RESERVE`."""
    fits = max(8, (open_files_limit - FD_RESERVE - ACCEPT_BACKLOG) // 2)
    if configured > fits:
        log.warning("agent.api_max_connections %d lowered to %d to keep file descriptors for checks: the "
                    "open-files limit is %d (raise it with systemd's LimitNOFILE=)", configured, fits,
                    open_files_limit)
        return fits
    return configured


@dataclass
class Pool:
    """Connection slots; `waiting` holds the admitted ones without a complete request head, oldest first."""

    size: int
    open: int = 0
    waiting: dict[_GuardedProtocol, None] = field(default_factory=dict)


class ConnectionGuard:
    """Counts the listener's connections, makes room or refuses over the cap, closes slow request heads.

    At the cap, a new connection takes the place of the oldest one still
    waiting for its request head (an idle or half-sent connection costs the
    attacker nothing to reopen, a real client sends its head at once). When
    every connection is in a request, a few more (`probe_slots`) are admitted
    for /healthz and /readyz only (`probe_only`): any other request line is
    answered 503 as soon as it arrives, which frees the slot, so liveness
    probes keep a way in while handlers are busy; past those, 503 and closed.
    """

    def __init__(self, max_connections: int, header_timeout: float = HEADER_TIMEOUT,
                 on_reject: Callable[[str], None] | None = None, probe_slots: int = PROBE_SLOTS) -> None:
        self.main = Pool(max_connections)
        self.probes = Pool(probe_slots)
        self.header_timeout = header_timeout
        self._on_reject = on_reject or (lambda reason: None)
        self._probe_transports: set[asyncio.BaseTransport] = set()

    @property
    def open(self) -> int:
        return self.main.open + self.probes.open

    @property
    def waiting(self) -> dict[_GuardedProtocol, None]:
        return self.main.waiting

    def wrap(self, factory: Callable[[], asyncio.Protocol]) -> Callable[[], asyncio.Protocol]:
        return lambda: _GuardedProtocol(self, factory)

    def rejected(self, reason: str) -> None:
        self._on_reject(reason)

    def admit(self) -> Pool | None:
        """The pool one more connection opens in, closing the oldest one still without a request if need be."""
        if self.main.open < self.main.size:
            return self.main
        for oldest in self.main.waiting:
            self.rejected("evicted")
            oldest.evict()
            return self.main
        # Probe slots are never taken from a connection: they free themselves at its first line.
        if self.probes.open < self.probes.size:
            return self.probes
        self.rejected("limit")
        return None

    def mark_probe_only(self, transport: asyncio.BaseTransport, on: bool) -> None:
        if on:
            self._probe_transports.add(transport)
        else:
            self._probe_transports.discard(transport)

    def probe_only(self, transport: asyncio.BaseTransport | None) -> bool:
        """Whether this connection was admitted over the cap, for health probes only."""
        return transport is not None and transport in self._probe_transports


def _probe_path(first_line: bytes) -> str | None:
    """The path of a `GET /healthz` or `GET /readyz` request line, else None."""
    parts = first_line.split(b"\n", 1)[0].split()
    if len(parts) != 3 or parts[0] not in (b"GET", b"HEAD"):
        return None
    path = parts[1].split(b"?", 1)[0].decode("latin-1")
    return path if path in PROBE_PATHS else None


def _answer_and_drop(transport: asyncio.Transport, answer: bytes) -> None:
    """Send a short answer (it fits the socket buffer) and close now: a peer that does not read cannot hold it open."""
    transport.write(answer)
    transport.abort()


class _GuardedProtocol(asyncio.Protocol):
    """Stands in front of aiohttp's protocol for one connection; the real one exists only once admitted."""

    def __init__(self, guard: ConnectionGuard, factory: Callable[[], asyncio.Protocol]) -> None:
        self._guard = guard
        self._factory = factory
        self._inner: asyncio.Protocol | None = None
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._tail = b""
        self._released = False
        self._pool: Pool | None = None
        self._first_line = bytearray()
        self._probe_checked = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport, but not always an asyncio.Transport subclass (uvloop's are its own classes).
        transport = cast(asyncio.Transport, transport)
        self._transport = transport
        guard = self._guard
        pool = guard.admit()
        if pool is None:
            _answer_and_drop(transport, _BUSY)
            return
        self._pool = pool
        pool.open += 1
        pool.waiting[self] = None
        guard.mark_probe_only(transport, pool is guard.probes)
        self._inner = self._factory()
        self._timer = asyncio.get_running_loop().call_later(guard.header_timeout, self._too_slow)
        self._inner.connection_made(transport)

    def _head_done(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._pool is not None:
            self._pool.waiting.pop(self, None)
        self._tail = b""

    def _too_slow(self) -> None:
        self._timer = None
        self._guard.rejected("header_timeout")
        self._close(_SLOW)

    def evict(self) -> None:
        self._close(_BUSY)

    def _close(self, answer: bytes) -> None:
        self._head_done()
        if self._transport is not None and not self._transport.is_closing():
            _answer_and_drop(self._transport, answer)
            # The slot is free now, not a loop turn later when connection_lost runs.
            self._release()

    def _release(self) -> None:
        if self._pool is not None and not self._released:
            self._released = True
            self._pool.open -= 1
            if self._transport is not None:
                self._guard.mark_probe_only(self._transport, False)

    def data_received(self, data: bytes) -> None:
        if self._inner is None:
            return
        if self._pool is self._guard.probes and not self._probe_checked:
            self._first_line += data[:_FIRST_LINE_MAX]
            if b"\n" not in self._first_line and len(self._first_line) < _FIRST_LINE_MAX:
                return
            self._probe_checked = True
            if _probe_path(bytes(self._first_line)) is None:
                self._guard.rejected("limit")
                self._close(_BUSY)
                return
            data, self._first_line = bytes(self._first_line) + data[_FIRST_LINE_MAX:], bytearray()
        if self._timer is not None:
            seen = self._tail + data
            if any(end in seen for end in _HEAD_END):
                self._head_done()
            else:
                self._tail = seen[-3:]
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._inner is not None else None

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self._head_done()
        self._release()
        if self._inner is not None:
            inner, self._inner = self._inner, None
            inner.connection_lost(exc)


class GuardedSite(web.BaseSite):
    """A TCP site whose connections pass through a `ConnectionGuard`."""

    __slots__ = ("_guard", "_host", "_port")

    def __init__(self, runner: web.BaseRunner, host: str, port: int, guard: ConnectionGuard,
                 backlog: int = ACCEPT_BACKLOG) -> None:
        super().__init__(runner, backlog=backlog)
        self._host, self._port, self._guard = host, port, guard

    @property
    def name(self) -> str:
        return f"http://{self._host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        assert server is not None
        self._server = await asyncio.get_running_loop().create_server(
            self._guard.wrap(server), self._host, self._port, backlog=self._backlog, reuse_address=True)

    @property
    def sockets(self) -> list[Any]:
        return list(getattr(self._server, "sockets", None) or [])


class AcceptErrorReporter:
    """An event-loop exception handler: accept() failures (EMFILE...) counted, logged once per interval.

    asyncio reports each failed accept with a traceback and retries a second
    later; under descriptor exhaustion that was a traceback a second. Any
    other context goes to the handler that was there before.
    """

    MESSAGE = "socket.accept() out of system resource"

    def __init__(self, on_error: Callable[[], None], interval: float = ACCEPT_LOG_INTERVAL,
                 fallback: Callable[[asyncio.AbstractEventLoop, dict[str, Any]], object] | None = None) -> None:
        self._on_error = on_error
        self._interval = interval
        self._fallback = fallback
        self._last = -interval
        self._since = 0

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if context.get("message") != self.MESSAGE:
            if self._fallback is not None:
                self._fallback(loop, context)
            else:
                loop.default_exception_handler(context)
            return
        self._on_error()
        self._since += 1
        now = time.monotonic()
        if now - self._last >= self._interval:
            exc = context.get("exception")
            log.error("cannot accept API connections: %s (%d time(s) since the last report); "
                      "checks keep running, see sre_agent_api_accept_errors_total",
                      getattr(exc, "strerror", None) or exc, self._since)
            self._last, self._since = now, 0


class BadRequestLog(logging.Filter):
    """For aiohttp's server logger: a malformed HTTP request is the client's mistake, not ours.

    aiohttp logs one at ERROR with a traceback; this makes it one INFO line
    (`bad HTTP request from ...: 400 Invalid character in Content-Length`),
    at most `burst` per `interval`, then counts what it dropped. Errors in our
    handlers keep their tracebacks.
    """

    def __init__(self, burst: int = 10, interval: float = ACCEPT_LOG_INTERVAL) -> None:
        super().__init__()
        self._burst, self._interval = burst, interval
        self._window = -interval
        self._count = self._dropped = 0

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is None or not type(exc).__module__.startswith("aiohttp.http_exceptions"):
            return True
        try:
            return self._one_line(record, exc)
        except Exception:  # a failing filter would turn aiohttp's 400 into a 500
            return True

    def _one_line(self, record: logging.LogRecord, exc: BaseException) -> bool:
        now = time.monotonic()
        dropped = 0
        if now - self._window >= self._interval:
            self._window, self._count, dropped, self._dropped = now, 0, self._dropped, 0
        if self._count >= self._burst:
            self._dropped += 1
            return False
        self._count += 1
        detail = (getattr(exc, "message", None) or str(exc)).strip().splitlines()
        status = getattr(exc, "code", 400)
        where = record.getMessage().removeprefix("Error handling request")
        record.msg = "bad HTTP request%s: %s %s%s"
        record.args = (where, status,
                       detail[0][:200] if detail else type(exc).__name__,
                       f" ({dropped} more in the last interval not logged)" if dropped else "")
        record.levelno, record.levelname = logging.INFO, "INFO"
        record.exc_info, record.exc_text = None, None
        return True


def quiet_bad_requests(logger: logging.Logger | None = None) -> None:
    """Install `BadRequestLog` on aiohttp's server logger, once."""
    target = logger or logging.getLogger("aiohttp.server")
    if not any(isinstance(f, BadRequestLog) for f in target.filters):
        target.addFilter(BadRequestLog())
