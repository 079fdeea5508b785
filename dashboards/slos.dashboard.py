"""SLOs: every SLO's error budget at a glance, then one row per SLO of the config.

Each row shows the SLI over the SLO window against the objective, the error
budget left (now and over time) and the burn rate per evaluation window with
the multiwindow alert table's factors (14.4, 6, 3, 1 for a 30-day SLO) drawn:
the rows come from the config (`-c`), the numbers from the agent.
"""

from grafanalib.core import Dashboard

from agent.codegen import grafana as g
from agent.durations import format_duration
from agent.slo.spec import SloSpec
from agent.slo.windows import AlertKind, alert_table, window_label

UID = "sre-agent-slos"
BUDGET = "sre_agent_slo_error_budget_remaining_ratio"
_KIND_COLORS = {AlertKind.TICKET: ("yellow", "orange"), AlertKind.PAGE: ("red", "dark-red")}


def _pct(ratio: float) -> str:
    return f"{round(ratio * 100, 6):g}%"


def burn_steps(spec: SloSpec) -> list[dict[str, object]]:
    """The alert table's burn-rate factors as threshold steps, lowest first, coloured ticket -> page."""
    rows = sorted(alert_table(spec.window), key=lambda r: r.burn_rate)
    levels: list[tuple[str, float | None]] = [("green", None)]
    for kind in (AlertKind.TICKET, AlertKind.PAGE):
        of_kind = [r for r in rows if r.kind is kind]
        levels += [(_KIND_COLORS[kind][min(i, 1)], r.burn_rate) for i, r in enumerate(of_kind)]
    return g.steps(*levels)


def slo_row(ctx: g.Context, spec: SloSpec) -> g.Row:
    slo = g.eq("slo", spec.name)
    window = window_label(spec.window)
    runbook = [{"title": f"Runbook of SLO {spec.name}", "targetBlank": True,
                "url": ctx.runbook_url(spec.runbook or "runbooks/slo-burn.md")}]
    table = "; ".join(f"{r.kind.value} when {r.long_label} and {r.short_label} burn faster than {r.burn_rate:g}x"
                      for r in alert_table(spec.window))
    sli = g.timeseries(
        "SLI vs objective", f"SLI of {spec.name} over its {window} window against the {_pct(spec.objective_ratio)} "
        "objective.", "percentunit",
        [g.target(g.sel("sre_agent_slo_sli_ratio", slo, g.eq("window", window), check=False), f"SLI over {window}"),
         g.target(g.sel("sre_agent_slo_objective_ratio", slo, check=False), "objective")], w=9, links=runbook)
    budget_now = g.gauge(
        "Error budget left", f"Share of the {window} error budget of {spec.name} left (0 or below: exhausted).",
        "percentunit", [g.target(g.sel(BUDGET, slo, check=False), "budget left")], w=5, thresholds=g.BUDGET_STEPS,
        links=runbook)
    budget = g.timeseries(
        "Error budget left over time", f"How the {window} error budget of {spec.name} was spent.", "percentunit",
        [g.target(g.sel(BUDGET, slo, check=False), "budget left")], w=10, thresholds=g.BUDGET_STEPS,
        threshold_style="dashed", links=runbook)
    burn = g.timeseries(
        "Burn rate per window", f"Error budget burn rate of {spec.name} per evaluation window (1 = the budget lasts "
        f"exactly {window}); the dashed lines are the alert table's factors: {table}.", "none",
        [g.target(g.sel("sre_agent_slo_burn_rate", slo, check=False), "{{window}}")], w=24, h=9,
        thresholds=burn_steps(spec), threshold_style="dashed", links=runbook)
    return g.Row(f"SLO {spec.name} ({spec.service}): {_pct(spec.objective_ratio)} over "
                 f"{format_duration(spec.window)}", [sli, budget_now, budget, burn])


def build(ctx: g.Context) -> Dashboard:
    budgets = g.bar_gauge(
        "Error budget left", "Every selected SLO's share of its window's error budget left (0 or below: exhausted).",
        "percentunit", [g.target(g.slo_scoped(g.sel(BUDGET, check=False)), "{{slo}}")],
        thresholds=g.BUDGET_STEPS, min=0, max=1)
    over_time = g.timeseries(
        "Error budget left over time", "How each selected SLO spent its error budget.", "percentunit",
        [g.target(g.slo_scoped(g.sel(BUDGET, check=False)), "{{slo}}")], thresholds=g.BUDGET_STEPS,
        threshold_style="dashed")
    rows = [g.Row("All SLOs", [budgets, over_time]), *(slo_row(ctx, spec) for spec in ctx.slos)]
    return g.dashboard(uid=UID, title="sre-agent: SLOs", tags=["slo"], rows=rows, templating=g.variables(), ctx=ctx,
                       description="Error budgets of every SLO, then per SLO of the config: SLI vs objective, budget "
                                   "left and burn rate per window against the alert thresholds.")
