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
from tests.pgcluster import APP_PASSWORD, APP_USER, PgCluster, pg_cluster  # noqa: F401 - the session fixture

#: (default_retention, raw_retention=..., max_size=...) -> a new store over the test's database
StoreFactory = Callable[..., Store]


def sqlite_backend(tmp_path: Path) -> StoreFactory:
    def make(default_retention: float = 3600.0, **kw: Any) -> Store:
        return SqliteStore(tmp_path / "state.db", default_retention=default_retention, **kw)

    return make


def postgresql_backend(tmp_path: Path, cluster: PgCluster) -> StoreFactory:
    """A fresh database per test on the session's cluster, reached as the password role (password apart)."""
    from agent.store.postgresql import PostgresStore

    db = cluster.create_database("store")
    url = f"postgresql://{APP_USER}@127.0.0.1:{cluster.port}/{db}"

    def make(default_retention: float = 3600.0, **kw: Any) -> Store:
        return PostgresStore(url, default_retention=default_retention, password=APP_PASSWORD, **kw)

    return make


BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.integration),
]


@pytest.fixture(params=BACKENDS)
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> StoreFactory:
    if request.param == "postgresql":
        return postgresql_backend(tmp_path, request.getfixturevalue("pg_cluster"))
    return sqlite_backend(tmp_path)


@pytest.fixture
async def store(make_store: StoreFactory) -> AsyncIterator[Store]:
    s = make_store()
    await s.open()
    yield s
    await s.close()
