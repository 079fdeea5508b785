"""From window readings to an SLO verdict: burn rates, error budget, alert rows, result.

Pure functions of the readings (no I/O, no clock) so every decision is tested
with chosen numbers. The verdict becomes one `CheckResult`:

- CRITICAL when a page row fires (both its windows burn faster than the factor)
  or the error budget is exhausted (remaining <= 0); WARNING when a ticket row
  fires; OK otherwise (windows without data cannot fire).
- `details["alert_key"]` says which alert family set the status, so the
  alerting engine keeps them apart: `"burn"` (a burn-rate row) or `"budget"`
  (budget exhausted, no page row firing). A page burn takes precedence over an
  exhausted budget because it is the one still getting worse; `details["firing"]`
  lists every family that holds (`["budget", "burn"]` when both do).
- `samples` feed `sre_agent_slo_*` gauges (defined in `agent.catalogue`): what an SLO
  dashboard needs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from agent import catalogue
from agent.core import CheckResult, Sample, Status
from agent.slo.sources import WindowReading
from agent.slo.spec import SloSpec
from agent.slo.windows import AlertKind, AlertWindow, alert_table, error_budget, error_threshold, window_label

# The sample names, checked against the catalogue at import (a KeyError if one is missing there).
OBJECTIVE = catalogue.get("sre_agent_slo_objective_ratio").name
SLI = catalogue.get("sre_agent_slo_sli_ratio").name
BUDGET_REMAINING = catalogue.get("sre_agent_slo_error_budget_remaining_ratio").name
BURN_RATE = catalogue.get("sre_agent_slo_burn_rate").name


@dataclass(frozen=True)
class FiringRow:
    row: AlertWindow
    long_burn: float
    short_burn: float


@dataclass
class Evaluation:
    spec: SloSpec
    readings: dict[timedelta, WindowReading]
    burn_rates: dict[timedelta, float] = field(default_factory=dict)
    budget_remaining: float | None = None
    firing: list[FiringRow] = field(default_factory=list)

    @property
    def budget_exhausted(self) -> bool:
        return self.budget_remaining is not None and self.budget_remaining <= 0

    @property
    def page(self) -> FiringRow | None:
        return next((f for f in self.firing if f.row.kind is AlertKind.PAGE), None)

    @property
    def ticket(self) -> FiringRow | None:
        return next((f for f in self.firing if f.row.kind is AlertKind.TICKET), None)

    @property
    def status(self) -> Status:
        if self.page is not None or self.budget_exhausted:
            return Status.CRITICAL
        return Status.WARNING if self.ticket is not None else Status.OK

    @property
    def alert_key(self) -> str:
        return "budget" if self.page is None and self.budget_exhausted else "burn"

    def summary(self) -> str:
        parts: list[str] = []
        top = self.page or self.ticket
        if top is not None:
            parts.append(f"burning {top.long_burn:.1f}x budget over {top.row.long_label} and "
                         f"{top.short_burn:.1f}x over {top.row.short_label} ({top.row.kind.value})")
        window = window_label(self.spec.window)
        whole = self.readings.get(self.spec.window)
        if whole is None or whole.error_ratio is None:
            parts.append(f"no data over {window} (fewer than {self.spec.min_events} events)")
        elif self.budget_exhausted:
            assert self.budget_remaining is not None
            parts.append(f"error budget exhausted: SLI {_pct(1 - whole.error_ratio)} over {window} is below the "
                         f"{_pct(self.spec.objective_ratio)} objective ({self.budget_remaining:.0%} budget left)")
        elif top is not None:
            parts.append(f"{self.budget_remaining:.0%} budget left")
        else:
            parts.append(f"SLI {_pct(1 - whole.error_ratio)} over {window} (objective {_pct(self.spec.objective_ratio)}), "
                         f"{self.budget_remaining:.0%} budget left")
        if top is None:
            shortest = next((w for w in sorted(self.burn_rates)), None)
            if shortest is not None and shortest != self.spec.window:
                parts.append(f"burning {self.burn_rates[shortest]:.1f}x over {window_label(shortest)}")
        if whole is not None and whole.coverage < 1:
            covered = timedelta(minutes=int(whole.coverage * self.spec.window.total_seconds() / 60))
            parts.append(f"history covers {window_label(covered) if covered else 'under 1m'} of {window}")
        return "; ".join(parts)

    def samples(self) -> list[Sample]:
        slo = {"slo": self.spec.name}
        out = [Sample(OBJECTIVE, self.spec.objective_ratio, dict(slo))]
        for window, r in sorted(self.readings.items()):
            if r.error_ratio is None:
                continue
            labels = {**slo, "window": window_label(window)}
            out.append(Sample(SLI, 1.0 - r.error_ratio, labels))
            out.append(Sample(BURN_RATE, self.burn_rates[window], dict(labels)))
        if self.budget_remaining is not None:
            out.append(Sample(BUDGET_REMAINING, self.budget_remaining, dict(slo)))
        return out

    def observations(self) -> dict[str, float]:
        out = {f"burn_rate_{window_label(w)}": rate for w, rate in sorted(self.burn_rates.items())}
        whole = self.readings.get(self.spec.window)
        if whole is not None and whole.error_ratio is not None:
            out["sli_ratio"] = 1.0 - whole.error_ratio
        if self.budget_remaining is not None:
            out["error_budget_remaining_ratio"] = self.budget_remaining
        return out

    def details(self) -> dict[str, Any]:
        firing = (["budget"] if self.budget_exhausted else []) + (["burn"] if self.firing else [])
        return {
            "slo": self.spec.name, "service": self.spec.service, "objective": self.spec.objective_ratio,
            "window": window_label(self.spec.window), "alert_key": self.alert_key, "firing": firing,
            "alerts": [{"severity": f.row.kind.value, "long_window": f.row.long_label, "short_window": f.row.short_label,
                        "burn_rate_threshold": f.row.burn_rate, "long_burn_rate": f.long_burn, "short_burn_rate": f.short_burn}
                       for f in self.firing],
            "windows": {window_label(w): {"events": r.events, "error_ratio": r.error_ratio,
                                          "burn_rate": self.burn_rates.get(w), "coverage": r.coverage}
                        for w, r in sorted(self.readings.items())},
        }

    def to_result(self) -> CheckResult:
        return CheckResult(status=self.status, summary=self.summary(), observations=self.observations(),
                           samples=self.samples(), details=self.details())


def evaluate(spec: SloSpec, readings: dict[timedelta, WindowReading]) -> Evaluation:
    """Burn rate per window, budget over the SLO window, and the rows that fire."""
    budget = error_budget(spec.objective_ratio)
    ev = Evaluation(spec, dict(readings))
    for window, r in readings.items():
        if r.error_ratio is not None:
            ev.burn_rates[window] = r.error_ratio / budget
    whole = readings.get(spec.window)
    if whole is not None and whole.error_ratio is not None:
        ev.budget_remaining = 1.0 - whole.error_ratio / budget
    for row in alert_table(spec.window):
        long, short = readings.get(row.long), readings.get(row.short)
        if long is None or short is None or long.error_ratio is None or short.error_ratio is None:
            continue
        limit = error_threshold(row, spec.objective_ratio)
        if long.error_ratio > limit and short.error_ratio > limit:
            ev.firing.append(FiringRow(row, ev.burn_rates[row.long], ev.burn_rates[row.short]))
    return ev


def unknown_result(spec: SloSpec, reason: str) -> CheckResult:
    """The SLO could not be read: UNKNOWN with the reason; the objective is still exported."""
    return CheckResult(status=Status.UNKNOWN, summary=f"cannot evaluate SLO {spec.name}: {reason}",
                       samples=[Sample(OBJECTIVE, spec.objective_ratio, {"slo": spec.name})],
                       details={"slo": spec.name, "service": spec.service, "alert_key": "burn", "firing": []})


def _pct(ratio: float) -> str:
    text = f"{ratio * 100:.3f}".rstrip("0").rstrip(".")
    return f"{text}%"
