"""Replicas on one PostgreSQL: checks/s and CPU per check with 1, 2 and 3 replicas, and failover time.

Starts a throwaway PostgreSQL cluster (the machine's server binaries, as the
tests do), a local target (`_common.start_target`: nginx or aiohttp, in its
own process) and R `sre-agent run` processes sharing `agent.state`, with N
http checks at `--interval` against the same target. For each R it waits
until the replicas split the checks (every check scheduled once), then
measures a `--seconds` window: completed runs per second (from each
replica's `sre_agent_check_runs_total`) and CPU seconds of all replicas per
completed check (psutil).

Failover: with the largest R, `--kills` times: pick a replica, note the
checks it runs, `kill -9` it, and time from the kill to the first run of one
of its checks on a survivor (polling the survivors' /metrics every 50 ms);
then start a replacement and wait for the split again. The lease is
`--lease` (default 2s): failover takes about one lease plus up to one
interval (a moved check's first run is jittered across its interval).

Figures, never assertions (see bench/README.md). Run from a checkout:

    .venv/bin/python bench/replicas.py                 # 300 checks at 1s, R = 1, 2, 3, 5 kills: a table
    .venv/bin/python bench/replicas.py --json
    .venv/bin/python bench/replicas.py --smoke --json  # tiny, for tests/test_bench_replicas_smoke.py
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from _common import cpu_seconds, fmt, percentile, start_target, stop_process  # noqa: E402

from tests.agentproc import AgentProcess, free_port  # noqa: E402
from tests.pgcluster import APP_PASSWORD, APP_USER, PgCluster, start_cluster  # noqa: E402

RUNS = re.compile(r'^sre_agent_check_runs_total\{check="([^"]+)",[^}]*\} ([0-9.e+]+)$', re.M)


def gauge(text: str, name: str) -> float:
    m = re.search(rf"^{re.escape(name)} ([0-9.e+-]+)$", text, re.M)
    return float(m.group(1)) if m else -1.0


def runs(agent: AgentProcess) -> dict[str, float]:
    out: dict[str, float] = {}
    for check, value in RUNS.findall(agent.get("/metrics").text):
        out[check] = out.get(check, 0.0) + float(value)
    return out


def write_config(tmp: Path, pg: PgCluster, db: str, target: str, args: argparse.Namespace) -> Path:
    secret = tmp / "pg-password"
    secret.write_text(APP_PASSWORD)
    checks = "\n".join(f"  - {{name: c{i:05d}, type: http, url: '{target}c{i}', interval: {args.interval}s, "
                       f"timeout: 2s}}" for i in range(args.n))
    path = tmp / f"{db}.yaml"
    path.write_text(f"""
agent:
  listen: "127.0.0.1:${{PORT}}"
  state: postgresql://{APP_USER}@127.0.0.1:{pg.port}/{db}
  state_password_file: {secret}
  replica: {{name: "${{REPLICA_NAME}}", lease: {args.lease}s}}
  log_level: warning
checks:
{checks}
""")
    return path


class Fleet:
    def __init__(self, config: Path, tmp: Path) -> None:
        self.config, self.tmp = config, tmp
        self.agents: dict[str, AgentProcess] = {}
        self._next = 0

    def add(self) -> AgentProcess:
        name = f"r{self._next}"
        self._next += 1
        port = free_port()
        agent = AgentProcess(self.config, port, cwd=self.tmp, env={"PORT": str(port), "REPLICA_NAME": name})
        self.agents[name] = agent.start(wait_ready=False)
        return agent

    def wait_split(self, n: int, timeout: float = 90.0) -> None:
        """Until every live replica sees them all and together they schedule each check once."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                texts = [a.get("/metrics").text for a in self.agents.values()]
                members = {gauge(t, "sre_agent_cluster_members") for t in texts}
                if members == {float(len(self.agents))} and sum(gauge(t, "sre_agent_shard_checks") for t in texts) == n:
                    return
            time.sleep(0.2)
        raise TimeoutError(f"{len(self.agents)} replicas did not split {n} checks within {timeout:.0f}s")

    def stop(self) -> None:
        for agent in self.agents.values():
            agent.stop()


def measure(fleet: Fleet, seconds: float) -> dict[str, Any]:
    pids = [a.proc.pid for a in fleet.agents.values() if a.proc is not None]

    def sample() -> tuple[float, float, float]:
        """(when, runs, CPU) of all replicas; `when` is the middle of the scrapes, which take a while."""
        t0 = time.monotonic()
        total = sum(sum(runs(a).values()) for a in fleet.agents.values())
        cpu = sum(cpu_seconds(p) for p in pids)
        return (t0 + time.monotonic()) / 2, total, cpu

    start, before_runs, before_cpu = sample()
    time.sleep(seconds)
    end, after_runs, after_cpu = sample()
    elapsed = end - start
    done = after_runs - before_runs
    cpu = after_cpu - before_cpu
    return {"replicas": len(pids), "completed_checks": int(done), "checks_per_second": done / elapsed,
            "cpu_ms_per_check": 1000 * cpu / done if done else None, "cpu_seconds": cpu}


def failover(fleet: Fleet, n: int, kills: int, timeout: float = 60.0) -> list[float]:
    times: list[float] = []
    for k in range(kills):
        name = sorted(fleet.agents)[k % len(fleet.agents)]
        victim = fleet.agents[name]
        mine = {c["name"] for c in victim.get("/api/v1/checks").json()["checks"]}
        survivors = [a for other, a in fleet.agents.items() if other != name]
        seen = [runs(a) for a in survivors]
        killed_at = time.monotonic()
        victim.kill9()
        moved_at = None
        while moved_at is None and time.monotonic() - killed_at < timeout:
            for agent, base in zip(survivors, seen, strict=True):
                with contextlib.suppress(httpx.HTTPError):
                    now = runs(agent)
                    if any(now.get(c, 0.0) > base.get(c, 0.0) for c in mine):
                        moved_at = time.monotonic()
                        break
            time.sleep(0.05)
        if moved_at is None:
            raise TimeoutError(f"the checks of {name} did not run elsewhere within {timeout:.0f}s")
        times.append(moved_at - killed_at)
        del fleet.agents[name]
        fleet.add()
        fleet.wait_split(n)
    return times


def run(args: argparse.Namespace) -> dict[str, Any]:
    pg = start_cluster()
    target = start_target(args.target)
    tmp = Path(tempfile.mkdtemp(prefix="sre-agent-bench-replicas-"))
    report: dict[str, Any] = {"n": args.n, "interval_s": args.interval, "lease_s": args.lease,
                              "target": {"kind": target.kind}, "runs": []}
    try:
        for r in args.replicas:
            db = pg.create_database(f"bench_r{r}")
            fleet = Fleet(write_config(tmp, pg, db, target.url, args), tmp)
            try:
                for _ in range(r):
                    fleet.add()
                for agent in fleet.agents.values():
                    agent.wait_ready(60)
                fleet.wait_split(args.n)
                time.sleep(min(2.0, args.interval * 2))  # warm-up: every check has started its schedule
                report["runs"].append(measure(fleet, args.seconds))
                if r == max(args.replicas) and args.kills and r > 1:
                    times = failover(fleet, args.n, args.kills)
                    report["failover"] = {"kills": len(times), "seconds": [round(t, 3) for t in times],
                                          "p50_s": percentile(times, 50), "max_s": max(times)}
            finally:
                fleet.stop()
    finally:
        stop_process(target.proc)
        shutil.rmtree(target.workdir, ignore_errors=True)
        pg.stop()
        shutil.rmtree(pg.root, ignore_errors=True)
        shutil.rmtree(tmp, ignore_errors=True)
    return report


def table(report: dict[str, Any]) -> str:
    lines = [f"{report['n']} http checks at {report['interval_s']}s, lease {report['lease_s']}s, "
             f"target {report['target']['kind']}", "", "| replicas | checks/s | CPU ms/check |", "|---:|---:|---:|"]
    for r in report["runs"]:
        lines.append(f"| {r['replicas']} | {fmt(r['checks_per_second'])} | {fmt(r['cpu_ms_per_check'])} |")
    if "failover" in report:
        f = report["failover"]
        lines += ["", f"failover (kill -9 -> first run of a moved check), {f['kills']} kills: "
                      f"{', '.join(fmt(s) for s in f['seconds'])} s; p50 {fmt(f['p50_s'])} s, max {fmt(f['max_s'])} s"]
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=300, help="http checks (default 300)")
    ap.add_argument("--interval", type=float, default=1.0, help="check interval in seconds (default 1)")
    ap.add_argument("--lease", type=float, default=2.0, help="replica lease in seconds (default 2)")
    ap.add_argument("--replicas", type=int, nargs="+", default=[1, 2, 3], help="replica counts (default 1 2 3)")
    ap.add_argument("--seconds", type=float, default=15.0, help="measured window per replica count (default 15)")
    ap.add_argument("--kills", type=int, default=5, help="kill -9 rounds for the failover time (default 5)")
    ap.add_argument("--target", choices=["auto", "nginx", "aiohttp"], default="auto")
    ap.add_argument("--smoke", action="store_true", help="20 checks, 1 and 2 replicas, 3 s windows, 1 kill")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON instead of a table")
    args = ap.parse_args(argv)
    if args.smoke:
        args.n, args.replicas, args.seconds, args.kills, args.lease = 20, [1, 2], 3.0, 1, 1.0
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    report = run(args)
    print(json.dumps(report, indent=2) if args.json else table(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
