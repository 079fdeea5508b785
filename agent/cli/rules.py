"""`sre-agent rules ...`: Prometheus rules as code, built from the same config the agent runs.

`rules build` writes `alert_rules/` (committed); `rules check` is for CI: it
runs `promtool check rules` on what would be generated and, with `--against`,
fails when the committed files drifted from the config.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import click

PROMTOOL_TIMEOUT = 60.0


def promtool_check(paths: list[Path]) -> tuple[bool, str]:
    """Run `promtool check rules` on files; (ok, combined output)."""
    promtool = shutil.which("promtool")
    if promtool is None:
        return False, "promtool not found on PATH (Debian package `prometheus`)"
    proc = subprocess.run([promtool, "check", "rules", *map(str, paths)], capture_output=True, text=True,
                          timeout=PROMTOOL_TIMEOUT, check=False)
    return proc.returncode == 0, (proc.stdout + proc.stderr).strip()


def register(main: click.Group) -> None:
    @main.group()
    def rules() -> None:
        """Prometheus recording and alerting rules for the SLOs and checks."""

    @rules.command()
    @click.option("-c", "--config", "config_path", envvar="SRE_AGENT_CONFIG", type=click.Path(dir_okay=False),
                  help="config file (default: $SRE_AGENT_CONFIG, else the embedded quickstart)")
    @click.option("-o", "--output", "out_dir", type=click.Path(file_okay=False), default="alert_rules",
                  show_default=True, help="directory for the rule files")
    def build(config_path: str | None, out_dir: str) -> None:
        """Write one rule file per SLO (slo-<name>.yml) plus sre-agent-checks.yml."""
        from agent.cli.common import load_or_exit
        from agent.codegen.rules import build_rules, write_rules

        files = build_rules(load_or_exit(config_path))
        written, removed = write_rules(files, out_dir)
        for path in written:
            click.echo(f"wrote {path}")
        for path in removed:
            click.echo(f"removed {path} (no longer generated)")
        click.echo(f"{len(files)} rule files in {out_dir} ({len(written)} changed, {len(removed)} removed)")

    @rules.command()
    @click.option("-c", "--config", "config_path", envvar="SRE_AGENT_CONFIG", type=click.Path(dir_okay=False),
                  help="config file (default: $SRE_AGENT_CONFIG, else the embedded quickstart)")
    @click.option("--against", "against", type=click.Path(file_okay=False, exists=True), default=None,
                  help="fail if the rule files in this directory differ from what the config generates")
    def check(config_path: str | None, against: str | None) -> None:
        """Validate the generated rules with promtool (exit 1 on errors or drift)."""
        from agent.cli.common import load_or_exit
        from agent.codegen.rules import build_rules, write_rules

        files = build_rules(load_or_exit(config_path))
        failed = False
        with tempfile.TemporaryDirectory(prefix="sre-agent-rules-") as tmp:
            write_rules(files, tmp)
            ok, output = promtool_check(sorted(Path(tmp).glob("*.yml")))
            click.echo(output.replace(tmp + "/", ""))
            failed |= not ok
        if against is not None:
            for name, text in files.items():
                path = Path(against) / name
                if not path.exists() or path.read_text(encoding="utf-8") != text:
                    click.echo(f"drift: {path} differs from the config; run `sre-agent rules build -o {against}`", err=True)
                    failed = True
        sys.exit(1 if failed else 0)
