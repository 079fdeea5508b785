"""Three `sre-agent run` replicas on one PostgreSQL: sharding, quorum, a database outage, a kill -9.

A throwaway PostgreSQL cluster of this module's own (it is stopped and started
mid-test), a target HTTP server and a recording webhook receiver (both in a
thread of this process), and three agents sharing `agent.state`, each with its
own name, location and target base URL through `${ENV}`. The tests run in
order on the same three replicas; the last one kills one of them.

- 300 http checks at 1s: over a window, each check runs on exactly one replica
  (run counts per check and replica, from each replica's /metrics);
- quorum: a check with `locations: 3, quorum: 2` fails at one location: no
  alert; at two: an alert;
- PostgreSQL stopped for 10s: every replica keeps running checks, and an
  alert raised during the outage is delivered once the database is back;
- kill -9 of a replica while the receiver refuses everything: its checks run
  on the others, and once the receiver accepts, every alert arrives, with one
  idempotency key per alert (retried, never queued twice).
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web

from tests.agentproc import AgentProcess, free_port
from tests.pgcluster import APP_PASSWORD, APP_USER, PgCluster, start_cluster

pytestmark = pytest.mark.integration

CHECKS = 300
BAD = 6
NAMES = ("r0", "r1", "r2")
LOCATIONS = ("eu", "us", "ap")
DEADLINE = 40.0


@dataclass
class World:
    """The target server's switches and the receiver's record, shared with the server thread."""

    failing: set[str] = field(default_factory=set)  # "bad-3", "loc/eu", ...
    accepting: bool = False
    requests: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def received(self) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.requests)


class Servers:
    """The target and the receiver on one aiohttp app, in a thread with its own event loop."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.port = free_port()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    async def _target(self, request: web.Request) -> web.Response:
        key = request.match_info["key"]
        return web.Response(status=500 if key in self.world.failing else 200, text=key)

    async def _alerts(self, request: web.Request) -> web.Response:
        body = json.loads(await request.text())
        with self.world.lock:
            accepted = self.world.accepting
            self.world.requests.append({"key": request.headers.get("Idempotency-Key"), "accepted": accepted,
                                        "body": body})
        return web.Response(status=200 if accepted else 503, text="{}")

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_get("/t/{key:.+}", self._target)
        app.router.add_post("/alerts", self._alerts)
        self._runner = web.AppRunner(app, access_log=None)
        self._loop.run_until_complete(self._runner.setup())
        self._loop.run_until_complete(web.TCPSite(self._runner, "127.0.0.1", self.port).start())
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(self._runner.cleanup())

    def __enter__(self) -> Servers:
        self._thread.start()
        assert self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


def write_config(tmp_path: Path, pg: PgCluster, db: str, port: int) -> Path:
    secret = tmp_path / "pg-password"
    secret.write_text(APP_PASSWORD + "\n")
    checks = [f"  - {{name: c{i:03d}, type: http, url: 'http://127.0.0.1:{port}/t/ok', interval: 1s, timeout: 2s}}"
              for i in range(CHECKS)]
    checks += [f"  - {{name: bad-{i}, type: http, url: 'http://127.0.0.1:{port}/t/bad-{i}', interval: 1s, "
               f"timeout: 2s, alert: {{after: 1}}}}" for i in range(BAD)]
    checks.append("  - {name: api, type: http, url: '${TARGET}/api', interval: 1s, timeout: 2s, locations: 3, "
                  "quorum: 2, alert: {after: 1}}")
    config = tmp_path / "replicas.yaml"
    config.write_text(f"""
agent:
  listen: "127.0.0.1:${{PORT}}"
  state: postgresql://{APP_USER}@127.0.0.1:{pg.port}/{db}
  state_password_file: {secret}
  replica: {{name: "${{REPLICA_NAME}}", lease: 2s}}
  location: "${{LOCATION}}"
  log_level: info
alerting:
  route: {{receiver: hook, group_by: [check], group_wait: 0s, group_interval: 1s, repeat_interval: 1h}}
  outbox: {{initial_backoff: 200ms, max_backoff: 500ms, max_age: 1h}}
  receivers:
    - name: hook
      webhook: {{url: "http://127.0.0.1:{port}/alerts", timeout: 2s}}
checks:
""" + "\n".join(checks) + "\n")
    return config


@dataclass
class Replicas:
    pg: PgCluster
    world: World
    agents: dict[str, AgentProcess]

    def live(self) -> dict[str, AgentProcess]:
        return {n: a for n, a in self.agents.items() if a.proc is not None and a.proc.poll() is None}


RUNS = re.compile(r'^sre_agent_check_runs_total\{check="([^"]+)",[^}]*\} ([0-9.e+]+)$', re.M)
GAUGE = r"^{}(?:\{{[^}}]*\}})? ([0-9.e+-]+)$"


def scrape(agent: AgentProcess) -> str:
    return agent.get("/metrics").text


def runs(text: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for check, value in RUNS.findall(text):
        out[check] = out.get(check, 0.0) + float(value)
    return out


def gauge(text: str, name: str) -> float | None:
    m = re.search(GAUGE.format(re.escape(name)), text, re.M)
    return float(m.group(1)) if m else None


def wait_for(condition: Callable[[], Any], what: str, agents: dict[str, AgentProcess], deadline: float = DEADLINE) -> Any:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        try:
            got = condition()
        except httpx.HTTPError:
            got = None
        if got:
            return got
        time.sleep(0.2)
    logs = "\n".join(f"--- {n}:\n{a.output()[-2500:]}" for n, a in agents.items())
    raise AssertionError(f"timed out waiting for {what}\n{logs}")


def settled(replicas: Replicas) -> bool:
    """Every live replica sees all the live ones, and together they schedule every check once."""
    live = replicas.live()
    texts = {n: scrape(a) for n, a in live.items()}
    members = {gauge(t, "sre_agent_cluster_members") for t in texts.values()}
    total = sum(gauge(t, "sre_agent_shard_checks") or 0 for t in texts.values())
    # the quorum check runs on 3 replicas (or every live one, if fewer)
    return members == {float(len(live))} and total == CHECKS + BAD + min(3, len(live))


@pytest.fixture(scope="module")
def replicas(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replicas]:
    tmp_path = tmp_path_factory.mktemp("replicas")
    try:
        pg = start_cluster()
    except Exception as exc:  # noqa: BLE001 - reported as the test's failure
        pytest.fail(f"cannot start PostgreSQL: {exc}")
    world = World()
    try:
        with Servers(world) as servers:
            db = pg.create_database("replicas")
            config = write_config(tmp_path, pg, db, servers.port)
            agents = {}
            for name, location in zip(NAMES, LOCATIONS, strict=True):
                port = free_port()
                agents[name] = AgentProcess(config, port, cwd=tmp_path, env={
                    "PORT": str(port), "REPLICA_NAME": name, "LOCATION": location, "PYTHONUNBUFFERED": "1",
                    "TARGET": f"http://127.0.0.1:{servers.port}/t/loc/{location}"})
            try:
                for agent in agents.values():
                    agent.start(wait_ready=False)
                for agent in agents.values():
                    agent.wait_ready(timeout=30)
                yield Replicas(pg, world, agents)
            finally:
                for agent in agents.values():
                    agent.stop()
    finally:
        pg.stop()
        shutil.rmtree(pg.root, ignore_errors=True)


def test_each_check_runs_on_exactly_one_replica(replicas: Replicas) -> None:
    wait_for(lambda: settled(replicas), "the three replicas to split the checks", replicas.agents)
    before = {n: runs(scrape(a)) for n, a in replicas.agents.items()}
    time.sleep(4)
    after = {n: runs(scrape(a)) for n, a in replicas.agents.items()}
    assert settled(replicas)  # nobody joined or left during the window
    ran_on: dict[str, list[str]] = {}
    for name in replicas.agents:
        for check, n in after[name].items():
            if n > before[name].get(check, 0.0):
                ran_on.setdefault(check, []).append(name)
    plain = {f"c{i:03d}" for i in range(CHECKS)} | {f"bad-{i}" for i in range(BAD)}
    assert set(ran_on) >= plain  # every check ran in the window
    twice = {c: where for c, where in ran_on.items() if c in plain and len(where) != 1}
    assert twice == {}, twice
    # the quorum check runs in all three locations: each publishes its result for the owner to combine
    located = replicas.pg.psql("SELECT replica FROM location_results WHERE check_name='api' ORDER BY 1",
                               dbname=db_of(replicas)).splitlines()
    assert located == list(NAMES) and len(ran_on["api"]) == 1  # one combined verdict, on its owner
    per_replica = {n: sum(1 for where in ran_on.values() if n in where) for n in NAMES}
    assert all(n > CHECKS / 10 for n in per_replica.values()), per_replica  # a real split, not one takes all


def alerts_for(world: World, check: str) -> list[dict[str, Any]]:
    return [r for r in world.received() if any(a["check"] == check for a in r["body"]["alerts"])]


def test_quorum_alerts_only_when_enough_locations_fail(replicas: Replicas) -> None:
    world = replicas.world
    world.failing.add("loc/eu/api")

    def eu_failing_seen() -> bool:
        texts = [scrape(a) for a in replicas.live().values()]
        return any(re.search(r'^sre_agent_check_location_status\{check="api",location="eu"\} 2\.0$', t, re.M)
                   for t in texts)

    wait_for(eu_failing_seen, "the owner of api to see eu failing", replicas.agents)
    time.sleep(3)  # three more runs in every location: still one failing location of three
    assert alerts_for(world, "api") == []
    statuses = {n: re.search(r'^sre_agent_check_status\{check="api",[^}]*\} ([0-9.]+)$', scrape(a), re.M)
                for n, a in replicas.live().items()}
    owner = replicas.pg.psql("SELECT owner FROM check_owners WHERE check_name='api'", dbname=db_of(replicas))
    exported = {n: float(m.group(1)) for n, m in statuses.items() if m}
    assert exported == {owner: 0.0}, (exported, owner)  # its owner alone exports the combined status: OK
    world.failing.add("loc/us/api")
    got = wait_for(lambda: alerts_for(world, "api"), "the quorum alert", replicas.agents)
    alert = got[0]["body"]["alerts"][0]
    assert alert["state"] == "firing" and "2 of 3 locations failing" in alert["summary"]
    world.failing -= {"loc/eu/api", "loc/us/api"}


def test_a_database_outage_stops_no_check_and_loses_no_notification(replicas: Replicas) -> None:
    world = replicas.world
    # the receiver answers: while one is down a worker probes it with its oldest row only, and which
    # replica holds which rows is chance, so a new row would not be tried until the older ones went
    world.accepting = True
    wait_for(lambda: settled(replicas), "the replicas to settle", replicas.agents)
    before = {n: runs(scrape(a)) for n, a in replicas.agents.items()}
    replicas.pg.stop()
    try:
        world.failing.add("bad-0")  # fires while nothing can be written
        time.sleep(10)
        during = {n: runs(scrape(a)) for n, a in replicas.agents.items()}
    finally:
        replicas.pg.start()
    for name in replicas.agents:
        grew = [c for c, n in during[name].items() if n > before[name].get(c, 0.0)]
        assert len(grew) > CHECKS / 10, (name, len(grew))  # this replica kept running its checks
    ran = {c for name in replicas.agents for c, n in during[name].items() if n > before[name].get(c, 0.0)}
    assert ran >= {f"c{i:03d}" for i in range(CHECKS)}  # every check ran through the outage
    wait_for(lambda: any(r["accepted"] for r in alerts_for(world, "bad-0")), "the alert raised during the outage",
             replicas.agents)
    wait_for(lambda: settled(replicas), "the replicas to settle after the outage", replicas.agents)


def test_kill_9_during_a_receiver_outage_moves_checks_and_loses_nothing(replicas: Replicas) -> None:
    world = replicas.world
    world.accepting = False
    wait_for(lambda: settled(replicas), "the replicas to settle", replicas.agents)
    bad = [f"bad-{i}" for i in range(1, BAD)]
    world.failing.update(bad)
    wait_for(lambda: queued(replicas) >= set(bad), "every new alert to be queued", replicas.agents)
    owners = dict(line.split("|") for line in replicas.pg.psql(
        "SELECT check_name, owner FROM check_owners", dbname=db_of(replicas)).splitlines())
    victim = max(NAMES, key=lambda n: sum(owners.get(c) == n for c in bad))
    moved = [c for c in bad if owners.get(c) == victim]
    assert moved, owners
    replicas.agents[victim].kill9()
    survivors = replicas.live()

    def moved_checks_run() -> bool:
        texts = [runs(scrape(a)) for a in survivors.values()]
        return all(any(c in t for t in texts) for c in moved)

    wait_for(moved_checks_run, f"{victim}'s checks to run on the survivors", survivors)
    world.accepting = True
    wait_for(lambda: all(any(r["accepted"] for r in alerts_for(world, c)) for c in bad),
             "every alert to be accepted", survivors)
    time.sleep(2)  # room for a second page to show up
    for check in bad:
        sent = [r for r in alerts_for(world, check) if r["body"]["status"] == "firing"]
        assert len({r["key"] for r in sent}) == 1, (check, victim, [  # one row, retried
            (r["key"], r["accepted"], [(a["state"], a["starts_at"], a.get("generator_url")) for a in r["body"]["alerts"]])
            for r in sent], {n: a.port for n, a in replicas.agents.items()})
        assert len({a["dedup_key"] for r in sent for a in r["body"]["alerts"]}) == 1


def queued(replicas: Replicas) -> set[str]:
    """Checks with a notification in the outbox (the receiver refuses: a worker probes with the oldest only)."""
    rows = replicas.pg.psql("SELECT payload FROM alert_outbox", dbname=db_of(replicas)).splitlines()
    return {a["check"] for row in rows for a in json.loads(row)["alerts"]}


def db_of(replicas: Replicas) -> str:
    text = next(iter(replicas.agents.values())).config.read_text()
    m = re.search(r"state: postgresql://[^/]+/(\S+)", text)
    assert m
    return m.group(1)
