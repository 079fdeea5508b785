"""Every metric the agent can emit, in one place: the contract dashboards and alert rules rely on.

Metric names used to be spelled where they were emitted (the core, alerting,
the SLO evaluation, each check type), so nothing listed them all and the
README table was written by hand. This module is that list. Emitters build
their metrics from it and never spell a help text or label list themselves:
`counter()`, `gauge()` and `histogram()` register prometheus_client metrics,
`gauge_family()` builds a `GaugeMetricFamily` for the custom collector of
per-check results, and `families()` gives a check type its `metric_families`.
`scripts/gen_metrics_docs.py` writes the README table from `CATALOGUE`, and
`tests/test_catalogue.py` proves a running agent emits exactly these names.

Names are recorded as exposed: a counter is `sre_agent_check_runs_total`
(prometheus_client is given the name without `_total` and adds it back).
prometheus_client also exposes a `<name>_created` gauge next to each counter
and histogram (without `_total`); those are not listed here.

Ground floor: imports only the standard library and prometheus_client, so any
layer (checks included) can depend on it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily

MetricType = Literal["gauge", "counter", "histogram"]
#: who emits a metric: the agent core, alerting, or the check type of that name
Component = Literal["core", "alerting", "slo", "backup", "command", "host", "freshness", "data_product"]
Unit = Literal["", "seconds", "bytes", "ratio"]

METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")

CHECK_DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
SCHEDULE_LAG_BUCKETS = (0.001, 0.01, 0.05, 0.1, 0.5, 1, 5, 30)
NOTIFICATION_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600, 24 * 3600)


@dataclass(frozen=True)
class MetricDef:
    """One metric family as it appears on /metrics."""

    name: str
    type: MetricType
    help: str
    component: Component
    labels: tuple[str, ...] = ()
    unit: Unit = ""
    #: histogram bucket upper bounds (+Inf is implicit)
    buckets: tuple[float, ...] | None = None
    #: the check's own `labels:` (service, team, ...) are added to `labels`
    check_labels: bool = False

    @property
    def client_name(self) -> str:
        """The name prometheus_client wants: counters without the `_total` it appends."""
        return self.name.removesuffix("_total") if self.type == "counter" else self.name


def _defs(*defs: MetricDef) -> dict[str, MetricDef]:
    out: dict[str, MetricDef] = {}
    for d in defs:
        if d.name in out:
            raise ValueError(f"metric {d.name} is in the catalogue twice")
        out[d.name] = d
    return out


CATALOGUE: dict[str, MetricDef] = _defs(
    # -- core: per-check results (the custom collector in agent.metrics) ----------------------
    MetricDef("sre_agent_check_status", "gauge", "Last status of the check: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN",
              "core", ("check", "type"), check_labels=True),
    MetricDef("sre_agent_check_up", "gauge", "1 if the last result was OK or WARNING, else 0", "core", ("check", "type")),
    MetricDef("sre_agent_check_last_run_timestamp_seconds", "gauge", "Unix time the check last ran", "core", ("check",),
              unit="seconds"),
    MetricDef("sre_agent_check_observation", "gauge", "Numeric observations of the last run (latency, days left, age...)",
              "core", ("check", "name")),
    MetricDef("sre_agent_check_threshold", "gauge",
              "Configured level at which the observation (name) turns the check WARNING or CRITICAL (level), in the "
              "observation's unit", "core", ("check", "name", "level")),
    # -- core: runs, scheduling, config, store ------------------------------------------------
    MetricDef("sre_agent_check_duration_seconds", "histogram", "How long check runs took", "core", ("check", "type"),
              unit="seconds", buckets=CHECK_DURATION_BUCKETS),
    MetricDef("sre_agent_check_runs_total", "counter", "Check runs by resulting status", "core",
              ("check", "type", "status")),
    MetricDef("sre_agent_check_runs_skipped_total", "counter", "Runs skipped because the previous run was still going",
              "core", ("check",)),
    MetricDef("sre_agent_check_schedule_lag_seconds", "histogram", "Delay between a run's due time and its start", "core",
              unit="seconds", buckets=SCHEDULE_LAG_BUCKETS),
    MetricDef("sre_agent_checks_configured", "gauge", "Checks scheduled by this agent", "core"),
    MetricDef("sre_agent_build_info", "gauge", "Always 1; the agent's version", "core", ("version",)),
    MetricDef("sre_agent_config_last_reload_successful", "gauge", "1 if the last config (re)load succeeded", "core"),
    MetricDef("sre_agent_config_last_reload_success_timestamp_seconds", "gauge",
              "Unix time of the last successful config load", "core", unit="seconds"),
    MetricDef("sre_agent_store_errors_total", "counter", "Failed writes to the state store", "core"),
    MetricDef("sre_agent_store_size_bytes", "gauge",
              "Size of the state store on disk (history is trimmed past agent.store_max_size)", "core", unit="bytes"),
    # -- core: the API listener -----------------------------------------------------------------
    MetricDef("sre_agent_api_connections", "gauge", "Open connections to the API", "core"),
    MetricDef("sre_agent_api_connections_rejected_total", "counter",
              "API connections and requests refused by the agent: over agent.api_max_connections (limit), an idle "
              "connection closed to make room (evicted), request head not sent in time (header_timeout), too many "
              "requests waiting (busy)", "core", ("reason",)),
    MetricDef("sre_agent_api_accept_errors_total", "counter",
              "Connections the API listener failed to accept (e.g. out of file descriptors)", "core"),
    MetricDef("sre_agent_store_buffer_dropped_total", "counter",
              "Results dropped from memory (kind=result): the state store was unreachable past agent.state_buffer",
              "core", ("kind",)),
    # -- core: replicas on a shared state store -------------------------------------------------
    MetricDef("sre_agent_cluster_members", "gauge", "Live replicas sharing the state store (1 without replicas)", "core"),
    MetricDef("sre_agent_shard_checks", "gauge", "Checks this replica runs (its shard; all of them without replicas)",
              "core"),
    MetricDef("sre_agent_cluster_lease_age_seconds", "gauge",
              "Seconds since the state store last took this replica's heartbeat (0 without replicas); past "
              "agent.replica.lease it takes no new work", "core", unit="seconds"),
    MetricDef("sre_agent_check_location_status", "gauge",
              "Last status of a check with locations: per location (or replica), as its owner combines them",
              "core", ("check", "location")),
    # -- alerting -----------------------------------------------------------------------------
    MetricDef("sre_agent_alerts", "gauge", "Alerts by state (pending, firing) and severity", "alerting",
              ("state", "severity")),
    MetricDef("sre_agent_alerts_suppressed_total", "counter", "Alerts muted, by reason (silenced, inhibited, dependency)",
              "alerting", ("reason",)),
    MetricDef("sre_agent_notifications_total", "counter",
              "Notification attempts by receiver and outcome (sent, retried, failed, dropped)", "alerting",
              ("receiver", "outcome")),
    MetricDef("sre_agent_notification_queue_depth", "gauge", "Notifications waiting in the outbox per receiver",
              "alerting", ("receiver",)),
    MetricDef("sre_agent_notification_latency_seconds", "histogram",
              "From notification creation to its acceptance by the receiver", "alerting", ("receiver",),
              unit="seconds", buckets=NOTIFICATION_LATENCY_BUCKETS),
    # -- check types: gauges (and counters) from their results' samples ------------------------
    MetricDef("sre_agent_backup_age_seconds", "gauge", "Age of the newest backup", "backup", ("check",), unit="seconds"),
    MetricDef("sre_agent_backup_size_bytes", "gauge", "Size of the newest backup", "backup", ("check",), unit="bytes"),
    MetricDef("sre_agent_backup_restore_duration_seconds", "gauge", "How long the last restore drill's pg_restore took",
              "backup", ("check",), unit="seconds"),
    MetricDef("sre_agent_backup_restore_success", "gauge", "1 if the last restore drill passed, else 0", "backup",
              ("check",)),
    MetricDef("sre_agent_backup_last_success_timestamp_seconds", "gauge", "Unix time the newest backup was completed",
              "backup", ("check",), unit="seconds"),
    MetricDef("sre_agent_command_leftover_processes_total", "counter",
              "Processes a command check's plugin left running after it exited (killed by the agent)", "command",
              ("check",)),
    MetricDef("sre_agent_data_quality_ratio", "gauge", "Share of rows passing a data quality metric (0..1)",
              "data_product", ("check", "metric", "column"), unit="ratio"),
    MetricDef("sre_agent_data_freshness_seconds", "gauge", "Seconds since the dataset was last updated", "freshness",
              ("check", "dataset", "domain"), unit="seconds"),
    MetricDef("sre_agent_host_disk_used_ratio", "gauge", "Disk space used per path (0-1)", "host", ("check", "path"),
              unit="ratio"),
    MetricDef("sre_agent_host_inodes_used_ratio", "gauge", "Inodes used per path (0-1)", "host", ("check", "path"),
              unit="ratio"),
    MetricDef("sre_agent_host_disk_threshold_ratio", "gauge",
              "Configured disk space used ratio at which the path turns the check WARNING or CRITICAL (level)", "host",
              ("check", "path", "level"), unit="ratio"),
    MetricDef("sre_agent_host_inodes_threshold_ratio", "gauge",
              "Configured inodes used ratio at which the path turns the check WARNING or CRITICAL (level)", "host",
              ("check", "path", "level"), unit="ratio"),
    MetricDef("sre_agent_slo_objective_ratio", "gauge", "SLO objective as a ratio (0.999 for 99.9%)", "slo", ("slo",),
              unit="ratio"),
    MetricDef("sre_agent_slo_sli_ratio", "gauge", "SLI (good / all events) over the window", "slo", ("slo", "window"),
              unit="ratio"),
    MetricDef("sre_agent_slo_error_budget_remaining_ratio", "gauge",
              "Share of the SLO window's error budget left (<= 0: exhausted)", "slo", ("slo",), unit="ratio"),
    MetricDef("sre_agent_slo_burn_rate", "gauge",
              "Error budget burn rate over the window (1 = spends the budget exactly in the SLO window)", "slo",
              ("slo", "window")),
)


def get(name: str) -> MetricDef:
    """The definition of `name`; a KeyError naming the catalogue for an unknown metric."""
    try:
        return CATALOGUE[name]
    except KeyError:
        raise KeyError(f"metric {name!r} is not in agent.catalogue.CATALOGUE; add it there first") from None


def _typed(name: str, expected: MetricType) -> MetricDef:
    d = get(name)
    if d.type != expected:
        raise TypeError(f"metric {name} is a {d.type} in the catalogue, not a {expected}")
    return d


def counter(name: str, registry: CollectorRegistry | None) -> Counter:
    d = _typed(name, "counter")
    return Counter(d.client_name, d.help, d.labels, registry=registry)


def gauge(name: str, registry: CollectorRegistry | None) -> Gauge:
    d = _typed(name, "gauge")
    return Gauge(d.client_name, d.help, d.labels, registry=registry)


def histogram(name: str, registry: CollectorRegistry | None) -> Histogram:
    d = _typed(name, "histogram")
    assert d.buckets is not None
    return Histogram(d.client_name, d.help, d.labels, buckets=d.buckets, registry=registry)


def gauge_family(name: str) -> GaugeMetricFamily:
    """A fresh, empty family for a custom collector's `collect()` (or `describe()`)."""
    d = _typed(name, "gauge")
    return GaugeMetricFamily(d.name, d.help, labels=list(d.labels))


def family(name: str) -> tuple[str, tuple[str, ...], Literal["gauge", "counter"]]:
    """(documentation, labelnames, kind) of a gauge or counter a check type exports from its results' samples."""
    d = get(name)
    if d.type == "histogram":
        raise TypeError(f"metric {name} is a histogram: a check type's samples can only feed gauges and counters")
    return d.help, d.labels, d.type


T = TypeVar("T")


def families(*names: str, make: Callable[[str, tuple[str, ...], Literal["gauge", "counter"]], T]) -> dict[str, T]:
    """A check type's `metric_families`: `families(A, B, make=MetricFamily)`."""
    return {name: make(*family(name)) for name in names}


def by_component(component: Component) -> tuple[MetricDef, ...]:
    return tuple(d for d in CATALOGUE.values() if d.component == component)
