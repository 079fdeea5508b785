"""Durable state behind one interface: `Store` (the operations), `SqliteStore` (the default backend).

Callers take a `Store` and use only its operations and the plain types below;
`for_state_dir()` (or `open_store()`, which also opens it) picks the
backend for a state directory, `for_state()` the backend of `agent.state`:
SQLite in the state directory when it is unset, PostgreSQL (`agent.store.postgresql`,
imported only then, with its driver) for a `postgresql://` URL.
"""

from __future__ import annotations

from pathlib import Path

from agent.store.base import Store, StoreSchemaError
from agent.store.sqlite import SqliteStore
from agent.store.types import (
    AlertChanges,
    AlertSnapshot,
    Bucket,
    Doc,
    GroupDoc,
    HistoryPoint,
    Incident,
    IncidentDoc,
    LocationResult,
    Member,
    OutboxEntry,
    RecordDoc,
    SilenceDoc,
)


def for_state_dir(state_dir: str | Path, default_retention: float, *, raw_retention: float = 3600.0,
                  max_size: int | None = None) -> Store:
    """The agent's store for a state directory (not opened yet): SQLite's `state.db` in it."""
    return SqliteStore(Path(state_dir) / "state.db", default_retention, raw_retention, max_size)


POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def for_state(state: str | None, state_dir: str | Path, default_retention: float, *,
              password: str | None = None, raw_retention: float = 3600.0, max_size: int | None = None) -> Store:
    """The store `agent.state` names (not opened yet): PostgreSQL for a URL, else SQLite in `state_dir`."""
    if state is None:
        return for_state_dir(state_dir, default_retention, raw_retention=raw_retention, max_size=max_size)
    if not state.startswith(POSTGRES_SCHEMES):
        raise ValueError("agent.state must be a postgresql:// URL (or unset for SQLite in agent.state_dir)")
    try:
        from agent.store.postgresql import PostgresStore  # the driver is loaded only for a PostgreSQL state
    except ModuleNotFoundError as exc:
        raise OSError(f"agent.state is a PostgreSQL URL but the driver is missing ({exc.name}): "
                      "pip install 'sre-agent[sql]'") from None

    return PostgresStore(state, default_retention, password=password, raw_retention=raw_retention, max_size=max_size)


async def open_store(state_dir: str | Path, default_retention: float) -> Store:
    """The agent's store for a state directory, opened (close it with `await store.close()`)."""
    store = for_state_dir(state_dir, default_retention)
    try:
        await store.open()
    except BaseException:
        await store.close()
        raise
    return store


__all__ = [
    "AlertChanges",
    "AlertSnapshot",
    "Bucket",
    "Doc",
    "GroupDoc",
    "HistoryPoint",
    "Incident",
    "IncidentDoc",
    "LocationResult",
    "Member",
    "OutboxEntry",
    "RecordDoc",
    "SilenceDoc",
    "SqliteStore",
    "Store",
    "StoreSchemaError",
    "POSTGRES_SCHEMES",
    "for_state",
    "for_state_dir",
    "open_store",
]
