"""Routing tree (continue, match_re, inheritance, default route) and alerting config validation."""

from __future__ import annotations

import pytest

from agent.alerting.config import AlertingConfig, RouteConfig
from agent.alerting.route import build_routes
from agent.config import ConfigError
from tests.alerting.helpers import config

TREE = {
    "receiver": "slack-ops",
    "group_by": ["check"],
    "group_wait": "10s",
    "group_interval": "1m",
    "repeat_interval": "4h",
    "routes": [
        {"match": {"severity": "critical"}, "receiver": "pagerduty-oncall", "continue": True, "repeat_interval": "1h"},
        {"match_re": {"team": "payments|billing"}, "receiver": "slack-payments", "group_by": ["service"],
         "routes": [{"match": {"service": "ledger"}, "receiver": "ledger-hook", "group_wait": "0s"}]},
        {"receiver": "slack-catchall"},
    ],
}


def receivers_for(labels):
    root = build_routes(RouteConfig.model_validate(TREE))
    return [r.receiver for r in root.destinations(labels)]


def test_continue_lets_later_siblings_match():
    assert receivers_for({"severity": "critical", "team": "billing"}) == ["pagerduty-oncall", "slack-payments"]


def test_first_match_wins_without_continue():
    assert receivers_for({"severity": "warning", "team": "payments"}) == ["slack-payments"]


def test_match_re_is_anchored():
    assert receivers_for({"severity": "warning", "team": "payments-eu"}) == ["slack-catchall"]
    assert receivers_for({"severity": "warning", "team": "pay"}) == ["slack-catchall"]


def test_nested_route_and_inheritance():
    root = build_routes(RouteConfig.model_validate(TREE))
    [ledger] = root.destinations({"severity": "warning", "team": "billing", "service": "ledger"})
    assert ledger.receiver == "ledger-hook"
    assert ledger.group_by == ("service",)  # from its parent
    assert ledger.timing.group_wait == 0  # its own
    assert ledger.timing.group_interval == 60 and ledger.timing.repeat_interval == 4 * 3600  # from the root
    [pd, _] = root.destinations({"severity": "critical"})
    assert pd.timing.repeat_interval == 3600 and pd.timing.group_wait == 10 and pd.group_by == ("check",)


def test_root_is_the_default_route():
    root = build_routes(RouteConfig.model_validate({"receiver": "default", "routes": [{"match": {"team": "db"}, "receiver": "db"}]}))
    [r] = root.destinations({"team": "web"})
    assert r is root and r.receiver == "default"
    assert (r.timing.group_wait, r.timing.group_interval, r.timing.repeat_interval) == (30, 300, 4 * 3600)


def test_group_by_all_labels_and_stable_keys():
    root = build_routes(RouteConfig.model_validate({"receiver": "x", "group_by": ["..."]}))
    labels = {"check": "a", "service": "api", "severity": "critical"}
    assert root.group_labels(labels) == labels
    assert root.group_key(labels) != root.group_key({**labels, "service": "web"})
    again = build_routes(RouteConfig.model_validate({"receiver": "x", "group_by": ["..."]}))
    assert again.group_key(labels) == root.group_key(labels)


def test_editing_one_branch_keeps_the_other_branches_groups():
    before = build_routes(RouteConfig.model_validate(TREE))
    edited = dict(TREE, routes=[*TREE["routes"][:2], {"receiver": "slack-catchall", "group_wait": "1s"}])
    after = build_routes(RouteConfig.model_validate(edited))
    labels = {"severity": "critical", "check": "a"}
    assert before.destinations(labels)[0].group_key(labels) == after.destinations(labels)[0].group_key(labels)


BASE = """
checks:
  - {name: a, type: command, command: ["true"]}
alerting:
"""


def test_unknown_route_receiver_names_path_and_choices(tmp_path):
    with pytest.raises(ConfigError) as exc:
        config(tmp_path, BASE + """
  route:
    receiver: ops
    routes:
      - {match: {team: db}, receiver: ops}
      - {match: {team: web}, receiver: x}
  receivers:
    - {name: ops, log: {}}
    - {name: pd, log: {}}
""")
    [issue] = exc.value.issues
    assert issue.path == "alerting.route.routes[1].receiver"
    assert issue.message == "unknown receiver 'x'; configured: ops, pd"
    assert issue.line == 10


def test_every_semantic_problem_is_listed(tmp_path):
    with pytest.raises(ConfigError) as exc:
        config(tmp_path, BASE + """
  route: {receiver: ops}
  receivers:
    - {name: ops, log: {}}
    - {name: ops, log: {}}
  silences:
    - {matchers: {service: api}, starts_at: 2026-12-01T22:00:00Z, ends_at: 2026-12-01T21:00:00Z}
""")
    paths = {i.path: i.message for i in exc.value.issues}
    assert paths["alerting.receivers[1].name"] == "duplicate receiver name 'ops' (also receivers[0])"
    assert "must be after starts_at" in paths["alerting.silences[0].ends_at"]


@pytest.mark.parametrize(("snippet", "path", "fragment"), [
    ("route: {receiver: ops, routes: [{match_re: {team: '(db'}, receiver: ops}]}\n  receivers: [{name: ops, log: {}}]",
     "alerting.route.routes[0].match_re", "invalid regular expression for match_re.team"),
    ("route: {receiver: ops}\n  receivers: [{name: ops, log: {}, webhook: {url: 'http://x'}}]",
     "alerting.receivers[0]", "exactly one kind key"),
    ("route: {receiver: ops}\n  receivers: [{name: ops, sms: {}}]",
     "alerting.receivers[0]", "unknown receiver kind 'sms'; known kinds: alertmanager, email, log, pagerduty, slack, webhook"),
    ("route: {receiver: ops}\n  receivers: [{name: ops, webhook: {url: 'ftp://x'}}]",
     "alerting.receivers[0].webhook.url", "http"),
    ("route: {receiver: ops, group_wait: 10}\n  receivers: [{name: ops, log: {}}]",
     "alerting.route.group_wait", "duration"),
    ("inhibit: [{source_match: {severity: emergency}}]", "alerting.inhibit[0]", "target_match"),
    ("maintenance_windows: [{matchers: {team: db}, cron: '0 2 * *', duration: 2h}]",
     "alerting.maintenance_windows[0]", "invalid cron expression"),
    ("outbox: {initial_backoff: 10m, max_backoff: 1m}", "alerting.outbox", "max_backoff must be at least initial_backoff"),
    ("route: {receiver: ops, match: {team: db}}\n  receivers: [{name: ops, log: {}}]",
     "alerting.route.match", "root route matches every alert"),
])
def test_invalid_alerting_config(tmp_path, snippet, path, fragment):
    with pytest.raises(ConfigError) as exc:
        config(tmp_path, BASE + "  " + snippet + "\n")
    assert any(i.path == path and fragment in i.message for i in exc.value.issues), exc.value.issues


def test_the_issue_example_is_valid(tmp_path, monkeypatch):
    key = tmp_path / "pd-key"
    key.write_text("R0UTINGKEY0123456789ABCDEFGHIJKL\n")
    monkeypatch.setenv("SLACK_WEBHOOK_URL", "https://hooks.slack.com/services/T/B/secret")
    cfg = config(tmp_path, BASE + f"""
  runbook_base_url: https://git.example.com/ops/runbooks/blob/main/
  route:
    receiver: slack-ops
    group_by: [check]
    group_wait: 10s
    group_interval: 1m
    repeat_interval: 4h
    routes:
      - match: {{severity: critical}}
        receiver: pagerduty-oncall
        continue: true
      - match_re: {{team: "payments|billing"}}
        receiver: slack-ops
      - receiver: slack-ops
  inhibit:
    - source_match: {{severity: emergency}}
      target_match: {{severity: warning}}
      equal: [service]
  silences:
    - matchers: {{service: api}}
      starts_at: 2026-12-01T22:00:00Z
      ends_at: 2026-12-01T23:00:00Z
      comment: planned maintenance
  maintenance_windows:
    - {{matchers: {{team: db}}, cron: "0 2 * * 0", duration: 2h}}
  outbox: {{max_age: 24h, initial_backoff: 1s, max_backoff: 5m}}
  receivers:
    - name: slack-ops
      slack: {{webhook_url: "${{SLACK_WEBHOOK_URL}}"}}
    - name: pagerduty-oncall
      pagerduty: {{routing_key_file: {key}}}
    - name: am
      alertmanager: {{url: http://127.0.0.1:9093}}
    - name: hook
      webhook: {{url: http://127.0.0.1:8080/alerts, headers: {{X-Token: abc123}}}}
    - name: log
      log:
""")
    alerting: AlertingConfig = cfg.alerting
    assert [r.kind for r in alerting.receivers] == ["slack", "pagerduty", "alertmanager", "webhook", "log"]
    assert alerting.receiver("pagerduty-oncall").settings.routing_key.get_secret_value() == "R0UTINGKEY0123456789ABCDEFGHIJKL"
    assert alerting.route.routes[0].continue_ is True
