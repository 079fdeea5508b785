"""The runner owns failure; the scheduler keeps every other check on time."""

from __future__ import annotations

import asyncio
from typing import Literal

from agent.context import CheckContext
from agent.core import CheckResult, Status
from agent.runner import execute
from agent.scheduler import Scheduler
from checks.base import Check, CheckConfig


class _Cfg(CheckConfig):
    type: Literal["fake"] = "fake"


class Raises(Check):
    async def run(self) -> CheckResult:
        raise KeyError("boom token=abc123secret")


class NeedsExtra(Check):
    async def run(self) -> CheckResult:
        raise ModuleNotFoundError("No module named 'sqlalchemy'", name="sqlalchemy")


class Hangs(Check):
    timeout_status = Status.CRITICAL

    async def run(self) -> CheckResult:
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")


class Counts(Check):
    runs = 0

    async def run(self) -> CheckResult:
        type(self).runs += 1
        return self.result(Status.OK, "fine", {"n": float(type(self).runs)})


def _check(cls: type[Check], name: str, **kw: object) -> Check:
    cfg = _Cfg(name=name, timeout=kw.pop("timeout", "1s"), interval=kw.pop("interval", "1s"), labels={"team": "sre"})
    return cls(cfg, CheckContext())


async def test_exception_becomes_unknown_with_type_and_no_secret() -> None:
    r = await execute(_check(Raises, "raiser"))
    assert r.status == Status.UNKNOWN
    assert "KeyError" in r.summary
    assert "abc123secret" not in r.summary
    assert (r.check, r.type, r.labels) == ("raiser", "fake", {"team": "sre"})


async def test_missing_optional_package_names_the_extra() -> None:
    r = await execute(_check(NeedsExtra, "fresh"))
    assert r.status == Status.UNKNOWN
    assert r.summary == "missing Python package 'sqlalchemy': pip install 'sre-agent[sql]'"


async def test_timeout_uses_the_check_types_status() -> None:
    r = await execute(_check(Hangs, "hanger", timeout="200ms"))
    assert r.status == Status.CRITICAL
    assert "timed out after" in r.summary
    assert 0.15 < r.duration_seconds < 2


async def test_hanging_check_does_not_delay_others() -> None:
    Counts.runs = 0
    results: list[CheckResult] = []
    lags: list[float] = []
    skipped: list[str] = []
    s = Scheduler(results.append, max_concurrency=4, on_lag=lags.append, jitter=False, on_skip=skipped.append)
    s.add(_check(Hangs, "hanger", timeout="300ms", interval="100ms"))
    s.add(_check(Counts, "counter", interval="100ms"))
    s.start()
    await asyncio.sleep(1.05)
    await s.shutdown(grace=0.5)
    counter = [r for r in results if r.check == "counter"]
    hanger = [r for r in results if r.check == "hanger"]
    assert len(counter) >= 6, f"fast check starved: {len(counter)} runs"
    assert hanger and all(r.status == Status.CRITICAL for r in hanger)
    # max_instances=1: the hanging check never overlaps itself
    assert len(hanger) <= 4
    assert lags
    assert skipped and set(skipped) == {"hanger"} and s.skipped_runs == len(skipped)


async def test_shutdown_cancels_in_flight_runs() -> None:
    results: list[CheckResult] = []
    s = Scheduler(results.append, jitter=False)
    s.add(_check(Hangs, "hanger", timeout="30s", interval="50ms"))
    s.start()
    await asyncio.sleep(0.2)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    await s.shutdown(grace=0.2)
    assert loop.time() - t0 < 2
    assert not results


async def test_first_runs_are_placed_by_the_injected_clock_and_random_source() -> None:
    t0 = 2_000_000_000.0  # in the future, so each trigger's first run is its start date
    spread = iter([0.25, 0.75])
    s = Scheduler(lambda r: None, clock=lambda: t0, rng=lambda: next(spread))
    s.add(_check(Counts, "early", interval="60s"))
    s.add(_check(Counts, "late", interval="60s"))
    s.start()
    try:
        early, late = s.next_run("early"), s.next_run("late")
    finally:
        await s.shutdown()
    assert early is not None and late is not None
    assert (early.timestamp(), late.timestamp()) == (t0 + 15, t0 + 45)


async def test_checks_due_in_one_slot_share_a_job_until_the_last_leaves() -> None:
    t0 = 2_000_000_000.0
    spread = iter([0.5, 0.5, 0.9, 0.5, 0.1])
    s = Scheduler(lambda r: None, clock=lambda: t0, rng=lambda: next(spread))
    for name in ("a", "b", "c"):
        s.add(_check(Counts, name, interval="10s"))
    s.add(_check(Counts, "d", interval="20s"))
    s.start()
    try:
        # a and b fall in one 10 ms slot (t0 + 5 s), c and d have their own
        assert len(s._scheduler.get_jobs()) == 3
        assert s.next_run("a") == s.next_run("b") and s.next_run("a").timestamp() == t0 + 5
        await s.remove("a")
        assert s.next_run("b") is not None and len(s._scheduler.get_jobs()) == 3
        await s.remove("b")
        assert s.next_run("b") is None and len(s._scheduler.get_jobs()) == 2
        s.add(_check(Counts, "b", interval="10s"))  # back, on a slot of its own
        assert s.next_run("b") is not None
    finally:
        await s.shutdown()


async def test_a_check_replaced_while_its_run_hangs_is_not_skipped_for_it() -> None:
    results: list[CheckResult] = []
    skipped: list[str] = []
    s = Scheduler(results.append, jitter=False, on_skip=skipped.append)
    s.add(_check(Hangs, "svc", timeout="10s", interval="50ms"))
    s.start()
    try:
        await asyncio.sleep(0.2)  # the hanging run is in flight; later slots skip it
        assert skipped and not results
        await s.remove("svc")  # a reload: the old run goes on, the new check is another instance
        skipped.clear()
        s.add(_check(Counts, "svc", interval="50ms"))
        await asyncio.sleep(0.3)
        assert [r.status for r in results if r.check == "svc"][:1] == [Status.OK] and not skipped
    finally:
        await s.shutdown()


async def test_schedule_lag_is_measured_on_the_injected_clock() -> None:
    lags: list[float] = []
    s = Scheduler(lambda r: None, on_lag=lags.append, clock=lambda: 1_000.0)
    await s.run_now(_check(Counts, "counter"), due=997.5)
    assert lags == [2.5]
