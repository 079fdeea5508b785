"""Suites, selection and reports: what `sre-agent check` runs, prints and writes for CI."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest

from agent.config import ConfigError, load_config
from agent.core import CheckResult, Status
from agent.oneshot import DISABLED, Selection, SelectionError, plan
from agent.reports import Entry, Report, format_for, text_lines, to_junit, to_markdown
from tests.agentproc import AgentProcess, free_port

NOW = 1_780_000_000.0

CONFIG = """
defaults: {timeout: 5s}
checks:
  - {name: web-ok, type: command, command: ["sh", "-c", "echo serving"], tags: [smoke, pre-deploy], labels: {team: web}}
  - {name: web-slow, type: command, command: ["sh", "-c", "echo p99 high; exit 1"], tags: [smoke], labels: {team: web}}
  - {name: payments-api, type: command, command: ["sh", "-c", "echo 'down <&> | err'; exit 2"], tags: [smoke],
     labels: {team: payments}}
  - {name: payments-db, type: command, command: ["sh", "-c", "echo fine"], tags: [pre-deploy], labels: {team: payments}}
  - {name: payments-batch, type: command, command: ["sh", "-c", "echo no idea; exit 3"], labels: {team: payments}}
  - {name: legacy, type: command, command: ["sh", "-c", "echo old"], tags: [smoke], enabled: false}
"""


def sre(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agent.cli", *args], capture_output=True, text=True, timeout=60, cwd=cwd)


@pytest.fixture
def cfg(tmp_path: Path) -> Path:
    p = tmp_path / "c.yaml"
    p.write_text(CONFIG)
    return p


def _plan(cfg: Path, **kw: object) -> list[tuple[str, str | None]]:
    return [(p.config.name, p.skip) for p in plan(load_config(cfg).all_checks(), Selection(**kw))]  # type: ignore[arg-type]


# -- selection ----------------------------------------------------------------------------

def test_a_suite_is_its_tag_and_a_disabled_member_is_skipped_with_the_reason(cfg: Path) -> None:
    assert _plan(cfg, tags=("smoke",)) == [("web-ok", None), ("web-slow", None), ("payments-api", None),
                                           ("legacy", DISABLED)]


def test_tags_are_any_of_and_labels_all_of(cfg: Path) -> None:
    both = _plan(cfg, tags=("smoke", "pre-deploy"))
    assert [n for n, _ in both] == ["web-ok", "web-slow", "payments-api", "payments-db", "legacy"]
    assert _plan(cfg, labels=(("team", "payments"),)) == [("payments-api", None), ("payments-db", None),
                                                          ("payments-batch", None)]
    with pytest.raises(SelectionError, match="no check matches"):
        _plan(cfg, labels=(("team", "payments"), ("tier", "1")))


def test_members_of_a_suite_left_out_by_another_filter_are_skipped_not_dropped(cfg: Path) -> None:
    planned = dict(_plan(cfg, tags=("smoke",), labels=(("team", "web"),)))
    assert planned["web-ok"] is None and planned["web-slow"] is None
    assert planned["payments-api"] == "not selected: label team=web asked, the check has team=payments"
    assert planned["legacy"] == "not selected: label team=web asked, the check has no team label"
    assert "payments-db" not in planned  # not in the suite at all
    globbed = dict(_plan(cfg, patterns=("web-*",), tags=("smoke",)))
    assert globbed["payments-api"] == "not selected: its name matches none of web-*"


def test_globs_select_in_pattern_order_and_an_exact_name_runs_even_when_disabled(cfg: Path) -> None:
    assert _plan(cfg, patterns=("payments-*", "web-ok")) == [
        ("payments-api", None), ("payments-db", None), ("payments-batch", None), ("web-ok", None)]
    assert _plan(cfg, patterns=("legacy",)) == [("legacy", None)]
    assert ("legacy", DISABLED) in _plan(cfg, run_all=True)


@pytest.mark.parametrize(("kw", "message"), [
    ({"tags": ("smoek",)}, "no check has tag 'smoek'; tags in the config: pre-deploy, smoke"),
    ({"patterns": ("web-okk",)}, "unknown check: web-okk (did you mean 'web-ok'?)"),
    ({"patterns": ("db-*",)}, "no check matches 'db-*'"),
])
def test_a_typo_is_an_error_not_an_empty_green_run(cfg: Path, kw: dict[str, object], message: str) -> None:
    with pytest.raises(SelectionError) as exc:
        _plan(cfg, **kw)
    assert message in str(exc.value)


def test_tags_are_validated_with_the_field_path(tmp_path: Path) -> None:
    p = tmp_path / "bad.yaml"
    p.write_text('checks:\n  - {name: a, type: command, command: ["true"], tags: [smoke, "no spaces"]}\n'
                 '  - {name: b, type: command, command: ["true"], tags: [x, x]}\n')
    with pytest.raises(ConfigError) as exc:
        load_config(p)
    text = str(exc.value)
    assert "checks[0].tags: invalid tag 'no spaces'" in text
    assert "checks[1].tags: tag 'x' is listed twice" in text


# -- the terminal -------------------------------------------------------------------------------

def _result(name: str, status: Status, summary: str = "", **obs: float) -> CheckResult:
    return CheckResult(status=status, summary=summary or status.name.lower(), observations=obs, check=name,
                       type="file", duration_seconds=0.012, timestamp=NOW)


def _report(*entries: Entry, duration: float = 1.234) -> Report:
    return Report(entries=list(entries), started_at=NOW, duration_seconds=duration, title="suite smoke")


def _entry(result: CheckResult) -> Entry:
    return Entry(result.check, result.type, result)


def test_summary_line_counts_every_status() -> None:
    statuses = [Status.OK] * 5 + [Status.WARNING] + [Status.CRITICAL] * 3
    report = _report(*(_entry(_result(f"c{i}", s)) for i, s in enumerate(statuses)))
    assert report.summary_line() == "9 checks: 5 OK, 1 WARNING, 3 CRITICAL in 1.2s"
    skipped = _report(_entry(_result("a", Status.UNKNOWN)), Entry("b", "http", skipped="disabled"), duration=0.05)
    assert skipped.summary_line() == "2 checks: 1 UNKNOWN, 1 SKIPPED in 0.1s"


def test_one_line_per_check_worst_first_with_observations_only_for_failing_checks() -> None:
    report = _report(
        _entry(_result("fresh", Status.OK, size_bytes=2048.0)),
        _entry(_result("stale", Status.WARNING, "old file", age_seconds=7260.0,
                       last_update_timestamp_seconds=NOW - 3 * 3600, size_bytes=3 * 1024 * 1024)),
        Entry("off", "file", skipped="disabled"),
        _entry(_result("gone", Status.CRITICAL, "no file")),
        _entry(_result("odd", Status.UNKNOWN, "cannot stat")),
    )
    lines = text_lines(report, now=NOW)
    assert [line.status for line in lines if line.status] == ["CRITICAL", "UNKNOWN", "WARNING", "OK", "SKIPPED"]
    stale = next(i for i, line in enumerate(lines) if line.text.startswith("stale"))
    detail = lines[stale + 1]
    assert detail.status is None
    # numbers for people: a duration, a date with its age, binary sizes
    assert "age 2h1m" in detail.text
    assert "last update 2026-05-28 17:26 UTC (3h ago)" in detail.text
    assert "size 3.0 MiB" in detail.text
    assert "2048" not in "".join(line.text for line in lines)  # the OK check's observations stay hidden
    verbose = text_lines(report, verbose=True, now=NOW)
    assert any("size 2.0 KiB" in line.text for line in verbose)
    failed = text_lines(report, failed_only=True, now=NOW)
    assert [line.status for line in failed if line.status] == ["CRITICAL", "UNKNOWN", "WARNING"]


# -- report files ------------------------------------------------------------------------------

def test_report_format_from_the_suffix_or_the_option() -> None:
    assert format_for("out/results.XML", None) == "junit"
    assert format_for("r.md", None) == "markdown" and format_for("r.json", None) == "json"
    assert format_for("r.txt", "markdown") == "markdown"
    with pytest.raises(ValueError, match=r"name it \*.xml \(JUnit\), \*.md \(Markdown\) or \*.json"):
        format_for("r.txt", None)


def test_junit_has_one_testcase_per_check_with_failure_error_and_skipped() -> None:
    report = _report(
        _entry(_result("ok", Status.OK)), _entry(_result("warn", Status.WARNING)),
        _entry(_result("crit", Status.CRITICAL, "exit \x1b[31m2\x07 <boom>")), _entry(_result("unk", Status.UNKNOWN)),
        Entry("off", "http", skipped="disabled in the config (enabled: false)", tags=["smoke"]))
    root = ET.fromstring(to_junit(report).encode())
    suite = root.find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors"), suite.get("skipped")) == ("5", "1", "1", "1")
    cases = {c.get("name"): c for c in suite.findall("testcase")}
    assert list(cases) == ["crit", "unk", "warn", "ok", "off"]
    failure = cases["crit"].find("failure")
    assert failure is not None and failure.get("type") == "CRITICAL"
    assert failure.get("message") == "exit \ufffd[31m2\ufffd <boom>"  # control characters cannot be XML
    assert cases["unk"].find("error") is not None
    skipped = cases["off"].find("skipped")
    assert skipped is not None and skipped.get("message") == "disabled in the config (enabled: false)"
    assert cases["warn"].find("failure") is None and cases["warn"].find("error") is None
    props = {p.get("value") for p in cases["warn"].iter("property") if p.get("name") == "status"}
    assert props == {"WARNING"}


def test_markdown_is_the_passed_failed_warning_skipped_table() -> None:
    report = _report(_entry(_result("ok", Status.OK)), _entry(_result("pipe", Status.CRITICAL, "a | b", age_seconds=90.0)),
                     _entry(_result("warn", Status.WARNING)), Entry("off", "http", skipped="disabled"))
    text = to_markdown(report, NOW)
    rows = [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("| result")]
    assert [r.split(" | ")[0].removeprefix("| ") for r in rows] == ["FAILED", "WARNING", "PASSED", "SKIPPED"]
    assert "a \\| b" in rows[0]
    assert "1 PASSED, 1 WARNING, 1 FAILED, 1 SKIPPED" in text
    assert "- age: 1m30s" in text


# -- end to end -------------------------------------------------------------------------------------

def test_check_suite_prints_worst_first_and_writes_each_report(cfg: Path, tmp_path: Path) -> None:
    r = sre("check", "-c", str(cfg), "--suite", "smoke", "--report", str(tmp_path / "junit.xml"))
    assert r.returncode == 2, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("CRITICAL") and "payments-api" in lines[0]
    assert lines[-1] == f"report written to {tmp_path / 'junit.xml'} (junit)"
    assert lines[-2].startswith("4 checks: 1 OK, 1 WARNING, 1 CRITICAL, 1 SKIPPED in ")
    assert any(line.startswith("SKIPPED") and "legacy" in line and "enabled: false" in line for line in lines)
    suite = ET.parse(tmp_path / "junit.xml").getroot().find("testsuite")
    assert suite is not None and len(suite.findall("testcase")) == 4
    assert sre("check", "-c", str(cfg), "--tag", "smoke", "--report", str(tmp_path / "r.md")).returncode == 2
    assert "| FAILED | payments-api |" in (tmp_path / "r.md").read_text()
    r = sre("check", "-c", str(cfg), "--tag", "smoke", "-o", "json", "--report", str(tmp_path / "out.report"),
            "--report-format", "json")
    assert json.loads(r.stdout) == json.loads((tmp_path / "out.report").read_text())
    entries = {e["check"]: e for e in json.loads(r.stdout)}
    assert entries["legacy"]["status"] == "SKIPPED" and entries["legacy"]["skipped"] == DISABLED
    assert entries["web-slow"]["result"] == "WARNING" and entries["payments-api"]["result"] == "FAILED"


def test_check_failed_only_labels_and_errors(cfg: Path) -> None:
    r = sre("check", "-c", str(cfg), "--label", "team=payments", "--failed-only")
    assert r.returncode == 2
    shown = [line.split()[1] for line in r.stdout.splitlines() if line.split()[0] in ("OK", "CRITICAL", "UNKNOWN")]
    assert shown == ["payments-api", "payments-batch"]
    assert r.stdout.splitlines()[-1].startswith("3 checks: 1 OK, 1 CRITICAL, 1 UNKNOWN in ")
    r = sre("check", "-c", str(cfg), "--tag", "smoek")
    assert r.returncode == 3 and "no check has tag 'smoek'" in r.stderr
    r = sre("check", "-c", str(cfg), "--label", "team")
    assert r.returncode == 2 and "expected KEY=VALUE" in r.stderr
    r = sre("check", "-c", str(cfg), "web-ok", "--report", "r.txt")
    assert r.returncode == 2 and "--report-format" in r.stderr


def test_list_shows_last_status_and_age_from_a_running_agent(tmp_path: Path) -> None:
    port = free_port()
    config = tmp_path / "agent.yaml"
    config.write_text(f"""
agent: {{listen: 127.0.0.1:{port}, state_dir: {tmp_path / 'state'}}}
defaults: {{interval: 200ms, timeout: 2s}}
checks:
  - {{name: fine, type: command, command: ["true"], tags: [smoke]}}
  - {{name: broken, type: command, command: ["sh", "-c", "echo nope; exit 2"]}}
""")
    agent = AgentProcess(config, port).start()
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            checks = agent.get("/api/v1/checks").json()["checks"]
            if all(c["last_result"] for c in checks):
                break
            time.sleep(0.1)
        r = sre("list", "-c", str(config))
        assert r.returncode == 0, r.stderr
        rows = {line.split()[0]: line.split() for line in r.stdout.splitlines()[1:]}
        assert r.stdout.splitlines()[0].split()[:5] == ["NAME", "TYPE", "SCHEDULE", "STATUS", "AGE"]
        assert "OK" in rows["fine"] and "#smoke" in rows["fine"]
        assert "CRITICAL" in rows["broken"]
        r = sre("list", "-c", str(config), "-o", "json", "--url", agent.url)
        data = {c["name"]: c for c in json.loads(r.stdout)}
        assert data["broken"]["last_result"]["status"] == "CRITICAL"
    finally:
        agent.stop()
    r = sre("list", "-c", str(config), "--url", f"http://127.0.0.1:{port}")
    assert r.returncode == 0 and "cannot read the agent" in r.stderr
    assert r.stdout.splitlines()[0].split()[3] == "TAGS"  # no STATUS column without an agent
