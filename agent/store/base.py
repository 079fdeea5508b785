"""The state store's interface: everything the agent keeps across restarts, behind one ABC.

Callers (the daemon, alerting, SLO checks, the CLI) see only these operations
and the plain types of `agent.store.types`; which database holds the data, its
SQL and its schema migrations are a backend's business (`agent.store.sqlite`
today). The store is a lower layer than alerting: it stores alerting's
documents as JSON text without knowing what they are.

What a backend promises: every coroutine is one transaction; `write_alert_changes`
commits alert state *and* the cycle's outbox rows together, or nothing (that is
what makes `kill -9` lose no notification); outbox ids only grow; `open()` brings
an older database up to the current schema version without losing rows.

The outbox is a queue drained by one delivery worker per receiver, through three
operations that are the claim / ack / retry of a shared queue: `outbox_after`
hands a worker its receiver's oldest rows past the last id it holds (claim),
`outbox_delete_many` removes the rows whose send finished (ack) and
`outbox_reschedule` writes back a retry's attempts and due time (retry). With
one agent per state directory (a lock file makes it so) nobody else reads a
receiver's rows, so SQLite needs no lease (`shared` is False). A backend shared
by several agents (PostgreSQL, `shared` True) implements `outbox_after` as
`SELECT ... FOR UPDATE SKIP LOCKED` over rows whose claim is free, expired or
already this replica's (`member`), marking them claimed until now +
`claim_lease`; `outbox_renew` extends this replica's claims, `outbox_delete_many`
deletes only rows nobody else has claimed since, and a row whose agent died
is picked up by another once its claim runs out.

Replicas (shared backends; SQLite implements the same operations for one
process): `heartbeat` keeps a member row alive and lists the live members,
`claim_checks` makes this replica the owner of checks nobody live owns (the
previous owner released them with `AlertChanges.release`, or its lease ran
out), and `write_alert_changes` with `AlertChanges.owner` set writes only the
state of checks the writer owns. Times of leases and claims are the store's
clock, so replicas need not agree on theirs.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Sequence
from typing import TypeVar

from agent.core import CheckResult
from agent.secrets import redact
from agent.store.types import (
    AlertChanges,
    AlertSnapshot,
    Bucket,
    HistoryPoint,
    Incident,
    LocationResult,
    Member,
    OutboxEntry,
    SilenceDoc,
)

E = TypeVar("E", bound=OutboxEntry)


class StoreSchemaError(RuntimeError):
    """The database's schema is one this agent cannot use (written by a newer agent)."""


class Store(ABC):
    """Create, `await open()`, use, `await close()`. Each coroutine runs as one transaction."""

    #: resolved incidents are kept this long (for digests and reviews), then pruned
    INCIDENT_RETENTION = 90 * 86400.0

    #: history older than the raw retention is kept as aggregates over buckets of this many seconds
    BUCKET = 60.0
    #: while writes keep failing, one log line per this many seconds
    ERROR_LOG_INTERVAL = 60.0
    #: several agents use the same database (outbox claims and check ownership matter)
    shared: bool = False

    def __init__(self, default_retention: float = 2 * 86400, raw_retention: float = 3600.0,
                 max_size: int | None = None) -> None:
        self.default_retention = default_retention
        #: results younger than this are kept one by one; older ones become one aggregate per check per BUCKET
        self.raw_retention = min(raw_retention, default_retention)
        #: when the history takes more than this many bytes, its oldest part is deleted (alert state never is)
        self.max_size = max_size
        self._retention: dict[str, float] = {}
        #: called with the exception when a write fails (the daemon counts them: sre_agent_store_errors_total)
        self.on_error: Callable[[Exception], None] | None = None
        #: when writes started failing (None: the last write went through), and why; /readyz shows it
        self.failing_since: float | None = None
        self.last_error: str | None = None
        self._error_logged = 0.0
        #: this replica's name, for outbox claims (shared backends)
        self.member = ""
        #: how long an outbox claim holds without `outbox_renew`
        self.claim_lease = 30.0
        #: queued results kept in memory while writes fail; past it the oldest go (counted by `on_drop`)
        self.buffer_limit = 100_000
        #: called with how many queued results were dropped because the buffer was full
        self.on_drop: Callable[[int], None] | None = None

    def write_failed(self, exc: Exception, what: str, now: float | None = None) -> bool:
        """Record a failed write (for /readyz and the error counter); True when it is worth a log line
        (the first failure, then at most once per `ERROR_LOG_INTERVAL`), so a full disk is not logged 12
        times a second."""
        now = time.time() if now is None else now
        if self.failing_since is None:
            self.failing_since = now
        self.last_error = f"{what}: {type(exc).__name__}: {redact(str(exc))}"[:300]
        if self.on_error is not None:
            self.on_error(exc)
        if now - self._error_logged >= self.ERROR_LOG_INTERVAL:
            self._error_logged = now
            return True
        return False

    def write_succeeded(self) -> float | None:
        """Record a write that went through; returns since when writes had been failing, if they were."""
        since, self.failing_since, self.last_error = self.failing_since, None, None
        if since is not None:
            self._error_logged = 0.0
        return since

    # -- lifecycle ---------------------------------------------------------------------
    @abstractmethod
    async def open(self) -> None:
        """Connect, migrate the schema to the current version, start the history flusher."""

    @abstractmethod
    async def close(self) -> None:
        """Flush queued history, then disconnect (closing twice is harmless)."""

    # -- meta and schema -----------------------------------------------------------------
    @abstractmethod
    async def get_meta(self, key: str) -> str | None: ...

    @abstractmethod
    async def set_meta(self, key: str, value: str) -> None: ...

    @abstractmethod
    async def schema_version(self) -> int:
        """The schema version the open database is at (after `open()`: the backend's latest)."""

    # -- result history ------------------------------------------------------------------
    def set_retention(self, check: str, seconds: float) -> None:
        """Keep a check's history at least this long (SLOs over probe history need their window)."""
        self._retention[check] = max(seconds, self._retention.get(check, 0.0))

    @abstractmethod
    def add_result(self, result: CheckResult) -> None:
        """Queue a result for the next batched write (no I/O here)."""

    @abstractmethod
    async def flush(self) -> None:
        """Write the queued results now (a failure is logged and reported to `on_error`, not raised)."""

    @abstractmethod
    async def prune(self, now: float | None = None) -> int:
        """Roll results older than `raw_retention` into per-`BUCKET` aggregates, delete history older than
        its check's retention (`set_retention`, else the default), then trim the oldest history while the
        store is over `max_size`; returns how many rows went."""

    @abstractmethod
    async def history(self, check: str, since: float, until: float | None = None) -> list[HistoryPoint]:
        """A check's results in [since, until] (until: now), oldest first, queued ones included.

        Past the raw retention a point stands for one bucket: its start, its worst status, the mean
        duration and how many results it aggregates (`count`)."""

    @abstractmethod
    async def success_counts(self, check: str, since: float, until: float | None = None) -> tuple[int, int]:
        """(good, total) results in [since, until]; good = OK or WARNING.

        Exact while [since, until] is within the raw retention; past it, a bucket counts whole when its
        start is in the range (an edge error of at most one bucket)."""

    async def first_result_at(self, check: str) -> float | None:
        """When the oldest stored result of a check is from (a bucket's start past the raw retention);
        None if it has none. How far back its history reaches: an SLO over it reads windows it covers
        only in part. Backends should answer from an index; this default reads the whole history."""
        points = await self.history(check, 0.0, float("inf"))
        return points[0].ts if points else None

    @abstractmethod
    def size_bytes(self) -> int:
        """What the store takes on disk (or in the database) now, cheaply: for `sre_agent_store_size_bytes`."""

    @abstractmethod
    async def buckets(self, check: str, since: float, until: float, count: int) -> list[Bucket]:
        """[since, until) cut into `count` equal buckets, oldest first, each summarising its results
        (empty buckets included): for uptime bars and response-time sparklines without reading every row."""

    # -- alert state ---------------------------------------------------------------------
    @abstractmethod
    async def load_alert_state(self, checks: Collection[str] | None = None, groups: bool = True) -> AlertSnapshot:
        """Alert records and check statuses (of `checks`; None: of every check), groups (unless
        `groups` is False) and every silence."""

    @abstractmethod
    async def write_alert_changes(self, changes: AlertChanges) -> None:
        """One cycle's changes and its new outbox rows in one transaction; sets each new row's `id`.

        Upserts records, groups and statuses, deletes the deleted ones, inserts the outbox rows.
        If anything fails (say a duplicate idempotency key) nothing is written and it raises."""

    @abstractmethod
    async def incidents(self, since: float, until: float | None = None) -> list[Incident]:
        """Incidents open at any moment of [since, until] (fired by `until`, not resolved before `since`),
        by the time they fired. Resolved incidents are kept `INCIDENT_RETENTION` seconds."""

    @abstractmethod
    async def save_silence(self, silence: SilenceDoc) -> None:
        """Insert a silence or update its end and document (its source never changes)."""

    @abstractmethod
    async def sync_silences(self, source: str, silences: Sequence[SilenceDoc], expired_before: float) -> None:
        """Make the silences of `source` exactly these, and delete any silence that ended before `expired_before`."""

    @abstractmethod
    async def forget_checks(self, keep: Collection[str]) -> None:
        """Delete the alert records and statuses of checks not in `keep`."""

    # -- outbox (see the module docstring for claim / ack / retry) -----------------------
    @abstractmethod
    async def outbox_insert(self, rows: Sequence[OutboxEntry]) -> None:
        """Insert rows in one transaction, setting each one's `id` (alerting inserts via `write_alert_changes`)."""

    @abstractmethod
    async def outbox_insert_once(self, rows: Sequence[OutboxEntry], key: str, value: str) -> bool:
        """Record `key = value` and insert the rows, in one transaction, unless `key` already holds
        `value` (then nothing is written and it returns False): a daily digest is queued once per day,
        across restarts, and the day is recorded no later than the rows that send it."""

    @abstractmethod
    async def outbox_after(self, receiver: str, after_id: int, limit: int) -> list[OutboxEntry]:
        """Claim: up to `limit` of a receiver's rows with an id above `after_id`, oldest (lowest id) first."""

    @abstractmethod
    async def outbox_renew(self) -> int:
        """Extend this replica's outbox claims by `claim_lease`; how many it holds (0 where nothing is shared)."""

    @abstractmethod
    async def outbox_head(self, receiver: str) -> OutboxEntry | None:
        """A receiver's oldest row."""

    @abstractmethod
    async def outbox_rows(self, receiver: str | None = None) -> list[OutboxEntry]:
        """A receiver's rows (None: everyone's), by id."""

    @abstractmethod
    async def outbox_delete_many(self, rows: Sequence[E]) -> list[E]:
        """Ack: delete rows (by id) in one transaction; returns those that were still there."""

    @abstractmethod
    async def outbox_reschedule(self, row: OutboxEntry) -> None:
        """Retry: store a row's `attempts`, `next_attempt_at` and `last_error`."""

    @abstractmethod
    async def outbox_depth(self) -> dict[str, int]:
        """Rows per receiver (receivers with none are absent)."""

    @abstractmethod
    async def outbox_drop_except(self, receivers: Collection[str]) -> dict[str, int]:
        """Delete the rows of receivers not in `receivers`; how many went, per receiver."""

    # -- replicas (see the module docstring) ----------------------------------------------
    @abstractmethod
    async def now(self) -> float:
        """The store's clock (Unix seconds): what leases and claims are measured against."""

    @abstractmethod
    async def heartbeat(self, name: str, location: str | None, lease: float) -> list[Member]:
        """Renew (or create) this member's row for `lease` seconds; the live members, this one included, by name.

        Rows that have been dead for ten of their leases are deleted."""

    @abstractmethod
    async def leave(self, name: str) -> None:
        """Delete this member's row and give up its checks (a clean shutdown: the others take over at once)."""

    @abstractmethod
    async def claim_checks(self, owner: str, checks: Collection[str], live: Collection[str]) -> set[str]:
        """Become the owner of each check that has no owner, is `owner`'s already, or whose owner is not in
        `live`; returns the checks `owner` now owns (of those asked for)."""

    @abstractmethod
    async def check_owners(self) -> dict[str, str]:
        """Check -> owning replica, for every owned check."""

    @abstractmethod
    async def publish_location_results(self, results: Sequence[LocationResult]) -> None:
        """Upsert each replica's latest result of quorum checks (one row per check and replica)."""

    @abstractmethod
    async def location_results(self, checks: Collection[str]) -> dict[str, list[LocationResult]]:
        """The latest per-replica results of these checks, by check (replicas by name)."""
