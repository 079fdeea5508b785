"""Shared rendering and HTTP classification helpers."""

from __future__ import annotations

import math

import pytest

from agent.core import AlertState
from agent.notify import render
from agent.notify.base import Delivery, Outcome
from agent.notify.http import classify_status, merge, parse_retry_after, transport_failure
from tests.notify.conftest import NOW, Clock, make_alert, make_notification


@pytest.mark.parametrize(("seconds", "text"), [
    (0, "0s"), (45.9, "45s"), (60, "1m"), (720, "12m"), (3780, "1h3m"), (3600 + 59, "1h"),
    (3 * 86400 + 4 * 3600 + 5 * 60, "3d4h"), (-5, "0s"),
])
def test_duration_text(seconds, text):
    assert render.duration_text(seconds) == text


@pytest.mark.parametrize(("name", "value", "text"), [
    ("latency_seconds", 0.2344, "234ms"), ("latency_seconds", 2.345, "2.3s"), ("age_seconds", 7260, "2h1m"),
    ("size_bytes", 1536, "1.5 KiB"), ("size_bytes", 512, "512 B"), ("free_bytes", 3 * 1024**4, "3.0 TiB"),
    ("error_ratio", 0.0123, "1.2%"), ("cpu_percent", 93.25, "93.2%"), ("cert_expiry_days", 12.51, "12.5 days"),
    ("restarts_total", 3.0, "3"), ("status_code", 503.0, "503"), ("burn_rate", 14.4, "14.4"),
    ("x_seconds", math.nan, "NaN"), ("x_seconds", math.inf, "+Inf"),
    # a point in time is a date, not 54 years of duration
    ("last_update_timestamp_seconds", NOW, "2023-11-14 22:13 UTC"), ("rows_total", 1234567.0, "1234567"),
])
def test_format_value(name, value, text):
    assert render.format_value(name, value) == text


def test_observation_labels():
    assert render.observation_label("latency_seconds") == "latency"
    assert render.observation_label("disk_used_percent_max") == "disk used max"
    assert render.observation_label("cert_expiry_days") == "cert expiry"
    assert render.observation_label("last_success_timestamp_seconds") == "last success"


def test_elapsed_for_each_state():
    assert render.elapsed(make_alert(), NOW) == "firing for 12m"
    assert render.elapsed(make_alert(state=AlertState.RESOLVED, ends_at=NOW - 60), NOW) == "resolved, lasted 11m"
    assert render.elapsed(make_alert(state=AlertState.RESOLVED, ends_at=None), NOW) == "resolved, lasted 12m"
    assert render.elapsed(make_alert(starts_at=0.0), NOW) == ""


def test_truncate_and_titles():
    assert render.truncate("abcdef", 4) == "abc…" and render.truncate("abc", 4) == "abc"
    assert render.truncate("abc", 0) == ""
    n = make_notification(make_alert("a"), make_alert("b", state=AlertState.RESOLVED), group_labels={})
    assert render.group_title(n, n.alerts) == "[FIRING:1, RESOLVED:1] 2 checks"
    assert render.iso8601(NOW) == "2023-11-14T22:13:20.000Z"


def test_templates():
    alert = make_alert()
    assert render.render_template("{label_service}-{check}-{missing}", alert) == "api-api-health-"
    assert render.render_template("{labels[env]}/{labels[nope]}", alert) == "prod/"
    with pytest.raises(ValueError, match="invalid template"):
        render.check_template("{check.__class__}")


@pytest.mark.parametrize(("value", "seconds"), [
    ("120", 120.0), (" 7 ", 7.0), ("1.5", 1.5), ("-3", 0.0), ("Tue, 14 Nov 2023 22:14:20 GMT", 60.0),
    ("Tue, 14 Nov 2023 22:00:00 GMT", 0.0), ("soon", None), ("", None), (None, None), ("nan", None),
])
def test_parse_retry_after(value, seconds):
    assert parse_retry_after(value, Clock()) == seconds


def test_classify_status_scrubs_before_cutting():
    secret = "s3cr3t-" + "k" * 40
    body = "x" * 480 + secret  # the secret straddles the 500-character cut
    delivery = classify_status(500, {}, body, what="peer", secrets=[secret])
    assert delivery.outcome == Outcome.RETRY
    assert "s3cr3t" not in delivery.detail and len(delivery.detail) <= 500
    assert classify_status(200, {}, "", what="peer").outcome == Outcome.SENT
    assert classify_status(404, {"retry-after": "5"}, "", what="peer") == Delivery(Outcome.FAILED, "peer: HTTP 404")
    assert classify_status(429, {"retry-after": "5"}, "", what="peer").retry_after == 5.0


def test_transport_failures():
    assert transport_failure(TimeoutError(), what="p", timeout=0.3, secrets=[]) == Delivery(
        Outcome.RETRY, "p: no answer within 0.3s", timed_out=True)
    refused = transport_failure(ConnectionRefusedError(111, "refused https://x/tok3n-value"), what="p",
                                timeout=1, secrets=["tok3n-value"])
    assert refused.outcome == Outcome.RETRY and "tok3n-value" not in refused.detail and not refused.timed_out


def test_merge_prefers_retry_then_failed():
    sent, failed = Delivery(Outcome.SENT, "a"), Delivery(Outcome.FAILED, "b")
    retry = Delivery(Outcome.RETRY, "c", 4.0)
    assert merge([sent, failed, retry, Delivery(Outcome.RETRY, "d", 9.0)]) == Delivery(Outcome.RETRY, "a; b; c; d", 9.0)
    assert merge([sent, failed]).outcome == Outcome.FAILED
    assert merge([sent, sent]) == Delivery(Outcome.SENT, "a")
    assert merge([sent, Delivery(Outcome.RETRY, "slow", timed_out=True)]).timed_out  # PagerDuty: one event timed out
    assert merge([]).outcome == Outcome.SENT
