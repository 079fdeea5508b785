"""Durable state behind one interface: `Store` (the operations), `SqliteStore` (the default backend).

Callers take a `Store` and use only its operations and the plain types below;
`for_state_dir()` (or `open_store()`, which also opens it) picks the
backend for a state directory.
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
    OutboxEntry,
    RecordDoc,
    SilenceDoc,
)


def for_state_dir(state_dir: str | Path, default_retention: float, *, raw_retention: float = 3600.0,
                  max_size: int | None = None) -> Store:
    """The agent's store for a state directory (not opened yet): SQLite's `state.db` in it."""
    return SqliteStore(Path(state_dir) / "state.db", default_retention, raw_retention, max_size)


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
    "OutboxEntry",
    "RecordDoc",
    "SilenceDoc",
    "SqliteStore",
    "Store",
    "StoreSchemaError",
    "for_state_dir",
    "open_store",
]
