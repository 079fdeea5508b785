"""What every `sre-agent` command shares: the `-c/--config` option and loading it or exiting 2."""

from __future__ import annotations

import sys
from typing import Any, NoReturn

import click

from agent.config import ConfigBase, ConfigError, load_config

CONFIG_HELP = "config file (default: $SRE_AGENT_CONFIG, else the embedded quickstart)"


def config_option(f: Any) -> Any:
    return click.option("-c", "--config", "config_path", envvar="SRE_AGENT_CONFIG", type=click.Path(dir_okay=False),
                        help=CONFIG_HELP)(f)


def load_or_exit(path: str | None, *, lazy_sections: bool = False) -> ConfigBase:
    """The validated config, or every error on stderr and exit code 2 (`lazy_sections`: see load_config)."""
    try:
        return load_config(path, lazy_sections=lazy_sections)
    except ConfigError as exc:
        exit_invalid(exc)


def exit_invalid(exc: ConfigError) -> NoReturn:
    n = len(exc.issues)
    click.echo(f"config invalid: {n} error{'s' if n != 1 else ''}", err=True)
    for issue in exc.issues:
        click.echo(f"  {issue}", err=True)
    sys.exit(2)


def key_value_pairs(values: tuple[str, ...], option: str, shape: str = "KEY=VALUE") -> dict[str, str]:
    """Repeated `--option K=V` values as a mapping; a value without `=` is a usage error naming the option."""
    out: dict[str, str] = {}
    for value in values:
        key, sep, val = value.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"expected {shape}, got {value!r}", param_hint=option)
        out[key.strip()] = val
    return out
