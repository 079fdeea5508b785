"""Rendezvous sharding, placement across locations and quorum verdicts (`agent.cluster`), without a database."""

from __future__ import annotations

from agent.cluster import combine, placement, ranking
from agent.core import Status
from agent.store import LocationResult

CHECKS = [f"check-{i}" for i in range(3000)]


def owners(members: list[str]) -> dict[str, str]:
    return {c: ranking(c, members)[0] for c in CHECKS}


def test_a_member_joining_moves_about_one_nth_of_the_checks_and_only_to_itself() -> None:
    before = owners(["r0", "r1", "r2"])
    after = owners(["r0", "r1", "r2", "r3"])
    moved = {c for c in CHECKS if before[c] != after[c]}
    assert {after[c] for c in moved} == {"r3"}  # nothing moves between the members that stayed
    assert 0.18 < len(moved) / len(CHECKS) < 0.32  # about 1/4
    shares = [sum(1 for o in after.values() if o == m) / len(CHECKS) for m in ("r0", "r1", "r2", "r3")]
    assert all(0.2 < s < 0.3 for s in shares), shares


def test_a_member_leaving_moves_only_its_checks() -> None:
    before = owners(["r0", "r1", "r2"])
    after = owners(["r0", "r2"])
    assert all(after[c] == before[c] for c in CHECKS if before[c] != "r1")


def test_placement_prefers_distinct_locations_then_fills_up() -> None:
    members = {"a1": "eu", "a2": "eu", "a3": "eu", "b1": "us", "c1": None}
    for check in CHECKS[:200]:
        three = placement(check, members, 3)
        assert len(three) == 3 and len(set(three)) == 3
        assert three[0] == ranking(check, list(members))[0]  # the owner is the rendezvous winner
        assert "b1" in three and "c1" in three  # one per location before a second from eu
        assert len(placement(check, members, 5)) == 5
        assert len(placement(check, members, 9)) == 5  # no more than there are


def r(replica: str, status: Status, ts: float = 100.0) -> LocationResult:
    return LocationResult("api", replica, replica.upper(), status, ts, f"{replica} {status.name}")


def test_quorum_fails_only_when_enough_locations_agree() -> None:
    ok, crit = Status.OK, Status.CRITICAL
    assert combine([r("eu", crit), r("us", ok), r("ap", ok)], 3, 2, 101, 5).status == ok
    both = combine([r("eu", crit), r("us", crit), r("ap", ok)], 3, 2, 101, 5)
    assert both.status == crit and both.summary.startswith("2 of 3 locations failing")
    assert combine([r("eu", Status.WARNING), r("us", crit)], 3, 2, 101, 5).status == crit


def test_a_location_that_stopped_reporting_is_unknown_not_failed() -> None:
    ok, crit = Status.OK, Status.CRITICAL
    # us last reported long ago: one failing and one silent location is not a quorum of failures
    stale = combine([r("eu", crit), r("us", crit, ts=10.0), r("ap", ok)], 3, 2, 101, 5)
    assert stale.status == Status.UNKNOWN and stale.failing == 1 and stale.reporting == 2
    assert combine([r("eu", ok)], 3, 2, 101, 5).status == ok  # silence alone never fails a check


def test_the_sqlite_agent_and_sre_agent_check_never_load_the_postgresql_driver() -> None:
    import subprocess
    import sys

    code = ("import sys, agent.daemon, agent.oneshot, agent.cli, agent.store, agent.registry; "
            "agent.registry.check_types(); "
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('psycopg', 'psycopg_pool') "
            "or m == 'agent.store.postgresql'); print(bad); sys.exit(1 if bad else 0)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
