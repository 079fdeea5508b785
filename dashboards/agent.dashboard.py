"""Agent: the agent's own health. Is it scraped, is its config loaded, is it on time, does it deliver?"""

from grafanalib.core import Dashboard

from agent.codegen import grafana as g

UID = "sre-agent-agent"


def _plain(metric: str) -> str:
    return g.sel(metric, check=False)


def build(ctx: g.Context) -> Dashboard:
    up = g.stat("Scrape", "Is Prometheus scraping the agent (its `up` series for the agent's target)?", "none",
                [g.target(_plain("up"), "{{instance}}")], w=4, mappings=g.UP_MAPPINGS,
                thresholds=g.steps(("red", None), ("green", 1)), color_mode="background")
    loaded = g.stat("Last config load", "Did the last config (re)load succeed? A failed reload keeps the running "
                    "config.", "none", [g.target(_plain("sre_agent_config_last_reload_successful"), "{{instance}}")],
                    w=4, mappings=g.PASS_FAIL_MAPPINGS, thresholds=g.steps(("red", None), ("green", 1)),
                    color_mode="background")
    since = g.stat("Since the last good config load", "Time since the config was last loaded successfully.", "s",
                   [g.target(f"time() - {_plain('sre_agent_config_last_reload_success_timestamp_seconds')}",
                             "{{instance}}")], w=5)
    configured = g.stat("Checks configured", "Checks this agent schedules.", "none",
                        [g.target(_plain("sre_agent_checks_configured"), "{{instance}}")], w=5)
    version = g.stat("Version", "The agent's version (sre_agent_build_info).", "none",
                     [g.target(_plain("sre_agent_build_info"), "{{version}}")], w=6, text_mode="name")
    scrape = g.timeseries("Scrape duration", "How long Prometheus took to scrape the agent's /metrics.", "s",
                          [g.target(_plain("scrape_duration_seconds"), "{{instance}}")], w=8)
    samples = g.timeseries("Samples per scrape", "Series the agent exposes per scrape.", "short",
                           [g.target(_plain("scrape_samples_scraped"), "{{instance}}")], w=8)
    reloads = g.timeseries(
        "Successful config loads", "Successful config loads (start, SIGHUP, POST /-/reload) per interval.", "short",
        [g.target(f"changes({_plain('sre_agent_config_last_reload_success_timestamp_seconds')}[{g.RATE}])",
                  "{{instance}}")], w=8, bars=True)
    lag = g.timeseries(
        "Schedule lag p50 / p95 / p99", "Delay between a run's due time and its start; growing lag means the agent "
        "cannot keep up (see max_concurrency).", "s",
        g.quantiles(g.rate(_plain("sre_agent_check_schedule_lag_seconds_bucket")), "job, instance", "{{instance}}"),
        w=12)
    skipped = g.timeseries(
        "Skipped runs", "Runs skipped because the check's previous run was still going (a run longer than its "
        "interval).", "short",
        [g.target(f"sum by (check) ({g.scoped(g.increase(g.sel('sre_agent_check_runs_skipped_total')))})",
                  "{{check}}")], w=12, bars=True)
    store = g.timeseries(
        "State store errors", "Failed writes to the state store (history, alert state, outbox).", "short",
        [g.target(f"sum by (instance) ({g.increase(_plain('sre_agent_store_errors_total'))})", "{{instance}}")], w=12,
        bars=True)
    store_size = g.timeseries(
        "State store size", "Size of the state store on disk; history is trimmed past agent.store_max_size, alert "
        "state and the outbox never are.", "bytes", [g.target(_plain("sre_agent_store_size_bytes"), "{{instance}}")],
        w=12)
    latency = g.timeseries(
        "Notification latency p50 / p95 / p99", "From a notification's creation to its acceptance by the receiver, "
        "retries included.", "s",
        g.quantiles(g.rate(_plain("sre_agent_notification_latency_seconds_bucket")), "receiver", "{{receiver}}"),
        w=12)
    suppressed = g.timeseries(
        "Alerts suppressed", "Alerts muted by silences, inhibition rules or a failing dependency (depends_on).",
        "short", [g.target(f"sum by (reason) ({g.increase(_plain('sre_agent_alerts_suppressed_total'))})",
                           "{{reason}}")], w=12, bars=True, stacked=True)
    leftovers = g.timeseries(
        "Plugin leftovers", "Processes a command check's plugin left running, killed by the agent after the run "
        "(a plugin that backgrounds or setsid's a child).", "short",
        [g.target(f"sum by (check) ({g.scoped(g.increase(g.sel('sre_agent_command_leftover_processes_total')))})",
                  "{{check}}")], w=12, bars=True)
    connections = g.timeseries(
        "API connections", "Open connections to the agent's listener (capped by agent.api_max_connections).",
        "short", [g.target(_plain("sre_agent_api_connections"), "{{instance}}")], w=8)
    rejected = g.timeseries(
        "API connections refused", "Connections or requests the listener refused or closed, by reason: limit (cap "
        "reached), evicted (an idle one made room), header_timeout (no request head in time), busy (handler queue "
        "full).", "short",
        [g.target(f"sum by (reason) ({g.increase(_plain('sre_agent_api_connections_rejected_total'))})",
                  "{{reason}}")], w=8, bars=True, stacked=True)
    accept = g.timeseries(
        "API accept errors", "Connections the listener could not accept (e.g. out of file descriptors); checks keep "
        "running.", "short",
        [g.target(f"sum by (instance) ({g.increase(_plain('sre_agent_api_accept_errors_total'))})", "{{instance}}")],
        w=8, bars=True)
    members = g.timeseries(
        "Replicas", "Live replicas sharing the state store (1 without replicas), as each agent sees them.", "short",
        [g.target(_plain("sre_agent_cluster_members"), "{{instance}}")], w=6)
    shard = g.timeseries(
        "Checks per replica", "Checks each replica runs: its share by rendezvous hashing (all of them without "
        "replicas).", "short", [g.target(_plain("sre_agent_shard_checks"), "{{instance}}")], w=6, stacked=True)
    lease = g.timeseries(
        "Lease age", "Seconds since the state store took this replica's heartbeat; past agent.replica.lease it takes "
        "no new work and /readyz answers 503.", "s",
        [g.target(_plain("sre_agent_cluster_lease_age_seconds"), "{{instance}}")], w=6)
    buffered = g.timeseries(
        "Results dropped while the store was away", "Results dropped from memory because the state store was "
        "unreachable past agent.state_buffer.", "short",
        [g.target(f"sum by (instance, kind) ({g.increase(_plain('sre_agent_store_buffer_dropped_total'))})",
                  "{{instance}} {{kind}}")], w=6, bars=True)
    locations = g.timeseries(
        "Quorum checks by location", "Status (0 OK .. 3 UNKNOWN) of each check with `locations:` per location, as "
        "its owner combines them.", "none",
        [g.target(f"max by (check, location) ({g.sel('sre_agent_check_location_status')})", "{{check}} @ {{location}}")],
        w=24)
    rows = [
        g.Row("Scrape and config", [up, loaded, since, configured, version, scrape, samples, reloads]),
        g.Row("Scheduling and state", [lag, skipped, store, store_size, leftovers]),
        g.Row("Notifications", [latency, suppressed]),
        g.Row("API listener", [connections, rejected, accept]),
        g.Row("Replicas", [members, shard, lease, buffered, locations]),
    ]
    return g.dashboard(uid=UID, title="sre-agent: agent", tags=["agent"], rows=rows, templating=g.variables(),
                       ctx=ctx, description="The agent's own health: scrape, config loads, schedule lag, skipped "
                                            "runs, state store errors and size, plugin leftovers, notification "
                                            "latency, the API listener.")
