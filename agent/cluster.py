"""Several replicas on one shared store: who is alive, which checks each one runs, quorum verdicts.

Membership: each replica heartbeats its row in the store (`Store.heartbeat`)
every quarter lease; the live members (lease not expired, on the store's
clock) are the shard set. A check belongs to the member that wins rendezvous
(highest-random-weight) hashing on its name, so adding or removing one of N
members moves about 1/N of the checks and nothing else. Static sharding
(`agent.shard: {index, count}`) replaces the member list with the shards
`shard-0 .. shard-<count-1>` and heartbeats nothing.

Heartbeats run on a thread of their own, with a store connection of their
own (`HeartbeatThread`): a replica whose event loop is busy running checks
keeps its lease, so a loaded replica is not taken for a dead one and its
checks do not flap between replicas.

A replica that cannot heartbeat for a whole lease has lost it: it keeps
running the checks it has (nobody may be able to take them), takes no new
ones, and says so (`/readyz`, `sre_agent_cluster_lease_age_seconds`). When the
store answers again it rejoins, and waits one more lease before it acts on the
member list, so that the others, who lost the store too, have heartbeated
again and it does not briefly take every check for itself.

A check with `locations: N` runs on the first N members of its ranking, in
distinct `agent.location`s where set; the first one owns its alert state and
combines everyone's latest result (`combine`): failing when at least `quorum`
locations fail, a location whose result is older than two intervals counting
as unknown, not failed.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from agent.core import Status
from agent.secrets import redact
from agent.store import LocationResult, Member, Store

log = logging.getLogger("sre_agent.cluster")


def default_name() -> str:
    """hostname-pid: unique on one machine and across machines."""
    return f"{socket.gethostname()}-{os.getpid()}"


def _score(member: str, check: str) -> int:
    return int.from_bytes(hashlib.blake2b(f"{member}\0{check}".encode(), digest_size=8).digest(), "big")


def ranking(check: str, members: Sequence[str]) -> list[str]:
    """Members by rendezvous weight for `check`, best first (the owner is the first)."""
    return sorted(members, key=lambda m: (-_score(m, check), m))


def placement(check: str, members: dict[str, str | None], n: int = 1) -> list[str]:
    """The `n` members that run `check`: by ranking, one per location first (members without a
    location count as places of their own), then the next best to make up `n`."""
    order = ranking(check, list(members))
    chosen: list[str] = []
    places: set[str] = set()
    for m in order:
        where = members[m]
        if where is None or where not in places:
            chosen.append(m)
            if where is not None:
                places.add(where)
        if len(chosen) == n:
            return chosen
    chosen += [m for m in order if m not in chosen][:n - len(chosen)]
    return chosen


@dataclass(frozen=True)
class Verdict:
    status: Status
    summary: str
    failing: int
    reporting: int


def combine(results: Sequence[LocationResult], expected: int, quorum: int, now: float, stale_after: float) -> Verdict:
    """The check's status from each location's latest result.

    CRITICAL (or WARNING, if the failing ones are only warnings) when at least `quorum` fresh
    results fail; UNKNOWN when fewer than `quorum` results are fresh and not every one of them is
    OK, so a location that stopped reporting never counts as failed; OK otherwise."""
    fresh = [r for r in results if now - r.ts <= stale_after]
    failing = [r for r in fresh if r.status in (Status.WARNING, Status.CRITICAL)]
    where = ", ".join(f"{r.location or r.replica}: {r.summary}" for r in failing)
    if len(failing) >= quorum:
        worst = max(r.status for r in failing)
        return Verdict(worst, f"{len(failing)} of {expected} locations failing (quorum {quorum}): {where}",
                       len(failing), len(fresh))
    unknown = expected - len(fresh) + sum(r.status == Status.UNKNOWN for r in fresh)
    if len(failing) + unknown >= quorum and failing:
        return Verdict(Status.UNKNOWN, f"{len(failing)} of {expected} locations failing, {unknown} not reporting "
                       f"(quorum {quorum}): {where}", len(failing), len(fresh))
    ok = len(fresh) - len(failing)
    note = f"; failing: {where}" if failing else ""
    return Verdict(Status.OK, f"{ok} of {expected} locations OK (quorum {quorum}){note}", len(failing), len(fresh))


class Cluster:
    """This replica's view of the others. `beat()` once per `beat_every`; read `members`, `has_lease`, `settled`."""

    def __init__(self, store: Store | None, name: str, lease: float, location: str | None = None,
                 shard: tuple[int, int] | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.lease = lease
        self.location = location
        self.clock = clock
        self.static = shard is not None or store is None or not store.shared
        if shard is not None:
            index, count = shard
            self.name = f"shard-{index}"
            self.members: dict[str, str | None] = {f"shard-{i}": None for i in range(count)}
        else:
            self.name = name
            self.members = {name: location}
        self._last_ok = clock()
        self._lost = False
        self._settle_until = clock()
        self.changes = 0
        #: set when the lease came back after running out: the others may have taken checks meanwhile
        self.rejoined = False

    @property
    def beat_every(self) -> float:
        return max(0.25, self.lease / 4)

    @property
    def lease_age(self) -> float:
        """Seconds since the last heartbeat the store took (0 without membership)."""
        return 0.0 if self.static else max(0.0, self.clock() - self._last_ok)

    @property
    def has_lease(self) -> bool:
        return self.static or not self._lost

    @property
    def settled(self) -> bool:
        """The member list can be acted on: the lease is held and a rejoin's wait is over."""
        return self.has_lease and self.clock() >= self._settle_until

    async def beat(self) -> bool:
        """Heartbeat and refresh the live members; False if the store did not answer."""
        if self.static or self.store is None:
            return True
        try:
            live = await self.store.heartbeat(self.name, self.location, self.lease)
        except Exception as exc:
            if not self._lost and self.lease_age > self.lease:
                self._lost = True
                log.error("replica %s lost its lease (no heartbeat for %.1fs): it keeps running its checks and "
                          "takes no new ones until the state store answers: %s", self.name, self.lease_age,
                          redact(str(exc)))
            return False
        if self._lost or self.lease_age > self.lease:
            self._settle_until = self.clock() + self.lease
            self.rejoined = True
            log.warning("replica %s is back in the cluster; acting on the member list in %.0fs", self.name, self.lease)
        self._lost = False
        self._last_ok = self.clock()
        members = {m.name: m.location for m in live}
        members.setdefault(self.name, self.location)
        if members != self.members:
            log.info("cluster members: %s", ", ".join(sorted(members)))
            self.members = members
            self.changes += 1
        return True

    def placement(self, check: str, n: int = 1) -> list[str]:
        return placement(check, self.members, n)

    async def leave(self) -> None:
        if not self.static and self.store is not None:
            try:
                await self.store.leave(self.name)
            except Exception as exc:
                log.warning("could not leave the cluster cleanly (the others take over after the lease): %s",
                            redact(str(exc)))


class HeartbeatThread:
    """Runs `Cluster.beat()` (and `on_beat` after each that got through) every `beat_every` on a thread
    with its own event loop and its own store (`make_store()`, opened and closed there)."""

    def __init__(self, cluster: Cluster, make_store: Callable[[], Store],
                 on_beat: Callable[[Store], object] | None = None) -> None:
        self.cluster = cluster
        self.make_store = make_store
        self.on_beat = on_beat
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._main, name="sre-agent-heartbeat", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def _main(self) -> None:
        asyncio.run(self._loop())

    async def _loop(self) -> None:
        store = self.make_store()
        opened = False
        shared = self.cluster.store
        try:
            while not self._stop.is_set():
                if not opened:
                    try:
                        await store.open()
                        opened = True
                    except Exception as exc:
                        log.debug("heartbeat store not reachable yet: %s", redact(str(exc)))
                if opened:
                    self.cluster.store = store  # the main loop's store stays free for its own work
                    try:
                        if await self.cluster.beat() and self.on_beat is not None:
                            result = self.on_beat(store)
                            if asyncio.iscoroutine(result):
                                await result
                    except Exception as exc:
                        log.error("heartbeat failed: %s", redact(str(exc)))
                await asyncio.to_thread(self._stop.wait, self.cluster.beat_every)
        finally:
            self.cluster.store = shared
            if opened:
                await store.close()


__all__ = ["Cluster", "HeartbeatThread", "Member", "Verdict", "combine", "default_name", "placement", "ranking"]
