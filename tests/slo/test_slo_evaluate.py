"""The alert table, its scaling, and the SLO verdict from chosen window readings (no I/O)."""

from __future__ import annotations

import shutil
import subprocess
from datetime import timedelta

import pytest
from prometheus_client import generate_latest

from agent.core import Status
from agent.metrics import Metrics
from agent.slo.evaluate import evaluate
from agent.slo.sources import WindowReading, reading
from agent.slo.spec import SloSpec
from agent.slo.windows import (
    AlertKind,
    alert_table,
    error_budget,
    error_threshold,
    evaluation_windows,
    window_label,
)
from checks.slo import SloCheck

EVENTS = {"events": {"error_query": "sum(rate(e[{{window}}]))", "total_query": "sum(rate(t[{{window}}]))"}}


def spec(objective: float = 99.9, window: str = "30d", **kw: object) -> SloSpec:
    return SloSpec.model_validate({"name": "api-availability", "service": "api", "objective": objective,
                                   "window": window, "sli": EVENTS, "labels": {"team": "payments"}, **kw})


def readings(s: SloSpec, default: float | None, events: float = 1e6, **ratios: float | None) -> dict[timedelta, WindowReading]:
    """Ratios by window label (`_5m`, `_1h`, `_30d`...); every other window gets `default`."""
    by_label = {k.lstrip("_"): v for k, v in ratios.items()}
    out = {}
    for w in evaluation_windows(s.window):
        ratio = by_label.get(window_label(w), default)
        out[w] = WindowReading(w, events, ratio)
    return out


def test_workbook_table_for_30d() -> None:
    rows = [(r.kind, r.long_label, r.short_label, r.burn_rate) for r in alert_table(timedelta(days=30))]
    assert rows == [(AlertKind.PAGE, "1h", "5m", 14.4), (AlertKind.PAGE, "6h", "30m", 6.0),
                    (AlertKind.TICKET, "1d", "2h", 3.0), (AlertKind.TICKET, "3d", "6h", 1.0)]
    assert [window_label(w) for w in evaluation_windows(timedelta(days=30))] == \
        ["5m", "30m", "1h", "2h", "6h", "1d", "3d", "30d"]


def test_other_windows_scale_lengths_but_keep_factors() -> None:
    seven = alert_table(timedelta(days=7))
    assert [(r.long_label, r.short_label, r.burn_rate) for r in seven] == \
        [("14m", "5m", 14.4), ("1h24m", "7m", 6.0), ("5h36m", "28m", 3.0), ("16h48m", "1h24m", 1.0)]
    assert [window_label(w) for w in evaluation_windows(timedelta(days=28))] == \
        ["5m", "28m", "56m", "1h52m", "5h36m", "22h24m", "2d19h12m", "28d"]


def test_thresholds_are_exact_numbers() -> None:
    page = alert_table(timedelta(days=30))[0]
    assert error_budget(0.999) == 0.001
    assert error_threshold(page, 0.999) == 0.0144
    assert error_threshold(page, 0.9995) == 0.0072


def test_page_row_fires_on_both_windows() -> None:
    s = spec()
    ev = evaluate(s, readings(s, 0.0005, _5m=0.0152, _1h=0.0149, _30d=0.00038))
    assert ev.status == Status.CRITICAL
    assert [(f.row.long_label, f.row.short_label) for f in ev.firing] == [("1h", "5m")]
    assert ev.budget_remaining == pytest.approx(0.62)
    assert ev.summary() == "burning 14.9x budget over 1h and 15.2x over 5m (page); 62% budget left"
    assert ev.alert_key == "burn"
    assert ev.details()["firing"] == ["burn"]


def test_one_window_alone_does_not_fire() -> None:
    s = spec()
    short_only = evaluate(s, readings(s, 0.0005, _5m=0.05))  # a 5m spike, 1h fine
    long_only = evaluate(s, readings(s, 0.0005, _1h=0.02, _5m=0.001))  # recovered
    assert short_only.status == long_only.status == Status.OK
    assert short_only.firing == long_only.firing == []


def test_burn_exactly_at_the_factor_does_not_fire() -> None:
    s = spec()
    ev = evaluate(s, readings(s, 0.0005, _1h=0.0144, _5m=0.0144))
    assert ev.firing == []


def test_ticket_row_is_warning() -> None:
    s = spec()
    ev = evaluate(s, readings(s, 0.0005, _1d=0.004, _2h=0.0035, _30d=0.0006))
    assert ev.status == Status.WARNING
    assert [f.row.kind for f in ev.firing] == [AlertKind.TICKET]
    assert ev.summary() == "burning 4.0x budget over 1d and 3.5x over 2h (ticket); 40% budget left"


def test_exhausted_budget_is_its_own_alert() -> None:
    s = spec()
    ev = evaluate(s, readings(s, 0.0005, _30d=0.0015))
    assert ev.status == Status.CRITICAL
    assert ev.firing == []
    assert ev.alert_key == "budget"
    assert ev.budget_remaining == pytest.approx(-0.5)
    assert ev.summary() == ("error budget exhausted: SLI 99.85% over 30d is below the 99.9% objective "
                            "(-50% budget left); burning 0.5x over 5m")


def test_page_burn_takes_the_key_when_budget_is_also_exhausted() -> None:
    s = spec()
    ev = evaluate(s, readings(s, 0.0005, _5m=0.02, _1h=0.02, _30d=0.002))
    assert ev.status == Status.CRITICAL
    assert ev.alert_key == "burn"
    assert ev.details()["firing"] == ["budget", "burn"]


def test_no_data_windows_cannot_fire() -> None:
    s = spec(min_events=1000)
    rs = {w: reading(w, errors=0.2 * 50, total=50, min_events=1000) if w < timedelta(hours=2)
          else reading(w, errors=0.0005 * 1e6, total=1e6, min_events=1000) for w in evaluation_windows(s.window)}
    assert rs[timedelta(minutes=5)].error_ratio is None  # 50 events < 1000: no data, not a 20% error ratio
    ev = evaluate(s, rs)
    assert ev.status == Status.OK
    windows = {x.labels.get("window") for x in ev.samples() if x.metric == "sre_agent_slo_burn_rate"}
    assert windows == {"2h", "6h", "1d", "3d", "30d"}


def test_whole_window_without_data_has_no_budget_sample() -> None:
    s = spec()
    ev = evaluate(s, readings(s, None))
    assert ev.status == Status.OK
    assert ev.budget_remaining is None
    assert ev.summary() == "no data over 30d (fewer than 70 events)"  # the default min_events at 99.9%
    assert [x.metric for x in ev.samples()] == ["sre_agent_slo_objective_ratio"]


def test_samples_and_metrics_exposition() -> None:
    s = spec()
    result = evaluate(s, readings(s, 0.0005, _5m=0.02)).to_result()
    by = {(x.metric, x.labels.get("window")): x for x in result.samples}
    assert by[("sre_agent_slo_objective_ratio", None)].value == 0.999
    assert by[("sre_agent_slo_sli_ratio", "5m")].value == pytest.approx(0.98)
    assert by[("sre_agent_slo_burn_rate", "5m")].value == pytest.approx(20.0)
    assert by[("sre_agent_slo_burn_rate", "30d")].labels == {"slo": "api-availability", "window": "30d"}
    assert by[("sre_agent_slo_error_budget_remaining_ratio", None)].value == pytest.approx(0.5)
    metrics = Metrics(families=dict(SloCheck.metric_families))
    result.check, result.type, result.labels = "slo-api-availability", "slo", {"service": "api", "team": "payments"}
    metrics.observe(result)
    text = generate_latest(metrics.registry).decode()
    assert 'sre_agent_slo_burn_rate{slo="api-availability",window="5m"} 20.0' in text
    assert 'sre_agent_slo_error_budget_remaining_ratio{slo="api-availability"} 0.5' in text
    if shutil.which("promtool"):
        proc = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True, timeout=30)
        assert proc.returncode == 0, proc.stdout + proc.stderr

