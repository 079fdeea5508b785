"""Local servers that speak Slack's, PagerDuty's, Alertmanager's and a webhook's wire format.

Slack and PagerDuty cannot be reached from a test, so these stand in for
them on 127.0.0.1:0. They record every request and answer the way the real
service documents: Slack refuses a message over a Block Kit limit with
`invalid_blocks`, PagerDuty refuses a malformed event with 400 and an
`errors` list. A test can queue scripted answers (429 + Retry-After, 5xx,
400, or never answering) that are served before the normal behaviour.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aiohttp import web


@dataclass
class Answer:
    status: int = 200
    body: Any = ""
    headers: dict[str, str] = field(default_factory=dict)
    #: never answer (until the server stops): for client timeouts
    hang: bool = False


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


def _response(answer: Answer) -> web.Response:
    if isinstance(answer.body, dict | list):
        return web.json_response(answer.body, status=answer.status, headers=answer.headers)
    return web.Response(status=answer.status, text=str(answer.body), headers=answer.headers,
                        content_type="text/plain")


class FakeServer:
    """Records requests; serves queued `Answer`s first, then `handle()`."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.script: deque[Answer] = deque()
        self._release = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.port = 0

    def answer(self, *answers: Answer) -> None:
        self.script.extend(answers)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> FakeServer:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def stop(self) -> None:
        self._release.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        recorded = Recorded(request.method, request.path, dict(request.headers), await request.read())
        self.requests.append(recorded)
        if self.script:
            answer = self.script.popleft()
            if answer.hang:
                await self._release.wait()
                return web.Response(status=503, text="released at shutdown")
            return _response(answer)
        return await self.handle(recorded)

    async def handle(self, request: Recorded) -> web.StreamResponse:
        return web.Response(text="ok")


# Slack -------------------------------------------------------------------------------------------

def block_kit_problems(message: dict[str, Any]) -> list[str]:
    """Every documented Block Kit limit the message breaks (empty when Slack would accept it)."""
    problems: list[str] = []
    text = message.get("text")
    blocks = message.get("blocks") or []
    if not text and not blocks:
        problems.append("no text and no blocks")
    if text is not None and len(text) > 40000:
        problems.append(f"text is {len(text)} characters (max 40000)")
    if len(blocks) > 50:
        problems.append(f"{len(blocks)} blocks (max 50)")

    def text_obj(obj: Any, where: str, limit: int, kinds: tuple[str, ...] = ("plain_text", "mrkdwn")) -> None:
        if not isinstance(obj, dict) or obj.get("type") not in kinds:
            problems.append(f"{where}: not a {'/'.join(kinds)} text object")
            return
        value = obj.get("text")
        if not isinstance(value, str) or not value:
            problems.append(f"{where}: empty text")
        elif len(value) > limit:
            problems.append(f"{where}: {len(value)} characters (max {limit})")

    for i, block in enumerate(blocks):
        kind = block.get("type")
        where = f"blocks[{i}] ({kind})"
        if kind == "header":
            text_obj(block.get("text"), where, 150, ("plain_text",))
        elif kind == "section":
            if "text" not in block and "fields" not in block:
                problems.append(f"{where}: needs text or fields")
            if "text" in block:
                text_obj(block["text"], where, 3000)
            fields = block.get("fields", [])
            if len(fields) > 10:
                problems.append(f"{where}: {len(fields)} fields (max 10)")
            for j, f in enumerate(fields):
                text_obj(f, f"{where}.fields[{j}]", 2000)
        elif kind == "actions":
            elements = block.get("elements", [])
            if not elements or len(elements) > 25:
                problems.append(f"{where}: {len(elements)} elements (1..25)")
            for j, el in enumerate(elements):
                text_obj(el.get("text"), f"{where}.elements[{j}]", 75, ("plain_text",))
                if len(el.get("url", "")) > 3000:
                    problems.append(f"{where}.elements[{j}]: url over 3000 characters")
        elif kind == "context":
            elements = block.get("elements", [])
            if not elements or len(elements) > 10:
                problems.append(f"{where}: {len(elements)} elements (1..10)")
            for j, el in enumerate(elements):
                text_obj(el, f"{where}.elements[{j}]", 3000)
        elif kind != "divider":
            problems.append(f"{where}: unknown block type")
    return problems


class FakeSlack(FakeServer):
    """Incoming webhook at `webhook_path` and the Web API's chat.postMessage under /api/."""

    def __init__(self, token: str = "xoxb-fake-bot-token-1234", channels: tuple[str, ...] = ("#ops",)) -> None:
        super().__init__()
        self.token = token
        self.channels = channels
        self.webhook_path = "/services/T0FAKE/B0FAKE/s3cr3tW3bh00kPath"

    @property
    def webhook_url(self) -> str:
        return self.url + self.webhook_path

    @property
    def messages(self) -> list[dict[str, Any]]:
        return [r.json for r in self.requests if r.method == "POST"]

    async def handle(self, request: Recorded) -> web.StreamResponse:
        if request.path == self.webhook_path:
            try:
                message = request.json
            except ValueError:
                return web.Response(status=400, text="invalid_payload")
            if block_kit_problems(message):
                return web.Response(status=400, text="invalid_blocks")
            return web.Response(text="ok")
        if request.path == "/api/chat.postMessage":
            if request.headers.get("Authorization") != f"Bearer {self.token}":
                return web.json_response({"ok": False, "error": "invalid_auth"})
            message = request.json
            if message.get("channel") not in self.channels:
                return web.json_response({"ok": False, "error": "channel_not_found"})
            if block_kit_problems(message):
                return web.json_response({"ok": False, "error": "invalid_blocks"})
            return web.json_response({"ok": True, "channel": "C0FAKE", "ts": "1700000000.000100",
                                      "message": {"text": message.get("text")}})
        return web.Response(status=404, text="no_service")


# PagerDuty ---------------------------------------------------------------------------------------

def pagerduty_errors(event: Any) -> list[str]:
    """The checks Events API v2 documents for /v2/enqueue."""
    if not isinstance(event, dict):
        return ["Event object is not a JSON object"]
    errors = []
    key = event.get("routing_key")
    if not isinstance(key, str) or len(key) != 32:
        errors.append("Length of 'routing_key' is incorrect (should be 32 characters)")
    action = event.get("event_action")
    if action not in ("trigger", "acknowledge", "resolve"):
        errors.append("'event_action' is invalid (must be one of: trigger, acknowledge, resolve)")
    dedup = event.get("dedup_key")
    if dedup is not None and (not isinstance(dedup, str) or len(dedup) > 255):
        errors.append("'dedup_key' must be a string of at most 255 characters")
    if action in ("acknowledge", "resolve") and not dedup:
        errors.append("'dedup_key' is required for acknowledge and resolve")
    if action == "trigger":
        payload = event.get("payload")
        if not isinstance(payload, dict):
            return [*errors, "'payload' is missing or invalid"]
        for required in ("summary", "source", "severity"):
            if not payload.get(required):
                errors.append(f"'payload.{required}' is missing or blank")
        if len(str(payload.get("summary", ""))) > 1024:
            errors.append("'payload.summary' is longer than 1024 characters")
        if payload.get("severity") not in ("critical", "error", "warning", "info"):
            errors.append("'payload.severity' must be one of critical, error, warning, info")
        if "timestamp" in payload:
            try:
                datetime.fromisoformat(str(payload["timestamp"]).replace("Z", "+00:00"))
            except ValueError:
                errors.append("'payload.timestamp' is not ISO 8601")
        for link in event.get("links", []):
            if not isinstance(link, dict) or not link.get("href"):
                errors.append("'links' entries need an href")
    return errors


class FakePagerDuty(FakeServer):
    path = "/v2/enqueue"

    @property
    def events(self) -> list[dict[str, Any]]:
        return [r.json for r in self.requests if r.path == self.path]

    async def handle(self, request: Recorded) -> web.StreamResponse:
        if request.path != self.path or request.method != "POST":
            return web.json_response({"status": "not found"}, status=404)
        try:
            event = request.json
        except ValueError:
            event = None
        errors = pagerduty_errors(event)
        if errors:
            return web.json_response({"status": "invalid event", "message": "Event object is invalid",
                                      "errors": errors}, status=400)
        return web.json_response({"status": "success", "message": "Event processed",
                                  "dedup_key": event.get("dedup_key") or "generated-key"}, status=202)


# Alertmanager ------------------------------------------------------------------------------------

class FakeAlertmanager(FakeServer):
    """POST /api/v2/alerts with the checks Alertmanager's API applies to postable alerts."""

    async def handle(self, request: Recorded) -> web.StreamResponse:
        if request.path != "/api/v2/alerts" or request.method != "POST":
            return web.Response(status=404, text="not found")
        try:
            alerts = request.json
        except ValueError:
            return web.json_response("body is not JSON", status=400)
        if not isinstance(alerts, list):
            return web.json_response("expected a list of alerts", status=400)
        for alert in alerts:
            labels = alert.get("labels") if isinstance(alert, dict) else None
            if not labels or not labels.get("alertname"):
                return web.json_response("labels with alertname are required", status=400)
            starts, ends = alert.get("startsAt"), alert.get("endsAt")
            if starts and ends and datetime.fromisoformat(ends.replace("Z", "+00:00")) < datetime.fromisoformat(
                    starts.replace("Z", "+00:00")):
                return web.json_response("start time must be before end time", status=400)
        return web.Response(status=200)
