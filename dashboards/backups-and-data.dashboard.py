"""Backups and data: is the newest backup recent and restorable, is each dataset fresh, is its quality in bounds.

Every line is drawn against the level the check's config sets, as exported
by the agent (`sre_agent_check_threshold`): a backup's age against its
`warn_age`/`max_age`, a dataset's age against `warn_after`/`error_after`, a
quality ratio against its threshold. Data products carry `domain` and
`owner` labels; the `domain` variable narrows everything to one domain.
"""

from grafanalib.core import Dashboard

from agent.codegen import grafana as g

UID = "sre-agent-backups-and-data"
DATA_TYPES = 'type=~"freshness|data_product"'
IN_DOMAIN = 'domain=~"$domain"'


def build(ctx: g.Context) -> Dashboard:
    backup_age = g.sel("sre_agent_backup_age_seconds")
    age = g.timeseries(
        "Backup age vs max_age", "Age of each check's newest backup; dashed: its warn_age (warning level) and max_age "
        "(critical level, the RPO) from the config.", "s",
        [g.target(g.scoped(backup_age), "{{check}}"),
         *g.levels(g.eq("name", "age_seconds"), only=backup_age)], overrides=g.LEVEL_OVERRIDES)
    size = g.timeseries(
        "Backup size", "Size of each check's newest backup; a sudden drop is a truncated dump; dashed: min_size.",
        "bytes", [g.target(g.scoped(g.sel("sre_agent_backup_size_bytes")), "{{check}}"),
                  *g.levels(g.eq("name", "size_bytes"), only=g.sel("sre_agent_backup_size_bytes"),
                            kinds=("critical",))],
        overrides=g.LEVEL_OVERRIDES)
    drill = g.stat(
        "Last restore drill", "Did the last restore drill (restore into a scratch database, run the assertions) pass?",
        "none", [g.target(g.scoped(g.sel("sre_agent_backup_restore_success")), "{{check}}")], w=6, h=8,
        mappings=g.PASS_FAIL_MAPPINGS, thresholds=g.steps(("red", None), ("green", 1)), color_mode="background")
    rto = g.timeseries(
        "Restore duration (RTO)", "How long the last drill's pg_restore took: what a real restore would cost.", "s",
        [g.target(g.scoped(g.sel("sre_agent_backup_restore_duration_seconds")), "{{check}}")], w=9)
    rpo = g.timeseries(
        "Restored data age (RPO)", "Age of the newest row in the restored copy (the drill's max_age assertion): the "
        "data a restore would lose.", "s",
        [g.target(g.scoped(g.sel("sre_agent_check_observation", g.eq("name", "restore_data_age_seconds"))),
                  "{{check}}")], w=9)

    freshness = g.sel("sre_agent_data_freshness_seconds", IN_DOMAIN)
    fresh = g.timeseries(
        "Freshness per dataset", "Seconds since each dataset was last updated; dashed: the check's warn_after "
        "(warning level) and error_after (critical level).", "s",
        [g.target(g.scoped(freshness), "{{dataset}} ({{domain}})"),
         *g.levels(g.eq("name", "age_seconds"), only=freshness)], w=24, h=9, overrides=g.LEVEL_OVERRIDES)
    quality_ratio = g.sel("sre_agent_data_quality_ratio")
    in_domain = g.status_sel(IN_DOMAIN)
    quality = g.timeseries(
        "Quality ratios", "Share of rows passing each quality metric (completeness, uniqueness) per column; dashed: "
        "the rule's threshold (critical level).", "percentunit",
        [g.target(f"({quality_ratio}) and on(job, instance, check) {in_domain}", "{{check}} {{metric}}({{column}})"),
         *g.levels(g.like("name", ".*_ratio"), only=quality_ratio, where=(IN_DOMAIN,), label="{{check}} {{name}}",
                   kinds=("critical",))],
        overrides=g.LEVEL_OVERRIDES, min=0, max=1)
    owners = g.table(
        "Datasets by domain and owner", "Status of every freshness and data product check, grouped by the data "
        "product's domain and owner.", "none",
        [g.target(f"max by (domain, owner, check) ({g.status_sel(DATA_TYPES, IN_DOMAIN)})", instant=True, table=True)],
        w=12, hide=("Time",), rename={"Value": "status"}, sort_by="status",
        overrides=[{"matcher": {"id": "byName", "options": "status"},
                    "properties": [{"id": "mappings", "value": g.STATUS_MAPPINGS},
                                   {"id": "custom.cellOptions", "value": {"type": "color-background"}}]}])
    rows = [
        g.Row("Backups", [age, size, drill, rto, rpo]),
        g.Row("Data freshness", [fresh]),
        g.Row("Data quality", [quality, owners]),
    ]
    return g.dashboard(uid=UID, title="sre-agent: backups and data", tags=["backups", "data"], rows=rows,
                       templating=g.variables(check_types="backup|freshness|data_product", domain=True), ctx=ctx,
                       description="Backup age and size against their limits, restore drills (RTO, RPO), dataset "
                                   "freshness against warn_after/error_after, quality ratios, by domain and owner.")
