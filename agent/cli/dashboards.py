"""`sre-agent dashboards ...`: Grafana dashboards as code, built from the same config the agent runs.

`dashboards build` writes one JSON file per `dashboards/*.dashboard.py` (the
committed `dashboards/generated/` comes from `examples/slo.yaml`); `dashboards
check` is for CI: it builds every dashboard and, with `--against`, fails when
the committed files drifted from the sources or the config. grafanalib is
imported inside the commands only.
"""

from __future__ import annotations

import sys

import click

from agent.cli.common import CONFIG_HELP


def _build(config_path: str | None) -> dict[str, str]:
    from agent.cli.common import load_or_exit
    from agent.codegen.dashboards import DashboardSourceError, build_dashboards

    config = load_or_exit(config_path)
    try:
        return build_dashboards(config)
    except DashboardSourceError as exc:
        click.echo(f"cannot build the dashboards: {exc}", err=True)
        sys.exit(1)


def register(main: click.Group) -> None:
    @main.group()
    def dashboards() -> None:
        """Grafana dashboards for the agent's metrics (dashboards/*.dashboard.py)."""

    @dashboards.command()
    @click.option("-c", "--config", "config_path", envvar="SRE_AGENT_CONFIG", type=click.Path(dir_okay=False),
                  help=CONFIG_HELP)
    @click.option("-o", "--output", "out_dir", type=click.Path(file_okay=False), default="dashboards/generated",
                  show_default=True, help="directory for the dashboard JSON files")
    def build(config_path: str | None, out_dir: str) -> None:
        """Write one Grafana dashboard JSON per dashboard (rows per SLO and runbook links from the config)."""
        from agent.codegen.dashboards import write_dashboards

        files = _build(config_path)
        try:
            written = write_dashboards(files, out_dir)
        except OSError as exc:
            click.echo(f"cannot write the dashboards to {out_dir}: {exc.strerror or exc}", err=True)
            sys.exit(1)
        for path in written:
            click.echo(f"wrote {path}")
        click.echo(f"{len(files)} dashboards in {out_dir} ({len(written)} changed)")

    @dashboards.command()
    @click.option("-c", "--config", "config_path", envvar="SRE_AGENT_CONFIG", type=click.Path(dir_okay=False),
                  help=CONFIG_HELP)
    @click.option("--against", "against", type=click.Path(file_okay=False, exists=True), default=None,
                  help="fail if the dashboard files in this directory differ from what the config generates")
    def check(config_path: str | None, against: str | None) -> None:
        """Build every dashboard (exit 1 on a broken source or, with --against, on drift)."""
        from agent.codegen.dashboards import drift

        files = _build(config_path)
        click.echo(f"{len(files)} dashboards build: {', '.join(files)}")
        if against is None:
            return
        stale = drift(files, against)
        for name in stale:
            click.echo(f"drift: {against.rstrip('/')}/{name} differs from the config; "
                       f"run `sre-agent dashboards build -o {against}`", err=True)
        sys.exit(1 if stale else 0)
