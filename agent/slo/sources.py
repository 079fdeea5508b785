"""Where an SLI's numbers come from: Prometheus' HTTP API, or the agent's own probe history.

Each source answers, for a point in time and a set of windows, the error ratio
and the number of events in each window. A window with fewer events than the
SLO's `min_events` has no data (`error_ratio is None`): it is shown as a gap
and can never satisfy a burn condition.

The agent's own history starts when the agent (or the check) first ran, so on a
young agent a 7d window holds minutes of results: one failed probe out of two
would be half the week and exhaust any budget. A window the history covers only
in part is weighted by that part (`coverage`): its error ratio is the errors
over the events a full window would hold, i.e. the time before the history
began counts as good. A budget then reads as "spent so far", and a burn rate
never exceeds what the same errors would give on a mature agent. Failures to read (Prometheus down, a
query error, no store) raise `SourceError` with a redacted reason; the check
turns that into UNKNOWN. httpx is imported by the first Prometheus query, not with this module.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Protocol

from agent.secrets import clip, redact
from agent.slo.queries import render, sli_queries
from agent.slo.spec import SloSpec

if TYPE_CHECKING:
    import httpx

    from agent.store import Store


class SourceError(Exception):
    """The SLI could not be read; the message is safe to show (already redacted)."""


@dataclass(frozen=True)
class WindowReading:
    window: timedelta
    events: float
    error_ratio: float | None  # None: no data (fewer than min_events events)
    #: the part of the window the source has data for (history younger than the window: less than 1)
    coverage: float = 1.0

    @property
    def has_data(self) -> bool:
        return self.error_ratio is not None


def reading(window: timedelta, errors: float, total: float, min_events: int, coverage: float = 1.0) -> WindowReading:
    """Build a reading from counts (or rates x window); clamp the ratio into [0, 1]. With `coverage`
    below 1 the ratio is weighted by it: the uncovered part of the window counts as good events."""
    coverage = min(1.0, max(0.0, coverage))
    if not math.isfinite(total) or not math.isfinite(errors) or total <= 0 or total < min_events or coverage <= 0:
        return WindowReading(window, total if math.isfinite(total) else 0.0, None, coverage)
    return WindowReading(window, total, min(1.0, max(0.0, errors / total)) * coverage, coverage)


class SliSource(Protocol):
    async def read(self, windows: tuple[timedelta, ...], now: float) -> dict[timedelta, WindowReading]: ...


class PrometheusSli:
    """Two instant queries per window against `/api/v1/query`, all at the same `time`."""

    def __init__(self, spec: SloSpec, url: str, timeout: float, bearer_token: str | None = None) -> None:
        self.spec = spec
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.headers = {"Authorization": f"Bearer {bearer_token}"} if bearer_token else {}
        self.error_template, self.total_template = sli_queries(spec)

    async def read(self, windows: tuple[timedelta, ...], now: float) -> dict[timedelta, WindowReading]:
        import httpx  # here, not at module level: only an SLO over Prometheus pays for it

        async with httpx.AsyncClient(timeout=self.timeout, headers=self.headers) as client:
            jobs = [self._query(client, render(t, w), now) for w in windows for t in (self.error_template, self.total_template)]
            answers = await asyncio.gather(*jobs, return_exceptions=True)
        for answer in answers:
            if isinstance(answer, BaseException):
                if isinstance(answer, SourceError):
                    raise answer
                raise SourceError(redact(f"querying Prometheus failed: {type(answer).__name__}: {answer}")) from answer
        out: dict[timedelta, WindowReading] = {}
        for i, window in enumerate(windows):
            errors, total = answers[2 * i], answers[2 * i + 1]
            assert not isinstance(errors, BaseException) and not isinstance(total, BaseException)
            seconds = window.total_seconds()
            if total is None:
                out[window] = WindowReading(window, 0.0, None)
                continue
            # An empty error query means no bad events were recorded (e.g. no 5xx series yet).
            out[window] = reading(window, (errors or 0.0) * seconds, total * seconds, self.spec.min_events)
        return out

    async def _query(self, client: httpx.AsyncClient, query: str, now: float) -> float | None:
        import httpx  # already loaded by `read`, which opened `client`

        params = {"query": query, "time": f"{now:.3f}", "timeout": f"{self.timeout:g}s"}
        try:
            response = await client.get(f"{self.url}/api/v1/query", params=params)
        except httpx.TimeoutException:
            raise SourceError(redact(f"Prometheus at {self.url} did not answer within {self.timeout:g}s")) from None
        except httpx.HTTPError as exc:
            raise SourceError(redact(f"cannot reach Prometheus at {self.url}: {exc or type(exc).__name__}")) from None
        try:
            body: dict[str, Any] = response.json()
        except ValueError:
            raise SourceError(redact(f"Prometheus at {self.url} answered HTTP {response.status_code} "
                                     f"without JSON: {clip(response.text, 200)!r}")) from None
        if response.status_code != 200 or body.get("status") != "success":
            raise SourceError(redact(f"Prometheus rejected query {query!r}: {body.get('errorType', response.status_code)}: "
                                     f"{body.get('error', response.reason_phrase)}"))
        return _single_value(body.get("data") or {}, query)


def _single_value(data: dict[str, Any], query: str) -> float | None:
    """The one value of an instant query; None for an empty result or NaN."""
    kind, result = data.get("resultType"), data.get("result")
    if kind == "scalar" and isinstance(result, list):
        value = float(result[1])
    elif kind == "vector" and isinstance(result, list):
        if not result:
            return None
        if len(result) > 1:
            labels = ", ".join(str(r.get("metric")) for r in result[:3])
            raise SourceError(redact(f"query {query!r} returned {len(result)} series, expected one "
                                     f"(aggregate with sum()): {labels}"))
        value = float(result[0]["value"][1])
    else:
        raise SourceError(redact(f"query {query!r} returned a {kind}, expected an instant vector or scalar"))
    return value if math.isfinite(value) else None


class HistorySli:
    """An agent check's results from the state store: good = OK or WARNING."""

    def __init__(self, spec: SloSpec, store: Store | None) -> None:
        assert spec.sli.check is not None
        self.spec = spec
        self.check = spec.sli.check
        self.store = store

    async def read(self, windows: tuple[timedelta, ...], now: float) -> dict[timedelta, WindowReading]:
        if self.store is None:
            raise SourceError(f"no probe history for check {self.check!r}: the state store is not open "
                              "(SLOs over checks are evaluated by the running agent)")
        out: dict[timedelta, WindowReading] = {}
        try:
            start = await self.store.first_result_at(self.check)
            for window in windows:
                good, total = await self.store.success_counts(self.check, now - window.total_seconds(), now)
                covered = 0.0 if start is None else (now - start) / window.total_seconds()
                out[window] = reading(window, float(total - good), float(total), self.spec.min_events, covered)
        except Exception as exc:  # a broken store is an UNKNOWN SLO, not a crashed check
            raise SourceError(redact(f"reading the history of {self.check!r} failed: {exc}")) from None
        return out
