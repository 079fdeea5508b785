"""Overview: what is failing now, what paged, what was delivered, and which SLOs, backups and datasets need a look.

The on-call person's first screen. Every panel links to the detailed
dashboards through the dashboard links; failing checks link to their runbook.
"""

from grafanalib.core import Dashboard

from agent.codegen import grafana as g

UID = "sre-agent-overview"


def _status_stats() -> g.Cell:
    targets = [g.target(f"count({g.status_sel()} == {code}) or vector(0)", name)
               for code, name in enumerate(g.STATUS_NAMES)]
    overrides = [{"matcher": {"id": "byName", "options": name},
                  "properties": [{"id": "color", "value": {"mode": "fixed", "fixedColor": color}}]}
                 for name, color in zip(g.STATUS_NAMES, g.STATUS_COLORS, strict=True)]
    return g.stat("Checks by status", "How many of the selected checks are OK, WARNING, CRITICAL or UNKNOWN right "
                  "now (sre_agent_check_status).", "none", targets, w=8, h=6, overrides=overrides)


def build(ctx: g.Context) -> Dashboard:
    link = ctx.check_runbook_link()
    failing = g.table(
        "Failing checks", "Checks whose last result was not OK, with their labels; click a check to open its runbook "
        "(served by the agent, or the URL the check names).", "none",
        [g.target(f"{g.status_sel()} > 0", instant=True, table=True)], w=16, h=6,
        hide=("Time", "__name__"), rename={"Value": "status"}, sort_by="status",
        overrides=[{"matcher": {"id": "byName", "options": "check"}, "properties": [{"id": "links", "value": [link]}]},
                   {"matcher": {"id": "byName", "options": "status"},
                    "properties": [{"id": "mappings", "value": g.STATUS_MAPPINGS},
                                   {"id": "custom.cellOptions", "value": {"type": "color-background"}}]}])
    history = g.state_timeline(
        "Status history", "Each check's status over time: green OK, yellow WARNING, red CRITICAL, purple UNKNOWN.",
        [g.target(f"max by (job, instance, check) ({g.status_sel()})", "{{check}}")], h=9,
        links=[{"title": "Runbook of ${__field.labels.check}", "targetBlank": True,
                "url": link["url"].replace("${__data.fields.check}", "${__field.labels.check}")
                .replace("${__data.fields.instance}", "${__field.labels.instance}")}])
    alerts = g.bar_gauge(
        "Alerts by state and severity", "Alerts the agent holds right now, pending (waiting for `after`/`for`) or "
        "firing, per severity (sre_agent_alerts).", "none",
        [g.target(f"sum by (state, severity) ({g.sel('sre_agent_alerts', check=False)})", "{{state}} {{severity}}")],
        w=8, h=8, thresholds=g.steps(("green", None), ("red", 1)), decimals=0)
    notifications = g.timeseries(
        "Notifications per receiver", "Delivery attempts per receiver and outcome: sent, retried (will try again), "
        "failed (gave up) and dropped.", "short",
        [g.target(f"sum by (receiver, outcome) ({g.increase(g.sel('sre_agent_notifications_total', check=False))})",
                  "{{receiver}} {{outcome}}")], w=8, h=8, bars=True, stacked=True)
    outbox = g.timeseries(
        "Outbox depth", "Notifications waiting in the durable outbox per receiver; a growing line is a receiver that "
        "does not accept them.", "short",
        [g.target(f"sum by (receiver) ({g.sel('sre_agent_notification_queue_depth', check=False)})", "{{receiver}}")],
        w=8, h=8)
    budgets = g.bar_gauge(
        "SLOs with the least error budget left", "The ten SLOs with the smallest share of their window's error budget "
        "left (0 or below: exhausted).", "percentunit",
        [g.target(f"bottomk(10, {g.slo_scoped(g.sel('sre_agent_slo_error_budget_remaining_ratio', check=False))})",
                  "{{slo}}")], w=8, h=8, thresholds=g.BUDGET_STEPS, min=0, max=1)
    backups = g.bar_gauge(
        "Stalest backups", "The ten backups closest to (or past) their max_age: the newest backup's age as a share "
        "of the check's max_age, both from the agent (sre_agent_check_threshold).", "percentunit",
        [g.target(f"topk(10, {g.scoped(g.sel('sre_agent_backup_age_seconds'))} / on(job, instance, check) "
                  f"{g.threshold('age_seconds', 'critical')})", "{{check}}")],
        w=8, h=8, thresholds=g.steps(("green", None), ("orange", 0.8), ("red", 1)), min=0, max=1)
    datasets = g.bar_gauge(
        "Stalest datasets", "The ten datasets closest to (or past) their limit: the data's age as a share of the "
        "check's error_after (warn_after when it has no error_after).", "percentunit",
        [g.target(f"topk(10, {g.scoped(g.sel('sre_agent_data_freshness_seconds'))} / on(job, instance, check) "
                  f"max by (job, instance, check) ({g.threshold('age_seconds')}))",
                  "{{dataset}}")],
        w=8, h=8, thresholds=g.steps(("green", None), ("orange", 0.8), ("red", 1)), min=0, max=1)
    rows = [
        g.Row("Checks now", [_status_stats(), failing, history]),
        g.Row("Alerts and notifications", [alerts, notifications, outbox]),
        g.Row("SLOs, backups and data", [budgets, backups, datasets]),
    ]
    return g.dashboard(uid=UID, title="sre-agent: overview", tags=["overview"], rows=rows, templating=g.variables(),
                       ctx=ctx, description="What is failing now, what alerts and notifications did, and the SLOs, "
                                            "backups and datasets closest to their limits.")
