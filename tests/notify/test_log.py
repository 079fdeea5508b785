"""Log receiver: one structured, scrubbed line per alert on sre_agent.alerts."""

from __future__ import annotations

import json
import logging

from agent.core import AlertState, Severity
from agent.logs import JsonFormatter
from agent.notify.base import Outcome
from agent.notify.log import LogReceiver, LogSettings
from agent.secrets import REDACTOR
from tests.notify.conftest import make_alert, make_notification


async def test_one_json_line_per_alert(clock, caplog):
    caplog.set_level(logging.INFO, logger="sre_agent.alerts")
    r = LogReceiver("log", LogSettings(), clock=clock)
    alerts = [make_alert("a", severity=Severity.WARNING), make_alert("b", state=AlertState.RESOLVED)]
    delivery = await r.send(make_notification(*alerts))
    assert (delivery.outcome, delivery.detail) == (Outcome.SENT, "logged 2 alert(s)")
    first, second = [rec for rec in caplog.records if rec.name == "sre_agent.alerts"]
    assert (first.levelno, second.levelno) == (logging.WARNING, logging.INFO)
    line = json.loads(JsonFormatter().format(first))
    assert line["msg"].startswith("[WARNING a] GET https://api.example.com/healthz returned 503")
    assert line["msg"].endswith("(firing for 12m; latency 2.3s, status code 503) "
                                "runbook=https://runbooks.example.com/http-endpoint-down.md")
    assert {k: line[k] for k in ("event", "state", "severity", "check", "dedup_key", "duration_seconds",
                                 "starts_at", "receiver", "idempotency_key")} == {
        "event": "alert", "state": "firing", "severity": "warning", "check": "a", "dedup_key": "a:down",
        "duration_seconds": 720.0, "starts_at": "2023-11-14T22:01:20.000Z", "receiver": "log",
        "idempotency_key": "notif-0001"}
    assert line["observations"] == {"latency_seconds": 2.345, "status_code": 503.0}
    resolved = json.loads(JsonFormatter().format(second))
    assert (resolved["state"], resolved["duration_seconds"]) == ("resolved", 660.0)


async def test_secrets_are_scrubbed_from_fields(clock, caplog):
    caplog.set_level(logging.INFO, logger="sre_agent.alerts")
    REDACTOR.add("db-pa55word-xyz")
    alert = make_alert(summary="connect failed with password db-pa55word-xyz", labels={"dsn": "db-pa55word-xyz"})
    await LogReceiver("log", LogSettings(), clock=clock).send(make_notification(alert))
    [record] = [rec for rec in caplog.records if rec.name == "sre_agent.alerts"]
    assert "db-pa55word-xyz" not in JsonFormatter().format(record)
    assert record.fields["labels"] == {"dsn": "<redacted>"}


async def test_emergency_logs_at_critical_and_send_resolved_off(clock, caplog):
    caplog.set_level(logging.INFO, logger="sre_agent.alerts")
    r = LogReceiver("log", LogSettings(send_resolved=False), clock=clock)
    await r.send(make_notification(make_alert(severity=Severity.EMERGENCY), make_alert("x", state=AlertState.RESOLVED)))
    assert [rec.levelno for rec in caplog.records if rec.name == "sre_agent.alerts"] == [logging.CRITICAL]
