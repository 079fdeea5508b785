"""Alerting's HTTP API on the agent's listener: current alerts, silences, runbooks.

Reads are open like the rest of the API; creating or expiring a silence is a
write and goes through `agent.web.require_token` (403 while no token is
configured, 401 for a wrong one). Silences created here are stored durably
and apply within a second.

Whatever a client sends, a bad silence request is answered 400 naming the
field (415 without `Content-Type: application/json`, 409 past
`alerting.max_silences`) and logged as one line, never as a traceback; the
silence list is paginated (`?limit=&offset=`, with `total`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol

from aiohttp import web
from pydantic import Field, ValidationError, field_validator, model_validator

from agent.alerting.config import LATEST_END, AlertingConfig, compile_matchers
from agent.alerting.runbooks import RunbookError, find_runbook, is_url
from agent.alerting.silences import Mute, Silence
from agent.check import CheckConfig, Model
from agent.config import format_path
from agent.core import Alert
from agent.durations import Duration, parse_duration
from agent.runbooks import effective_runbook
from agent.web import AGENT_KEY, error, json_response, require_token


class AlertingService(Protocol):
    """What these routes use of the alerting engine (`agent.alerting.engine.AlertingEngine`)."""

    checks: dict[str, CheckConfig]
    alerting: AlertingConfig

    clock: Callable[[], float]

    def alerts(self, states: set[str] | None = None) -> list[Alert]: ...
    def silences(self, include_expired: bool = False) -> list[Silence]: ...
    def in_force(self, now: float | None = None) -> list[Mute]: ...
    async def add_silence(self, silence: Silence) -> Silence: ...
    async def expire_silence(self, silence_id: str) -> Silence | None: ...


ENGINE_KEY: web.AppKey[AlertingService] = web.AppKey("alerting")
CREATE_LOCK: web.AppKey[asyncio.Lock] = web.AppKey("silence-create-lock")
STATES = ("pending", "firing", "resolved")
#: nesting reported as too deep when the JSON parser gives up (RecursionError)
MAX_JSON_DEPTH = 64
DEFAULT_PAGE = 100
#: a body still arriving after this long holds one of the API's few handler slots: refuse it
BODY_TIMEOUT = 10.0
MAX_PAGE = 1000
log = logging.getLogger("sre_agent.alerting.api")


class SilenceRequest(Model):
    """Body of POST /api/v1/silences."""

    matchers: dict[str, str] = Field(default_factory=dict)
    matchers_re: dict[str, str] = Field(default_factory=dict)
    starts_at: datetime | None = Field(None, description="default: now")
    ends_at: datetime | None = None
    duration: Duration | None = None
    created_by: str = Field("api", min_length=1, max_length=200)
    comment: str = Field(min_length=1, max_length=2000, description="why: shown to whoever wonders where the page went")

    @field_validator("matchers_re")
    @classmethod
    def _regexes(cls, v: dict[str, str]) -> dict[str, str]:
        return compile_matchers(v, "matchers_re")

    @field_validator("duration", mode="before")
    @classmethod
    def _fits(cls, v: Any) -> Any:
        """`99999999999d` does not fit a timedelta: an error about this field, not an OverflowError."""
        try:
            return parse_duration(v)
        except OverflowError:
            raise ValueError(f"{v!r} is too long: the silence would end after {LATEST_END.date()}; "
                             "give a shorter duration") from None

    @field_validator("starts_at", "ends_at")
    @classmethod
    def _utc(cls, v: datetime | None) -> datetime | None:
        return v.replace(tzinfo=UTC) if v is not None and v.tzinfo is None else v

    @model_validator(mode="after")
    def _shape(self) -> SilenceRequest:
        if not (self.matchers or self.matchers_re):
            raise ValueError("a silence needs at least one matcher (matchers or matchers_re)")
        if (self.ends_at is None) == (self.duration is None):
            raise ValueError("set exactly one of ends_at or duration")
        return self

    def to_silence(self, now: float) -> Silence:
        start = self.starts_at.timestamp() if self.starts_at else now
        end = self.ends_at.timestamp() if self.ends_at else start + self.duration.total_seconds()  # type: ignore[union-attr]
        field = "ends_at" if self.ends_at else "duration"
        if end >= LATEST_END.timestamp():
            raise ValueError(f"{field}: the silence would end after {LATEST_END.date()}; "
                             "give a shorter duration or an earlier ends_at")
        if end <= now:
            raise ValueError(f"{field}: the silence would already be over: it must end in the future")
        if end <= start:
            raise ValueError(f"{field}: the silence must end after starts_at")
        return Silence(id=uuid.uuid4().hex, matchers=dict(self.matchers), matchers_re=dict(self.matchers_re),
                       starts_at=start, ends_at=end, created_by=self.created_by, comment=self.comment,
                       source="api", created_at=now)


def _engine(request: web.Request) -> AlertingService:
    return request.app[ENGINE_KEY]


async def list_alerts(request: web.Request) -> web.Response:
    engine = _engine(request)
    raw = request.query.get("state", "pending,firing")
    states = {s.strip() for s in raw.split(",") if s.strip()}
    if not states <= set(STATES):
        return error(400, f"state must be a comma-separated list of {', '.join(STATES)}; got {raw!r}")
    check = request.query.get("check")
    alerts = [a.to_dict() for a in engine.alerts(states) if check is None or a.check == check]
    return json_response({"alerts": alerts})


def _page_param(request: web.Request, name: str, default: int, low: int, high: int | None) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    allowed = f"an integer from {low} to {high}" if high is not None else f"an integer of at least {low}"
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name} must be {allowed}; got {raw[:40]!r}") from None
    if value < low or (high is not None and value > high):
        raise ValueError(f"{name} must be {allowed}; got {value}")
    return value


async def list_silences(request: web.Request) -> web.Response:
    """One page of silences, oldest start first: `limit` (default 100, at most 1000), `offset`, and the `total`."""
    engine = _engine(request)
    include_expired = request.query.get("all", "").lower() in ("1", "true", "yes")
    try:
        limit = _page_param(request, "limit", DEFAULT_PAGE, 1, MAX_PAGE)
        offset = _page_param(request, "offset", 0, 0, None)
    except ValueError as exc:
        return error(400, str(exc))
    now = engine.clock()
    silences = engine.silences(include_expired)
    page = silences[offset:offset + limit]
    return json_response({"silences": [s.to_dict(now) for s in page], "total": len(silences),
                          "limit": limit, "offset": offset})


def _too_deep(text: str, limit: int) -> str | None:
    """The top-level field under which `text` nests more than `limit` arrays/objects ('<body>' if none), else None.

    Only run once json.loads gave up (RecursionError), to name the field.
    """
    depth, in_string, escaped = 0, False, False
    key: str | None = None
    last_string, start = "", -1
    for i, ch in enumerate(text):
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string, last_string = False, text[start + 1:i]
        elif ch == '"':
            in_string, start = True, i
        elif ch == ":" and depth == 1:
            key = last_string[:64]
        elif ch in "[{":
            depth += 1
            if depth > limit:
                return key if key is not None and depth > 1 else "<body>"
        elif ch in "]}":
            depth -= 1
    return None


def _rejected(request: web.Request, status: int, message: str, problems: list[str] | None = None) -> web.Response:
    log.info("%s %s rejected (%d): %s", request.method, request.path, status, "; ".join(problems or [message])[:500])
    if problems:
        return json_response({"error": message, "problems": problems}, status=status)
    return error(status, message)


@require_token
async def create_silence(request: web.Request) -> web.Response:
    engine = _engine(request)
    if request.content_type != "application/json":
        return _rejected(request, 415, f"Content-Type must be application/json; got {request.content_type!r}")
    try:
        async with asyncio.timeout(BODY_TIMEOUT):
            text = await request.text()
    except TimeoutError:
        return _rejected(request, 408, f"the body did not arrive within {BODY_TIMEOUT:g}s")
    except (UnicodeDecodeError, LookupError):
        return _rejected(request, 400, "body must be JSON in UTF-8")
    try:
        body = json.loads(text)
    except RecursionError:
        field = _too_deep(text, MAX_JSON_DEPTH) or "<body>"
        return _rejected(request, 400, "invalid silence",
                         [f"{field}: nested more than {MAX_JSON_DEPTH} levels deep; a silence is a flat object"])
    except ValueError:
        return _rejected(request, 400, "body must be a JSON object")
    if not isinstance(body, dict):
        return _rejected(request, 400, f"body must be a JSON object; got {type(body).__name__}")
    try:
        silence = SilenceRequest.model_validate(body).to_silence(engine.clock())
    except ValidationError as exc:
        problems = [f"{format_path(e['loc']) or '<body>'}: {str(e['msg']).removeprefix('Value error, ')}"
                    for e in exc.errors(include_url=False)]
        return _rejected(request, 400, "invalid silence", problems)
    except (ValueError, OverflowError) as exc:
        return _rejected(request, 400, str(exc))
    cap = engine.alerting.max_silences
    async with request.app[CREATE_LOCK]:
        current = len(engine.silences())
        if current >= cap:
            return _rejected(request, 409, f"too many silences: {current} are active or pending and "
                             f"alerting.max_silences is {cap}; expire some (DELETE /api/v1/silences/{{id}}) "
                             "or raise alerting.max_silences")
        await engine.add_silence(silence)
    return json_response({"id": silence.id, "silence": silence.to_dict(engine.clock())}, status=201)


@require_token
async def expire_silence(request: web.Request) -> web.Response:
    engine = _engine(request)
    silence_id = request.match_info["id"]
    try:
        silence = await engine.expire_silence(silence_id)
    except ValueError as exc:
        return error(409, str(exc))
    if silence is None:
        return error(404, f"no silence with id {silence_id!r}")
    return json_response({"id": silence.id, "silence": silence.to_dict(engine.clock())})


async def show_runbook(request: web.Request) -> web.StreamResponse:
    engine = _engine(request)
    name = request.match_info["check"]
    cfg = engine.checks.get(name)
    if cfg is None:
        return error(404, f"no check named {name!r}")
    runbook = effective_runbook(cfg)
    if runbook and is_url(runbook):
        raise web.HTTPFound(runbook)
    agent = request.app.get(AGENT_KEY)

    def read() -> str:
        return find_runbook(name, runbook, getattr(agent, "config_path", None)).read_text(encoding="utf-8")

    try:
        text = await asyncio.to_thread(read)
    except RunbookError as exc:
        return error(404, str(exc))
    return web.Response(text=text, content_type="text/markdown")


def add_routes(app: web.Application, engine: AlertingService) -> None:
    app[ENGINE_KEY] = engine
    app[CREATE_LOCK] = asyncio.Lock()
    app.add_routes([
        web.get("/api/v1/alerts", list_alerts),
        web.get("/api/v1/silences", list_silences),
        web.post("/api/v1/silences", create_silence),
        web.delete("/api/v1/silences/{id}", expire_silence),
        web.get("/api/v1/runbooks/{check}", show_runbook),
    ])
