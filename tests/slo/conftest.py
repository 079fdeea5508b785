"""Fixtures for SLO tests: a real Prometheus with 30 days of synthetic traffic."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from tests.slo.promserver import PromServer, start_prometheus


@pytest.fixture(scope="session")
def prom(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PromServer]:
    missing = [b for b in ("prometheus", "promtool") if shutil.which(b) is None]
    if missing:
        pytest.skip(f"{' and '.join(missing)} not installed (Debian package `prometheus`)")
    yield from start_prometheus(tmp_path_factory.mktemp("prometheus"))
