"""Alerting's HTTP API on the agent's listener: current alerts, silences, runbooks.

Reads are open like the rest of the API; creating or expiring a silence is a
write and goes through `agent.web.require_token` (403 while no token is
configured, 401 for a wrong one). Silences created here are stored durably
and apply within a second.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol

from aiohttp import web
from pydantic import Field, ValidationError, field_validator, model_validator

from agent.alerting.config import LATEST_END, compile_matchers
from agent.alerting.runbooks import RunbookError, find_runbook, is_url
from agent.alerting.silences import Silence
from agent.check import CheckConfig, Model
from agent.config import format_path
from agent.core import Alert
from agent.durations import Duration
from agent.web import AGENT_KEY, error, json_response, require_token


class AlertingService(Protocol):
    """What these routes use of the alerting engine (`agent.alerting.engine.AlertingEngine`)."""

    checks: dict[str, CheckConfig]

    clock: Callable[[], float]

    def alerts(self, states: set[str] | None = None) -> list[Alert]: ...
    def silences(self, include_expired: bool = False) -> list[Silence]: ...
    async def add_silence(self, silence: Silence) -> Silence: ...
    async def expire_silence(self, silence_id: str) -> Silence | None: ...


ENGINE_KEY: web.AppKey[AlertingService] = web.AppKey("alerting")
STATES = ("pending", "firing", "resolved")


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


async def list_silences(request: web.Request) -> web.Response:
    engine = _engine(request)
    include_expired = request.query.get("all", "").lower() in ("1", "true", "yes")
    now = engine.clock()
    return json_response({"silences": [s.to_dict(now) for s in engine.silences(include_expired)]})


@require_token
async def create_silence(request: web.Request) -> web.Response:
    engine = _engine(request)
    try:
        body = await request.json()
    except ValueError:
        return error(400, "body must be a JSON object")
    try:
        silence = SilenceRequest.model_validate(body).to_silence(engine.clock())
    except ValidationError as exc:
        problems = [f"{format_path(e['loc']) or '<body>'}: {str(e['msg']).removeprefix('Value error, ')}"
                    for e in exc.errors(include_url=False)]
        return json_response({"error": "invalid silence", "problems": problems}, status=400)
    except ValueError as exc:
        return error(400, str(exc))
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
    if cfg.runbook and is_url(cfg.runbook):
        raise web.HTTPFound(cfg.runbook)
    agent = request.app.get(AGENT_KEY)

    def read() -> str:
        return find_runbook(name, cfg.runbook, getattr(agent, "config_path", None)).read_text(encoding="utf-8")

    try:
        text = await asyncio.to_thread(read)
    except RunbookError as exc:
        return error(404, str(exc))
    return web.Response(text=text, content_type="text/markdown")


def add_routes(app: web.Application, engine: AlertingService) -> None:
    app[ENGINE_KEY] = engine
    app.add_routes([
        web.get("/api/v1/alerts", list_alerts),
        web.get("/api/v1/silences", list_silences),
        web.post("/api/v1/silences", create_silence),
        web.delete("/api/v1/silences/{id}", expire_silence),
        web.get("/api/v1/runbooks/{check}", show_runbook),
    ])
