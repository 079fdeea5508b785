"""Terminal commands for alerting: `silence add|list|expire`, `alerts`, `runbook`.

`silence` and `alerts` talk to the running agent's API (httpx, explicit
timeouts), so what they show is what the daemon acts on; from `-c FILE` they
read only `agent.listen` (no receiver secret need be set in the shell).
`runbook` reads the config and the runbook file locally and works with no
agent running.
"""

from __future__ import annotations

import json
import os
import sys
import time
from datetime import datetime
from typing import Any

import click

DEFAULT_URL = "http://127.0.0.1:9108"
TIMEOUT_SECONDS, CONNECT_TIMEOUT_SECONDS = 10.0, 3.0
SILENCE_PAGE = 500


def _base_url(url: str | None, config_path: str | None) -> str:
    if url:
        return url.rstrip("/")
    if config_path:
        from agent.alerting.lifecycle import agent_url
        from agent.cli.common import exit_invalid
        from agent.config import ConfigError, agent_listen

        # Only the address: no receiver secrets or check packages are needed to talk to the agent.
        try:
            listen = agent_listen(config_path)
        except ConfigError as exc:
            exit_invalid(exc)
        return agent_url(None, listen)
    return DEFAULT_URL


def _request(method: str, base: str, path: str, token: str | None = None, **kwargs: Any) -> Any:
    import httpx  # here, not at module level: every `sre-agent` command would pay its import

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        response = httpx.request(method, base + path, headers=headers,
                                 timeout=httpx.Timeout(TIMEOUT_SECONDS, connect=CONNECT_TIMEOUT_SECONDS), **kwargs)
    except httpx.HTTPError as exc:
        click.echo(f"cannot reach the agent at {base}: {type(exc).__name__}: {exc}", err=True)
        sys.exit(1)
    try:
        data = response.json()
    except ValueError:
        data = {"error": response.text.strip()[:300]}
    if response.status_code >= 400:
        message = data.get("error", f"HTTP {response.status_code}") if isinstance(data, dict) else str(data)
        click.echo(f"agent answered {response.status_code}: {message}", err=True)
        for problem in data.get("problems", []) if isinstance(data, dict) else []:
            click.echo(f"  {problem}", err=True)
        if response.status_code == 403:
            click.echo("set agent.api_token (or api_token_file) in the agent's config to enable writes", err=True)
        elif response.status_code == 401:
            click.echo("pass --token or set SRE_AGENT_API_TOKEN", err=True)
        sys.exit(1)
    return data


def _all_silences(base: str, show_all: bool) -> list[dict[str, Any]]:
    """Follow `GET /api/v1/silences` page by page until `total` (an agent without pages answers all at once)."""
    out: dict[str, dict[str, Any]] = {}
    offset = 0
    while True:
        query = f"?limit={SILENCE_PAGE}&offset={offset}" + ("&all=1" if show_all else "")
        data = _request("GET", base, "/api/v1/silences" + query)
        page = data["silences"]
        out.update((s["id"], s) for s in page)
        offset += len(page)
        total = data.get("total")
        # An empty page ends it too: silences expiring between pages shrink the total.
        if not isinstance(total, int) or not page or offset >= total:
            return list(out.values())


def _when(ts: float | None) -> str:
    return datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M") if ts else "-"


def _age(ts: float | None) -> str:
    from agent.durations import human

    return human(time.time() - ts) if ts else "-"


def api_options(f: Any) -> Any:
    f = click.option("--token", envvar="SRE_AGENT_API_TOKEN", help="API token (default: $SRE_AGENT_API_TOKEN)")(f)
    f = click.option("--url", help=f"agent URL (default: from -c's agent.listen, else {DEFAULT_URL})")(f)
    return click.option("-c", "--config", "config_path", envvar="SRE_AGENT_CONFIG", type=click.Path(dir_okay=False),
                        help="config file, to find the agent's address")(f)


def register(main: click.Group) -> None:
    @main.group()
    def silence() -> None:
        """Create, list and expire silences on the running agent."""

    @silence.command("add")
    @api_options
    @click.option("--matcher", "-m", "matchers", multiple=True, help="label=value (repeatable)")
    @click.option("--matcher-re", "matchers_re", multiple=True, help="label=regex, fully anchored (repeatable)")
    @click.option("--duration", "-d", help="how long, e.g. 2h (or --ends-at)")
    @click.option("--starts-at", help="ISO 8601 start (default: now)")
    @click.option("--ends-at", help="ISO 8601 end")
    @click.option("--comment", required=True, help="why: shown with the silence")
    @click.option("--created-by", default=lambda: os.environ.get("USER", "cli"), show_default="$USER")
    def silence_add(config_path: str | None, url: str | None, token: str | None, matchers: tuple[str, ...],
                    matchers_re: tuple[str, ...], duration: str | None, starts_at: str | None, ends_at: str | None,
                    comment: str, created_by: str) -> None:
        """Silence alerts matching labels, e.g. `silence add -m service=api -d 2h --comment deploy`."""
        from agent.cli.common import key_value_pairs

        body: dict[str, Any] = {"matchers": key_value_pairs(matchers, "--matcher", "label=value"),
                                "matchers_re": key_value_pairs(matchers_re, "--matcher-re", "label=value"),
                                "comment": comment, "created_by": created_by}
        if not body["matchers"] and not body["matchers_re"]:
            raise click.UsageError("give at least one --matcher or --matcher-re")
        if (duration is None) == (ends_at is None):
            raise click.UsageError("give exactly one of --duration or --ends-at")
        body.update({k: v for k, v in (("duration", duration), ("ends_at", ends_at), ("starts_at", starts_at)) if v})
        data = _request("POST", _base_url(url, config_path), "/api/v1/silences", token, json=body)
        s = data["silence"]
        click.echo(f"silence {data['id']} created: until {_when(s['ends_at'])}")

    @silence.command("list")
    @api_options
    @click.option("--all", "show_all", is_flag=True, help="include expired silences")
    @click.option("--output", "-o", type=click.Choice(["text", "json"]), default="text", show_default=True)
    def silence_list(config_path: str | None, url: str | None, token: str | None, show_all: bool, output: str) -> None:
        """List active and pending silences (every page of them)."""
        silences = _all_silences(_base_url(url, config_path), show_all)
        if output == "json":
            click.echo(json.dumps(silences, indent=2))
            return
        click.echo(f"{'ID':<34} {'STATUS':<8} {'ENDS':<17} {'BY':<12} MATCHERS / COMMENT")
        for s in silences:
            match = ",".join([f"{k}={v}" for k, v in s["matchers"].items()] + [f"{k}=~{v}" for k, v in s["matchers_re"].items()])
            click.echo(f"{s['id']:<34} {s['status']:<8} {_when(s['ends_at']):<17} {s['created_by'][:12]:<12} {match}  {s['comment']}")

    @silence.command("expire")
    @api_options
    @click.argument("silence_id")
    def silence_expire(config_path: str | None, url: str | None, token: str | None, silence_id: str) -> None:
        """Expire a silence now."""
        _request("DELETE", _base_url(url, config_path), f"/api/v1/silences/{silence_id}", token)
        click.echo(f"silence {silence_id} expired")

    @main.command("alerts")
    @api_options
    @click.option("--state", default="pending,firing", show_default=True, help="comma-separated: pending, firing, resolved")
    @click.option("--output", "-o", type=click.Choice(["text", "json"]), default="text", show_default=True)
    def alerts(config_path: str | None, url: str | None, token: str | None, state: str, output: str) -> None:
        """Show the running agent's current alerts."""
        data = _request("GET", _base_url(url, config_path), "/api/v1/alerts", params={"state": state})
        if output == "json":
            click.echo(json.dumps(data["alerts"], indent=2))
            return
        if not data["alerts"]:
            click.echo("no alerts")
            return
        click.echo(f"{'STATE':<9} {'SEVERITY':<10} {'CHECK':<28} {'SINCE':<8} {'SUPPRESSED':<22} SUMMARY")
        for a in data["alerts"]:
            click.echo(f"{a['state']:<9} {a['severity']:<10} {a['check'][:28]:<28} {_age(a['starts_at']):<8} "
                       f"{(a['suppressed_by'] or '-')[:22]:<22} {a['summary']}")

    @main.command("runbook")
    @click.option("-c", "--config", "config_path", envvar="SRE_AGENT_CONFIG", type=click.Path(dir_okay=False),
                  help="config file (default: $SRE_AGENT_CONFIG, else the embedded quickstart)")
    @click.argument("check")
    def runbook(config_path: str | None, check: str) -> None:
        """Print the runbook (Markdown) of a check."""
        from agent.alerting.runbooks import RunbookError, find_runbook, is_url
        from agent.cli.common import load_or_exit
        from agent.runbooks import effective_runbook

        config = load_or_exit(config_path)
        try:
            cfg = config.check(check)
        except KeyError:
            names = ", ".join(c.name for c in config.all_checks()) or "(none)"
            click.echo(f"unknown check {check!r}; configured checks: {names}", err=True)
            sys.exit(1)
        runbook = effective_runbook(cfg)
        if runbook and is_url(runbook):
            click.echo(f"the runbook of {check} is online: {runbook}")
            return
        try:
            path = find_runbook(check, runbook, config_path)
        except RunbookError as exc:
            click.echo(str(exc), err=True)
            sys.exit(1)
        click.echo(path.read_text(encoding="utf-8"), nl=False)
