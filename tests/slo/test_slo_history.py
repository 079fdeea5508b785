"""`sli.check` SLOs: evaluated from a real SQLite store holding chosen probe results."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agent.config import load_config
from agent.context import CheckContext
from agent.core import CheckResult, Status
from agent.daemon import history_retention
from agent.runner import execute
from agent.slo.spec import SloSpec
from agent.slo.windows import alert_table
from agent.store import SqliteStore, Store
from checks.slo import SloCheck

NOW = 1_800_000_000.0
WEEK_MINUTES = 7 * 1440

CONFIG = """
checks:
  - {name: api, type: tcp, host: 127.0.0.1, port: 9, interval: 1m}
slos:
  - name: api-probes
    service: api
    objective: 99
    window: 7d
    labels: {team: payments}
    min_events: 1                         # every window counts (the default at 99% asks for 7 results)
    sli: {check: api}
  - name: api-probes-quiet
    service: api
    objective: 99
    window: 7d
    min_events: 20
    sli: {check: api}
"""


def status_of(k: int) -> Status:
    """The probe result k minutes (+30s) before NOW."""
    if k >= WEEK_MINUTES:
        return Status.CRITICAL  # outside the 7d window: must not count
    if k < 14:
        return Status.CRITICAL if k % 2 == 0 else Status.OK
    if k % 200 == 0:
        return Status.UNKNOWN
    return Status.WARNING if k % 100 == 50 else Status.OK  # WARNING is a good result


def analytic(minutes: int) -> float:
    bad = sum(1 for k in range(minutes) if not status_of(k).up)
    return bad / minutes


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    s = SqliteStore(tmp_path / "state.db", default_retention=2 * 86400)
    await s.open()
    for k in range(WEEK_MINUTES + 120):
        s.add_result(CheckResult(status=status_of(k), summary="probe", check="api", type="tcp", timestamp=NOW - 30 - 60 * k))
        s.add_result(CheckResult(status=Status.CRITICAL, summary="other", check="web", type="tcp", timestamp=NOW - 30 - 60 * k))
    await s.flush()
    yield s
    await s.close()


@pytest.fixture
def config(tmp_path: Path):
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG)
    return load_config(path)


def slo_check(config, name: str, store: Store | None) -> SloCheck:
    cfg = config.check(name)
    return SloCheck(cfg, CheckContext(config=config, store=store), clock=lambda: NOW)


async def test_sli_budget_and_burn_from_probe_history(config, store: Store) -> None:
    result = await execute(slo_check(config, "slo-api-probes", store))
    assert analytic(14) == 0.5 and analytic(1) == 1.0
    week = analytic(WEEK_MINUTES)  # 57 bad of 10080
    assert week == pytest.approx(57 / 10080)
    samples = {(s.metric, s.labels.get("window")): s.value for s in result.samples}
    assert samples[("sre_agent_slo_sli_ratio", "7d")] == pytest.approx(1 - week, rel=1e-9)
    assert samples[("sre_agent_slo_error_budget_remaining_ratio", None)] == pytest.approx(1 - week / 0.01, rel=1e-9)
    assert samples[("sre_agent_slo_burn_rate", "14m")] == pytest.approx(50.0)
    assert samples[("sre_agent_slo_burn_rate", "5m")] == pytest.approx(analytic(5) / 0.01) == pytest.approx(60.0)
    assert samples[("sre_agent_slo_burn_rate", "16h48m")] == pytest.approx(analytic(1008) / 0.01)
    # 7d SLO: the page row is 14m/5m (1h scaled; 5m is the floor) and both burn > 14.4
    assert result.status == Status.CRITICAL
    assert result.summary == "burning 50.0x budget over 14m and 60.0x over 5m (page); 43% budget left"
    assert result.labels == {"team": "payments", "service": "api"}
    assert result.details["alert_key"] == "burn"


async def test_low_traffic_windows_have_no_data(config, store: Store) -> None:
    result = await execute(slo_check(config, "slo-api-probes-quiet", store))
    windows = {s.labels["window"] for s in result.samples if s.metric == "sre_agent_slo_burn_rate"}
    assert windows == {"28m", "1h24m", "5h36m", "16h48m", "7d"}  # 5m, 7m, 14m hold < 20 results
    # the page rows need 5m / 7m, which have no data; the 16h48m/1h24m ticket row burns > 1
    assert result.status == Status.WARNING
    assert [a["long_window"] for a in result.details["alerts"]] == ["16h48m"]


async def test_without_a_store_the_slo_is_unknown(config) -> None:
    result = await execute(slo_check(config, "slo-api-probes", None))
    assert result.status == Status.UNKNOWN
    assert "state store is not open" in result.summary
    assert [s.metric for s in result.samples] == ["sre_agent_slo_objective_ratio"]


async def test_store_keeps_history_for_the_slo_window(config, store: Store) -> None:
    needs = history_retention(config)
    assert needs == {"api": pytest.approx(7 * 86400 + 3600)}
    for check, seconds in needs.items():
        store.set_retention(check, seconds)
    deleted = await store.prune(now=NOW)
    assert deleted > 0  # "web" results beyond the 2d default are gone ...
    assert await store.success_counts("web", NOW - 7 * 86400, NOW) == (0, 2 * 1440)
    good, total = await store.success_counts("api", NOW - 7 * 86400, NOW)
    assert total == WEEK_MINUTES  # ... while the SLO's probe keeps its whole week


YOUNG = """
checks:
  - {name: api, type: tcp, host: 127.0.0.1, port: 9, interval: 30s}
slos:
  - {name: api-probes, service: api, objective: 99.5, window: 7d, sli: {check: api}}
"""


async def young_store(tmp_path: Path, statuses: list[Status]) -> Store:
    """A fresh agent: the check's whole history is these results, 30s apart, the last one 10s ago."""
    s = SqliteStore(tmp_path / "young.db")
    await s.open()
    for k, status in enumerate(reversed(statuses)):
        s.add_result(CheckResult(status=status, summary="probe", check="api", type="tcp", timestamp=NOW - 10 - 30 * k))
    await s.flush()
    return s


@pytest.mark.parametrize("results", [2, 3, 10, 30, 120])
async def test_one_blip_on_a_fresh_agent_neither_pages_nor_exhausts_the_budget(tmp_path: Path, results: int) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(YOUNG)
    config = load_config(path)
    statuses = [Status.OK] * results
    statuses[-2] = Status.CRITICAL  # one 30 s blip, just before the last probe
    store = await young_store(tmp_path, statuses)
    try:
        result = await execute(slo_check(config, "slo-api-probes", store))
    finally:
        await store.close()
    assert result.status == Status.OK, result.summary
    assert "exhausted" not in result.summary and "burning" not in result.summary.split(";")[0]
    covered = (results - 1) * 30 + 10  # from the first result to now
    week = 7 * 86400
    assert result.details["windows"]["7d"]["coverage"] == pytest.approx(covered / week)
    budget = {s.metric: s.value for s in result.samples if not s.labels.get("window")}
    if results < 14:  # the default min_events at 99.5%: too few probes to say anything
        assert result.summary.startswith("no data over 7d (fewer than 14 events)")
        assert "sre_agent_slo_error_budget_remaining_ratio" not in budget
    else:
        # the blip counts against the week's budget as one bad probe among a full week's worth of them
        remaining = 1 - (covered / week / results) / 0.005
        assert budget["sre_agent_slo_error_budget_remaining_ratio"] == pytest.approx(remaining)
        assert remaining > 0.99


async def test_a_fresh_agent_with_the_service_down_still_pages(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(YOUNG)
    store = await young_store(tmp_path, [Status.CRITICAL] * 40)  # down for the agent's first 20 minutes
    try:
        result = await execute(slo_check(load_config(path), "slo-api-probes", store))
    finally:
        await store.close()
    # 5m holds 10 probes (< 14): the 14m/5m row has no data, the 1h24m/7m one pages
    assert result.status == Status.CRITICAL
    assert result.details["alerts"][0]["long_window"] == "1h24m"
    assert result.summary.startswith("burning 46.8x budget over 1h24m and 200.0x over 7m (page)")
    assert result.summary.endswith("history covers 19m of 7d")


def test_min_events_defaults_to_what_keeps_one_bad_event_from_paging() -> None:
    for objective, expected in ((99.9, 70), (99.5, 14), (99.0, 7), (95.0, 2), (90.0, 1)):
        spec = SloSpec.model_validate({"name": "x", "service": "s", "objective": objective, "sli": {"check": "api"}})
        assert spec.min_events == expected
        page = alert_table(spec.window)[0]
        assert 1 / expected <= page.burn_rate * (1 - objective / 100) + 1e-12  # one bad event alone: no page
    explicit = SloSpec.model_validate({"name": "x", "service": "s", "objective": 99.9, "min_events": 3,
                                       "sli": {"check": "api"}})
    assert explicit.min_events == 3
