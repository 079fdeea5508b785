"""The plain data that crosses the store interface, so no layer above needs a backend's types.

Callers hand the store documents and get mappings back: alerting turns its
records, groups and silences into documents (`to_dict`) and back (`from_dict`);
the store keeps each document as JSON text and never looks inside it. The few
columns a backend must query (a record's check, a group's receiver, a
silence's source and end) travel next to the document.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeAlias

from agent.core import Status


class SupportsToDict(Protocol):
    def to_dict(self) -> dict[str, Any]: ...


#: a JSON-able mapping, or an object whose `to_dict()` gives one. The store calls `to_dict()` itself,
#: on its own thread where it has one, so turning a big group into JSON does not hold up the event loop.
Doc: TypeAlias = Mapping[str, Any] | SupportsToDict


def doc_dict(doc: Doc) -> dict[str, Any]:
    """The mapping behind a document (for a backend about to serialise it)."""
    if isinstance(doc, Mapping):
        return doc if isinstance(doc, dict) else dict(doc)
    return doc.to_dict()


@dataclass(frozen=True)
class HistoryPoint:
    ts: float
    status: Status
    #: the run's duration (for an aggregate: the mean); None when not asked for
    duration: float | None = field(default=None, compare=False)
    #: results this point stands for: 1, or more for an aggregate of older history
    count: int = field(default=1, compare=False)


@dataclass(frozen=True)
class Bucket:
    """A slice of a check's history: how many results, how many good (OK or WARNING), the mean run
    duration and the worst status (CRITICAL worst; None when the slice has no result)."""

    start: float
    end: float
    total: int = 0
    good: int = 0
    mean_duration: float | None = None
    worst: Status | None = None


@dataclass
class OutboxEntry:
    """One queued notification. `id` is assigned by the store on insert; ids only grow."""

    receiver: str
    group_key: str
    idempotency_key: str
    created_at: float
    payload: dict[str, Any]
    next_attempt_at: float = 0.0
    attempts: int = 0
    last_error: str | None = None
    id: int | None = None
    #: one row per (alert transition, receiver): a second insert with the same key is skipped (its `id`
    #: stays None), so two replicas that both saw a transition queue one notification, not two
    transition_key: str | None = None
    #: the checks whose alerts the row carries: with `AlertChanges.owner` set, a row about a check another
    #: replica owns is not inserted (fencing, as for records). Not stored.
    checks: tuple[str, ...] = field(default=(), compare=False)


@dataclass(frozen=True)
class RecordDoc:
    """An alert record, by its dedup key; `check` lets `forget_checks` find it."""

    key: str
    check: str
    doc: Doc


@dataclass(frozen=True)
class GroupDoc:
    """An aggregation group (with its timers), by its key."""

    key: str
    receiver: str
    doc: Doc


@dataclass(frozen=True)
class SilenceDoc:
    """A silence, by id; `source` ("config", "api") and `ends_at` drive `sync_silences`."""

    id: str
    source: str
    ends_at: float
    doc: Doc


@dataclass(frozen=True)
class IncidentDoc:
    """One incident (an alert from firing to resolved), keyed by its alert and the moment it fired.

    Written on each change; the store keeps the first `failing_since` and `acknowledged_at` it was
    given and the latest `resolved_at` and document, so a writer need not read an incident back."""

    key: str
    dedup_key: str
    check: str
    fired_at: float
    doc: Doc
    failing_since: float | None = None
    acknowledged_at: float | None = None
    resolved_at: float | None = None


@dataclass(frozen=True)
class Incident:
    """An incident as read back: the columns, and the document as a mapping."""

    key: str
    dedup_key: str
    check: str
    fired_at: float
    failing_since: float | None
    acknowledged_at: float | None
    resolved_at: float | None
    doc: dict[str, Any]


@dataclass
class AlertChanges:
    """What one alerting cycle changed: written by `Store.write_alert_changes` in one transaction."""

    records: list[RecordDoc] = field(default_factory=list)
    deleted_records: list[str] = field(default_factory=list)
    groups: list[GroupDoc] = field(default_factory=list)
    deleted_groups: list[str] = field(default_factory=list)
    #: check -> (its last status, when it changed), for `depends_on`
    statuses: dict[str, tuple[Status, float]] = field(default_factory=dict)
    #: new outbox rows; each gets its `id` set by the write (a row whose `transition_key` is taken stays None)
    outbox: list[OutboxEntry] = field(default_factory=list)
    #: incidents opened, changed or resolved in the cycle
    incidents: list[IncidentDoc] = field(default_factory=list)
    #: the writing replica (shared stores): records and statuses of a check another replica owns are
    #: not written (fencing: a replica cut off from the store cannot overwrite the new owner's state)
    owner: str | None = None
    #: checks this replica gives up, in the same transaction as their last state (see `Store.claim_checks`)
    release: list[str] = field(default_factory=list)


@dataclass
class AlertSnapshot:
    """All of alerting's state as stored: documents as mappings, statuses by check."""

    records: list[dict[str, Any]]
    groups: list[dict[str, Any]]
    statuses: dict[str, Status]
    silences: list[dict[str, Any]]


@dataclass(frozen=True)
class Member:
    """A replica as the store knows it: its last heartbeat, on the store's clock."""

    name: str
    location: str | None
    started_at: float
    heartbeat_at: float
    lease: float


@dataclass(frozen=True)
class LocationResult:
    """One replica's latest result of a quorum check (`locations: N`), for the check's owner to combine."""

    check: str
    replica: str
    location: str | None
    status: Status
    ts: float
    summary: str
