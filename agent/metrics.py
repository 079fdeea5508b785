"""What the agent saw, as Prometheus metrics. Names are a contract (dashboards, rules),
so every name, help text and label list comes from `agent.catalogue`.

The registry is injected. Every per-check series (the gauges from each check's
latest result, `sre_agent_check_duration_seconds` and
`sre_agent_check_runs_total`) lives in one custom collector, `CheckSeries`,
because checks carry their own label sets
(`sre_agent_check_status{check,type,service,team}`) and removing a check on
reload must remove its series at once. It keeps plain numbers per check (no
prometheus_client child objects with a lock each) and each check's rendered
exposition lines, re-rendered only when a new result arrived since the last
scrape: a scrape of 10,000 checks concatenates cached text instead of
formatting ~300,000 samples (`Metrics.exposition`). A check's histogram lines,
the bulk of its text, are kept as its values under one shared template
(`Formatted`) and formatted only while a scrape is written. `collect()` still yields
ordinary metric families, so the registry API and other exporters see the same
series.

`<name>_created` series (prometheus_client's default next to every counter and
histogram) double their cardinality and are off unless `agent.created_series`
asks for them.
"""

from __future__ import annotations

import bisect
import contextlib
import threading
import time
from collections.abc import Callable, Iterable, Iterator

import prometheus_client
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.openmetrics import exposition as openmetrics_exposition
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from agent import __version__, catalogue
from agent.check import MetricFamily
from agent.core import CheckResult
from agent.registry import check_types

#: why the API refused a connection or request (labels of sre_agent_api_connections_rejected_total)
API_REJECT_REASONS = ("limit", "evicted", "header_timeout", "busy")
#: the per-check gauges built from each check's latest result, in exposition order
RESULT_GAUGES = ("sre_agent_check_status", "sre_agent_check_up", "sre_agent_check_last_run_timestamp_seconds",
                 "sre_agent_check_observation", "sre_agent_check_threshold")
DURATION = "sre_agent_check_duration_seconds"
RUNS = "sre_agent_check_runs_total"
_RUN_STATUSES = ("OK", "WARNING", "CRITICAL", "UNKNOWN")
_OM_EOF = b"# EOF\n"
#: how often the daemon renders the lines of new results ahead of a scrape (`CheckSeries.refresh`)
PRERENDER_SECONDS = 5.0


def set_created_series(enabled: bool) -> None:
    """Whether counters and histograms also expose `<name>_created` (process-wide: prometheus_client's switch)."""
    if enabled:
        prometheus_client.enable_created_metrics()
    else:
        prometheus_client.disable_created_metrics()


def created_series_enabled() -> bool:
    return bool(prometheus_client.metrics._use_created)


_ESCAPED: dict[str, str] = {}  # label values seen (observation names, levels repeat across checks)


def _escape(value: str) -> str:
    found = _ESCAPED.get(value)
    if found is None:
        if len(_ESCAPED) >= 4096:
            _ESCAPED.clear()
        found = _ESCAPED[value] = value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")
    return found


def _labels(pairs: Iterable[tuple[str, str]]) -> str:
    """`k="v",...` sorted by name, escaped as prometheus_client does in both formats."""
    return ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(pairs))


class Formatted:
    """A piece of exposition kept as a shared template and its values, formatted only when written.

    A check's 17 histogram lines are 1.5 KB of text, 15 MB for 10,000 checks; as the values under a
    template the whole registry shares (the check's label bytes are one object, repeated) they are
    about a third of that, and `template % args` on bytes costs about 1 us per check while a scrape
    is written. The length is known beforehand, for Content-Length. The template holds no `%` but
    its `%s` placeholders.
    """

    __slots__ = ("template", "args", "length")

    def __init__(self, template: bytes, args: tuple[bytes, ...]) -> None:
        self.template, self.args = template, args
        self.length = len(template) - 2 * len(args) + sum(map(len, args))

    def __len__(self) -> int:
        return self.length

    def render(self) -> bytes:
        return self.template % self.args


#: a piece of an exposition: bytes, or a `Formatted` one
Piece = bytes | Formatted


def piece_bytes(piece: Piece) -> bytes:
    return piece if type(piece) is bytes else piece.render()  # type: ignore[union-attr]


def join_pieces(pieces: Iterable[Piece]) -> bytes:
    return b"".join(map(piece_bytes, pieces))


class _Entry:
    """One check's series: its latest result, histogram and run counts, and its rendered lines."""

    __slots__ = ("result", "type", "counts", "total", "runs", "created", "version", "chunks", "chunks_version",
                 "chunks_created", "label_cache", "threshold_lines")

    def __init__(self, result: CheckResult, n_buckets: int) -> None:
        self.result = result
        self.type = result.type
        self.counts = [0] * n_buckets
        self.total = 0.0
        self.runs: dict[str, list[float]] = {}  # status -> [count, created]
        self.created = time.time()
        self.version = 0
        #: the rendered lines per family, in `CheckSeries._keys[chunks_created]` order (None: no lines)
        self.chunks: tuple[Piece | None, ...] = ()
        self.chunks_version = -1
        self.chunks_created = False  # whether `chunks` carry the `_created` lines
        #: (result labels, type, check label, type label, status labels, check and type labels as bytes):
        #: the escaped label strings for the labels and type they were made from (rendering thread only)
        self.label_cache: tuple[dict[str, str], str, str, str, str, bytes, bytes] | None = None
        #: (thresholds, their lines): results share their check's thresholds, so the lines are kept
        self.threshold_lines: tuple[dict[str, dict[str, float]], bytes] | None = None


class CheckSeries(Collector):
    """Every series that carries a `check` label and comes from results (see the module docstring)."""

    def __init__(self, families: dict[str, MetricFamily]) -> None:
        self._entries: dict[str, _Entry] = {}
        self._families = families
        self._lock = threading.Lock()
        self._skip = threading.local()  # set while Metrics.exposition renders the rest of the registry
        d = catalogue.get(DURATION)
        assert d.buckets is not None
        self._bounds = tuple(float(b) for b in d.buckets)
        self._le = tuple(floatToGoString(b) for b in (*self._bounds, float("inf")))
        # one %-template for a check's histogram lines: (check, type, value) per bucket, then count and sum
        self._histogram_lines = "".join(f'{DURATION}_bucket{{%s,le="{le}",%s}} %s\n' for le in self._le) + \
            f"{DURATION}_count{{%s,%s}} %s\n{DURATION}_sum{{%s,%s}} %s\n"
        self._histogram_template = self._histogram_lines.encode()
        self._type_labels: dict[str, tuple[str, bytes]] = {}  # one `type="..."` per check type
        self._keys = {created: (*RESULT_GAUGES, *self._families, DURATION, RUNS,
                                *((DURATION + "@created", DURATION + "@om", RUNS + "@created", RUNS + "@om")
                                  if created else ()))
                      for created in (False, True)}
        self._headers: dict[bool, dict[str, bytes]] = {}

    # --- updates (event loop thread) -------------------------------------------------

    def update(self, result: CheckResult) -> None:
        """The latest result of a check, its duration in the histogram and its run counted."""
        with self._lock:
            e = self._entries.get(result.check)
            if e is None:
                e = self._entries[result.check] = _Entry(result, len(self._bounds) + 1)
            e.result = result
            e.type = result.type
            e.counts[bisect.bisect_left(self._bounds, result.duration_seconds)] += 1
            e.total += result.duration_seconds
            run = e.runs.get(result.status.name)
            if run is None:
                e.runs[result.status.name] = [1, time.time()]
            else:
                run[0] += 1
            e.version += 1

    def forget(self, check: str) -> None:
        with self._lock:
            self._entries.pop(check, None)

    def latest(self) -> dict[str, CheckResult]:
        with self._lock:
            return {name: e.result for name, e in self._entries.items()}

    # --- the registry's view -----------------------------------------------------------

    def collect(self) -> Iterator[Metric]:
        if getattr(self._skip, "active", False):
            return
        with self._lock:
            snapshot = [(e.result, list(e.counts), e.total, {s: list(v) for s, v in e.runs.items()}, e.created)
                        for e in self._entries.values()]
        created = created_series_enabled()
        status, up, last, obs, thresholds = (catalogue.gauge_family(name) for name in RESULT_GAUGES)
        extra = {name: _family(name, fam) for name, fam in self._families.items()}
        duration, runs = self._duration_family(), self._runs_family()
        for r, counts, total, run_counts, since in snapshot:
            status.add_sample(status.name, {**r.labels, "check": r.check, "type": r.type}, float(r.status))
            up.add_metric([r.check, r.type], 1.0 if r.status.up else 0.0)
            last.add_metric([r.check], r.timestamp)
            for name, value in r.observations.items():
                obs.add_metric([r.check, name], float(value))
            for name, levels in r.thresholds.items():
                for level, value in levels.items():
                    thresholds.add_metric([r.check, name, level], float(value))
            for metric, labels, value in self._samples(r):
                extra[metric].add_sample(metric, labels, value)
            cumulative, acc = [], 0
            for le, c in zip(self._le, counts, strict=True):
                acc += c
                cumulative.append((le, float(acc)))
            duration.add_metric([r.check, r.type], cumulative, total, timestamp=None)
            if created:
                duration.samples.append(duration.samples[-1]._replace(
                    name=DURATION + "_created", labels={"check": r.check, "type": r.type}, value=since))
            for st in _RUN_STATUSES:
                if st in run_counts:
                    count, at = run_counts[st]
                    runs.add_metric([r.check, r.type, st], count, created=at if created else None)
        yield status
        yield up
        yield last
        yield obs
        yield thresholds
        yield from extra.values()
        yield duration
        yield runs

    def describe(self) -> Iterable[Metric]:
        # Declaring the names lets the registry refuse duplicates at registration.
        for name in RESULT_GAUGES:
            yield GaugeMetricFamily(name, "")
        for name, fam in self._families.items():
            yield _family(name, fam)
        yield self._duration_family()
        yield self._runs_family()

    def _duration_family(self) -> HistogramMetricFamily:
        d = catalogue.get(DURATION)
        return HistogramMetricFamily(d.name, d.help, labels=list(d.labels))

    def _runs_family(self) -> CounterMetricFamily:
        d = catalogue.get(RUNS)
        return CounterMetricFamily(d.name, d.help, labels=list(d.labels))

    def _samples(self, r: CheckResult) -> Iterator[tuple[str, dict[str, str], float]]:
        for s in r.samples:
            fam = self._families.get(s.metric)
            if fam is None:
                continue
            labels = dict(s.labels)
            if "check" in fam.labelnames:
                labels.setdefault("check", r.check)
            yield s.metric, labels, float(s.value)

    # --- the fast exposition ----------------------------------------------------------

    def render(self, registry: CollectorRegistry, encoder: Callable[[CollectorRegistry], bytes],
               openmetrics: bool) -> list[Piece]:
        """The whole registry in one format, in pieces: this collector's cached lines, then every other collector.

        Pieces, not one body: 10,000 checks make 25 MB that a gzip response or a streamed one never
        needs in one piece (see agent.api).
        """
        self._skip.active = True
        try:
            rest = encoder(registry)
        finally:
            self._skip.active = False
        pieces = self.render_own(openmetrics)
        pieces.append(rest)
        return pieces

    def refresh(self, budget: int | None = None) -> int:
        """Render the lines of checks whose result is newer than their cached lines (at most `budget` of them).

        The daemon calls this every `PRERENDER_SECONDS`, so a scrape finds almost every line rendered
        already; a scrape calls it for whatever is left. Returns how many checks were rendered.
        """
        created = created_series_enabled()
        with self._lock:
            stale = []
            for e in self._entries.values():
                if e.chunks_version != e.version or e.chunks_created != created:
                    stale.append((e, e.version, e.result, list(e.counts), e.total,
                                  {s: list(v) for s, v in e.runs.items()}, e.created))
                    if budget is not None and len(stale) >= budget:
                        break
        for e, version, result, counts, total, runs, since in stale:
            chunks = self._chunks(result, counts, total, runs, since, created, e)
            with self._lock:  # if a newer result came meanwhile, its version differs and it stays stale
                e.chunks, e.chunks_version, e.chunks_created = chunks, version, created
        return len(stale)

    def render_own(self, openmetrics: bool) -> list[Piece]:
        """This collector's families, in pieces: every check's cached lines, grouped by family."""
        self.refresh()
        created = created_series_enabled()
        with self._lock:
            # (a check whose first result came after the refresh above has no lines yet)
            entries = [(self._keys[e.chunks_created], e.chunks) for e in self._entries.values() if e.chunks]
        columns: dict[str, list[Piece]] = {key: [] for key in self._keys[True]}
        for keys, chunks in entries:  # one pass: each check's lines go to their family's column
            for key, chunk in zip(keys, chunks, strict=True):
                if chunk is not None:
                    columns[key].append(chunk)
        headers = self._family_headers(openmetrics)
        out: list[Piece] = []
        for key in (*RESULT_GAUGES, *self._families):
            out.append(headers[key])
            out.extend(columns.get(key, ()))
        for key in (DURATION, RUNS):
            out.append(headers[key])
            if openmetrics and created:
                out.extend(columns.get(key + "@om", ()))
            else:
                out.extend(columns.get(key, ()))
                if created and columns.get(key + "@created"):
                    out.append(self._created_header(key))
                    out.extend(columns[key + "@created"])
        return out

    def _chunks(self, r: CheckResult, counts: list[int], total: float, runs: dict[str, list[float]], since: float,
                created: bool, entry: _Entry) -> tuple[Piece | None, ...]:
        """One check's sample lines per family, exactly as prometheus_client would print them."""
        g = floatToGoString
        cache = entry.label_cache
        if cache is None or cache[0] is not r.labels or cache[1] != r.type:  # results share their config's labels
            type_labels = self._type_labels.get(r.type)
            if type_labels is None:
                label = f'type="{_escape(r.type)}"'
                type_labels = self._type_labels[r.type] = (label, label.encode())
            check_label = f'check="{_escape(r.check)}"'
            cache = entry.label_cache = (r.labels, r.type, check_label, type_labels[0],
                                         _labels({**r.labels, "check": r.check, "type": r.type}.items()),
                                         check_label.encode(), type_labels[1])
        _, _, check, type_, status_labels, check_b, type_b = cache
        chunks = {
            "sre_agent_check_status": f"sre_agent_check_status{{{status_labels}}} {int(r.status)}.0\n",
            "sre_agent_check_up": f"sre_agent_check_up{{{check},{type_}}} {'1.0' if r.status.up else '0.0'}\n",
            "sre_agent_check_last_run_timestamp_seconds": f"sre_agent_check_last_run_timestamp_seconds{{{check}}} "
                                                          f"{g(r.timestamp)}\n",
        }
        if r.observations:
            chunks["sre_agent_check_observation"] = "".join(
                f'sre_agent_check_observation{{{check},name="{_escape(name)}"}} {g(v)}\n'
                for name, v in r.observations.items())
        kept = entry.threshold_lines
        if r.thresholds and (kept is None or kept[0] is not r.thresholds):
            kept = entry.threshold_lines = (r.thresholds, "".join(
                f'sre_agent_check_threshold{{{check},level="{_escape(level)}",name="{_escape(name)}"}} {g(v)}\n'
                for name, levels in r.thresholds.items() for level, v in levels.items()).encode())
        for metric, labels, value in self._samples(r):
            line = f"{metric}{{{_labels(labels.items())}}} {g(value)}\n" if labels else f"{metric} {g(value)}\n"
            chunks[metric] = chunks.get(metric, "") + line
        args: list[bytes] = []
        acc, shown = 0, None
        for n in counts:
            if n or shown is None:  # cumulative counts repeat: one bytes object for a run of equal ones
                acc += n
                shown = _count(acc).encode()
            args += (check_b, type_b, shown)
        assert shown is not None
        args += (check_b, type_b, shown, check_b, type_b, g(total).encode())
        histogram = Formatted(self._histogram_template, tuple(args))
        run_lines, created_lines, om_lines = [], [], []
        for st in _RUN_STATUSES:
            if st in runs:
                count, at = runs[st]
                run_labels = f'{check},status="{st}",{type_}'
                total_line = f"{RUNS}{{{run_labels}}} {_count(int(count))}\n"
                run_lines.append(total_line)
                om_lines.append(total_line)
                if created:
                    created_line = f"sre_agent_check_runs_created{{{run_labels}}} {g(at)}\n"
                    created_lines.append(created_line)
                    om_lines.append(created_line)
        chunks[RUNS] = "".join(run_lines)
        if created:
            dur_created = f"{DURATION}_created{{{check},{type_}}} {g(since)}\n"
            chunks[DURATION + "@created"] = dur_created
            chunks[RUNS + "@created"] = "".join(created_lines)
            chunks[RUNS + "@om"] = "".join(om_lines)
        out: dict[str, Piece] = {key: text.encode("utf-8") for key, text in chunks.items()}
        out[DURATION] = histogram
        if created:  # the OpenMetrics histogram carries its _created line: one piece of bytes
            out[DURATION + "@om"] = histogram.render() + chunks[DURATION + "@created"].encode()
        if r.thresholds and kept is not None:
            out["sre_agent_check_threshold"] = kept[1]
        return tuple(map(out.get, self._keys[created]))

    def _family_headers(self, openmetrics: bool) -> dict[str, bytes]:
        """`# HELP` / `# TYPE` lines of each family, as prometheus_client prints them (computed once per format)."""
        headers = self._headers.get(openmetrics)
        if headers is None:
            generate = openmetrics_exposition.generate_latest if openmetrics else prometheus_client.generate_latest
            empty: dict[str, Metric] = {name: catalogue.gauge_family(name) for name in RESULT_GAUGES}
            empty.update({name: _family(name, fam) for name, fam in self._families.items()})
            empty[DURATION] = self._duration_family()
            empty[RUNS] = self._runs_family()
            headers = {name: generate(_Only(fam)).removesuffix(_OM_EOF) for name, fam in empty.items()}
            self._headers[openmetrics] = headers
        return headers

    def _created_header(self, key: str) -> bytes:
        d = catalogue.get(key)
        name = d.client_name + "_created"
        doc = d.help.replace("\\", r"\\").replace("\n", r"\n")
        return f"# HELP {name} {doc}\n# TYPE {name} gauge\n".encode()


def _count(n: int) -> str:
    """floatToGoString of a whole count, without the float round trip below a million (Go switches to e+06)."""
    return f"{n}.0" if 0 <= n < 1_000_000 else floatToGoString(n)


class _Only:
    """A collector of one family, to have prometheus_client print that family's header."""

    def __init__(self, metric: Metric) -> None:
        self._metric = metric

    def collect(self) -> Iterator[Metric]:
        yield self._metric


def _family(name: str, fam: MetricFamily) -> Metric:
    if fam.kind == "counter":
        return CounterMetricFamily(name, fam.documentation)
    return GaugeMetricFamily(name, fam.documentation)


class Metrics:
    """Every metric of the agent core, registered on one injected registry."""

    def __init__(self, registry: CollectorRegistry | None = None, families: dict[str, MetricFamily] | None = None,
                 created_series: bool = False) -> None:
        set_created_series(created_series)
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        self.results = CheckSeries(families if families is not None else check_type_families())
        self.registry.register(self.results)
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
        self.buffer_dropped = catalogue.counter("sre_agent_store_buffer_dropped_total", self.registry)
        self.buffer_dropped.labels("result")
        self.cluster_members = catalogue.gauge("sre_agent_cluster_members", self.registry)
        self.cluster_members.set(1)
        self.shard_checks = catalogue.gauge("sre_agent_shard_checks", self.registry)
        self.lease_age = catalogue.gauge("sre_agent_cluster_lease_age_seconds", self.registry)
        self.location_status = catalogue.gauge("sre_agent_check_location_status", self.registry)

    def observe(self, result: CheckResult) -> None:
        self.results.update(result)

    def exposition(self, accept: str | None) -> tuple[bytes, str]:
        """(/metrics body, its Content-Type) for a request's Accept header: OpenMetrics or the text format."""
        pieces, content_type = self.exposition_pieces(accept)
        return join_pieces(pieces), content_type

    def exposition_pieces(self, accept: str | None) -> tuple[list[Piece], str]:
        """`exposition`, as the pieces that joined make the body."""
        encoder, content_type = choose_encoder(accept or "")
        return self.results.render(self.registry, encoder, content_type.startswith("application/openmetrics-text")), \
            content_type

    def forget_verdict(self, check: str) -> None:
        """Drop a check's latest result and per-location statuses (its owner, another replica, exports them)."""
        self.results.forget(check)
        for labels in [k for k in self.location_status._metrics if k[0] == check]:
            with contextlib.suppress(KeyError):
                self.location_status.remove(*labels)

    def forget(self, check: str, type_: str) -> None:
        """Drop every series of a check removed by a reload (or moved to another replica)."""
        self.forget_verdict(check)
        with contextlib.suppress(KeyError):
            self.skipped.remove(check)

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
