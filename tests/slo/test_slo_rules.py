"""Rules as code: the committed alert_rules/ is what examples/slo.yaml generates, and promtool agrees."""

from __future__ import annotations

import shutil
import subprocess
import textwrap
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from agent.cli import main
from agent.codegen.rules import HEADER, alert_window, build_rules, check_rule_groups, slo_rule_groups
from agent.config import load_config
from agent.slo.spec import SloSpec

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "alert_rules"
EXAMPLE = ROOT / "examples" / "slo.yaml"
needs_promtool = pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed (package prometheus)")


def promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["promtool", *map(str, args)], capture_output=True, text=True, timeout=60, check=False)


def load(tmp_path: Path, text: str):
    path = tmp_path / "config.yaml"
    path.write_text(textwrap.dedent(text))
    return load_config(path, env={})


def test_committed_rules_are_regenerated_byte_for_byte() -> None:
    files = build_rules(load_config(EXAMPLE, env={}))
    assert sorted(files) == sorted(p.name for p in RULES.glob("*.yml"))
    for name, text in files.items():
        assert (RULES / name).read_text(encoding="utf-8") == text, f"{name} drifted: run sre-agent rules build"
    assert sorted(files) == ["slo-agent-probe-availability.yml", "slo-api-availability.yml", "slo-api-latency.yml",
                             "slo-checkout-availability.yml", "sre-agent-checks.yml"]


def test_output_does_not_depend_on_key_order(tmp_path: Path) -> None:
    a = load(tmp_path, """
        agent: {prometheus_url: "http://127.0.0.1:9090"}
        slos:
          - {name: x, service: s, objective: 99.9, labels: {team: a, tier: "1"}, sli: {events: {error_query: 'e[{{window}}]', total_query: 't[{{window}}]'}}}
    """)
    b = load(tmp_path, """
        agent: {prometheus_url: "http://127.0.0.1:9090"}
        slos:
          - {sli: {events: {total_query: 't[{{window}}]', error_query: 'e[{{window}}]'}}, labels: {tier: "1", team: a}, objective: 99.9, service: s, name: x}
    """)
    assert build_rules(a) == build_rules(b)


@needs_promtool
def test_every_generated_file_passes_promtool_check_rules() -> None:
    for path in sorted(RULES.glob("*.yml")):
        proc = promtool("check", "rules", path)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "SUCCESS" in proc.stdout


@needs_promtool
def test_promtool_unit_tests_pass() -> None:
    tests = sorted((RULES / "tests").glob("*.yml"))
    assert [t.name for t in tests] == ["slo-api-availability.test.yml", "sre-agent-checks.test.yml"]
    proc = promtool("test", "rules", *tests)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("SUCCESS") == 2


@needs_promtool
def test_promtool_unit_tests_catch_a_wrong_threshold(tmp_path: Path) -> None:
    shutil.copytree(RULES, tmp_path / "rules")
    rules = tmp_path / "rules" / "slo-api-availability.yml"
    text = rules.read_text()
    assert text.count("> 0.0144") == 2
    rules.write_text(text.replace("> 0.0144", "> 0.03"))  # a page threshold 2% errors would not reach
    proc = promtool("test", "rules", tmp_path / "rules" / "tests" / "slo-api-availability.test.yml")
    assert proc.returncode != 0
    assert "FAILED" in proc.stdout + proc.stderr


def test_slo_rules_shape() -> None:
    spec = SloSpec.model_validate({"name": "probes", "service": "api", "objective": 99.5, "window": "7d",
                                   "min_events": 10, "runbook": "https://wiki.example/slo", "sli": {"check": "api"}})
    groups = slo_rule_groups(spec, base_url="https://runbooks.example/")["groups"]
    records = [r["record"] for r in groups[0]["rules"]]
    assert records == [f"slo:sli_error:ratio_rate{w}" for w in
                       ("5m", "7m", "14m", "28m", "1h24m", "5h36m", "16h48m", "7d")]
    expr = groups[0]["rules"][0]["expr"]
    assert 'sre_agent_check_runs_total{check="api",status=~"CRITICAL|UNKNOWN"}[5m]' in expr
    assert expr.endswith(' and on() ((sum(rate(sre_agent_check_runs_total{check="api"}[5m]))) * 300 >= 10)')
    meta = {r["record"]: r["expr"] for r in groups[1]["rules"]}
    assert meta["slo:objective:ratio"] == "vector(0.995)" and meta["slo:error_budget:ratio"] == "vector(0.005)"
    assert meta["slo:time_period:days"] == "vector(7)"
    assert meta["slo:period_error_budget_remaining:ratio"] == '1 - slo:period_burn_rate:ratio{slo="probes"}'
    page = groups[2]["rules"][0]
    assert page["expr"] == ('slo:sli_error:ratio_rate14m{slo="probes"} > 0.072 and '
                            'slo:sli_error:ratio_rate5m{slo="probes"} > 0.072')
    assert page["labels"] == {"service": "api", "slo": "probes", "severity": "critical", "long_window": "14m",
                              "short_window": "5m"}
    assert page["annotations"]["runbook_url"] == "https://wiki.example/slo"  # absolute URLs are kept
    assert [r["labels"]["severity"] for r in groups[2]["rules"]] == ["critical", "critical", "warning", "warning",
                                                                     "critical"]


@pytest.mark.parametrize(("interval", "expected"), [("5s", "30s"), ("29s", "30s"), ("30s", "30s"), ("2m", "2m")])
def test_rule_groups_are_evaluated_at_most_every_30s(interval: str, expected: str) -> None:
    # an SLO the agent evaluates every 5s must not make Prometheus recompute rate(...[30d]) every 5s
    spec = SloSpec.model_validate({"name": "fast", "service": "api", "objective": 99.9, "interval": interval,
                                   "sli": {"check": "api"}})
    groups = slo_rule_groups(spec)["groups"]
    assert [g["interval"] for g in groups] == [expected] * 3


def test_check_alerts_window_severity_and_runbook(tmp_path: Path) -> None:
    (tmp_path / "db.md").write_text("# db down\n")  # a relative runbook must exist (it is published at the base URL)
    config = load(tmp_path, """
        alerting: {runbook_base_url: "https://runbooks.example/sre"}
        checks:
          - {name: web, type: tcp, host: 127.0.0.1, port: 9, interval: 20s, alert: {after: 3}, labels: {team: web}}
          - {name: db, type: tcp, host: 127.0.0.1, port: 9, alert: {for: 5m}, severity: {critical: emergency},
             runbook: db.md}
          - {name: nightly, type: tcp, host: 127.0.0.1, port: 9, cron: "0 3 * * *", alert: {after: 2}}
          - {name: muted, type: tcp, host: 127.0.0.1, port: 9, alert: {enabled: false}}
          - {name: retired, type: tcp, host: 127.0.0.1, port: 9, enabled: false}
        slos:
          - {name: web-probes, service: web, objective: 99, sli: {check: web}}
    """)
    assert alert_window(config.check("nightly")) == timedelta(days=2)
    rules = {r["labels"]["check"]: r for r in check_rule_groups(config, "https://runbooks.example/sre")["groups"][0]["rules"]}
    assert sorted(rules) == ["db", "nightly", "web"]  # no disabled checks, no SLO checks
    assert rules["web"]["for"] == "1m" and rules["db"]["for"] == "5m" and rules["nightly"]["for"] == "2d"
    assert rules["web"]["expr"] == 'sre_agent_check_up{check="web"} == 0'
    assert rules["web"]["labels"] == {"check": "web", "severity": "critical", "team": "web"}
    assert rules["db"]["labels"]["severity"] == "emergency"
    assert rules["db"]["annotations"]["runbook_url"] == "https://runbooks.example/sre/db.md"
    assert rules["web"]["annotations"]["runbook_url"] == "https://runbooks.example/sre/runbooks/tcp-port-down.md"
    assert {r["alert"] for r in rules.values()} == {"SreAgentCheckDown"}


def test_cli_build_writes_and_prunes(tmp_path: Path) -> None:
    out = tmp_path / "rules"
    out.mkdir()
    (out / "slo-gone.yml").write_text(HEADER + "groups: []\n")
    (out / "hand-written.yml").write_text("groups: []\n")
    result = CliRunner().invoke(main, ["rules", "build", "-c", str(EXAMPLE), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert f"removed {out / 'slo-gone.yml'} (no longer generated)" in result.output
    assert sorted(p.name for p in out.glob("*.yml")) == sorted([*(p.name for p in RULES.glob("*.yml")), "hand-written.yml"])
    for p in RULES.glob("*.yml"):
        assert (out / p.name).read_bytes() == p.read_bytes()
    again = CliRunner().invoke(main, ["rules", "build", "-c", str(EXAMPLE), "-o", str(out)])
    assert "(0 changed, 0 removed)" in again.output
    assert yaml.safe_load((out / "sre-agent-checks.yml").read_text())["groups"][0]["name"] == "sre-agent-checks"


@needs_promtool
def test_cli_check_reports_drift(tmp_path: Path) -> None:
    ok = CliRunner().invoke(main, ["rules", "check", "-c", str(EXAMPLE), "--against", str(RULES)])
    assert ok.exit_code == 0, ok.output
    assert ok.output.count("SUCCESS") == 5
    copy = tmp_path / "rules"
    shutil.copytree(RULES, copy)
    (copy / "slo-api-latency.yml").write_text((copy / "slo-api-latency.yml").read_text().replace("0.01", "0.02"))
    drift = CliRunner().invoke(main, ["rules", "check", "-c", str(EXAMPLE), "--against", str(copy)])
    assert drift.exit_code == 1
    assert f"drift: {copy / 'slo-api-latency.yml'} differs from the config" in drift.output
