"""Alerting's state in the store, and the one transaction that writes it.

Alert records, aggregation groups (with their repeat timers), the last status
of each check (for `depends_on`), silences and outbox rows all live in the
agent's store, so `kill -9` loses nothing: a `Batch` collects what one engine
cycle changed and `write_batch` commits it in a single transaction, outbox
rows included, before anything is sent. The store keeps alerting's objects as
documents (`to_dict`); this module turns them into its types and back.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from agent.alerting.dispatch import Group
from agent.alerting.lifecycle import AlertRecord
from agent.alerting.outbox import OutboxRow
from agent.alerting.silences import Silence
from agent.core import AlertState, Status
from agent.store import AlertChanges, GroupDoc, IncidentDoc, RecordDoc, SilenceDoc, Store

#: expired API silences are kept this long (for `silence list --all`), then pruned
SILENCE_RETENTION = 7 * 86400.0


@dataclass
class Snapshot:
    records: list[AlertRecord]
    groups: list[Group]
    statuses: dict[str, Status]
    silences: list[Silence]


@dataclass
class Batch:
    records: dict[str, AlertRecord] = field(default_factory=dict)
    deleted_records: set[str] = field(default_factory=set)
    groups: dict[str, Group] = field(default_factory=dict)
    deleted_groups: set[str] = field(default_factory=set)
    statuses: dict[str, tuple[Status, float]] = field(default_factory=dict)
    rows: list[OutboxRow] = field(default_factory=list)
    incidents: dict[str, IncidentDoc] = field(default_factory=dict)
    #: checks handed to another replica with this batch (their records carry the hand-over)
    release: set[str] = field(default_factory=set)

    def __bool__(self) -> bool:
        return bool(self.records or self.deleted_records or self.groups or self.deleted_groups
                    or self.statuses or self.rows or self.incidents or self.release)

    def note_incident(self, doc: IncidentDoc) -> None:
        """Add an incident change, merged with one already in the batch the way the store merges them."""
        known = self.incidents.get(doc.key)
        if known is not None:
            doc = replace(doc, failing_since=_first(known.failing_since, doc.failing_since),
                          acknowledged_at=_first(known.acknowledged_at, doc.acknowledged_at),
                          resolved_at=_first(doc.resolved_at, known.resolved_at))
        self.incidents[doc.key] = doc

    def merge(self, other: Batch) -> None:
        """Fold a batch that failed to commit into the next one (newer values win)."""
        for key, rec in other.records.items():
            self.records.setdefault(key, rec)
        self.deleted_records |= other.deleted_records - set(self.records)
        for key, group in other.groups.items():
            self.groups.setdefault(key, group)
        self.deleted_groups |= other.deleted_groups - set(self.groups)
        for key, status in other.statuses.items():
            self.statuses.setdefault(key, status)
        self.rows[:0] = other.rows
        self.release |= other.release
        newer, self.incidents = self.incidents, dict(other.incidents)
        for doc in newer.values():
            self.note_incident(doc)


def _first(a: float | None, b: float | None) -> float | None:
    return a if a is not None else b


def incident_change(old: AlertRecord | None, rec: AlertRecord, now: float) -> IncidentDoc | None:
    """What an alert record's change means for its incident: opened or changed while firing, or resolved."""
    firing = rec.state == AlertState.FIRING
    resolved = rec.state == AlertState.RESOLVED and old is not None and old.state == AlertState.FIRING
    if not (firing or resolved) or rec.starts_at is None:
        return None
    since = rec.failing_since if rec.failing_since is not None else (old.failing_since if old is not None else None)
    return IncidentDoc(key=f"{rec.dedup_key}:{int(rec.starts_at * 1000)}", dedup_key=rec.dedup_key, check=rec.check,
                       fired_at=rec.starts_at, failing_since=since, resolved_at=rec.ends_at if resolved else None,
                       doc={"type": rec.type, "severity": rec.severity.value, "summary": rec.summary,
                            "alert_key": rec.alert_key, "labels": dict(rec.labels)})


def changes(batch: Batch, owner: str | None = None) -> AlertChanges:
    """The batch as the store takes it (the documents are serialised by the store, on its thread).

    With an `owner` (replicas on a shared store) each replica's groups are its own documents,
    stored under `<owner>/<group key>`, and only the owner's checks are written (fencing)."""
    prefix = f"{owner}/" if owner else ""
    return AlertChanges(
        records=[RecordDoc(rec.dedup_key, rec.check, rec) for rec in batch.records.values()],
        deleted_records=list(batch.deleted_records),
        groups=[GroupDoc(prefix + g.key, g.receiver, g) for g in batch.groups.values()],
        deleted_groups=[prefix + k for k in batch.deleted_groups],
        statuses=dict(batch.statuses),
        outbox=list(batch.rows),
        incidents=list(batch.incidents.values()),
        owner=owner,
        release=sorted(batch.release))


async def write_batch(store: Store, batch: Batch, owner: str | None = None) -> None:
    await store.write_alert_changes(changes(batch, owner))


async def load(store: Store, checks: list[str] | None = None, groups: bool = True) -> Snapshot:
    snap = await store.load_alert_state(checks=checks, groups=groups)
    return Snapshot([AlertRecord.from_dict(d) for d in snap.records], [Group.from_dict(d) for d in snap.groups],
                    dict(snap.statuses), [Silence.from_dict(d) for d in snap.silences])


def _silence_doc(silence: Silence) -> SilenceDoc:
    return SilenceDoc(silence.id, silence.source, silence.ends_at, silence)


async def save_silence(store: Store, silence: Silence) -> None:
    await store.save_silence(_silence_doc(silence))


async def sync_config_silences(store: Store, silences: Iterable[Silence], now: float) -> None:
    """Config silences are whatever the config says now; old API silences are pruned."""
    await store.sync_silences("config", [_silence_doc(s) for s in silences], now - SILENCE_RETENTION)


async def forget_checks(store: Store, keep: set[str]) -> None:
    """Delete alert records and statuses of checks that are no longer configured."""
    await store.forget_checks(keep)
