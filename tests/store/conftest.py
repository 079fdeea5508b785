"""Fixtures for the store contract: one store per backend, over a database a test can reopen.

A backend is a function of the test's tmp_path giving a factory: each call of the
factory is a new, unopened store over the same database (so a test can close and
reopen). Adding a backend is one entry in `BACKENDS`, e.g.
`pytest.param(postgresql_backend, id="postgresql", marks=pytest.mark.integration)`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from agent.store import SqliteStore, Store

#: (default_retention, raw_retention=..., max_size=...) -> a new store over the test's database
StoreFactory = Callable[..., Store]


def sqlite_backend(tmp_path: Path) -> StoreFactory:
    def make(default_retention: float = 3600.0, **kw: Any) -> Store:
        return SqliteStore(tmp_path / "state.db", default_retention=default_retention, **kw)

    return make


BACKENDS = [
    pytest.param(sqlite_backend, id="sqlite"),
]


@pytest.fixture(params=BACKENDS)
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> StoreFactory:
    factory: Callable[[Path], StoreFactory] = request.param
    return factory(tmp_path)


@pytest.fixture
async def store(make_store: StoreFactory) -> AsyncIterator[Store]:
    s = make_store()
    await s.open()
    yield s
    await s.close()
