"""Fixtures for the alerting QA regressions: a fresh store, clock and receivers per test."""

from __future__ import annotations

import pytest

from tests.alerting.helpers import FakeClock, Receivers, open_store


@pytest.fixture
async def store(tmp_path):
    s = await open_store(tmp_path)
    yield s
    await s.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def receivers() -> Receivers:
    return Receivers()
