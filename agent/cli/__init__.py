"""`sre-agent`: the daemon and the SRE's terminal tools.

Exit codes: `check` uses the Nagios codes (0 OK, 1 WARNING, 2 CRITICAL,
3 UNKNOWN; the worst result wins, CRITICAL counting worse than UNKNOWN);
config errors exit 2 with every problem listed.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

import click

from agent import __version__, humanize, reports
from agent.cli import alerting as alerting_commands
from agent.cli import dashboards as dashboard_commands
from agent.cli import digest as digest_commands
from agent.cli import notify as notify_commands
from agent.cli import rules as rules_commands
from agent.cli.common import CONFIG_HELP, config_option, key_value_pairs, load_or_exit
from agent.config import ConfigError
from agent.reports import FORMATS, format_for

__all__ = ["CONFIG_HELP", "config_option", "load_or_exit", "main"]
_STATUS_COLOR = {"OK": "green", "WARNING": "yellow", "CRITICAL": "red", "UNKNOWN": "magenta", "SKIPPED": "cyan"}


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
    factory = _loop_factory(config)
    agent_main = run_agent(config_path, config)  # a coroutine: nothing runs until the loop does
    del config  # the agent owns it now: a reload must be able to free it
    try:
        with asyncio.Runner(loop_factory=factory) as runner:
            code = runner.run(agent_main)
    except ConfigError as exc:
        for issue in exc.issues:
            click.echo(f"  {issue}", err=True)
        code = 2
    sys.exit(code)


@main.command()
@config_option
@click.argument("names", nargs=-1)
@click.option("--all", "run_all", is_flag=True, help="every configured check (disabled ones are reported SKIPPED)")
@click.option("--tag", "tags", multiple=True, metavar="TAG", help="checks with this tag (repeatable: any of them)")
@click.option("--suite", "suites", multiple=True, metavar="NAME", help="the same as --tag NAME")
@click.option("--label", "labels", multiple=True, metavar="KEY=VALUE",
              help="only checks with this label (repeatable: all must hold)")
@click.option("--output", "-o", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--verbose", "-v", is_flag=True, help="observations of every check, not only the failing ones")
@click.option("--failed-only", is_flag=True, help="print only checks that are not OK (the summary counts all)")
@click.option("--report", "report_path", type=click.Path(dir_okay=False, writable=True), metavar="FILE",
              help="also write a report: *.xml JUnit, *.md Markdown, *.json JSON")
@click.option("--report-format", type=click.Choice(list(FORMATS)), help="report format, instead of the file suffix")
def check(config_path: str | None, names: tuple[str, ...], run_all: bool, tags: tuple[str, ...],
          suites: tuple[str, ...], labels: tuple[str, ...], output: str, verbose: bool, failed_only: bool,
          report_path: str | None, report_format: str | None) -> None:
    """Run checks once, now, and print their results.

    NAMES are check names (or an SLO's name: its check `slo-<name>` runs) or globs ('payments-*'). A check runs when it matches every kind of criterion
    given (a name or glob, a tag, all labels). Checks of a selected suite that do not run are SKIPPED.
    Exit code is the worst status: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.
    """
    from agent.oneshot import Selection, SelectionError, run_selection

    fmt = None
    if report_path is not None:
        try:
            fmt = format_for(report_path, report_format)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--report") from None
    elif report_format is not None:
        raise click.UsageError("--report-format needs --report FILE")
    config = load_or_exit(config_path, lazy_sections=True)  # only the sections it has: a faster start
    selection = Selection(patterns=tuple(_check_name(config, n) for n in names), tags=tuple(dict.fromkeys(tags + suites)),
                          labels=tuple(key_value_pairs(labels, "--label", "KEY=VALUE").items()), run_all=run_all)
    if selection.empty:
        known = [c.name for c in config.all_checks()]
        click.echo("name one or more checks, or pass --tag, --suite, --label or --all. Checks: " + ", ".join(known), err=True)
        sys.exit(3)
    try:
        with asyncio.Runner(loop_factory=_loop_factory(config)) as runner:
            report = runner.run(run_selection(config, selection))
    except SelectionError as exc:
        click.echo(str(exc), err=True)
        sys.exit(3)
    now = time.time()
    if output == "json":
        click.echo(reports.to_json(report))
    else:
        for line in reports.text_lines(report, verbose=verbose, failed_only=failed_only, now=now):
            if line.status is None:
                click.echo(line.text)
            else:
                status = click.style(f"{line.status:<8}", fg=_STATUS_COLOR[line.status], bold=True)
                click.echo(f"{status}  {line.text}")
        click.echo(report.summary_line())
    if report_path is not None and fmt is not None:
        try:
            _write_atomically(Path(report_path), reports.render(report, fmt, now))
        except OSError as exc:
            click.echo(f"cannot write the report {report_path}: {exc.strerror or exc}", err=True)
            sys.exit(3)
        if output == "text":
            click.echo(f"report written to {report_path} ({fmt})")
    sys.exit(report.exit_code)


def _check_name(config: Any, name: str) -> str:
    """A check's name as given, or the check an SLO of that name derives (`slo-<name>`); globs as given."""
    if any(ch in name for ch in "*?["):
        return name
    try:
        return str(config.check(name).name)
    except KeyError:
        return name  # the selection reports it as unknown, with a hint


def _loop_factory(config: Any) -> Any:
    """uvloop or the standard loop, as `agent.event_loop` says; exit 2 when it names a loop that is missing."""
    from agent.eventloop import loop_factory

    try:
        return loop_factory(config.agent.event_loop)
    except RuntimeError as exc:
        click.echo(f"config invalid: {exc}", err=True)
        sys.exit(2)


def _write_atomically(path: Path, text: str) -> None:
    """A reader (a CI step) never sees half a report."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


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
@click.option("--url", help="a running agent, for each check's last status and age "
              "(default: the config's agent.listen, when an agent answers there)")
@click.option("--output", "-o", type=click.Choice(["text", "json"]), default="text", show_default=True)
def list_checks(config_path: str | None, url: str | None, output: str) -> None:
    """List configured checks with their type, schedule, tags and labels (and last status, from an agent)."""
    config = load_or_exit(config_path)
    checks = config.all_checks()
    latest = _last_results(url, config.agent.listen)
    if output == "json":
        from agent.secrets import REDACTOR

        # Expanded ${ENV} and *_file values live in the models: redact like every other output.
        dumped = [{**c.model_dump(mode="json", by_alias=True, exclude_none=True),
                   "last_result": (latest or {}).get(c.name)} for c in checks]
        click.echo(json.dumps(REDACTOR.redact_obj(dumped), indent=2))
        return
    now = time.time()
    head = f"{'NAME':<30} {'TYPE':<12} {'SCHEDULE':<32} "
    click.echo(head + (f"{'STATUS':<9} {'AGE':<9} " if latest is not None else "") + "TAGS / LABELS")
    for c in checks:
        labels = " ".join([f"#{t}" for t in c.tags] + [f"{k}={v}" for k, v in sorted(c.labels.items())])
        line = f"{c.name:<30} {c.type:<12} {_schedule(c):<32} "
        if latest is not None:
            last = latest.get(c.name)
            status = last["status"] if last else ("disabled" if not c.enabled else "-")
            age = humanize.age(float(last["timestamp"]), now).removesuffix(" ago") if last else "-"
            line += click.style(f"{status:<9}", fg=_STATUS_COLOR.get(status)) + f" {age:<9} "
        click.echo(line + labels)


def _last_results(url: str | None, listen: str) -> dict[str, dict[str, Any]] | None:
    """Each check's last result from the running agent: {} for none yet, None when no agent answered.

    With an explicit `--url` an unreachable agent is reported; the default address is only tried.
    """
    import httpx

    from agent.alerting.lifecycle import agent_url

    if url is None:
        if listen.rpartition(":")[2] == "0":
            return None
        base = agent_url(None, listen)
    else:
        base = url.rstrip("/")
    try:
        response = httpx.get(base + "/api/v1/checks", timeout=httpx.Timeout(5.0, connect=1.0))
        response.raise_for_status()
        data = response.json()
        return {c["name"]: c["last_result"] for c in data["checks"] if c.get("last_result")}
    except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
        if url is not None:
            click.echo(f"cannot read the agent at {base}: {type(exc).__name__}: {exc}; listing the config only", err=True)
        return None


@main.group()
def config() -> None:
    """Config tools."""


@config.command()
def schema() -> None:
    """Print the JSON Schema of the config file (for editor completion)."""
    from agent.config import json_schema

    click.echo(json.dumps(json_schema(), indent=2))


alerting_commands.register(main)
digest_commands.register(main)
notify_commands.register(main)
rules_commands.register(main)
dashboard_commands.register(main)


