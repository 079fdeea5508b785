"""The config is the product's API: golden valid/invalid files prove the error messages."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from agent.config import ConfigError, config_model, json_schema, load_config
from agent.durations import format_duration, parse_duration
from agent.secrets import REDACTOR

GOLDEN = Path(__file__).parent / "configs"
ENV = {"API_TOKEN": "s3cr3t-token-value"}


@pytest.mark.parametrize("path", sorted((GOLDEN / "valid").glob("*.yaml")), ids=lambda p: p.name)
def test_valid_golden_configs_load(path: Path) -> None:
    config = load_config(path, env=ENV)
    assert config.all_checks(), "a valid golden config should define checks"
    for check in config.all_checks():
        assert check.timeout is not None
        assert check.interval is not None or check.cron is not None


@pytest.mark.parametrize("path", sorted((GOLDEN / "invalid").glob("*.yaml")), ids=lambda p: p.name)
def test_invalid_golden_configs_report_every_error(path: Path) -> None:
    expected = [line.split("# expect:", 1)[1].strip() for line in path.read_text().splitlines() if "# expect:" in line]
    assert expected, f"{path.name} has no '# expect:' lines"
    with pytest.raises(ConfigError) as exc:
        load_config(path, env=ENV)
    text = str(exc.value)
    for want in expected:
        assert want in text, f"missing {want!r} in:\n{text}"


def test_validate_cli_exit_code_and_all_errors() -> None:
    path = GOLDEN / "invalid" / "many-errors.yaml"
    proc = subprocess.run([sys.executable, "-m", "agent.cli", "validate", "-c", str(path)],
                          capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"}, timeout=60)
    assert proc.returncode == 2
    assert "config invalid: " in proc.stderr
    assert proc.stderr.count("checks[") >= 6


def test_defaults_fill_interval_and_timeout(tmp_path: Path) -> None:
    p = tmp_path / "c.yaml"
    p.write_text("defaults: {interval: 1m, timeout: 3s}\nchecks:\n"
                 "  - {name: a, type: tcp, host: 127.0.0.1, port: 1}\n"
                 "  - {name: b, type: tcp, host: 127.0.0.1, port: 1, interval: 5s, timeout: 1s}\n")
    a, b = load_config(p, env={}).all_checks()
    assert (a.interval, a.timeout) == (timedelta(minutes=1), timedelta(seconds=3))
    assert (b.interval, b.timeout) == (timedelta(seconds=5), timedelta(seconds=1))


def test_env_expansion_registers_secret_and_escape(tmp_path: Path) -> None:
    p = tmp_path / "c.yaml"
    p.write_text("checks:\n  - name: a\n    type: http\n    url: http://127.0.0.1:1/\n"
                 "    headers: {Authorization: 'Bearer ${TOK}', X-Literal: '$${NOT_EXPANDED}'}\n")
    cfg = load_config(p, env={"TOK": "very-secret-123"})
    headers = cfg.all_checks()[0].headers
    assert headers["Authorization"] == "Bearer very-secret-123"
    assert headers["X-Literal"] == "${NOT_EXPANDED}"
    assert "very-secret-123" not in REDACTOR.redact("token very-secret-123 leaked")


def test_include_globs_merge_checks_with_file_lines(tmp_path: Path) -> None:
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "a.yaml").write_text("checks:\n  - {name: inc-a, type: tcp, host: 127.0.0.1, port: 1}\n")
    (tmp_path / "conf.d" / "b.yaml").write_text("checks:\n\n  - {name: inc-b, type: tcp, host: 127.0.0.1, port: 99999}\n")
    main = tmp_path / "main.yaml"
    main.write_text("include: [conf.d/*.yaml]\nchecks:\n  - {name: main, type: tcp, host: 127.0.0.1, port: 1}\n")
    with pytest.raises(ConfigError) as exc:
        load_config(main, env={})
    issue = exc.value.issues[0]
    assert issue.file and issue.file.endswith("b.yaml") and issue.line == 3
    (tmp_path / "conf.d" / "b.yaml").write_text("checks:\n  - {name: inc-b, type: tcp, host: 127.0.0.1, port: 2}\n")
    assert [c.name for c in load_config(main, env={}).all_checks()] == ["main", "inc-a", "inc-b"]


def test_durations_round_trip() -> None:
    for text, seconds in [("500ms", 0.5), ("30s", 30), ("5m", 300), ("1h30m", 5400), ("30d", 2592000)]:
        assert parse_duration(text).total_seconds() == seconds
        assert parse_duration(format_duration(parse_duration(text))) == parse_duration(text)
    for bad in ["5 minutes", "10", "", "1y", 10]:
        with pytest.raises(ValueError):
            parse_duration(bad)


def test_json_schema_lists_every_check_type() -> None:
    from checks import registry

    schema = json.dumps(json_schema())
    for name in registry():
        assert f'"{name}"' in schema
    assert config_model().model_json_schema()["additionalProperties"] is False
