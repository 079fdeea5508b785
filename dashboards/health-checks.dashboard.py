"""Health checks: per check, its status over time, how long runs take, what it observed and how often it ran.

Observations (`sre_agent_check_observation{name}`) are grouped by the unit
their name ends with, next to the levels the config sets for them
(`sre_agent_check_threshold`), drawn dashed: latency against `latency`,
certificate days left against `cert_expiry`, and so on.
"""

from grafanalib.core import Dashboard

from agent.codegen import grafana as g

UID = "sre-agent-health-checks"

OBS = "sre_agent_check_observation"
#: (title, unit, observation-name regex, what they are, the levels a config can set for them)
OBSERVATION_PANELS = (
    ("Timings and ages", "s", ".*_seconds", "durations such as latency_seconds, connect_seconds, query_seconds and "
                                            "ages such as age_seconds (timestamps are left out)", ("warning", "critical")),
    ("Certificate days left", "d", ".*_days", "days left on the earliest-expiring certificate (cert_expiry_days)",
     ("warning", "critical")),
    ("Percentages", "percent", ".*_percent", "shares in percent (host cpu_percent, memory_percent, ...)",
     ("warning", "critical")),
    # data quality thresholds and backup min_size are lower bounds with one level: CRITICAL
    ("Ratios", "percentunit", ".*_ratio", "ratios 0-1 (data quality, backup size change, SLI)", ("critical",)),
    ("Sizes", "bytes", ".*_bytes", "sizes in bytes (newest backup or file)", ("critical",)),
)


def _observations(title: str, unit: str, regex: str, what: str, kinds: tuple[str, ...]) -> g.Cell:
    names = [g.like("name", regex)]
    if unit == "s":
        names.append('name!~".*_timestamp_seconds"')
    targets = [g.target(g.scoped(g.sel(OBS, *names)), "{{check}} {{name}}"),
               *g.levels(g.like("name", regex), label="{{check}} {{name}}", kinds=kinds)]
    return g.timeseries(title, f"What each check observed on its last runs: {what}; dashed: the levels its config "
                        "sets for them.", unit, targets, overrides=g.LEVEL_OVERRIDES)


def build(ctx: g.Context) -> Dashboard:
    link = ctx.check_runbook_link()
    field_link = {"title": "Runbook of ${__field.labels.check}", "targetBlank": True,
                  "url": link["url"].replace("${__data.fields.check}", "${__field.labels.check}")
                  .replace("${__data.fields.instance}", "${__field.labels.instance}")}
    status = g.state_timeline(
        "Status", "Each check's status over time: green OK, yellow WARNING, red CRITICAL, purple UNKNOWN.",
        [g.target(f"max by (job, instance, check) ({g.status_sel()})", "{{check}}")], h=9, links=[field_link])
    buckets = g.scoped(g.rate(g.sel("sre_agent_check_duration_seconds_bucket")))
    duration = g.timeseries(
        "Run duration p50 / p95 / p99", "How long runs took, from the sre_agent_check_duration_seconds histogram "
        "(quantiles over the rate interval).", "s", g.quantiles(buckets, "check", "{{check}}"))
    runs = g.timeseries(
        "Runs by status", "Runs per check and resulting status in each interval (sre_agent_check_runs_total).",
        "short", [g.target(f"sum by (check, status) ({g.scoped(g.increase(g.sel('sre_agent_check_runs_total')))})",
                           "{{check}} {{status}}")], bars=True, stacked=True)
    last_run = g.bar_gauge(
        "Last run age", "Seconds since each check last ran; longer than its interval means it is late or stuck.", "s",
        [g.target(f"time() - ({g.scoped(g.sel('sre_agent_check_last_run_timestamp_seconds'))})", "{{check}}")],
        thresholds=g.steps(("green", None), ("orange", 300), ("red", 3600)), min=0, max=None)
    other = g.timeseries(
        "Other observations", "Observations without a unit suffix: counts (process count, answers, row_count), "
        "load, exit codes.", "short",
        [g.target(g.scoped(g.sel(OBS, 'name!~".*_(seconds|days|percent|ratio|bytes)"')), "{{check}} {{name}}")])
    rows = [
        g.Row("Status and runs", [status, duration, runs, last_run]),
        g.Row("Observations", [*(_observations(*spec) for spec in OBSERVATION_PANELS), other]),
    ]
    return g.dashboard(uid=UID, title="sre-agent: health checks", tags=["checks"], rows=rows,
                       templating=g.variables(), ctx=ctx,
                       description="Per check: status timeline, run duration quantiles, observations against their "
                                   "configured levels, runs by status and last run age.")
