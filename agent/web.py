"""The HTTP helpers every API route shares: JSON answers, the bearer-token guard, the app key.

A floor below `agent.api` and the domain routes (`agent.alerting.api`), so
neither reaches up to the daemon: routes see the agent through `AgentView`,
the few attributes they read, not the `Agent` class.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from aiohttp import web

from agent.secrets import REDACTOR

if TYPE_CHECKING:
    from agent.config import ConfigBase
    from agent.metrics import Metrics
    from agent.scheduler import Scheduler

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class AgentView(Protocol):
    """What the API reads of the running agent."""

    config: ConfigBase | None
    metrics: Metrics
    scheduler: Scheduler | None
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
