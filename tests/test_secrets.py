"""One secret type (`Secret`: inline, `${ENV}` or `<key>_file`) and one DSN rule (issue 8).

Every model declares a secret field once; `*_file` keys keep working the
way users know them (same keys, same errors, same docs and schema).
"""

from __future__ import annotations

import json
import typing
from pathlib import Path

import pytest
from pydantic import BaseModel

from agent.config import ConfigError, config_model, json_schema, load_config
from agent.secrets import REDACTOR, clip, secret_file_keys

# Secrets registered here stay registered for the whole test process: each value is unique,
# so it cannot mask an ordinary word another test expects to see.

#: every secret a user can give as `<key>_file`, by model: a key lost here breaks someone's config
SECRET_FILE_KEYS = {
    "AgentSettings": ("state_password", "api_token"),
    "AlertmanagerSettings": ("bearer_token",),
    "BasicAuth": ("password",),
    "PagerDutySettings": ("routing_key",),
    "SlackSettings": ("webhook_url", "token"),
    "PrometheusSource": ("bearer_token",),
    "PrometheusTimestampSource": ("bearer_token",),
    "SqlSource": ("dsn",),
    "RestoreTest": ("dsn",),
    "S3Source": ("access_key_id", "secret_access_key", "session_token"),
    "SmtpSettings": ("password",),
}


def _models(root: type[BaseModel]) -> dict[str, type[BaseModel]]:
    seen: dict[str, type[BaseModel]] = {}

    def visit(tp: typing.Any) -> None:
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            if tp.__name__ not in seen:
                seen[tp.__name__] = tp
                for field in tp.model_fields.values():
                    visit(field.annotation)
            return
        for arg in typing.get_args(tp):
            visit(arg)

    visit(root)
    return seen


def test_every_secret_field_is_declared_once_and_takes_its_file_key() -> None:
    found = {name: secret_file_keys(model) for name, model in _models(config_model()).items()
             if secret_file_keys(model)}
    assert found == SECRET_FILE_KEYS
    for name, model in _models(config_model()).items():
        declared = set(model.model_fields)
        assert not {f"{k}_file" for k in secret_file_keys(model)} & declared, f"{name} declares a *_file field"


def test_the_json_schema_lists_file_keys_and_does_not_require_a_secret_given_by_file() -> None:
    schema = json_schema()
    defs = schema["$defs"]
    assert set(defs["SlackSettings"]["properties"]) >= {"webhook_url", "webhook_url_file", "token", "token_file"}
    sql = defs["SqlSource"]
    assert "dsn" not in sql["required"]
    assert {"anyOf": [{"required": ["dsn"]}, {"required": ["dsn_file"]}]} in sql["allOf"]
    assert "api_token_file" in defs["AgentSettings"]["properties"]
    json.dumps(schema)


def _load(tmp_path: Path, text: str, env: dict[str, str] | None = None):
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return load_config(path, env=env or {})


def _errors(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as exc:
        _load(tmp_path, text)
    return [f"{i.path}: {i.message}" for i in exc.value.issues]


def test_file_keys_fill_the_secret_at_any_depth(tmp_path: Path) -> None:
    (tmp_path / "pd").write_text("f1le5ecretk3y0000111122223333444\n")
    (tmp_path / "am").write_text("am-file-pw-2207\n")
    (tmp_path / "dsn").write_text("postgresql://u:file-pw-1193@127.0.0.1:1/db\n")
    config = _load(tmp_path, f"""
checks:
  - name: orders
    type: freshness
    error_after: 1h
    source: {{kind: sql, dsn_file: {tmp_path / 'dsn'}, query: "select now()"}}
alerting:
  route: {{receiver: pd}}
  receivers:
    - {{name: pd, pagerduty: {{routing_key_file: {tmp_path / 'pd'}}}}}
    - {{name: am, alertmanager: {{basic_auth: {{username: u, password_file: {tmp_path / 'am'}}}}}}}
""")
    receivers = {r.name: r.settings for r in config.alerting.receivers}  # type: ignore[attr-defined]
    assert receivers["pd"].routing_key.get_secret_value() == "f1le5ecretk3y0000111122223333444"
    assert receivers["am"].basic_auth.password.get_secret_value() == "am-file-pw-2207"
    assert config.all_checks()[0].source.dsn.get_secret_value() == "postgresql://u:file-pw-1193@127.0.0.1:1/db"
    assert REDACTOR.redact("am-file-pw-2207 file-pw-1193") == "<redacted> <redacted>"


def test_file_key_errors_name_the_field_as_before(tmp_path: Path) -> None:
    (tmp_path / "key").write_text("f1le5ecretk3y0000111122223333444")
    errors = _errors(tmp_path, f"""
agent: {{api_token_file: {tmp_path / 'missing'}}}
checks:
  - {{name: a, type: tcp, host: 127.0.0.1, port: 1}}
alerting:
  route: {{receiver: pd}}
  receivers:
    - {{name: pd, pagerduty: {{routing_key: abc, routing_key_file: {tmp_path / 'key'}}}}}
""")
    assert errors == [f"agent: secret file '{tmp_path / 'missing'}' does not exist",
                      "alerting.receivers[0].pagerduty: set either routing_key or routing_key_file, not both"]


def test_a_huge_or_non_path_secret_file_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "huge").write_bytes(b"x" * (100 * 1024))
    assert _errors(tmp_path, f"agent: {{api_token_file: {tmp_path / 'huge'}}}\n") == [
        f"agent: secret file '{tmp_path / 'huge'}' is larger than 64 KiB"]
    assert _errors(tmp_path, "agent: {api_token_file: 5}\n") == [
        "agent: api_token_file must be the path of a file holding api_token"]


# --- one DSN rule ------------------------------------------------------------------------------

RESTORE = """
checks:
  - name: db-backup
    type: backup
    max_age: 1d
    source: {{kind: files, path: {path}}}
    restore_test: {{kind: pg_restore, dsn: "{dsn}"}}
"""
FRESHNESS = """
checks:
  - name: orders
    type: freshness
    error_after: 1h
    source: {{kind: sql, dsn: "{dsn}", query: "select now()"}}
"""
PG = "dsn must be a PostgreSQL URL (postgresql://user@host:5432/postgres) or libpq key=value string"
ANY = "dsn must be a database URL such as postgresql://user@host:5432/db or sqlite:///path/to.db"


@pytest.mark.parametrize(("template", "dsn", "error"), [
    (RESTORE, "postgresql://u@127.0.0.1:5432/postgres", None),
    (RESTORE, "POSTGRES://u@127.0.0.1/postgres", None),
    (RESTORE, "host=127.0.0.1 dbname=postgres", None),
    (RESTORE, "mysql://u@127.0.0.1/db?ssl=true", PG),  # a URL of another database is not libpq key=value
    (RESTORE, "not-a-dsn-5501", PG),
    (FRESHNESS, "sqlite:///tmp/x.db", None),
    (FRESHNESS, "mysql://u@127.0.0.1/db", None),
    (FRESHNESS, "host=127.0.0.1 dbname=fresh_5502", ANY),
    (FRESHNESS, "not-a-dsn-5503", ANY),
])
def test_one_dsn_rule_with_the_schemes_each_field_allows(tmp_path: Path, template: str, dsn: str,
                                                        error: str | None) -> None:
    text = template.format(path=tmp_path, dsn=dsn)
    if error is None:
        _load(tmp_path, text)
        return
    [message] = _errors(tmp_path, text)
    assert message.endswith(f".dsn: {error}"), message


def test_clip_redacts_first_and_never_cuts_a_mask() -> None:
    secret = "clip-secret-value-5150"
    REDACTOR.add(secret)
    text = "a" * 10 + secret + "b" * 100
    assert clip(text, 30) == "a" * 10 + "<redacted>" + "bbbbbbb..."
    for limit in range(5, 40):
        out = clip(text, limit)
        assert secret[:6] not in out and len(out) <= limit, (limit, out)
        assert "<redacted>" in out or "<" not in out, (limit, out)


def test_derived_forms_cover_webhook_tokens_but_not_ordinary_url_paths() -> None:
    REDACTOR.add("https://hooks.example.com/services/T0DER/B0DER/d3rivedT0kenSegment42?sig=q5ig-value-77")
    REDACTOR.add("http://prom-7711.internal:9090/prometheus")  # a ${PROMETHEUS_URL}: not a token in sight
    REDACTOR.add("postgresql://app:db-pa55-3319@127.0.0.1/inventory")
    text = ("POST /services/T0DER/B0DER/d3rivedT0kenSegment42 failed; token d3rivedT0kenSegment42; sig q5ig-value-77; "
            "check prometheus-up; database inventory; driver said: password db-pa55-3319 rejected")
    assert REDACTOR.redact(text) == ("POST /<redacted> failed; token <redacted>; sig <redacted>; "
                                     "check prometheus-up; database inventory; driver said: password <redacted> rejected")


def test_the_longest_remembered_secret_wins_and_prefixes_still_match() -> None:
    from agent.secrets import Redactor

    r = Redactor()
    for value in ("trie-5e7-ab", "trie-5e7-abcdef", "trie-5e7-abd", *(f"trie-5e7-n{i:04d}" for i in range(500))):
        r.add(value)
    text = "x trie-5e7-abcdefg trie-5e7-abc trie-5e7-abd trie-5e7-n0499 trie-5e7-n05 TRIE-5E7-AB"
    assert r.redact(text) == "x <redacted>g <redacted>c <redacted> <redacted> trie-5e7-n05 TRIE-5E7-AB"
    assert r.redact(text, ignore_case=True).endswith("trie-5e7-n05 <redacted>")
