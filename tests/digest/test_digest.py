"""The daily digest: what it says, how each receiver renders it, and that it goes out once a day."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

import pytest

from agent.config import ConfigError
from agent.core import CheckResult, Status
from agent.digest.build import build_digest
from agent.digest.component import META_KEY, DigestComponent, last_fire_time
from agent.notify import digest as digest_doc
from agent.notify.base import Outcome
from agent.notify.email import digest_message
from agent.notify.registry import build
from agent.notify.slack import digest_message as slack_digest
from agent.notify.webhook import digest_document
from agent.store import AlertChanges, IncidentDoc, SqliteStore
from tests.alerting.helpers import T0, FakeClock, config, deliver
from tests.notify.fakes import block_kit_problems

# T0 is 2027-01-15 08:00 UTC (09:00 in Berlin)
CONFIG = """
digest: {schedule: "0 9 * * *", receivers: [log], timezone: Europe/Berlin}
checks:
  - {name: web, type: command, command: ["true"]}
  - {name: api, type: command, command: ["true"]}
  - {name: disabled, type: command, command: ["true"], enabled: false}
  - {name: orders-backup, type: backup, source: {kind: files, path: /backups, pattern: "*.dump"}, max_age: 26h}
  - {name: exports-fresh, type: freshness, source: {kind: file, path: /data}, warn_after: 1h, error_after: 4h}
  - {name: events-fresh, type: freshness, source: {kind: file, path: /events}, warn_after: 1h, error_after: 4h}
  - {name: api-tls, type: tls, host: api.example.com}
  - {name: www-tls, type: tls, host: www.example.com}
slos:
  - {name: web-availability, service: web, objective: 99.9, window: 30d, sli: {check: web}}
alerting:
  route: {receiver: log, group_wait: 0s}
  receivers: [{name: log, log: {}}]
"""


def res(check: str, status: Status, summary: str = "", **obs: float) -> CheckResult:
    return CheckResult(status=status, summary=summary or f"{check} {status.name.lower()}", check=check,
                       observations=obs, timestamp=T0 - 30)


LATEST = {
    "web": res("web", Status.OK),
    "api": res("api", Status.CRITICAL, "GET /healthz returned 503"),
    "disabled": res("disabled", Status.CRITICAL),  # a stale result of a disabled check is not "failing now"
    "orders-backup": res("orders-backup", Status.OK, age_seconds=3 * 3600.0, restore_success=1.0,
                         restore_duration_seconds=240.0, restore_data_age_seconds=4 * 3600.0),
    "exports-fresh": res("exports-fresh", Status.WARNING, age_seconds=5400.0),
    "events-fresh": res("events-fresh", Status.OK, age_seconds=120.0),
    "api-tls": res("api-tls", Status.WARNING, cert_expiry_days=6.25),
    "www-tls": res("www-tls", Status.OK, cert_expiry_days=80.0),
    "slo-web-availability": res("slo-web-availability", Status.OK, error_budget_remaining_ratio=0.62,
                                burn_rate_1h=0.4, burn_rate_1d=1.2, burn_rate_5m=9.0),
}


@pytest.fixture
async def store(tmp_path: Path) -> Any:
    s = SqliteStore(tmp_path / "state.db")
    await s.open()
    yield s
    await s.close()


async def _digest(tmp_path: Path, store: SqliteStore) -> digest_doc.Digest:
    cfg = config(tmp_path, CONFIG)
    await store.write_alert_changes(AlertChanges(incidents=[
        IncidentDoc("api/:1", "api/", "api", T0 - 7200, {"severity": "critical", "summary": "503s"},
                    failing_since=T0 - 7260, acknowledged_at=T0 - 6900, resolved_at=T0 - 5400),
        IncidentDoc("api/:2", "api/", "api", T0 - 600, {"severity": "critical", "summary": "503s again"},
                    failing_since=T0 - 720),
        IncidentDoc("web/:1", "web/", "web", T0 - 3 * 86400, {"severity": "warning", "summary": "old"},
                    failing_since=T0 - 3 * 86400, resolved_at=T0 - 2 * 86400)]))
    return await build_digest(cfg.digest, cfg.all_checks(), LATEST, [], store, T0, agent_url="https://agent.example.com")


async def test_the_morning_checklist_says_what_needs_looking_at(tmp_path: Path, store: SqliteStore) -> None:
    d = await _digest(tmp_path, store)
    assert d.day == "2027-01-15" and d.timezone == "Europe/Berlin"
    assert d.headline() == "3 failing, 2 incidents in 24 h, 1 certificate expiring"
    text = d.text()
    assert "Failing now (3 of 8 checks)" in text
    assert "  - CRITICAL api (command): GET /healthz returned 503" in text
    assert text.index("CRITICAL api (command)") < text.index("WARNING exports-fresh (freshness)")
    assert "disabled" not in text
    # 24 h only; durations from the first failing result; the means over incidents that have them
    assert "Incidents, last 24 h (2) · MTTD 1m30s · MTTA 5m · MTTR 31m" in text
    assert "CRITICAL api: 503s · 06:59 → 07:30 (31m) · detected in 1m, acknowledged after 5m, resolved in 31m" in text
    assert "CRITICAL api: 503s again · since 08:48, still firing (12m) · detected in 2m" in text
    assert "web-availability (99.9%): 62% budget left, burn 1h 0.4x, 1d 1.2x [OK]" in text
    assert ("orders-backup: newest 3h old (RPO 1d2h) · last drill passed, restored in 4m (RTO), "
            "data 4h old at restore [OK]") in text
    assert text.index("exports-fresh: 1h30m old [WARNING]") < text.index("events-fresh: 2m old [OK]")
    assert "api-tls: 6.2 days left [WARNING]" in text and "www-tls" not in text
    again = digest_doc.Digest.from_dict(json.loads(json.dumps(d.to_dict())))
    assert again == d and again.text() == text


async def test_a_quiet_day_says_so(tmp_path: Path, store: SqliteStore) -> None:
    cfg = config(tmp_path, CONFIG)
    quiet = {k: res(k, Status.OK) for k in LATEST}
    d = await build_digest(cfg.digest, cfg.all_checks(), quiet, [], store, T0)
    text = d.text()
    assert d.headline() == "nothing failing, 0 incidents in 24 h"
    assert "Nothing is failing." in text and "No incidents in the last 24 hours." in text
    assert "No certificate expires within 14 days." in text
    assert "orders-backup: no restore drill yet [OK]" in text


async def test_each_receiver_kind_renders_it(tmp_path: Path, store: SqliteStore, caplog: pytest.LogCaptureFixture) -> None:
    d = await _digest(tmp_path, store)
    d.failing[0].summary = "<b>503</b> & more"
    n = digest_doc.notification(d, "ops", "idem-1", T0)
    message = slack_digest(d)
    assert block_kit_problems(message) == []
    assert message["blocks"][0]["text"]["text"] == "📋 Daily digest 2027-01-15"
    assert any("&lt;b&gt;503&lt;/b&gt; &amp; more" in b.get("text", {}).get("text", "") for b in message["blocks"])
    email = build("email", "mail", {"to": ["sre@example.com"], "from": "a@example.com", "smtp": {"host": "h"}})
    msg = digest_message(n, email.config)  # type: ignore[attr-defined]
    assert msg["Subject"] == "[sre-agent] Daily digest 2027-01-15: 3 failing, 2 incidents in 24 h, 1 certificate expiring"
    assert msg["Message-ID"] == "<digest.2027-01-15.ops@example.com>"
    html = msg.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert "&lt;b&gt;503&lt;/b&gt; &amp; more" in html and "<b>503</b>" not in html
    assert "Incidents, last 24 h (2)" in msg.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    doc = digest_document(n)
    assert doc["kind"] == "digest" and doc["digest"]["day"] == "2027-01-15" and doc["text"] == d.text()
    log = build("log", "log", {})
    with caplog.at_level(logging.INFO, logger="sre_agent.alerts"):
        assert (await log.deliver(n)).outcome == Outcome.SENT
    assert "Failing now (3 of 8 checks)" in caplog.text
    pd = build("pagerduty", "pd", {"routing_key": "e93facc04764012d7bfb002500d5d1a6"})
    refused = await pd.deliver(n)
    assert refused.outcome == Outcome.FAILED and "does not take digests" in refused.detail
    assert not pd.takes_digest and log.takes_digest and email.takes_digest


class Engine:
    """The alerting engine as the digest uses it, with the real store underneath."""

    def __init__(self, store: SqliteStore) -> None:
        self.store = store
        self.agent_url = "http://127.0.0.1:9108"

    def alerts(self, states: set[str] | None = None) -> list[Any]:
        return []

    async def enqueue_once(self, notifications: list[Any], key: str, value: str) -> bool:
        from agent.alerting.outbox import OutboxRow

        return await self.store.outbox_insert_once([OutboxRow.for_notification(n) for n in notifications], key, value)


async def test_once_per_day_in_its_time_zone_even_across_restarts(tmp_path: Path) -> None:
    cfg = config(tmp_path, CONFIG)
    clock = FakeClock(T0)
    store = SqliteStore(tmp_path / "state.db")
    await store.open()
    component = DigestComponent(cfg, store, Engine(store), lambda: LATEST, clock=clock)
    assert await component.send() is True
    assert await store.get_meta(META_KEY) == "2027-01-15"  # recorded with the rows, in one transaction
    clock.now = T0 + 3600
    assert await component.send() is False
    await store.close()
    store = SqliteStore(tmp_path / "state.db")  # a restart the same day
    await store.open()
    try:
        component = DigestComponent(cfg, store, Engine(store), lambda: LATEST, clock=clock)
        assert await component.send() is False
        clock.now = T0 + 15 * 3600 + 60  # 23:01 UTC is 00:01 the next day in Berlin
        assert await component.send() is True
        rows = await store.outbox_rows("log")
        assert [r.payload["extra"]["digest"]["day"] for r in rows] == ["2027-01-15", "2027-01-16"]
        assert {r.payload["kind"] for r in rows} == {"digest"}
    finally:
        await store.close()


async def test_the_outbox_delivers_it_to_the_receiver(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from tests.alerting.helpers import make_engine

    cfg = config(tmp_path, CONFIG)
    clock = FakeClock(T0)
    store = SqliteStore(tmp_path / "state.db")
    await store.open()
    engine = await make_engine(cfg, store, clock, lambda rc: build(rc.kind, rc.name, rc.settings))  # type: ignore[arg-type]
    try:
        component = DigestComponent(cfg, store, engine, lambda: LATEST, clock=clock)
        with caplog.at_level(logging.INFO, logger="sre_agent.alerts"):
            assert await component.send() is True
            await deliver(engine)
        assert "Daily digest 2027-01-15 (Europe/Berlin)" in caplog.text
        assert await store.outbox_rows() == []  # delivered, so deleted
    finally:
        await engine.stop()
        await store.close()


def test_last_fire_time_in_the_schedules_zone() -> None:
    from zoneinfo import ZoneInfo

    from apscheduler.triggers.cron import CronTrigger

    trigger = CronTrigger.from_crontab("0 9 * * *", timezone=ZoneInfo("Europe/Berlin"))
    assert last_fire_time(trigger, T0 + 600) == T0  # 09:00 Berlin = 08:00 UTC
    assert last_fire_time(trigger, T0 - 600) == T0 - 86400


async def test_a_restart_just_after_the_send_time_catches_up_once_checks_reported(tmp_path: Path) -> None:
    cfg = config(tmp_path, CONFIG)
    store = SqliteStore(tmp_path / "state.db")
    await store.open()
    reported: dict[str, CheckResult] = {}
    try:
        late = DigestComponent(cfg, store, Engine(store), lambda: reported, clock=FakeClock(T0 + 2 * 3600), settle=5)
        await late.start()
        assert late._catch_up is None  # two hours late: tomorrow's run will do
        await late.stop()
        component = DigestComponent(cfg, store, Engine(store), lambda: reported, clock=FakeClock(T0 + 600),
                                    settle=3600)
        await component.start()
        assert component._catch_up is not None and await store.outbox_rows() == []  # waiting for results
        for check in cfg.all_checks():
            result = LATEST.get(check.name) or res(check.name, Status.OK)
            reported[check.name] = result
            component.on_result(result)
        await asyncio.wait_for(component._catch_up, 60)  # long before `settle`: the results were the signal
        [row] = await store.outbox_rows()
        assert row.payload["extra"]["digest"]["failing"][0]["check"] == "api"
        await component.stop()
    finally:
        await store.close()


@pytest.mark.parametrize(("digest", "message"), [
    ('{schedule: "0 8 * * *", receivers: [pd]}', "digest.receivers[0]: receiver 'pd' is pagerduty: a digest must not "
                                                 "page anyone; use email, log, slack, webhook"),
    ('{schedule: "0 8 * * *", receivers: [lgo]}', "digest.receivers[0]: unknown receiver 'lgo'; did you mean 'log'?"),
    ('{schedule: "0 8 * * *"}', "digest.receivers: a digest schedule needs receivers"),
    ("{receivers: [log]}", "digest.schedule: receivers are set but no schedule"),
    ('{schedule: "8am", receivers: [log]}', "digest.schedule: invalid cron expression '8am'"),
    ('{schedule: "0 8 * * *", receivers: [log], timezone: Mars/Olympus}', "digest.timezone: unknown time zone"),
    ('{schedule: "0 8 * * *", receivers: [log], reciever: x}', "digest.reciever: unknown key 'reciever'"),
])
def test_config_errors_name_the_field(tmp_path: Path, digest: str, message: str) -> None:
    with pytest.raises(ConfigError) as exc:
        config(tmp_path, f"""
            digest: {digest}
            alerting:
              route: {{receiver: log}}
              receivers:
                - {{name: log, log: {{}}}}
                - {{name: pd, pagerduty: {{routing_key: e93facc04764012d7bfb002500d5d1a6}}}}
            """)
    assert message in str(exc.value)
