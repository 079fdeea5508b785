"""Host: CPU, memory, swap, load per core, disk and inode use per path of every `host` check.

Each resource is drawn with the warning and critical levels of the check's
config as exported by the agent (the ops guides' defaults: CPU 70/90%,
memory 80/95%, swap 50/80%, load per core 1.5/3, disk 85/95%, inodes 85/95%).
"""

from grafanalib.core import Dashboard

from agent.codegen import grafana as g

UID = "sre-agent-host"
HOST = 'type="host"'
RESOURCES = (
    ("CPU", "cpu_percent", "percent", "CPU busy percent, averaged between the check's runs."),
    ("Memory", "memory_percent", "percent", "Memory used percent (psutil virtual_memory().percent)."),
    ("Swap", "swap_percent", "percent", "Swap used percent (0 where there is no swap)."),
    ("Load per core", "load_per_core", "none", "1-minute load average divided by the number of logical CPUs."),
)


def resource(title: str, name: str, unit: str, what: str) -> g.Cell:
    observation = g.sel("sre_agent_check_observation", g.eq("name", name))
    return g.timeseries(
        title, f"{what} Dashed: the check's warning and critical levels.", unit,
        [g.target(g.scoped(observation, HOST), "{{check}}"),
         *g.levels(g.eq("name", name), where=(HOST,))],
        overrides=g.LEVEL_OVERRIDES, min=0, max=100 if unit == "percent" else None)


def per_path(title: str, kind: str) -> g.Cell:
    used = g.sel(f"sre_agent_host_{kind}_used_ratio")
    limits = g.sel(f"sre_agent_host_{kind}_threshold_ratio")
    return g.timeseries(
        title, f"{'Space' if kind == 'disk' else 'Inodes'} used per watched path; dashed: the path's warning and "
        "critical levels.", "percentunit",
        [g.target(g.scoped(used, HOST), "{{check}} {{path}}"),
         g.target(g.scoped(limits, HOST), "{{check}} {{path}} {{level}} level")],
        overrides=g.LEVEL_OVERRIDES, min=0, max=1)


def build(ctx: g.Context) -> Dashboard:
    rows = [
        g.Row("CPU, memory, swap and load", [resource(*spec) for spec in RESOURCES]),
        g.Row("Disks", [per_path("Disk space used", "disk"), per_path("Inodes used", "inodes")]),
    ]
    return g.dashboard(uid=UID, title="sre-agent: host", tags=["host"], rows=rows,
                       templating=g.variables(check_types="host"), ctx=ctx,
                       description="CPU, memory, swap, load per core, disk and inode use per path, against the host "
                                   "check's warning and critical levels.")
