"""The API token (issue 14 item 12): an empty or short token is a config error, never "no auth".

`api_token: "${SRE_AGENT_API_TOKEN}"` with the variable set but empty used to
turn authentication off: an empty `Authorization: Bearer ` got 201 on a
30-day silence. And with no token configured, `POST /-/reload` was open.
"""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from agent.config import AgentSettings, ConfigBase, ConfigError, load_config
from agent.daemon import Agent
from agent.web import AGENT_KEY, json_response, require_token

TOKEN = "api-token-test-0123456789"


def _load(tmp_path: Path, agent: str, env: dict[str, str] | None = None) -> ConfigBase:
    p = tmp_path / "c.yaml"
    p.write_text(f"agent: {agent}\nchecks:\n  - {{name: a, type: tcp, host: 127.0.0.1, port: 1}}\n")
    return load_config(p, env=env or {})


@pytest.mark.parametrize(("agent", "env"), [
    ('{api_token: "${SRE_AGENT_API_TOKEN}"}', {"SRE_AGENT_API_TOKEN": ""}),
    ('{api_token: "${SRE_AGENT_API_TOKEN}"}', {"SRE_AGENT_API_TOKEN": "\n"}),
    ('{api_token: "${UNSET_TOKEN:-}"}', {}),
    ('{api_token: ""}', {}),
    ('{api_token: "   "}', {}),
], ids=["env-empty", "env-newline", "default-empty", "literal-empty", "blank"])
def test_an_empty_token_is_a_config_error_naming_the_field(tmp_path: Path, agent: str, env: dict[str, str]) -> None:
    with pytest.raises(ConfigError) as exc:
        _load(tmp_path, agent, env)
    [issue] = exc.value.issues
    assert issue.path == "agent.api_token"
    assert "api_token is empty" in issue.message and "16 characters" in issue.message


def test_a_short_token_is_a_config_error_and_is_not_echoed(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as exc:
        _load(tmp_path, "{api_token: short-tok3n}")
    [issue] = exc.value.issues
    assert issue.path == "agent.api_token"
    assert "too short (11 characters): use at least 16" in issue.message
    assert "short-tok3n" not in str(exc.value)


def test_a_short_token_from_a_file_is_refused_too(tmp_path: Path) -> None:
    secret = tmp_path / "token"
    secret.write_text("sh0rt-tk\n")
    with pytest.raises(ConfigError) as exc:
        _load(tmp_path, f"{{api_token_file: {secret}}}")
    assert [i.path for i in exc.value.issues] == ["agent.api_token"]
    assert "too short (8 characters)" in exc.value.issues[0].message


def test_a_long_enough_token_loads_from_env_and_file(tmp_path: Path) -> None:
    cfg = _load(tmp_path, '{api_token: "${T}"}', {"T": TOKEN + "\n"})
    assert cfg.agent.api_token is not None and cfg.agent.api_token.get_secret_value() == TOKEN
    secret = tmp_path / "token"
    secret.write_text(TOKEN + "\n")
    cfg = _load(tmp_path, f"{{api_token_file: {secret}}}")
    assert cfg.agent.api_token is not None and cfg.agent.api_token.get_secret_value() == TOKEN


class _View:
    """Just what `require_token` reads of the agent."""

    def __init__(self, token: SecretStr | None) -> None:
        settings = AgentSettings.model_construct(api_token=token)  # bypasses validation on purpose
        self.config = ConfigBase.model_construct(agent=settings)


async def _status(view: _View, authorization: str | None) -> int:
    from aiohttp import web
    from aiohttp.test_utils import TestClient, TestServer

    @require_token
    async def write(request: web.Request) -> web.Response:
        return json_response({"ok": True})

    app = web.Application()
    app[AGENT_KEY] = view  # type: ignore[assignment]
    app.router.add_post("/w", write)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        headers = {"Authorization": authorization} if authorization is not None else {}
        response = await client.post("/w", headers=headers)
        return response.status


async def test_the_comparison_never_accepts_an_empty_credential() -> None:
    # Even a token that slipped past validation as "" must not let an empty credential in.
    assert await _status(_View(SecretStr("")), "Bearer ") == 403
    assert await _status(_View(SecretStr("")), "Bearer") == 403
    assert await _status(_View(SecretStr("")), None) == 403
    assert await _status(_View(SecretStr(TOKEN)), "Bearer ") == 401
    assert await _status(_View(SecretStr(TOKEN)), f"Bearer {TOKEN}") == 200


def _agent_config(tmp_path: Path, token: bool) -> Path:
    p = tmp_path / "agent.yaml"
    p.write_text(f"""
agent:
  listen: 127.0.0.1:0
  state_dir: {tmp_path / "state"}
  {"api_token: " + TOKEN if token else ""}
checks:
  - {{name: a, type: tcp, host: 127.0.0.1, port: 1, interval: 1h}}
""")
    return p


async def test_reload_is_refused_without_a_configured_token(tmp_path: Path) -> None:
    path = _agent_config(tmp_path, token=False)
    agent = Agent(path, registry=CollectorRegistry())
    await agent.start()
    try:
        url = f"http://127.0.0.1:{agent.port}"
        path.write_text(path.read_text() + "  - {name: b, type: tcp, host: 127.0.0.1, port: 1, interval: 1h}\n")
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{url}/-/reload") as r:
                assert r.status == 403
                assert "write API disabled" in (await r.json())["error"]
            async with http.get(f"{url}/api/v1/checks") as r:
                assert [c["name"] for c in (await r.json())["checks"]] == ["a"]
        # SIGHUP stays available: it calls the same reload the route would have.
        assert (await agent.reload())[0] is True
        assert agent.scheduler is not None and sorted(agent.scheduler.checks) == ["a", "b"]
    finally:
        await agent.stop()


async def test_reload_needs_the_token_when_one_is_configured(tmp_path: Path) -> None:
    agent = Agent(_agent_config(tmp_path, token=True), registry=CollectorRegistry())
    await agent.start()
    try:
        url = f"http://127.0.0.1:{agent.port}"
        async with aiohttp.ClientSession() as http:
            for header in ({}, {"Authorization": "Bearer "}, {"Authorization": "Bearer wrong-token-0123456789"}):
                async with http.post(f"{url}/-/reload", headers=header) as r:
                    assert r.status == 401, header
            async with http.post(f"{url}/-/reload", headers={"Authorization": f"Bearer {TOKEN}"}) as r:
                assert r.status == 200
                assert (await r.json())["status"] == "reloaded"
    finally:
        await agent.stop()
