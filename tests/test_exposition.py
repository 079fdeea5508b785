"""/metrics from cached per-check lines is the exposition prometheus_client would print.

`Metrics.exposition` concatenates each check's lines, rendered once per new
result, instead of formatting every sample on every scrape. These tests pin
that the shortcut changes nothing a scraper sees: the same lines as
prometheus_client's own `generate_latest` over the same registry (text format
and OpenMetrics, with and without `_created` series), lines of a check
refreshed when its next result arrives, a removed check's lines gone at once,
and no `_created` series unless `agent.created_series` asks.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.openmetrics import exposition as om
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from agent.check import MetricFamily
from agent.core import CheckResult, Sample, Status
from agent.metrics import Metrics, set_created_series

OPENMETRICS = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"
FAMILIES = {"sre_agent_backup_age_seconds": MetricFamily("gauge", "Age of the newest backup", ("check",)),
            "sre_agent_bench_events_total": MetricFamily("counter", "Events", ("check", "kind"))}


@pytest.fixture(autouse=True)
def _created_off() -> Iterator[None]:
    yield
    set_created_series(False)


def _result(check: str, status: Status = Status.OK, duration: float = 0.03, **kw: object) -> CheckResult:
    defaults: dict[str, object] = {
        "observations": {"latency_seconds": duration, "status_code": 200.0},
        "thresholds": {"latency_seconds": {"warning": 2.0, "critical": 4.0}},
        "labels": {"team": 'a "quoted"\\team', "service": "pay\nments"},
        "samples": [Sample("sre_agent_backup_age_seconds", 12.5), Sample("sre_agent_bench_events_total", 3, (("kind", "x"),))],
    }
    defaults.update(kw)
    return CheckResult(status, "fine", duration_seconds=duration, check=check, type="http",
                       timestamp=1_764_600_000.25, **defaults)  # type: ignore[arg-type]


def _metrics(created: bool = False) -> Metrics:
    m = Metrics(CollectorRegistry(auto_describe=True), families=dict(FAMILIES), created_series=created)
    for i, (status, duration) in enumerate([(Status.OK, 0.004), (Status.CRITICAL, 7.0), (Status.OK, 400.0)]):
        m.observe(_result("web-a", status, duration))
        m.observe(_result(f"web-{i}", Status.WARNING, 0.2, samples=[]))
    m.observe(_result("zahlung-ü", Status.OK, 0.07))  # not ASCII: histogram lengths count bytes
    return m


def _lines(body: bytes) -> list[str]:
    return sorted(body.decode().splitlines())


@pytest.mark.parametrize("created", [False, True])
def test_text_exposition_is_what_prometheus_client_prints(created: bool) -> None:
    m = _metrics(created)
    body, content_type = m.exposition(None)
    assert content_type.startswith("text/plain; version=0.0.4")
    assert body == generate_latest(m.registry)
    assert 'sre_agent_check_duration_seconds_bucket{check="web-a",le="300.0",type="http"} 2.0' in body.decode()
    assert 'sre_agent_check_runs_total{check="web-a",status="OK",type="http"} 2.0' in body.decode()
    assert ("sre_agent_check_runs_created{" in body.decode()) is created
    assert ("sre_agent_check_duration_seconds_created{" in body.decode()) is created


@pytest.mark.parametrize("created", [False, True])
def test_openmetrics_exposition_is_what_prometheus_client_prints(created: bool) -> None:
    m = _metrics(created)
    body, content_type = m.exposition(OPENMETRICS)
    assert content_type.startswith("application/openmetrics-text")
    assert body.decode().endswith("# EOF\n")
    assert body == om.generate_latest(m.registry)
    families = {f.name: f for f in text_string_to_metric_families(body.decode())}  # strict parser: order, EOF
    assert families["sre_agent_check_duration_seconds"].type == "histogram"
    assert families["sre_agent_check_runs"].type == "counter"


def test_a_new_result_replaces_the_cached_lines_and_a_removed_check_goes() -> None:
    m = _metrics()
    first = m.exposition(None)[0].decode()
    assert 'sre_agent_check_runs_total{check="web-a",status="CRITICAL",type="http"} 1.0' in first
    m.observe(_result("web-a", Status.CRITICAL, 0.5))
    second = m.exposition(None)[0].decode()
    assert 'sre_agent_check_runs_total{check="web-a",status="CRITICAL",type="http"} 2.0' in second
    assert 'sre_agent_check_status{check="web-a"' in second and "sre_agent_check_status{check=\"web-a\"" in first
    assert _lines(second.encode()) == _lines(generate_latest(m.registry))
    m.forget("web-a", "http")
    third = m.exposition(None)[0].decode()
    assert 'check="web-a"' not in third and 'check="web-1"' in third
    assert _lines(third.encode()) == _lines(generate_latest(m.registry))


def test_no_created_series_by_default_for_any_counter_or_histogram() -> None:
    m = Metrics(CollectorRegistry(auto_describe=True))
    m.observe(_result("web-a", samples=[]))
    m.schedule_lag.observe(0.01)
    m.skipped.labels("web-a").inc()
    body = m.exposition(None)[0].decode()
    assert "sre_agent_check_schedule_lag_seconds_count 1.0" in body
    assert "_created" not in body


class _View:
    """The little of the agent the /metrics handler reads."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics, self.config, self.scheduler, self.ready, self.port = metrics, None, None, True, None
        self.components: list[object] = []

    async def reload(self) -> tuple[bool, list[str]]:
        return True, []


async def test_metrics_endpoint_negotiates_format_and_gzips_when_asked() -> None:
    import gzip

    from aiohttp.test_utils import TestClient, TestServer

    from agent.api import build_app

    m = _metrics()
    async with TestClient(TestServer(build_app(_View(m)))) as client:  # type: ignore[arg-type]
        plain = await client.get("/metrics", headers={"Accept-Encoding": "identity"})
        assert plain.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        assert "Content-Encoding" not in plain.headers
        assert await plain.read() == generate_latest(m.registry)

        zipped = await client.get("/metrics", headers={"Accept-Encoding": "gzip"}, auto_decompress=False)
        assert zipped.headers["Content-Encoding"] == "gzip"
        assert gzip.decompress(await zipped.read()) == generate_latest(m.registry)

        openm = await client.get("/metrics", headers={"Accept": OPENMETRICS, "Accept-Encoding": "identity"})
        assert openm.headers["Content-Type"].startswith("application/openmetrics-text")
        assert await openm.read() == om.generate_latest(m.registry)


async def test_a_large_exposition_is_streamed_whole_with_its_length() -> None:
    import gzip

    from aiohttp.test_utils import TestClient, TestServer

    from agent.api import STREAM_BATCH, build_app

    m = Metrics(CollectorRegistry(auto_describe=True), families=dict(FAMILIES))
    for i in range(2000):
        m.observe(_result(f"check-{i:05d}" + ("-ü" if i % 7 == 0 else ""), Status.OK, 0.01 * (i % 50)))
    expected = m.exposition(None)[0]
    assert len(expected) > 3 * STREAM_BATCH  # several writes
    async with TestClient(TestServer(build_app(_View(m)))) as client:  # type: ignore[arg-type]
        plain = await client.get("/metrics", headers={"Accept-Encoding": "identity"})
        body = await plain.read()
        assert int(plain.headers["Content-Length"]) == len(body) and body == expected
        zipped = await client.get("/metrics", headers={"Accept-Encoding": "gzip"}, auto_decompress=False)
        assert gzip.decompress(await zipped.read()) == expected
        for encoding in ("identity", "gzip"):  # HEAD: the length, no body; the connection stays usable
            head = await client.head("/metrics", headers={"Accept-Encoding": encoding})
            assert head.status == 200 and await head.read() == b""
        again = await client.get("/metrics", headers={"Accept-Encoding": "identity"})
        assert await again.read() == expected
