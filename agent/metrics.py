"""What the agent saw, as Prometheus metrics. Names are a contract (dashboards, rules),
so every name, help text and label list comes from `agent.catalogue`.

The registry is injected. Per-check gauges come from a custom collector over
the latest result of each check, because checks carry their own label sets
(`sre_agent_check_status{check,type,service,team}`) and removing a check on
reload must remove its series at once.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable, Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from agent import __version__, catalogue
from agent.check import MetricFamily
from agent.core import CheckResult
from agent.registry import check_types

#: why the API refused a connection or request (labels of sre_agent_api_connections_rejected_total)
API_REJECT_REASONS = ("limit", "evicted", "header_timeout", "busy")
#: the per-check gauges built from each check's latest result, in exposition order
RESULT_GAUGES = ("sre_agent_check_status", "sre_agent_check_up", "sre_agent_check_last_run_timestamp_seconds",
                 "sre_agent_check_observation", "sre_agent_check_threshold")


class _LatestResults(Collector):
    def __init__(self, families: dict[str, MetricFamily]) -> None:
        self._latest: dict[str, CheckResult] = {}
        self._families = families
        self._lock = threading.Lock()

    def update(self, result: CheckResult) -> None:
        with self._lock:
            self._latest[result.check] = result

    def forget(self, check: str) -> None:
        with self._lock:
            self._latest.pop(check, None)

    def latest(self) -> dict[str, CheckResult]:
        with self._lock:
            return dict(self._latest)

    def collect(self) -> Iterator[Metric]:
        results = self.latest().values()
        status, up, last, obs, thresholds = (catalogue.gauge_family(name) for name in RESULT_GAUGES)
        extra = {name: _family(name, fam) for name, fam in self._families.items()}
        for r in results:
            labels = {**r.labels, "check": r.check, "type": r.type}
            status.add_sample(status.name, labels, float(r.status))
            up.add_metric([r.check, r.type], 1.0 if r.status.up else 0.0)
            last.add_metric([r.check], r.timestamp)
            for name, value in r.observations.items():
                obs.add_metric([r.check, name], float(value))
            for name, levels in r.thresholds.items():
                for level, value in levels.items():
                    thresholds.add_metric([r.check, name, level], float(value))
            for s in r.samples:
                fam = extra.get(s.metric)
                if fam is None:
                    continue
                labels = dict(s.labels)
                if "check" in self._families[s.metric].labelnames:
                    labels.setdefault("check", r.check)
                fam.add_sample(s.metric, labels, float(s.value))
        yield status
        yield up
        yield last
        yield obs
        yield thresholds
        yield from extra.values()

    def describe(self) -> Iterable[Metric]:
        # Declaring the names lets the registry refuse duplicates at registration.
        for name in RESULT_GAUGES:
            yield GaugeMetricFamily(name, "")
        for name, fam in self._families.items():
            yield _family(name, fam)


def _family(name: str, fam: MetricFamily) -> Metric:
    if fam.kind == "counter":
        return CounterMetricFamily(name, fam.documentation)
    return GaugeMetricFamily(name, fam.documentation)


class Metrics:
    """Every metric of the agent core, registered on one injected registry."""

    def __init__(self, registry: CollectorRegistry | None = None, families: dict[str, MetricFamily] | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        self.results = _LatestResults(families if families is not None else check_type_families())
        self.registry.register(self.results)
        self.duration = catalogue.histogram("sre_agent_check_duration_seconds", self.registry)
        self.runs = catalogue.counter("sre_agent_check_runs_total", self.registry)
        self.build_info = catalogue.gauge("sre_agent_build_info", self.registry)
        self.build_info.labels(__version__).set(1)
        self.reload_ok = catalogue.gauge("sre_agent_config_last_reload_successful", self.registry)
        self.reload_time = catalogue.gauge("sre_agent_config_last_reload_success_timestamp_seconds", self.registry)
        self.checks_configured = catalogue.gauge("sre_agent_checks_configured", self.registry)
        self.schedule_lag = catalogue.histogram("sre_agent_check_schedule_lag_seconds", self.registry)
        self.skipped = catalogue.counter("sre_agent_check_runs_skipped_total", self.registry)
        self.store_errors = catalogue.counter("sre_agent_store_errors_total", self.registry)
        self.store_size = catalogue.gauge("sre_agent_store_size_bytes", self.registry)
        self.api_accept_errors = catalogue.counter("sre_agent_api_accept_errors_total", self.registry)
        self.api_rejected = catalogue.counter("sre_agent_api_connections_rejected_total", self.registry)
        for reason in API_REJECT_REASONS:
            self.api_rejected.labels(reason)
        self.api_connections = catalogue.gauge("sre_agent_api_connections", self.registry)

    def observe(self, result: CheckResult) -> None:
        self.results.update(result)
        self.duration.labels(result.check, result.type).observe(result.duration_seconds)
        self.runs.labels(result.check, result.type, result.status.name).inc()

    def forget(self, check: str, type_: str) -> None:
        """Drop every series of a check removed by a reload."""
        self.results.forget(check)
        with contextlib.suppress(KeyError):
            self.skipped.remove(check)
        with contextlib.suppress(KeyError):
            self.duration.remove(check, type_)
        for status in ("OK", "WARNING", "CRITICAL", "UNKNOWN"):
            with contextlib.suppress(KeyError):
                self.runs.remove(check, type_, status)

    def config_loaded(self, ok: bool, when: float) -> None:
        self.reload_ok.set(1 if ok else 0)
        if ok:
            self.reload_time.set(when)


def check_type_families() -> dict[str, MetricFamily]:
    families: dict[str, MetricFamily] = {}
    for cls in check_types().values():
        for name, fam in cls.metric_families.items():
            if name in families and families[name] != fam:
                raise ValueError(f"metric {name} declared differently by two check types")
            if fam.kind == "counter" and not name.endswith("_total"):
                raise ValueError(f"counter {name} (declared by {cls.__name__}) must end in _total")
            families[name] = fam
    return families
