"""`sre-agent`: the daemon and the SRE's terminal tools.

Exit codes: `check` uses the Nagios codes (0 OK, 1 WARNING, 2 CRITICAL,
3 UNKNOWN; the worst result wins, CRITICAL counting worse than UNKNOWN);
config errors exit 2 with every problem listed.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import click

from agent import __version__
from agent.cli import alerting as alerting_commands
from agent.cli import dashboards as dashboard_commands
from agent.cli import rules as rules_commands
from agent.cli.common import CONFIG_HELP, config_option, load_or_exit
from agent.config import ConfigError
from agent.core import CheckResult, Status

__all__ = ["CONFIG_HELP", "config_option", "load_or_exit", "main"]
_STATUS_COLOR = {Status.OK: "green", Status.WARNING: "yellow", Status.CRITICAL: "red", Status.UNKNOWN: "magenta"}


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="sre-agent")
def main() -> None:
    """sre-agent: health, SLO, backup and freshness checks with alert routing."""


@main.command()
@config_option
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default=None,
              help="override agent.log_level")
def run(config_path: str | None, log_level: str | None) -> None:
    """Run the daemon: schedule checks, serve /metrics, route alerts.

    SIGHUP (or POST /-/reload with the API token) reloads the config; SIGTERM/SIGINT stop cleanly.
    """
    from agent import logs
    from agent.daemon import run_agent

    config = load_or_exit(config_path)
    logs.setup(log_level or config.agent.log_level, config.agent.log_format)
    try:
        code = asyncio.run(run_agent(config_path))
    except ConfigError as exc:
        for issue in exc.issues:
            click.echo(f"  {issue}", err=True)
        code = 2
    sys.exit(code)


@main.command()
@config_option
@click.argument("names", nargs=-1)
@click.option("--all", "run_all", is_flag=True, help="run every configured check")
@click.option("--output", "-o", type=click.Choice(["text", "json"]), default="text", show_default=True)
def check(config_path: str | None, names: tuple[str, ...], run_all: bool, output: str) -> None:
    """Run checks once, now, and print their results.

    Exit code is the worst status: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.
    """
    config = load_or_exit(config_path)
    known = [c.name for c in config.all_checks()]
    if not names and not run_all:
        click.echo("name one or more checks, or pass --all. Checks: " + ", ".join(known), err=True)
        sys.exit(3)
    unknown = [n for n in names if n not in known]
    if unknown:
        click.echo(f"unknown check{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)}", err=True)
        click.echo("configured checks: " + (", ".join(known) or "(none)"), err=True)
        sys.exit(3)
    from agent.oneshot import run_once

    results = asyncio.run(run_once(config, list(names) if names else None))
    if output == "json":
        click.echo(json.dumps([r.to_dict() for r in results], indent=2, default=str))
    else:
        for r in results:
            _print_result(r)
    sys.exit(int(Status.worst([r.status for r in results])) if results else 0)


def _print_result(r: CheckResult) -> None:
    from agent.durations import human

    status = click.style(f"{r.status.name:<8}", fg=_STATUS_COLOR[r.status], bold=True)
    click.echo(f"{status} {r.check} ({r.type}) {r.summary}  [{human(r.duration_seconds)}]")
    for name, value in sorted(r.observations.items()):
        click.echo(f"         {name} = {value:g}")


@main.command()
@config_option
def validate(config_path: str | None) -> None:
    """Validate the config: exit 0 with one line per check, or 2 with every error."""
    config = load_or_exit(config_path)
    checks = config.all_checks()
    for c in checks:
        click.echo(f"ok  {c.name:<30} {c.type:<12} {_schedule(c)}")
    click.echo(f"config valid: {len(checks)} checks")


def _schedule(c: Any) -> str:
    from agent.durations import format_duration

    return f"cron '{c.cron}'" if c.cron else f"every {format_duration(c.interval)}, timeout {format_duration(c.timeout)}"


@main.command(name="list")
@config_option
@click.option("--output", "-o", type=click.Choice(["text", "json"]), default="text", show_default=True)
def list_checks(config_path: str | None, output: str) -> None:
    """List configured checks with their type, schedule and labels."""
    config = load_or_exit(config_path)
    checks = config.all_checks()
    if output == "json":
        from agent.secrets import REDACTOR

        # Expanded ${ENV} and *_file values live in the models: redact like every other output.
        dumped = [c.model_dump(mode="json", by_alias=True, exclude_none=True) for c in checks]
        click.echo(json.dumps(REDACTOR.redact_obj(dumped), indent=2))
        return
    click.echo(f"{'NAME':<30} {'TYPE':<12} {'SCHEDULE':<32} LABELS")
    for c in checks:
        labels = ",".join(f"{k}={v}" for k, v in sorted(c.labels.items()))
        click.echo(f"{c.name:<30} {c.type:<12} {_schedule(c):<32} {labels}")


@main.group()
def config() -> None:
    """Config tools."""


@config.command()
def schema() -> None:
    """Print the JSON Schema of the config file (for editor completion)."""
    from agent.config import json_schema

    click.echo(json.dumps(json_schema(), indent=2))


alerting_commands.register(main)
rules_commands.register(main)
dashboard_commands.register(main)


