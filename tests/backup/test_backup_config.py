"""Backup config through the real loader: the issue's example loads; bad input names the field and what is allowed."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.config import ConfigError, load_config

ISSUE_EXAMPLE = """
checks:
- name: orders-db-backup
  type: backup
  source: {kind: files, path: /backups/orders, pattern: "*.dump"}
  max_age: 26h
  min_size: 10MB
  max_size_change: 50%
  checksum: sidecar
  restore_test:
    kind: pg_restore
    dsn: ${SCRATCH_PG_DSN}
    assertions:
      - {query: "select count(*) from orders", min: 1000}
    schedule: "0 4 * * *"
- name: files-backup
  type: backup
  source: {kind: restic, repository: /srv/restic, password_file: PASSWORD_FILE}
  max_age: 26h
  check: {read_data_subset: 5%, schedule: "0 5 * * 0"}
- name: pg-cluster
  type: backup
  source: {kind: pgbackrest, stanza: main}
  max_age: 26h
"""

SECRET_DSN = "postgresql://drill:Scratch-Secret-31@db.internal:5432/postgres"


def load(tmp_path: Path, text: str, env: dict[str, str] | None = None):
    (tmp_path / "pw").write_text("restic-password\n")
    path = tmp_path / "agent.yaml"
    path.write_text(text.replace("PASSWORD_FILE", str(tmp_path / "pw")))
    return load_config(path, env=env if env is not None else {})


def errors(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as exc:
        load(tmp_path, text, env)
    return [f"{i.path}: {i.message}" for i in exc.value.issues]


def test_issue_example_loads_and_keeps_the_dsn_secret(tmp_path: Path):
    config = load(tmp_path, ISSUE_EXAMPLE, {"SCRATCH_PG_DSN": SECRET_DSN})
    orders, files, pg = config.all_checks()
    assert orders.min_size == 10_000_000
    assert orders.max_size_change == 50.0
    assert orders.warn_after.total_seconds() == pytest.approx(0.8 * 26 * 3600)
    assert orders.restore_test.dsn.get_secret_value() == SECRET_DSN
    assert files.check.read_data_subset == "5%"
    assert pg.source.bin == "pgbackrest"
    assert "Scratch-Secret-31" not in config.model_dump_json()


def test_missing_env_var_is_named(tmp_path: Path):
    found = errors(tmp_path, ISSUE_EXAMPLE, {})
    assert "checks[0].restore_test.dsn: environment variable SCRATCH_PG_DSN is not set (referenced as ${SCRATCH_PG_DSN})" in found


@pytest.mark.parametrize("value", ["150%", "fifty", "0.5", "-5%"])
def test_bad_percentage(tmp_path: Path, value: str):
    text = ISSUE_EXAMPLE.replace("max_size_change: 50%", f"max_size_change: {value!r}" if value != "0.5" else "max_size_change: 0.5")
    [issue] = errors(tmp_path, text, {"SCRATCH_PG_DSN": SECRET_DSN})
    assert issue.startswith("checks[0].max_size_change: invalid percentage")
    assert "e.g. 5%, 50%, 99.5%" in issue or "between 0% and 100%" in issue


def test_unknown_source_kind_lists_the_allowed_kinds(tmp_path: Path):
    text = "checks:\n- {name: b, type: backup, max_age: 1d, source: {kind: tape, path: /x}}\n"
    assert errors(tmp_path, text) == ["checks[0].source: unknown source kind 'tape'; allowed kinds: files, restic, pgbackrest, s3"]


@pytest.mark.parametrize(("snippet", "expected"), [
    ("source: {kind: pgbackrest, stanza: main}\n  restore_test: {kind: pg_restore, dsn: 'postgresql://x@h/db'}",
     "checks[0]: restore_test (pg_restore) needs a files or s3 source holding pg_dump archives, not pgbackrest"),
    ("source: {kind: files, path: /x}\n  check: {read_data_subset: 5%}",
     "checks[0]: check (restic check) applies to source kind restic only, not files"),
    ("source: {kind: s3, bucket: b}\n  checksum: required", "checks[0]: checksum applies to source kind files only, not s3"),
    ("source: {kind: restic, repository: /r}",
     "checks[0].source: restic needs password_file (or password from ${ENV}); it is never passed on the command line"),
    ("source: {kind: restic, repository: /r, password_file: PASSWORD_FILE}\n  check: {read_data_subset: lots}",
     "checks[0].check.read_data_subset: invalid read_data_subset 'lots': use a percentage (5%), a part n/t (1/7) or a size (500M)"),
    ("source: {kind: files, path: /x}\n  warn_age: 2d", "checks[0]: warn_age (2d) must be positive and shorter than max_age (1d)"),
    ("source: {kind: files, path: /x}\n  restore_test: {kind: pg_restore, dsn: 'postgresql://x@h/db', schedule: 'every day'}",
     "checks[0].restore_test.schedule: invalid cron expression 'every day'"),
    ("source: {kind: files, path: /x}\n  restore_test: {kind: pg_restore, dsn: 'postgresql://x@h/db', assertions: [{query: 'select 1'}]}",
     "checks[0].restore_test.assertions[0]: an assertion needs min, max, equals or max_age"),
    ("source: {kind: files, path: /x}\n  min_size: 10 parsecs", "checks[0].min_size: invalid size '10 parsecs'"),
    ("source: {kind: s3, bucket: b, access_key_id: AK}", "checks[0].source: set both access_key_id and secret_access_key"),
])
def test_incoherent_configs_are_refused(tmp_path: Path, snippet: str, expected: str):
    text = f"checks:\n- name: b\n  type: backup\n  max_age: 1d\n  {snippet}\n"
    found = errors(tmp_path, text)
    assert any(issue.startswith(expected) for issue in found), found
