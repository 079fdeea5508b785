"""Every config error in one run, in file order, and nothing but config errors.

Regression tests for issue 14 (items 4, 5, 8 and 15): cross-reference errors
come with the model's errors, duplicate YAML keys are errors, errors are
sorted by file and line, and inputs that used to crash the loader (TypeError,
OverflowError, RecursionError, UnicodeDecodeError, unbounded reads) raise
`ConfigError` with a field path.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from agent.config import ConfigError, load_config
from agent.slo.spec import SloSpec
from tests.agentproc import AgentProcess, free_port


def write(path: Path, text: str | bytes) -> Path:
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(textwrap.dedent(text))
    return path


def errors(path: Path, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as exc:
        load_config(path, env=env or {})
    return [str(i).removeprefix(str(path.parent) + "/") for i in exc.value.issues]


# --- 4: cross-reference errors with the others ----------------------------------------------

def test_cross_reference_errors_are_reported_with_model_errors(tmp_path: Path) -> None:
    cfg = write(tmp_path / "c.yaml", """\
        checks:
          - {name: Bad Name, type: tcp, host: 127.0.0.1, port: 1}
          - {name: api, type: tcp, host: 127.0.0.1, port: 1}
          - {name: api, type: tcp, host: 127.0.0.1, port: 2}
          - {name: web, type: tcp, host: 127.0.0.1, port: 3, depends_on: [dbb]}
        alerting:
          route:
            receiver: ops
            routes:
              - {receiver: pager, match: {severity: critical}}
          receivers:
            - {name: ops, log: {}}
        """)
    assert errors(cfg) == [
        "c.yaml:2: checks[0].name: invalid name 'Bad Name': use lowercase letters, digits, '_', '.', '-' "
        "and start with a letter or digit",
        "c.yaml:4: checks[2].name: duplicate check name 'api' (also used by checks[1])",
        "c.yaml:5: checks[3].depends_on[0]: unknown check 'dbb'",
        "c.yaml:10: alerting.route.routes[0].receiver: unknown receiver 'pager'; configured: ops",
    ]


def test_a_reference_to_an_invalid_item_is_not_called_unknown(tmp_path: Path) -> None:
    cfg = write(tmp_path / "c.yaml", """\
        checks:
          - {name: db, type: tcp, host: 127.0.0.1, port: five, depends_on: [ghost]}
          - {name: web, type: tcp, host: 127.0.0.1, port: 3, depends_on: [db, slo-bad, orders-freshness]}
        slos:
          - {name: bad, service: web, objective: 200, sli: {check: web}}
          - {name: ok, service: web, objective: 99, sli: {check: db}}
        data_products:
          - {apiVersion: v1, kind: DataProduct, metadata: {name: orders}, spec: {owner: data}}
        """)
    found = errors(cfg)
    assert found[0].startswith("c.yaml:2: checks[0].port: Input should be a valid integer")
    # the invalid check's own references are still checked ...
    assert "c.yaml:2: checks[0].depends_on[0]: unknown check 'ghost'" in found
    assert found[2].startswith("c.yaml:5: slos[0].objective: objective is a percentage")
    assert found[3] == "c.yaml:8: data_products[0].spec.source: required field is missing"
    # ... but db, slo-bad and orders-freshness exist, only invalid: no "unknown check" for them
    assert len(found) == 4, found


def test_section_errors_after_a_dropped_item_name_the_written_positions(tmp_path: Path) -> None:
    cfg = write(tmp_path / "c.yaml", """\
        checks:
          - {name: web, type: tcp, host: 127.0.0.1, port: 3}
        slos:
          - {name: broken, service: web, objective: 200, sli: {check: web}}
          - {name: a, service: web, objective: 99, sli: {check: web}}
          - {name: a, service: web, objective: 99, sli: {check: webb}}
        """)
    assert errors(cfg)[1:] == [
        "c.yaml:6: slos[2].name: duplicate SLO name 'a' (also used by slos[1])",
        "c.yaml:6: slos[2].sli.check: unknown check 'webb'; did you mean 'web'? (checks: web)",
    ]


# --- 5: duplicate keys ---------------------------------------------------------------------------

def test_duplicate_keys_are_errors_with_both_lines_at_any_depth(tmp_path: Path) -> None:
    write(tmp_path / "more.yaml", """\
        checks:
          - name: inc
            type: tcp
            host: 127.0.0.1
            port: 1
            labels: {team: a, team: b}
        """)
    cfg = write(tmp_path / "c.yaml", """\
        include: [more.yaml]
        checks:
          - name: db
            type: tcp
            host: 127.0.0.1
            port: 5432
            port: 15432
        agent: {listen: "127.0.0.1:0"}
        agent: {listen: "127.0.0.1:1"}
        """)
    assert errors(cfg) == [
        "c.yaml:7: checks[0].port: duplicate key 'port': also given at line 6; a key may appear once in a mapping",
        "c.yaml:9: agent: duplicate key 'agent': also given at line 8; a key may appear once in a mapping",
        "more.yaml:6: checks[0].labels.team: duplicate key 'team': also given at line 6; a key may appear once in a mapping",
    ]


def test_merge_keys_and_overrides_are_not_duplicates(tmp_path: Path) -> None:
    cfg = write(tmp_path / "c.yaml", """\
        checks:
          - &tcp {name: a, type: tcp, host: 127.0.0.1, port: 1}
          - {<<: *tcp, name: b, port: 2}
          - {<<: [*tcp], name: c}
        """)
    assert [(c.name, c.port) for c in load_config(cfg, env={}).all_checks()] == [("a", 1), ("b", 2), ("c", 1)]


# --- 8: did you mean, sorted by file and line, SLO names in `check` ------------------------------

def test_unknown_type_suggests_the_closest(tmp_path: Path) -> None:
    cfg = write(tmp_path / "c.yaml", "checks:\n  - {name: a, type: htpp, url: http://127.0.0.1/}\n")
    [error] = errors(cfg)
    assert error.startswith("c.yaml:2: checks[0].type: unknown type 'htpp'; did you mean 'http'? Known types: ")


def test_errors_are_sorted_by_file_then_line(tmp_path: Path) -> None:
    write(tmp_path / "inc.yaml", """\
        checks:
          - {name: inc-b, type: tcp, host: 127.0.0.1, port: 0}
          - {name: inc-c, type: tcp, host: 127.0.0.1, port: 1, depends_on: [nope]}
        """)
    cfg = write(tmp_path / "c.yaml", """\
        include: [inc.yaml]
        checks:
          - {name: a, type: tcp, host: 127.0.0.1, port: 1, depends_on: [zzz]}
          - {name: b, type: tcp, host: 127.0.0.1, port: 70000}
        defaults: {interval: soon}
        """)
    where = [e.split(": ", 1)[0] for e in errors(cfg)]
    assert where == ["c.yaml:3", "c.yaml:4", "c.yaml:5", "inc.yaml:2", "inc.yaml:3"]


def test_check_accepts_an_slo_name(tmp_path: Path) -> None:
    cfg = write(tmp_path / "c.yaml", f"""\
        agent: {{state_dir: {tmp_path / 'state'}}}
        checks:
          - {{name: api, type: command, command: ["true"]}}
        slos:
          - {{name: api-availability, service: api, objective: 99, window: 1d, sli: {{check: api}}}}
        """)
    proc = subprocess.run([sys.executable, "-m", "agent.cli", "check", "-c", str(cfg), "api-availability"],
                          capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert "unknown check" not in proc.stderr, proc.stderr
    ran = json.loads(subprocess.run([sys.executable, "-m", "agent.cli", "check", "-c", str(cfg), "api-availability",
                                     "-o", "json"], capture_output=True, text=True, timeout=60, cwd=tmp_path).stdout)
    assert "'check': 'slo-api-availability'" in str(ran) and "'type': 'slo'" in str(ran), ran
    proc = subprocess.run([sys.executable, "-m", "agent.cli", "check", "-c", str(cfg), "api-availabilty"],
                          capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert proc.returncode == 3 and "unknown check: api-availabilty" in proc.stderr


# --- 15: nothing but ConfigError, with a path ----------------------------------------------------

CRASHERS = {
    "severity-map-list": ("checks:\n  - {name: a, type: tcp, host: 127.0.0.1, port: 1, severity: {critical: [critical]}}\n",
                          "checks[0].severity", "invalid severity ['critical'] for critical results"),
    "checks-not-a-list": ("include: [more.yaml]\nchecks: 5\n", "checks", "Input should be a valid list"),
    "huge-duration": ("defaults: {interval: 99999999999d}\n", "defaults.interval", "is too long: at most 36500d"),
    "400-digits": ("defaults: {timeout: " + "9" * 400 + "s}\n", "defaults.timeout", "is too long"),
    "recursive-alias": ("x: &a [*a]\n", "x[0]", "a recursive alias"),
    "bad-date": ("checks:\n  - {name: a, type: tcp, host: 127.0.0.1, port: 1, description: 2001-02-30}\n", "",
                 "cannot read the value '2001-02-30' as timestamp"),
    "kind-is-a-list": ("include: [kind.yaml]\n", "", "an included file may only hold"),
    "deep-nesting": ("x: " + "[" * 150 + "]" * 150 + "\n", "x" + "[0]" * 100, "nested deeper than 100 levels"),
}


@pytest.mark.parametrize("case", sorted(CRASHERS))
def test_inputs_that_crashed_the_loader_are_config_errors(tmp_path: Path, case: str) -> None:
    text, path, message = CRASHERS[case]
    write(tmp_path / "more.yaml", "checks:\n  - {name: b, type: tcp, host: 127.0.0.1, port: 1}\n")
    write(tmp_path / "kind.yaml", "kind: [SLO]\n")
    cfg = write(tmp_path / "c.yaml", text)
    with pytest.raises(ConfigError) as exc:
        load_config(cfg, env={})
    files = {str(cfg), str(tmp_path / "kind.yaml")}
    assert any(i.path == path and message in i.message and i.file in files for i in exc.value.issues), exc.value


def test_non_utf8_bytes_are_reported_with_their_line_in_any_file(tmp_path: Path) -> None:
    write(tmp_path / "inc.yaml", b"checks:\n  - {name: b, type: tcp, host: 127.0.0.1, port: 1}\n# caf\xe9\n")
    cfg = write(tmp_path / "c.yaml", b"include: [inc.yaml]\n# \xff\n")
    assert errors(cfg) == ["c.yaml:2: <root>: not valid UTF-8: byte 0xff at column 3; save the file as UTF-8"]
    cfg.write_bytes(b"include: [inc.yaml]\n")
    assert errors(cfg) == ["inc.yaml:3: <root>: not valid UTF-8: byte 0xe9 at column 6; save the file as UTF-8"]


def test_special_and_oversized_files_are_refused_without_reading_them(tmp_path: Path) -> None:
    cfg = write(tmp_path / "c.yaml", "include: [/dev/zero]\n")
    assert errors(cfg) == ["/dev/zero: <root>: cannot read config: a character device, not a regular file"]
    os.mkfifo(tmp_path / "fifo.yaml")  # opening a FIFO for reading would block until a writer comes
    cfg.write_text("include: [fifo.yaml]\n")
    assert errors(cfg) == ["fifo.yaml: <root>: cannot read config: a FIFO, not a regular file"]
    big = tmp_path / "big.yaml"
    with big.open("w") as f:
        f.write("checks: []\n")
        f.write("#" * (8 * 1024 * 1024))
    cfg.write_text("include: [big.yaml]\n")
    assert errors(cfg) == ["big.yaml: <root>: config file is larger than 8 MiB; split it with include:"]


def test_an_alias_bomb_is_refused(tmp_path: Path) -> None:
    levels = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    levels += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]
    cfg = write(tmp_path / "c.yaml", "\n".join(levels) + "\nchecks: *a8\n")
    [error] = errors(cfg)
    assert "aliases expand the document to more than" in error and "alias bomb" in error


def test_duplicate_slos_are_rejected_in_linear_work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = 0
    real = SloSpec.to_checks

    def counting(self: SloSpec, config: object) -> list:  # type: ignore[type-arg]
        nonlocal calls
        calls += 1
        return real(self, config)

    monkeypatch.setattr(SloSpec, "to_checks", counting)
    n = 800
    cfg = write(tmp_path / "c.yaml", "checks:\n  - {name: web, type: tcp, host: 127.0.0.1, port: 1}\nslos:\n"
                + "  - {name: dup, service: web, objective: 99, sli: {check: web}}\n" * n)
    with pytest.raises(ConfigError) as exc:
        load_config(cfg, env={})
    assert len(exc.value.issues) == n - 1  # one per repeat: duplicate SLO name
    assert all(i.message == "duplicate SLO name 'dup' (also used by slos[0])" for i in exc.value.issues)
    assert calls <= 2 * n, f"{calls} SLO check derivations for {n} SLOs: the work grows faster than the config"


def test_a_reload_with_a_crashing_input_fails_cleanly(tmp_path: Path) -> None:
    port = free_port()
    token = "reload-token-0123456789"
    cfg = write(tmp_path / "agent.yaml", f"""\
        agent: {{listen: "127.0.0.1:{port}", state_dir: {tmp_path / 'state'}, api_token: {token}}}
        checks:
          - {{name: port, type: tcp, host: 127.0.0.1, port: {port}, interval: 1s}}
        """)
    good = cfg.read_text()
    agent = AgentProcess(cfg, port).start()
    try:
        metric = "sre_agent_config_last_reload_successful"
        for bad in ("  - {name: b, type: tcp, host: 127.0.0.1, port: 1, severity: {critical: [critical]}}\n",
                    "  - {name: b, type: tcp, host: 127.0.0.1, port: 1, interval: 99999999999d}\n",
                    "x: &a [*a]\n"):
            cfg.write_text(good + bad)
            agent.send(signal.SIGHUP)
            deadline = time.monotonic() + 10
            while f"{metric} 0.0" not in agent.get("/metrics").text:
                assert time.monotonic() < deadline, f"reload did not fail for {bad!r}:\n{agent.output()}"
                time.sleep(0.05)
            r = agent.post("/-/reload", headers={"Authorization": f"Bearer {token}"})
            assert r.status_code == 400, r.text
            assert r.json()["status"] == "failed" and r.json()["errors"]
            cfg.write_text(good)
            assert agent.post("/-/reload", headers={"Authorization": f"Bearer {token}"}).status_code == 200
            assert f"{metric} 1.0" in agent.get("/metrics").text
        assert agent.proc is not None and agent.proc.poll() is None
        assert "Task exception was never retrieved" not in agent.output()
        assert "Traceback" not in agent.output()
    finally:
        agent.stop()
