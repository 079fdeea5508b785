"""The multiwindow, multi-burn-rate alert table, in one place for the agent and the rules.

The SRE Workbook ("Alerting on SLOs", table 5-8) defines four alert rows for a
30-day SLO. The agent's own evaluation (`agent.slo.evaluate`) and the generated
Prometheus rules (`agent.codegen.rules`) both read this module, so the two can never
disagree on a window length or a threshold.

Other SLO windows: the long and short window lengths are scaled with
`window / 30d` (a 7d SLO pages on 14m and 5m instead of 1h and 5m) and rounded
to whole minutes, never below 5m: a shorter `rate()` range holds too few
samples at the usual 1m scrape interval to ever fire, while the burn-rate factors stay as they are. Keeping the factors
keeps their meaning: a factor-14.4 burn over the scaled long window spends the
same 2% of the budget whatever the SLO window is, and the time to exhaust the
budget at that rate stays window/14.4.

`default_min_events` is the SLO's default `min_events`: the fewest events a
window needs before it counts, so that one bad event alone never crosses the
fastest page threshold (a single failed probe must not page).
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from datetime import timedelta

from agent.core import Status
from agent.durations import format_duration

BASE_PERIOD = timedelta(days=30)
#: windows the SLI is evaluated over (30d basis), besides the SLO window itself
BASE_WINDOWS = (timedelta(minutes=5), timedelta(minutes=30), timedelta(hours=1), timedelta(hours=2),
                timedelta(hours=6), timedelta(days=1), timedelta(days=3))
_MINUTE = 60
#: shortest window: rate() over less than 5m sees too few samples at a 1m scrape interval
MIN_WINDOW_MINUTES = 5


class AlertKind(enum.StrEnum):
    PAGE = "page"
    TICKET = "ticket"

    @property
    def status(self) -> Status:
        return Status.CRITICAL if self is AlertKind.PAGE else Status.WARNING

    @property
    def severity(self) -> str:
        """The `severity` label of the generated Prometheus alert."""
        return "critical" if self is AlertKind.PAGE else "warning"


@dataclass(frozen=True)
class AlertWindow:
    """One row of the alert table: fires when both windows burn faster than `burn_rate`."""

    kind: AlertKind
    long: timedelta
    short: timedelta
    burn_rate: float

    @property
    def long_label(self) -> str:
        return window_label(self.long)

    @property
    def short_label(self) -> str:
        return window_label(self.short)


BASE_TABLE = (
    AlertWindow(AlertKind.PAGE, timedelta(hours=1), timedelta(minutes=5), 14.4),
    AlertWindow(AlertKind.PAGE, timedelta(hours=6), timedelta(minutes=30), 6.0),
    AlertWindow(AlertKind.TICKET, timedelta(days=1), timedelta(hours=2), 3.0),
    AlertWindow(AlertKind.TICKET, timedelta(days=3), timedelta(hours=6), 1.0),
)


def scale(length: timedelta, window: timedelta) -> timedelta:
    """A 30d-basis window length scaled to an SLO window, rounded to whole minutes (>= 5m)."""
    seconds = length.total_seconds() * window.total_seconds() / BASE_PERIOD.total_seconds()
    minutes = max(MIN_WINDOW_MINUTES, round(seconds / _MINUTE))
    return timedelta(minutes=minutes)


def alert_table(window: timedelta) -> tuple[AlertWindow, ...]:
    """The alert rows for an SLO window (the Workbook's table when the window is 30d)."""
    return tuple(AlertWindow(row.kind, scale(row.long, window), scale(row.short, window), row.burn_rate)
                 for row in BASE_TABLE)


def evaluation_windows(window: timedelta) -> tuple[timedelta, ...]:
    """Every window the SLI is computed over, shortest first, the SLO window last."""
    scaled = {scale(w, window) for w in BASE_WINDOWS}
    scaled.add(window)
    return tuple(sorted(scaled))


def window_label(td: timedelta) -> str:
    """`5m`, `1h`, `30d`, `2d19h12m`: the `window` label and a valid Prometheus duration."""
    return format_duration(td)


def error_budget(objective: float) -> float:
    """Allowed error ratio, `1 - objective`, rounded so 99.9% gives exactly 0.001."""
    return round(1.0 - objective, 12)


def error_threshold(row: AlertWindow, objective: float) -> float:
    """Error ratio above which a window burns faster than the row's factor.

    The agent compares `error_ratio > error_threshold(...)` and the generated rule
    writes the same number, so both decide alike even at the edge.
    """
    return round(row.burn_rate * error_budget(objective), 12)


def default_min_events(objective: float) -> int:
    """Fewest events per window at which one bad event stays at or under the fastest page threshold.

    One bad event among n is an error ratio of 1/n; the first row fires above 14.4 x the budget. So
    n >= 1 / (14.4 x budget): 70 at 99.9%, 14 at 99.5%, 7 at 99%, 1 at 90% or below.
    """
    limit = error_threshold(BASE_TABLE[0], objective)
    return max(1, math.ceil(round(1.0 / limit, 9)))
