"""Memory across config reloads: does RSS grow with every SIGHUP?

Starts the real `sre-agent run` on a config of N checks (tcp and file checks
against this machine: cheap, no target needed), reloads it R times with
SIGHUP, alternating between two configs so every reload really replaces
checks, and samples the agent's RSS after each batch. The figure that counts
is the growth per reload over the second half and the last quarter (the first
reloads warm caches and fill the heap up to its working size).

    python bench/reload_soak.py                 # 60 checks, 500 reloads
    python bench/reload_soak.py --smoke         # 20 checks, 40 reloads
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._common import free_port, rss_mib, stop_process, wait_for_port, write_results  # noqa: E402


def config(state: Path, port: int, checks: int, variant: int) -> str:
    lines = ["agent:", f"  listen: 127.0.0.1:{port}", f"  state_dir: {state}", "  log_level: warning", "checks:"]
    for i in range(checks):
        lines += [f"  - name: tcp-{i}-v{variant}", "    type: tcp", "    host: 127.0.0.1", f"    port: {port}",
                  "    interval: 2s", "    labels: {team: bench, service: api-" + str(i % 7) + "}"]
        lines += [f"  - name: file-{i}", "    type: file", f"    path: {state}", "    interval: 5s",
                  f"    max_age: {variant + 1}h"]
    return "\n".join(lines) + "\n"


def reloads_done(url: str) -> float:
    text = httpx.get(url + "/metrics", timeout=5).text
    for line in text.splitlines():
        if line.startswith("sre_agent_config_last_reload_success_timestamp_seconds "):
            return float(line.split()[1])
    return 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checks", type=int, default=60)
    parser.add_argument("--reloads", type=int, default=500)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.smoke:
        args.checks, args.reloads = 20, 40
    with tempfile.TemporaryDirectory(prefix="sre-agent-bench-reload-") as tmp:
        port = free_port()
        state = Path(tmp) / "state"
        cfg = Path(tmp) / "agent.yaml"
        cfg.write_text(config(state, port, args.checks, 0))
        log = (Path(tmp) / "agent.log").open("w")
        proc = subprocess.Popen([sys.executable, "-m", "agent.cli", "run", "-c", str(cfg)], cwd=ROOT,
                                stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONPATH": str(ROOT)})
        url = f"http://127.0.0.1:{port}"
        samples: list[tuple[int, float]] = []
        try:
            wait_for_port(port, proc, timeout=30)
            time.sleep(1.0)
            samples.append((0, rss_mib(proc.pid)))
            step = max(1, args.reloads // 20)
            deadline = time.monotonic() + 600
            for n in range(1, args.reloads + 1):
                cfg.write_text(config(state, port, args.checks, n % 2))
                before = reloads_done(url)
                proc.send_signal(signal.SIGHUP)
                while reloads_done(url) == before:  # each reload applied before the next
                    if time.monotonic() > deadline or proc.poll() is not None:
                        raise RuntimeError("the agent stopped reloading")
                    time.sleep(0.01)
                if n % step == 0:
                    samples.append((n, rss_mib(proc.pid)))
        finally:
            stop_process(proc)  # type: ignore[arg-type]
            log.close()
    def growth_kib(since: int) -> float:
        part = [s for s in samples if s[0] >= since]
        return (part[-1][1] - part[0][1]) * 1024 / max(1, part[-1][0] - part[0][0])

    half, quarter = growth_kib(args.reloads // 2), growth_kib(args.reloads * 3 // 4)
    report = {"checks": args.checks * 2, "reloads": args.reloads, "rss_start_mib": samples[0][1],
              "rss_end_mib": samples[-1][1], "growth_kib_per_reload_second_half": round(half, 2),
              "growth_kib_per_reload_last_quarter": round(quarter, 2), "samples": samples}
    write_results("reload_soak" + ("_smoke" if args.smoke else ""), report)
    if args.json:
        print(json.dumps(report))
        return 0
    print(f"{args.reloads} reloads of {args.checks * 2} checks: RSS {samples[0][1]:.1f} -> {samples[-1][1]:.1f} MiB; "
          f"per reload {half:.2f} KiB over the second half, {quarter:.2f} KiB over the last quarter")
    return 0


if __name__ == "__main__":
    sys.exit(main())
