"""`sre-agent digest --print`: the daily digest as the running agent would send it now, in the terminal.

The digest is built by the agent from its live state (latest results, the
incident log, SLO and backup observations), so this asks the running agent
(`GET /api/v1/digest`); nothing is sent or recorded.
"""

from __future__ import annotations

import json
import sys

import click

from agent.cli.alerting import _base_url, _request, api_options


def register(main: click.Group) -> None:
    @main.command("digest")
    @api_options
    @click.option("--print", "print_", is_flag=True, default=True,
                  help="render the digest now, to the terminal (the default; nothing is sent)")
    @click.option("--output", "-o", type=click.Choice(["text", "json"]), default="text", show_default=True)
    def digest(config_path: str | None, url: str | None, token: str | None, print_: bool, output: str) -> None:
        """Print the daily digest (the morning checklist) as the running agent sees it now."""
        data = _request("GET", _base_url(url, config_path), "/api/v1/digest")
        if not isinstance(data, dict) or "digest" not in data:
            click.echo("the agent did not answer with a digest (is it an older version?)", err=True)
            sys.exit(1)
        if output == "json":
            click.echo(json.dumps(data["digest"], indent=2))
        else:
            click.echo(data["text"], nl=False)
