"""The status page's view: what is shown, how it is grouped, what never is, and summary.json's shape."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from agent.config import ConfigError
from agent.core import CheckResult, Status
from agent.daemon import history_retention
from agent.statuspage.config import DEFAULT_PRIVATE_URLS, StatusPageConfig
from agent.statuspage.page import (
    DEGRADED,
    MAINTENANCE,
    MAJOR,
    OPERATIONAL,
    PARTIAL,
    build,
    group_status,
    indicator,
    public_text,
    render_html,
    summary_json,
)
from agent.store import Store
from tests.alerting.helpers import T0, FakeClock, Receivers, config, make_engine, open_store

SECRET = "tok-9f8e7d6c5b4a"
CONFIG = """
agent: {external_url: https://status.example.com}
status_page:
  enabled: true
  title: Payments status
  groups:
    - {name: Web, checks: [web-ok, web-fail]}
    - {name: Jobs, checks: [nightly, reports]}
  private_checks: [db-backup]
checks:
  - {name: web-ok, type: command, command: ["true"], labels: {service: web}, description: "Public site"}
  - {name: web-fail, type: command, command: ["true"], labels: {service: web}}
  - {name: nightly, type: command, command: ["true"], labels: {service: jobs}}
  - {name: reports, type: command, command: ["true"], labels: {service: jobs, tier: low}}
  - {name: db-backup, type: command, command: ["true"], labels: {service: db}}
alerting:
  route: {receiver: ops, group_wait: 0s}
  receivers: [{name: ops, log: {}}]
  silences:
    - {matchers: {check: nightly}, starts_at: 2027-01-01T00:00:00Z, duration: 30d, comment: Nightly rework}
  maintenance_windows:
    - {name: reports-upgrade, matchers: {tier: low}, cron: "0 * * * *", duration: 59m, comment: DB upgrade}
"""


def res(check: str, status: Status, at: float, summary: str = "", took: float = 0.05) -> CheckResult:
    return CheckResult(status=status, summary=summary or f"{check} {status.name.lower()}", check=check, type="command",
                       timestamp=at, duration_seconds=took)


@pytest.fixture
async def store(tmp_path: Path) -> Any:
    s = await open_store(tmp_path)
    yield s
    await s.close()


async def _view(tmp_path: Path, store: Store, latest: dict[str, CheckResult]) -> Any:
    cfg = config(tmp_path, CONFIG)
    clock = FakeClock(T0)
    engine = await make_engine(cfg, store, clock, Receivers())
    # alert state as the daemon would have it: every latest result processed, twice (after: 2)
    for r in latest.values():
        await engine.process([r, r], now=T0)
    return await build(cfg.status_page, cfg.all_checks(), latest, engine, store, now=T0,
                       url="https://status.example.com/")


async def test_components_status_maintenance_silence_and_private_checks(tmp_path: Path, store: Store) -> None:
    latest = {
        "web-ok": res("web-ok", Status.OK, T0 - 5),
        "web-fail": res("web-fail", Status.CRITICAL, T0 - 5, f"GET http://10.0.3.4:8080/health?token={SECRET} 503"),
        "nightly": res("nightly", Status.CRITICAL, T0 - 5, "job failed on batch-1.internal"),
        "reports": res("reports", Status.OK, T0 - 5),
        "db-backup": res("db-backup", Status.CRITICAL, T0 - 5, "backup of orders-db missing"),
    }
    from agent.secrets import REDACTOR

    REDACTOR.add(SECRET)
    view = await _view(tmp_path, store, latest)
    by_check = {c.id: c for g in view.groups for c in g.components}
    assert [g.name for g in view.groups] == ["Web", "Jobs"]
    assert list(by_check) == ["web-ok", "web-fail", "nightly", "reports"]
    assert by_check["web-ok"].status == OPERATIONAL and by_check["web-ok"].description == "Public site"
    assert by_check["web-fail"].status == MAJOR
    assert by_check["web-fail"].summary == "GET [private] 503"  # internal address and secret both gone
    assert by_check["nightly"].status == MAINTENANCE  # failing while silenced: being worked on
    assert by_check["nightly"].summary == "job failed on [private]"
    assert by_check["reports"].status == MAINTENANCE  # in an open maintenance window
    assert view.groups[0].status == PARTIAL and view.indicator == "critical"
    assert [i.name for i in view.incidents] == ["nightly", "web-fail"]  # db-backup fires too, but is private
    assert {i.name: i.status for i in view.incidents} == {"nightly": "identified", "web-fail": "investigating"}
    assert {(m.kind, m.name, tuple(m.components)) for m in view.maintenances} == {
        ("silence", "Nightly rework", ("nightly",)), ("maintenance", "reports-upgrade", ("reports",))}
    everything = json.dumps(summary_json(view)) + render_html(view)
    for hidden in ("db-backup", "orders-db", SECRET, "10.0.3.4", "batch-1.internal", "/api/v1", "/-/reload"):
        assert hidden not in everything, hidden


async def test_uptime_and_sparkline_come_from_the_stores_history(tmp_path: Path, store: Store) -> None:
    # web-ok: 30 days, one result an hour; the last day has 2 failures in 24 -> 91.67% over 24h
    for h in range(30 * 24):
        at = T0 - 30 * 86400 + h * 3600 + 1
        failing = h >= 30 * 24 - 24 and h % 12 == 0
        store.add_result(res("web-ok", Status.CRITICAL if failing else Status.OK, at, took=0.1 + (h % 5) / 10))
    view = await _view(tmp_path, store, {"web-ok": res("web-ok", Status.OK, T0 - 1)})
    web_ok = view.groups[0].components[0]
    assert web_ok.uptime["24h"] == pytest.approx(22 / 24 * 100)
    assert web_ok.uptime["7d"] == pytest.approx((7 * 24 - 2) / (7 * 24) * 100)
    assert web_ok.uptime["30d"] == pytest.approx((30 * 24 - 2) / (30 * 24) * 100)
    assert len(web_ok.spark_points.split()) == 24  # 48 half-hour buckets over 24 h, one result an hour
    assert "mean" in web_ok.spark_title and "peak 500ms" in web_ok.spark_title
    # T0 is 08:00 UTC: both failures fell yesterday, today has only passes so far
    assert len(web_ok.bars) == 30 and web_ok.bars[-2].level == "bad" and web_ok.bars[-1].level == "good"
    assert web_ok.bars[-2].label == "2027-01-14: 91.67% up"
    web_fail = view.groups[0].components[1]
    assert web_fail.uptime == {"24h": None, "7d": None, "30d": None} and web_fail.summary == "no result yet"
    html = render_html(view)
    assert "91.67%" in html and "—" in html


def test_summary_json_is_statuspages_shape() -> None:
    from agent.statuspage.page import Component, Group, PageView

    c = Component(id="api", name="api", description=None, group="Web", status=DEGRADED, status_text="", summary="",
                  updated_at=T0, uptime={}, spark_points="", spark_title="", bars=[])
    view = PageView(title="Status", description=None, indicator=indicator([DEGRADED]), updated_at=T0,
                    refresh_seconds=60, groups=[Group("web", "Web", None, [c])])
    doc = summary_json(view)
    assert set(doc) == {"page", "components", "incidents", "scheduled_maintenances", "status"}
    assert doc["status"] == {"indicator": "minor", "description": "Minor Service Outage"}
    assert doc["page"]["updated_at"] == "2027-01-15T08:00:00.000Z"
    group, component = doc["components"]
    assert group["group"] is True and group["components"] == ["api"]
    assert component["group_id"] == group["id"] and component["status"] == "degraded_performance"


@pytest.mark.parametrize(("statuses", "group", "page"), [
    ([OPERATIONAL, OPERATIONAL], OPERATIONAL, "none"),
    ([OPERATIONAL, MAINTENANCE], MAINTENANCE, "none"),
    ([OPERATIONAL, DEGRADED], DEGRADED, "minor"),
    ([OPERATIONAL, MAJOR], PARTIAL, "critical"),
    ([MAJOR, MAJOR], MAJOR, "critical"),
])
def test_group_status_and_indicator(statuses: list[str], group: str, page: str) -> None:
    assert group_status(statuses) == group
    assert indicator(statuses) == page


@pytest.mark.parametrize(("text", "shown"), [
    ("GET http://10.1.2.3:8080/x returned 503 in 10.5s", "GET [private] returned 503 in 10.5s"),
    ("connect to db.internal:5432 refused", "connect to [private] refused"),
    ("https://api.example.com/healthz 99.9% v1.2", "https://api.example.com/healthz 99.9% v1.2"),
    ("tcp 127.0.0.1:1 refused; [::1]:80 down", "tcp [private] refused; [private] down"),
    ("postgresql://u@orders.svc/db unreachable", "[private] unreachable"),
    ("/var/log/app.log missing", "/var/log/app.log missing"),
    ("x" * 400, "x" * 299 + "…"),
])
def test_public_text_masks_private_hosts(text: str, shown: str) -> None:
    assert public_text(text, StatusPageConfig()) == shown


def test_private_urls_can_be_set() -> None:
    page = StatusPageConfig.model_validate({"private_urls": ["*.corp.example.com"]})
    assert public_text("GET https://x.corp.example.com/ ok, http://10.0.0.1/ too", page) == \
        "GET [private] ok, http://10.0.0.1/ too"
    assert "10.*" in DEFAULT_PRIVATE_URLS


def test_default_groups_follow_the_service_label(tmp_path: Path) -> None:
    cfg = config(tmp_path, """
        status_page: {enabled: true, private_checks: [secret-job]}
        checks:
          - {name: a, type: command, command: ["true"]}
          - {name: web-1, type: command, command: ["true"], labels: {service: web}}
          - {name: db, type: command, command: ["true"], labels: {service: db}}
          - {name: web-2, type: command, command: ["true"], labels: {service: web}}
          - {name: disabled, type: command, command: ["true"], labels: {service: web}, enabled: false}
          - {name: secret-job, type: command, command: ["true"], labels: {service: db}}
        """)
    placed = [(g, c.name) for g, c in cfg.status_page.public_checks(cfg.all_checks())]
    assert placed == [("web", "web-1"), ("web", "web-2"), ("db", "db"), ("Other", "a")]
    needs = history_retention(cfg)
    assert needs["web-1"] >= 30 * 86400 and "secret-job" not in needs and "disabled" not in needs


@pytest.mark.parametrize(("page", "message"), [
    ("{groups: [{name: Web, checks: [web-okk]}]}", "status_page.groups[0].checks[0]: unknown check 'web-okk'; "
                                                    "did you mean 'web-ok'?"),
    ("{private_checks: [web-ok], groups: [{name: Web, checks: [web-ok]}]}",
     "status_page.groups[0].checks[0]: check 'web-ok' is in private_checks"),
    ("{groups: [{name: A, checks: [web-ok]}, {name: A, checks: [db]}]}", "status_page.groups[1].name: duplicate group"),
    ("{groups: [{name: A, checks: [web-ok]}, {name: B, checks: [web-ok]}]}", "is already in group 'A'"),
    ("{private_checks: [nope]}", "status_page.private_checks[0]: unknown check 'nope'"),
    ("{groups: [{name: A, checks: []}]}", "status_page.groups[0].checks: List should have at least 1 item"),
    ("{titel: x}", "status_page.titel: unknown key 'titel'; did you mean 'title'?"),
])
def test_config_errors_name_the_field(tmp_path: Path, page: str, message: str) -> None:
    with pytest.raises(ConfigError) as exc:
        config(tmp_path, f"""
            status_page: {page}
            checks:
              - {{name: web-ok, type: command, command: ["true"]}}
              - {{name: db, type: command, command: ["true"]}}
            """)
    assert message in str(exc.value)


def test_slos_shown_are_those_about_the_page_or_named(tmp_path: Path) -> None:
    text = """
        status_page: {{enabled: true, groups: [{{name: Web, checks: [web]}}]{extra}}}
        checks:
          - {{name: web, type: command, command: ["true"]}}
          - {{name: batch, type: command, command: ["true"]}}
        slos:
          - {{name: web-availability, service: web, objective: 99.9, window: 7d, sli: {{check: web}}}}
          - {{name: batch-availability, service: batch, objective: 99, window: 7d, sli: {{check: batch}}}}
        """
    cfg = config(tmp_path, text.format(extra=""))
    assert [c.name for c in cfg.status_page.public_slos(cfg.all_checks())] == ["slo-web-availability"]
    cfg = config(tmp_path, text.format(extra=", slos: [batch-availability]"))
    assert [c.name for c in cfg.status_page.public_slos(cfg.all_checks())] == ["slo-batch-availability"]
    with pytest.raises(ConfigError, match=r"status_page.slos\[0\]: unknown SLO 'web-availabilty'; did you mean"):
        config(tmp_path, text.format(extra=", slos: [web-availabilty]"))
