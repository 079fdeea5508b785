"""`sre-agent dashboards build` / `check --against`, bad input, the shipped sources and the provisioning files."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from agent.cli import main
from tests.dashboards.util import EXAMPLE, GENERATED, ROOT, UIDS


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agent.cli", *args], capture_output=True, text=True, timeout=120,
                          cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, check=False)


def test_build_writes_one_dashboard_per_source_and_check_agrees(tmp_path: Path) -> None:
    out = tmp_path / "out" / "dashboards"
    result = CliRunner().invoke(main, ["dashboards", "build", "-c", str(EXAMPLE), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == sorted(UIDS)
    assert "6 dashboards in" in result.output and "(6 changed)" in result.output
    again = CliRunner().invoke(main, ["dashboards", "build", "-c", str(EXAMPLE), "-o", str(out)])
    assert "(0 changed)" in again.output
    check = CliRunner().invoke(main, ["dashboards", "check", "-c", str(EXAMPLE), "--against", str(out)])
    assert check.exit_code == 0, check.output


def test_check_against_the_committed_files_passes() -> None:
    proc = run("dashboards", "check", "-c", str(EXAMPLE), "--against", str(GENERATED))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_check_exits_1_on_drift_and_names_the_file(tmp_path: Path) -> None:
    shutil.copytree(GENERATED, tmp_path / "gen")
    doc = json.loads((tmp_path / "gen" / "host.json").read_text())
    doc["panels"][1]["title"] = "edited by hand"
    (tmp_path / "gen" / "host.json").write_text(json.dumps(doc))
    (tmp_path / "gen" / "agent.json").unlink()
    result = CliRunner().invoke(main, ["dashboards", "check", "-c", str(EXAMPLE), "--against", str(tmp_path / "gen")])
    assert result.exit_code == 1
    assert f"drift: {tmp_path / 'gen'}/host.json differs" in result.output
    assert f"drift: {tmp_path / 'gen'}/agent.json differs" in result.output
    assert "slos.json" not in result.output.split("dashboards build:")[-1].split("\n", 1)[-1]


def test_a_different_config_changes_only_what_the_config_knows(tmp_path: Path) -> None:
    """-c adds the SLO rows and runbook links; a config with another SLO drifts only the SLO dashboard."""
    cfg = tmp_path / "slo.yaml"
    text = EXAMPLE.read_text().replace("objective: 99.9\n", "objective: 99.5\n", 1)
    cfg.write_text(text)
    result = CliRunner().invoke(main, ["dashboards", "check", "-c", str(cfg), "--against", str(GENERATED)])
    assert result.exit_code == 1
    assert [line.split()[1] for line in result.output.splitlines() if line.startswith("drift:")] == \
        [f"{GENERATED}/slos.json"]


def test_invalid_config_exits_2_with_the_config_errors(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(textwrap.dedent("""
        checks:
          - {name: api, type: http, url: "127.0.0.1:8080/healthz"}
          - {name: Bad Name, type: tcp, host: 127.0.0.1, port: 1}
    """))
    out = tmp_path / "out"
    proc = run("dashboards", "build", "-c", str(cfg), "-o", str(out))
    assert proc.returncode == 2
    assert "config invalid: 2 errors" in proc.stderr
    assert "checks[0].url: url must start with http:// or https://" in proc.stderr
    assert "checks[1].name" in proc.stderr
    assert not out.exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_unwritable_output_exits_1_naming_it(tmp_path: Path) -> None:  # pragma: no cover - CI runs as root
    out = tmp_path / "ro"
    out.mkdir()
    out.chmod(0o500)
    try:
        result = CliRunner().invoke(main, ["dashboards", "build", "-c", str(EXAMPLE), "-o", str(out)])
    finally:
        out.chmod(0o700)
    assert result.exit_code == 1
    assert f"cannot write the dashboards to {out}" in result.output
    assert list(out.iterdir()) == []


def test_output_that_is_a_file_exits_1_naming_it_and_writes_nothing(tmp_path: Path) -> None:
    """As root (CI) permissions do not stop a write, so the unwritable directory is a path under a file."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    out = blocker / "dashboards"
    result = CliRunner().invoke(main, ["dashboards", "build", "-c", str(EXAMPLE), "-o", str(out)])
    assert result.exit_code == 1
    assert f"cannot write the dashboards to {out}" in result.output
    assert blocker.read_text() == "not a directory"


def test_a_failed_write_leaves_no_half_written_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from agent.codegen import dashboards as codegen

    out = tmp_path / "out"
    out.mkdir()
    (out / "host.json").write_text("the previous version\n")
    real_replace = os.replace
    calls: list[str] = []

    def failing_replace(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        calls.append(str(dst))
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        real_replace(src, dst)

    monkeypatch.setattr(codegen.os, "replace", failing_replace)
    files = {name: f"{name} new\n" for name in ("agent.json", "health-checks.json", "host.json", "slos.json")}
    with pytest.raises(OSError, match="No space left"):
        codegen.write_dashboards(files, out)
    # each file is either the old one or the whole new one, and no temporary file is left behind
    assert sorted(p.name for p in out.iterdir()) == ["agent.json", "health-checks.json", "host.json"]
    assert (out / "host.json").read_text() == "the previous version\n"
    assert (out / "agent.json").read_text() == "agent.json new\n"


def test_a_broken_source_is_named(tmp_path: Path) -> None:
    from agent.codegen.dashboards import DashboardSourceError, build_dashboards
    from agent.config import load_config

    config = load_config(EXAMPLE, env={})
    (tmp_path / "broken.dashboard.py").write_text("def build(ctx):\n    return {'not': 'a dashboard'}\n")
    with pytest.raises(DashboardSourceError, match=r"broken.dashboard.py: build\(\) returned dict, not a grafanalib"):
        build_dashboards(config, tmp_path)
    (tmp_path / "broken.dashboard.py").write_text("x = 1\n")
    with pytest.raises(DashboardSourceError, match="broken.dashboard.py: defines no build"):
        build_dashboards(config, tmp_path)
    (tmp_path / "broken.dashboard.py").write_text("import grafanalib.nope\n")
    with pytest.raises(DashboardSourceError, match="broken.dashboard.py: ModuleNotFoundError"):
        build_dashboards(config, tmp_path)


def test_the_wheel_ships_the_sources_and_the_loader_finds_them_there(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """pyproject force-includes dashboards/ as agent/_embedded/dashboards; without a checkout that is used."""
    from agent.codegen import dashboards as codegen
    from agent.config import load_config

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["tool"]["hatch"]["build"]["targets"]["wheel"]["force-include"]["dashboards"] == \
        "agent/_embedded/dashboards"
    assert any(dep.startswith("grafanalib") for dep in project["project"]["dependencies"])
    embedded = tmp_path / "site-packages" / "agent" / "_embedded" / "dashboards"
    shutil.copytree(ROOT / "dashboards", embedded)
    monkeypatch.setattr(codegen, "SOURCE_DIRS", (tmp_path / "site-packages" / "dashboards", embedded))
    assert codegen.source_dir() == embedded
    files = codegen.build_dashboards(load_config(EXAMPLE, env={}))
    assert files == {p.name: p.read_text(encoding="utf-8") for p in GENERATED.glob("*.json")}


def test_the_fast_commands_do_not_import_grafanalib() -> None:
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "agent.cli", "validate", "-c",
                           str(ROOT / "examples" / "quickstart.yaml")], capture_output=True, text=True, timeout=60,
                          cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    imported = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if "|" in line}
    assert "agent.cli.dashboards" in imported  # the command group is registered ...
    assert not {m for m in imported if m.startswith(("grafanalib", "agent.codegen.dashboards", "agent.codegen.grafana",
                                                     "promql_parser"))}  # ... its work is not loaded


def test_provisioning_files_load_the_generated_dashboards() -> None:
    provider = yaml.safe_load((ROOT / "dashboards" / "provisioning" / "dashboards.yaml").read_text())
    assert provider["apiVersion"] == 1
    [p] = provider["providers"]
    assert p["type"] == "file" and p["options"]["path"].startswith("/") and p["allowUiUpdates"] is False
    source = yaml.safe_load((ROOT / "dashboards" / "provisioning" / "datasource.yaml").read_text())
    [ds] = source["datasources"]
    assert ds["type"] == "prometheus" and ds["url"].startswith("http") and ds["isDefault"] is True
    for path in GENERATED.glob("*.json"):
        [var] = [v for v in json.loads(path.read_text())["templating"]["list"] if v["type"] == "datasource"]
        assert var["query"] == ds["type"], path.name  # the dashboards offer the provisioned data source
