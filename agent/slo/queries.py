"""PromQL for an SLI: the (error, total) rate queries with `{{window}}` as the range.

The agent queries these over each window and the rule generator records them,
so an SLO means the same thing on `/metrics` and in Prometheus. Queries return
per-second rates (Sloth's convention); events in a window = rate x window.
"""

from __future__ import annotations

from datetime import timedelta

from agent.slo.spec import WINDOW_PLACEHOLDER, LatencySli, SloSpec
from agent.slo.windows import window_label

#: statuses counted as bad runs of a probe check (good = OK or WARNING, as agent.store counts them)
BAD_STATUSES = ("CRITICAL", "UNKNOWN")


def sli_queries(spec: SloSpec) -> tuple[str, str]:
    """(error_query, total_query) templates for an SLO."""
    sli = spec.sli
    if sli.events is not None:
        return sli.events.error_query, sli.events.total_query
    if sli.latency is not None:
        return latency_queries(sli.latency)
    assert sli.check is not None
    return check_queries(sli.check)


def latency_queries(latency: LatencySli) -> tuple[str, str]:
    """Slow requests = all requests - those in the bucket `le=threshold`."""
    inner = latency.selector[1:-1].strip().rstrip(",") if latency.selector else ""
    total = f"sum(rate({latency.histogram}_count{latency.selector}[{WINDOW_PLACEHOLDER}]))"
    bucket_matchers = ", ".join(m for m in (inner, f'le=~"{_le_pattern(latency.threshold)}"') if m)
    good = f"sum(rate({latency.histogram}_bucket{{{bucket_matchers}}}[{WINDOW_PLACEHOLDER}]))"
    return f"{total} - {good}", total


def _le_pattern(threshold: float) -> str:
    """Match the `le` label as Go (`1`) and Python (`1.0`) clients both write it."""
    text = format(threshold, "g")
    escaped = text.replace(".", "\\\\.")
    if "." not in text and "e" not in text:
        return f"{escaped}(\\\\.0)?"
    return escaped


def check_queries(check: str) -> tuple[str, str]:
    """A probe check's failure ratio from the agent's own `sre_agent_check_runs_total`."""
    bad = "|".join(BAD_STATUSES)
    error = (f'(sum(rate(sre_agent_check_runs_total{{check="{check}",status=~"{bad}"}}[{WINDOW_PLACEHOLDER}]))'
             " or vector(0))")
    total = f'sum(rate(sre_agent_check_runs_total{{check="{check}"}}[{WINDOW_PLACEHOLDER}]))'
    return error, total


def render(template: str, window: timedelta) -> str:
    return template.replace(WINDOW_PLACEHOLDER, window_label(window))
