"""SLOs against a real Prometheus with 30 days of backfilled traffic (see promserver.py).

The agent's SLI, budget and burn rates must equal the analytic values of the
generated data, and its alert decision must equal what the generated Prometheus
alert expressions say when Prometheus evaluates them over the same data.
"""

from __future__ import annotations

import asyncio
import re
import socket
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from click.testing import CliRunner

from agent.cli import main
from agent.codegen.rules import slo_rule_groups
from agent.context import CheckContext
from agent.core import CheckResult, Status
from agent.runner import execute
from agent.slo.evaluate import evaluate
from agent.slo.spec import SloSpec
from agent.slo.windows import evaluation_windows, window_label
from checks.slo import SloCheck
from tests.slo.promserver import PromServer, analytic, free_port

pytestmark = pytest.mark.integration

ERRORS = 'sum(rate(http_requests_total{job="api",code=~"5.."}[{{window}}]))'
TOTAL = 'sum(rate(http_requests_total{job="api"}[{{window}}]))'


def spec(objective: float, name: str = "api", url: str | None = None, sli: dict[str, Any] | None = None,
         timeout: str = "5s", **kw: Any) -> SloSpec:
    return SloSpec.model_validate({
        "name": name, "service": "api", "objective": objective, "labels": {"team": "payments"},
        "sli": sli or {"events": {"error_query": ERRORS, "total_query": TOTAL}}, **kw,
        **({"prometheus": {"url": url, "timeout": timeout}} if url else {}),
    })


def slo_check(s: SloSpec, prom_url: str | None, clock: Callable[[], float]) -> SloCheck:
    [cfg] = s.to_checks(None if prom_url is None else _Cfg(prom_url))
    cfg = cfg.model_copy(update={"timeout": timedelta(seconds=15)})
    return SloCheck(cfg, CheckContext(), clock=clock)


class _Cfg:
    """The bit of a root config `to_checks` reads: the agent-wide Prometheus."""

    def __init__(self, url: str) -> None:
        self.agent = type("Agent", (), {"prometheus_url": url})()


async def run(prom: PromServer, s: SloSpec, clock: Callable[[], float] | None = None) -> CheckResult:
    return await execute(slo_check(s, prom.url, clock or (lambda: float(prom.end))))


def samples(result: CheckResult) -> dict[tuple[str, str | None], float]:
    return {(x.metric, x.labels.get("window")): x.value for x in result.samples}


async def test_sli_budget_and_burn_equal_the_analytic_values(prom: PromServer) -> None:
    s = spec(99.9)
    result = await run(prom, s)
    got = samples(result)
    for window in evaluation_windows(s.window):
        ratio, _ = analytic(prom.end, window)
        label = window_label(window)
        assert got[("sre_agent_slo_sli_ratio", label)] == pytest.approx(1 - ratio, rel=0.01), label
        assert got[("sre_agent_slo_burn_rate", label)] == pytest.approx(ratio / 0.001, rel=0.01), label
    month, events = analytic(prom.end, timedelta(days=30))
    assert events == 30 * 1440 * 3000
    assert got[("sre_agent_slo_error_budget_remaining_ratio", None)] == pytest.approx(1 - month / 0.001, rel=0.01)
    assert got[("sre_agent_slo_burn_rate", "5m")] == pytest.approx(20.0, rel=1e-9)
    assert result.status == Status.CRITICAL
    # The traffic alternates 2,000 / 4,000 requests a minute by the hour, so the budget left depends on
    # the hour the test runs in (33% or 34%): the text must agree with the exported ratio.
    left = got[("sre_agent_slo_error_budget_remaining_ratio", None)]
    assert result.summary.startswith(f"burning 20.0x budget over 1h and 20.0x over 5m (page); {left:.0%} budget left")
    assert result.labels == {"team": "payments", "service": "api"}


async def test_latency_sli(prom: PromServer) -> None:
    s = spec(99, name="api-latency", sli={"latency": {"histogram": "http_request_duration_seconds", "threshold": 0.3,
                                                      "selector": '{job="api"}'}})
    result = await run(prom, s)
    got = samples(result)
    for window in evaluation_windows(s.window):
        ratio, _ = analytic(prom.end, window, bad="slow")
        assert ratio == pytest.approx(0.005)
        assert got[("sre_agent_slo_sli_ratio", window_label(window))] == pytest.approx(1 - ratio, rel=0.01)
    assert got[("sre_agent_slo_error_budget_remaining_ratio", None)] == pytest.approx(0.5, rel=0.01)
    assert result.status == Status.OK


async def test_queries_at_the_current_time(prom: PromServer) -> None:
    result = await run(prom, spec(99.9), clock=time.time)
    got = samples(result)
    month, _ = analytic(prom.end, timedelta(days=30))
    assert got[("sre_agent_slo_sli_ratio", "30d")] == pytest.approx(1 - month, rel=0.01)
    assert got[("sre_agent_slo_burn_rate", "5m")] == pytest.approx(20.0, rel=0.01)


def _inline(expr: str, records: dict[str, str], name: str) -> str:
    """Replace recorded series of this SLO with their defining expressions, recursively."""
    pattern = re.compile(r"(slo:[a-z_:0-9]+)\{slo=\"" + re.escape(name) + r"\"\}")
    while (m := pattern.search(expr)) is not None:
        expr = expr[:m.start()] + "(" + records[m.group(1)] + ")" + expr[m.end():]
    return expr


SCENARIOS = {
    "page": (spec(99.9), Status.CRITICAL, 4),
    "ticket": (spec(99.85), Status.WARNING, 2),
    "healthy": (spec(99), Status.OK, 0),
    "exhausted": (spec(99.95), Status.CRITICAL, 4),
    "low-traffic": (spec(99.9, min_events=500_000), Status.WARNING, 1),
    "latency": (spec(99, sli={"latency": {"histogram": "http_request_duration_seconds", "threshold": 0.3,
                                          "selector": '{job="api"}'}}), Status.OK, 0),
}


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
async def test_agent_decision_agrees_with_the_generated_rules(prom: PromServer, scenario: str) -> None:
    s, status, rows_firing = SCENARIOS[scenario]
    check = slo_check(s, prom.url, lambda: float(prom.end))
    readings = await check.source().read(evaluation_windows(s.window), float(prom.end))  # type: ignore[union-attr]
    ev = evaluate(s, readings)
    assert (ev.status, len(ev.firing)) == (status, rows_firing)
    groups = slo_rule_groups(s)["groups"]
    records = {r["record"]: r["expr"] for g in groups for r in g["rules"] if "record" in r}
    agent_says = {(r.row.long_label, r.row.short_label) for r in ev.firing}
    for rule in groups[2]["rules"]:
        fired = bool(prom.query(_inline(rule["expr"], records, s.name)))
        if rule["alert"] == "SLOErrorBudgetBurn":
            key = (rule["labels"]["long_window"], rule["labels"]["short_window"])
            assert fired == (key in agent_says), (scenario, key, fired)
        else:
            assert rule["alert"] == "SLOErrorBudgetExhausted"
            assert fired == ev.budget_exhausted, (scenario, fired)
    if scenario == "exhausted":
        assert ev.budget_exhausted and ev.alert_key == "burn" and ev.details()["firing"] == ["budget", "burn"]


async def test_unreachable_prometheus_is_unknown_and_redacted_while_others_evaluate(prom: PromServer) -> None:
    dead = f"http://sre:hunter2-secret-pw@127.0.0.1:{free_port()}"
    down, up = await asyncio.gather(
        execute(slo_check(spec(99.9, name="elsewhere", url=dead), None, lambda: float(prom.end))),
        run(prom, spec(99.9, name="here")),
    )
    assert down.status == Status.UNKNOWN
    assert down.summary.startswith("cannot evaluate SLO elsewhere: cannot reach Prometheus at http://sre:<redacted>@127.0.0.1")
    assert "hunter2" not in down.summary
    assert [x.metric for x in down.samples] == ["sre_agent_slo_objective_ratio"]
    assert up.status == Status.CRITICAL


async def test_query_errors_are_unknown_with_the_reason(prom: PromServer) -> None:
    broken = spec(99.9, sli={"events": {"error_query": 'sum(rate(http_requests_total{job=~"("}[{{window}}]))',
                                        "total_query": TOTAL}})
    result = await run(prom, broken)
    assert result.status == Status.UNKNOWN
    assert "Prometheus rejected query" in result.summary and "bad_data" in result.summary
    ungrouped = spec(99.9, sli={"events": {"error_query": 'rate(http_requests_total{job="api"}[{{window}}])',
                                           "total_query": TOTAL}})
    result = await run(prom, ungrouped)
    assert result.status == Status.UNKNOWN
    assert "returned 2 series, expected one (aggregate with sum())" in result.summary


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A socket that accepts connections (kernel backlog) and never answers."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


async def test_slow_prometheus_times_out_as_unknown(silent_server: str) -> None:
    s = spec(99.9, url=silent_server, timeout="300ms")
    started = time.monotonic()
    result = await execute(slo_check(s, None, time.time))
    assert time.monotonic() - started < 3
    assert result.status == Status.UNKNOWN
    assert result.summary == f"cannot evaluate SLO api: Prometheus at {silent_server} did not answer within 0.3s"


def test_cli_check_runs_the_slo_now(prom: PromServer, tmp_path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(f"""
agent: {{prometheus_url: "{prom.url}", state_dir: "{tmp_path / 'state'}"}}
slos:
  - name: api-availability
    service: api
    objective: 99.9
    sli: {{events: {{error_query: '{ERRORS}', total_query: '{TOTAL}'}}}}
""")
    out = CliRunner().invoke(main, ["check", "-c", str(config), "slo-api-availability"])
    assert out.exit_code == int(Status.CRITICAL), out.output
    [line] = [line for line in out.output.splitlines() if line.startswith("CRITICAL")]
    assert line.split()[1:3] == ["slo-api-availability", "slo"]
    assert "burning 20.0x budget over 1h" in line
    # real time, a little after the data ends: close to the analytic 0.326 at the data's end
    [remaining] = re.findall(r"error budget remaining ([0-9.]+)%", out.output)
    assert 30 < float(remaining) < 35
