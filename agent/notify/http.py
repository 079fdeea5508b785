"""How HTTP receivers turn an answer (or its absence) into a `Delivery`.

Every HTTP receiver classifies the same way: 2xx is SENT; 429, 408 and 5xx
are RETRY with the peer's `Retry-After` when it gave one; any other status is
a permanent FAILED; timeouts and connection errors are RETRY. Keeping that in
one module means the outbox sees one vocabulary whatever the peer, and the
secret scrubbing of error text cannot be forgotten by one receiver.

`HttpxReceiver` and `AiohttpReceiver` are the bases of the HTTP kinds: one
client (connection pool) per receiver, opened lazily on the running loop with
the receiver's `timeout`, closed by `close()`; `answer()` / `no_answer()`
classify with the receiver's own secrets and clock.

httpx is imported by the first `HttpxReceiver.http()`, and aiohttp by the first
`AiohttpReceiver.open_session()`, not with this module: loading a config (and
so `sre-agent check`) loads neither, and a config whose receivers are all of
one library never loads the other. Until a library is loaded none of its
exceptions can exist, so `transport_errors()` and `transport_failure()` leave
its classes out without importing it.
"""

from __future__ import annotations

import asyncio
import math
import sys
from collections.abc import Iterable, Mapping
from email.utils import parsedate_to_datetime
from types import ModuleType
from typing import TYPE_CHECKING, Any

from agent.secrets import REDACT_MARGIN, REDACTOR

from .base import Clock, ConfiguredReceiver, Delivery, Outcome, SettingsT, system_clock
from .render import truncate

if TYPE_CHECKING:
    import aiohttp
    import httpx

DETAIL_LIMIT = 500
RETRYABLE_STATUSES = frozenset({408, 425, 429})


def parse_retry_after(value: str | None, clock: Clock = system_clock) -> float | None:
    """`Retry-After` as seconds from now: delay-seconds or an HTTP-date (RFC 9110 10.2.3).

    Returns None when absent or unparseable; a date in the past means 0.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            return None
        return max(0.0, when.timestamp() - clock())
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def scrub(text: str, secrets: Iterable[str] = ()) -> str:
    """Redact known secrets (plus this receiver's own) from text bound for logs or `detail`."""
    for secret in secrets:
        if secret and secret in text:
            text = text.replace(secret, "<redacted>")
    return REDACTOR.redact(text)


def classify_status(status: int, headers: Mapping[str, str], body: str, *, what: str,
                    secrets: Iterable[str] = (), clock: Clock = system_clock) -> Delivery:
    """Outcome for an HTTP answer; `what` names the peer in the detail (`slack webhook`)."""
    # Scrub before cutting, so a secret straddling the cut cannot leak half of itself.
    snippet = " ".join(scrub(body[:4000 + REDACT_MARGIN], secrets)[:4000].split())
    detail = truncate(scrub(f"{what}: HTTP {status}", secrets) + (f": {snippet}" if snippet else ""), DETAIL_LIMIT)
    if 200 <= status < 300:
        return Delivery(Outcome.SENT, detail)
    if status in RETRYABLE_STATUSES or status >= 500:
        return Delivery(Outcome.RETRY, detail, parse_retry_after(_header(headers, "Retry-After"), clock))
    return Delivery(Outcome.FAILED, detail)


def _loaded_httpx() -> ModuleType | None:
    """httpx if something imported it already, else None (then no httpx exception can exist)."""
    return sys.modules.get("httpx")


def _loaded_aiohttp() -> ModuleType | None:
    """aiohttp if something imported it already, else None (then no aiohttp exception can exist)."""
    return sys.modules.get("aiohttp")


def transport_failure(exc: BaseException, *, what: str, timeout: float,
                      secrets: Iterable[str] = ()) -> Delivery:
    """Outcome for a request that got no answer. Config mistakes (bad URL) are FAILED."""
    hx, aio = _loaded_httpx(), _loaded_aiohttp()
    timeouts: tuple[type[BaseException], ...] = (asyncio.TimeoutError,)
    bad_urls: tuple[type[BaseException], ...] = ()
    if aio is not None:
        timeouts += (aio.ServerTimeoutError,)
        bad_urls += (aio.InvalidURL, aio.NonHttpUrlClientError)
    if hx is not None:
        timeouts += (hx.TimeoutException,)
        bad_urls += (hx.UnsupportedProtocol, hx.InvalidURL)
    if isinstance(exc, timeouts):
        return Delivery(Outcome.RETRY, f"{what}: no answer within {timeout:g}s", timed_out=True)
    if isinstance(exc, bad_urls):
        return Delivery(Outcome.FAILED, truncate(scrub(f"{what}: invalid URL ({type(exc).__name__})", secrets),
                                                 DETAIL_LIMIT))
    message = str(exc).strip()
    text = f"{what}: {type(exc).__name__}" + (f": {message}" if message else "")
    return Delivery(Outcome.RETRY, truncate(scrub(text, secrets), DETAIL_LIMIT))


_STDLIB_TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (asyncio.TimeoutError, OSError)


def transport_errors() -> tuple[type[BaseException], ...]:
    """What a request raises when it gets no answer: `except transport_errors() as exc:`.

    The expression of an `except` is evaluated only when an exception reaches it, so httpx's
    `HTTPError` and `InvalidURL`, and aiohttp's `ClientError`, are in the tuple whenever one of
    them can be the exception.
    """
    hx, aio = _loaded_httpx(), _loaded_aiohttp()
    errors = _STDLIB_TRANSPORT_ERRORS if aio is None else (aio.ClientError, *_STDLIB_TRANSPORT_ERRORS)
    if hx is None:
        return errors
    return (hx.HTTPError, hx.InvalidURL, *errors)


def __getattr__(name: str) -> tuple[type[BaseException], ...]:
    """The full tuples, for code that names them: they import the libraries they mention.

    `TRANSPORT_ERRORS` (httpx's and aiohttp's classes included) imports both;
    `_BASE_TRANSPORT_ERRORS` (aiohttp's `ClientError` and the stdlib's) imports aiohttp.
    """
    if name == "TRANSPORT_ERRORS":
        import aiohttp
        import httpx

        return (httpx.HTTPError, httpx.InvalidURL, aiohttp.ClientError, *_STDLIB_TRANSPORT_ERRORS)
    if name == "_BASE_TRANSPORT_ERRORS":
        import aiohttp

        return (aiohttp.ClientError, *_STDLIB_TRANSPORT_ERRORS)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:
        lowered = name.lower()
        for key, candidate in headers.items():
            if key.lower() == lowered:
                return candidate
    return value


def merge(deliveries: list[Delivery]) -> Delivery:
    """One outcome for several requests: RETRY if any may succeed later, else FAILED if any failed."""
    if not deliveries:
        return Delivery(Outcome.SENT, "nothing to send")
    retries = [d for d in deliveries if d.outcome == Outcome.RETRY]
    failed = [d for d in deliveries if d.outcome == Outcome.FAILED]
    detail = truncate("; ".join(dict.fromkeys(d.detail for d in deliveries if d.detail)), DETAIL_LIMIT)
    if retries:
        hints = [d.retry_after for d in retries if d.retry_after is not None]
        return Delivery(Outcome.RETRY, detail, max(hints) if hints else None,
                        timed_out=any(d.timed_out for d in retries))
    if failed:
        return Delivery(Outcome.FAILED, detail)
    return Delivery(Outcome.SENT, detail)


class HttpReceiver(ConfiguredReceiver[SettingsT]):
    """A receiver that talks HTTP: answers and transport failures classified with its secrets."""

    def answer(self, status: int, headers: Mapping[str, str], body: str, *, what: str) -> Delivery:
        return classify_status(status, headers, body, what=what, secrets=self.secrets, clock=self.clock)

    def no_answer(self, exc: BaseException, *, what: str) -> Delivery:
        return transport_failure(exc, what=what, timeout=self.timeout_seconds, secrets=self.secrets)


class HttpxReceiver(HttpReceiver[SettingsT]):
    """One httpx client per receiver; `client_options()` adds headers or auth."""

    _client: httpx.AsyncClient | None = None

    def client_options(self) -> dict[str, Any]:
        return {}

    def http(self) -> httpx.AsyncClient:
        if self._client is None:
            import httpx  # here, not at module level: only a config with an httpx receiver pays for it

            self._client = httpx.AsyncClient(timeout=self.timeout_seconds, **self.client_options())
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


class AiohttpReceiver(HttpReceiver[SettingsT]):
    """One aiohttp session per receiver, reopened if it was closed; `open_session()` may add headers."""

    _session: aiohttp.ClientSession | None = None

    def open_session(self, headers: Mapping[str, str] | None = None) -> aiohttp.ClientSession:
        import aiohttp  # here, not at module level: loading a config or running a check never pays for it

        return aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout_seconds), headers=headers)

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = self.open_session()
        return self._session

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None
