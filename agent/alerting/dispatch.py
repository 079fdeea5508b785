"""Aggregation groups and their timers: when a receiver is told what.

Alertmanager's rules, with time passed in: `group_wait` before the first
notification of a new group, `group_interval` between notifications when the
group changes (an alert joins, changes severity or resolves), `repeat_interval`
for a group that still fires unchanged. A group remembers what it last told
its receiver (`notified`), which is what makes a restart quiet: an alert
already paged is not paged again until its repeat timer (persisted) is due.

An alert whose labels move it to another group of the same receiver (a
severity change, a reload with a new `group_by`) carries what was notified
with it, so the receiver hears an update, not a resolve plus a new page.
One that moves to other receivers while it fires (warning -> slack becomes
critical -> pagerduty) is never announced as resolved: the receiver it leaves
gets it as MOVED with `moved_to` (escalated to critical, now in pagerduty),
and the first notification of a receiver it joins carries `moved_from`.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field, replace
from typing import Any

from agent.alerting.route import Route, Timing
from agent.core import Alert, AlertState, Handoff, Severity


def fingerprint(alert: Alert) -> list[str]:
    return [alert.state.value, alert.severity.value]


def _told_severity(group: Group, dedup_key: str) -> Severity:
    """The severity this group last told its receiver for an alert (its current one if never told)."""
    told = group.notified.get(dedup_key)
    return Severity(told[1]) if told else group.alerts[dedup_key].severity


@dataclass
class Group:
    key: str
    receiver: str
    route_id: str
    labels: dict[str, str]
    timing: Timing
    created_at: float
    alerts: dict[str, Alert] = field(default_factory=dict)
    notified: dict[str, list[str]] = field(default_factory=dict)
    last_sent_at: float | None = None
    next_flush: float | None = None
    #: alerts that came from other receivers and have not been notified here yet: where from
    arrivals: dict[str, Handoff] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "receiver": self.receiver, "route_id": self.route_id, "labels": self.labels,
                "timing": [self.timing.group_wait, self.timing.group_interval, self.timing.repeat_interval],
                "created_at": self.created_at, "alerts": {k: a.to_dict() for k, a in self.alerts.items()},
                "notified": self.notified, "last_sent_at": self.last_sent_at, "next_flush": self.next_flush,
                "arrivals": {k: h.to_dict() for k, h in self.arrivals.items()}}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Group:
        arrivals = {k: h for k, v in d.get("arrivals", {}).items() if (h := Handoff.from_dict(v)) is not None}
        return cls(key=d["key"], receiver=d["receiver"], route_id=d["route_id"], labels=d["labels"],
                   timing=Timing(*d["timing"]), created_at=d["created_at"],
                   alerts={k: Alert.from_dict(a) for k, a in d["alerts"].items()}, notified=d["notified"],
                   last_sent_at=d["last_sent_at"], next_flush=d["next_flush"], arrivals=arrivals)


def handover_entry(group: Group, dedup_key: str) -> dict[str, Any]:
    """What `group` knows of one of its alerts, as `Dispatcher.adopt` takes it."""
    return {"key": group.key, "receiver": group.receiver, "route_id": group.route_id, "labels": dict(group.labels),
            "timing": [group.timing.group_wait, group.timing.group_interval, group.timing.repeat_interval],
            "created_at": group.created_at, "alert": group.alerts[dedup_key].to_dict(),
            "notified": group.notified.get(dedup_key), "last_sent_at": group.last_sent_at,
            "next_flush": group.next_flush}


@dataclass
class Flush:
    """One notification to enqueue: a group's unmuted firing alerts plus its notified resolves."""

    group: Group
    alerts: list[Alert]
    repeat: bool
    #: dedup keys of the firing alerts this group tells its receiver about for the first time
    new: tuple[str, ...] = ()

    @property
    def kind(self) -> str:
        if any(a.state == AlertState.FIRING for a in self.alerts):
            return "firing"
        return "moved" if any(a.state == AlertState.MOVED for a in self.alerts) else "resolved"


class Dispatcher:
    """Groups by key. Two indexes keep per-alert work independent of the number of groups: which
    groups hold an alert, and a heap of flush times (entries whose group or time moved on are skipped)."""

    def __init__(self, root: Route | None = None) -> None:
        self.root = root
        self.groups: dict[str, Group] = {}
        self.dirty: set[str] = set()
        self.deleted: set[str] = set()
        self._by_alert: dict[str, set[str]] = {}  # dedup key -> keys of the groups holding it
        self._order: dict[str, int] = {}  # group key -> when it entered `groups` (their iteration order)
        self._added = 0
        self._due: list[tuple[float, int, str]] = []  # (next_flush, order, group key)

    # -- state ------------------------------------------------------------------
    def load(self, groups: list[Group]) -> None:
        self.groups, self._by_alert, self._order, self._due = {}, {}, {}, []
        for group in groups:
            self._add(group)

    def groups_of(self, dedup_key: str) -> list[Group]:
        """The groups holding an alert, in `groups` order."""
        keys = self._by_alert.get(dedup_key)
        if not keys:
            return []
        return [self.groups[k] for k in sorted(keys, key=self._order.__getitem__)]

    def next_due(self) -> float | None:
        while self._due:
            when, order, key = self._due[0]
            if self._current(when, order, key):
                return when
            heapq.heappop(self._due)
        return None

    def take_changes(self) -> tuple[list[Group], list[str]]:
        changed = [self.groups[k] for k in self.dirty if k in self.groups]
        deleted = [k for k in self.deleted if k not in self.groups]
        self.dirty, self.deleted = set(), set()
        return changed, deleted

    def _add(self, group: Group) -> None:
        self.groups[group.key] = group
        self._added += 1
        self._order[group.key] = self._added
        for dedup_key in group.alerts:
            self._by_alert.setdefault(dedup_key, set()).add(group.key)
        self._timer(group)

    def _drop(self, key: str) -> None:
        group = self.groups.pop(key, None)
        if group is not None:
            for dedup_key in group.alerts:
                self._unindex(dedup_key, key)
            del self._order[key]
        self.dirty.discard(key)
        self.deleted.add(key)

    def _unindex(self, dedup_key: str, group_key: str) -> None:
        keys = self._by_alert.get(dedup_key)
        if keys is not None:
            keys.discard(group_key)
            if not keys:
                del self._by_alert[dedup_key]

    def _timer(self, group: Group) -> None:
        """Note a group's (new) `next_flush`; call after every change of it."""
        if group.next_flush is None:
            return
        if len(self._due) > 2 * len(self.groups) + 64:  # mostly superseded entries: start afresh
            self._due = [(g.next_flush, self._order[g.key], g.key) for g in self.groups.values()
                         if g.next_flush is not None]
            heapq.heapify(self._due)
        else:
            heapq.heappush(self._due, (group.next_flush, self._order[group.key], group.key))

    def _current(self, when: float, order: int, key: str) -> bool:
        group = self.groups.get(key)
        return group is not None and group.next_flush == when and self._order[key] == order

    def drop_receiver(self, receiver: str) -> int:
        keys = [k for k, g in self.groups.items() if g.receiver == receiver]
        for k in keys:
            self._drop(k)
        return len(keys)

    # -- hand-over between replicas ------------------------------------------------------
    def release(self, dedup_key: str) -> list[dict[str, Any]]:
        """Take an alert out of its groups without telling anyone (its check moved to another replica);
        returns what each group knew of it, for `adopt` on the new owner."""
        out = []
        for group in self.groups_of(dedup_key):
            out.append(handover_entry(group, dedup_key))
            group.alerts.pop(dedup_key, None)
            group.notified.pop(dedup_key, None)
            self._unindex(dedup_key, group.key)
            self.dirty.add(group.key)
            if not group.alerts:
                self._drop(group.key)
        return out

    def adopt(self, dedup_key: str, entries: list[dict[str, Any]]) -> None:
        """Put an alert into the groups another replica had it in, with what they had notified and
        their timers, so it is neither paged again nor forgotten (a pending resolve still goes)."""
        for e in entries:
            key = e["key"]
            group = self.groups.get(key)
            if group is None:
                group = Group(key=key, receiver=e["receiver"], route_id=e["route_id"], labels=e["labels"],
                              timing=Timing(*e["timing"]), created_at=e["created_at"], last_sent_at=e["last_sent_at"])
                self._add(group)
                self.deleted.discard(key)
            group.alerts[dedup_key] = Alert.from_dict(e["alert"])
            self._by_alert.setdefault(dedup_key, set()).add(key)
            if e.get("notified") is not None:
                group.notified[dedup_key] = list(e["notified"])
            sent = e.get("last_sent_at")
            if sent is not None and (group.last_sent_at is None or group.last_sent_at < sent):
                group.last_sent_at = sent
            due = e.get("next_flush")
            if due is not None:
                group.next_flush = due if group.next_flush is None else min(group.next_flush, due)
                self._timer(group)
            self.dirty.add(key)

    # -- alerts in --------------------------------------------------------------------
    def update(self, alert: Alert, now: float) -> None:
        """Put an alert's new snapshot into the groups it routes to (and out of the others)."""
        key_ = alert.dedup_key
        current = {g.key: g for g in self.groups_of(key_)}
        targets: dict[str, Route] = {}
        if alert.state == AlertState.FIRING and self.root is not None:
            for route in self.root.destinations(alert.labels):
                targets.setdefault(route.group_key(alert.labels), route)
        receivers = tuple(sorted({r.receiver for r in targets.values()}))
        # receivers that were told this alert fires and are losing it to `receivers`: with what severity
        told = {g.receiver: _told_severity(g, key_) for k, g in current.items()
                if k not in targets and g.receiver not in receivers and key_ in g.notified
                and g.alerts[key_].state in (AlertState.FIRING, AlertState.MOVED)}
        for key, route in targets.items():
            group = self.groups.get(key)
            if group is None:
                group = Group(key=key, receiver=route.receiver, route_id=route.id,
                              labels=route.group_labels(alert.labels), timing=route.timing, created_at=now)
                self._add(group)
                self.deleted.discard(key)
            group.timing = route.timing
            if key_ not in group.alerts:
                self._adopt(group, key_, [g for k, g in current.items() if k not in targets])
                if told and key_ not in group.notified:
                    group.arrivals[key_] = Handoff.between(
                        max(told.values(), key=lambda s: s.rank), alert.severity, tuple(sorted(told)))
            self._put(group, alert, now)
        for key, group in current.items():
            if key in targets or key_ not in group.alerts:
                continue
            if receivers and group.receiver not in receivers:
                left = replace(alert, state=AlertState.MOVED, moved_from=None,
                               moved_to=Handoff.between(_told_severity(group, key_), alert.severity, receivers))
                self._put(group, left, now)
                continue
            ended = Alert.from_dict({**alert.to_dict(), "state": AlertState.RESOLVED.value,
                                     "ends_at": alert.ends_at or now})
            self._put(group, ended, now)

    def _adopt(self, group: Group, dedup_key: str, leaving: list[Group]) -> None:
        """Move what a same-receiver group notified about this alert into `group`."""
        for old in leaving:
            if old.receiver != group.receiver:
                continue
            if dedup_key in old.notified:
                group.notified[dedup_key] = old.notified.pop(dedup_key)
                if old.last_sent_at is not None and (group.last_sent_at is None or group.last_sent_at < old.last_sent_at):
                    group.last_sent_at = old.last_sent_at
            if dedup_key in old.arrivals:
                group.arrivals[dedup_key] = old.arrivals.pop(dedup_key)
            old.alerts.pop(dedup_key, None)
            self._unindex(dedup_key, old.key)
            self.dirty.add(old.key)
            if not old.alerts:
                self._drop(old.key)

    def _put(self, group: Group, alert: Alert, now: float) -> None:
        before = group.alerts.get(alert.dedup_key)
        group.alerts[alert.dedup_key] = alert
        if before is None:
            self._by_alert.setdefault(alert.dedup_key, set()).add(group.key)
        self.dirty.add(group.key)
        if before is None or fingerprint(before) != fingerprint(alert) or before.suppressed_by != alert.suppressed_by:
            self._schedule(group, now)

    def _schedule(self, group: Group, now: float) -> None:
        if group.last_sent_at is None:
            due = group.created_at + group.timing.group_wait
        else:
            due = max(now, group.last_sent_at + group.timing.group_interval)
        group.next_flush = due if group.next_flush is None else min(group.next_flush, due)
        self._timer(group)

    # -- notifications out ----------------------------------------------------------------
    def flush_due(self, now: float) -> list[Flush]:
        """Flush every group whose time has come, in `groups` order."""
        due: set[tuple[int, str]] = set()
        while self._due and self._due[0][0] <= now:
            when, order, key = heapq.heappop(self._due)
            if self._current(when, order, key):
                due.add((order, key))
        out: list[Flush] = []
        for _order, key in sorted(due):
            flush = self._flush(self.groups[key], now)
            if flush is not None:
                out.append(flush)
        return out

    def _flush(self, group: Group, now: float) -> Flush | None:
        group.next_flush = None
        self.dirty.add(group.key)
        firing = [a for a in group.alerts.values() if a.state == AlertState.FIRING and not a.suppressed_by]
        resolved = [a for a in group.alerts.values() if a.state != AlertState.FIRING and a.dedup_key in group.notified]
        changed = bool(resolved) or any(group.notified.get(a.dedup_key) != fingerprint(a) for a in firing)
        repeat = bool(firing) and group.last_sent_at is not None \
            and now - group.last_sent_at >= group.timing.repeat_interval
        flush = None
        if firing or resolved:
            if changed or repeat:
                shown = [replace(a, moved_from=group.arrivals[a.dedup_key]) if a.dedup_key in group.arrivals else a
                         for a in firing]
                new = tuple(a.dedup_key for a in firing if a.dedup_key not in group.notified)
                flush = Flush(group, sorted(shown + resolved, key=lambda a: (a.starts_at, a.dedup_key)),
                              repeat and not changed, new)
                group.last_sent_at = now
                for a in firing:
                    group.notified[a.dedup_key] = fingerprint(a)
                    group.arrivals.pop(a.dedup_key, None)
        for a in [a for a in group.alerts.values() if a.state != AlertState.FIRING]:
            group.alerts.pop(a.dedup_key)
            self._unindex(a.dedup_key, group.key)
            group.notified.pop(a.dedup_key, None)
            group.arrivals.pop(a.dedup_key, None)
        if not group.alerts:
            self._drop(group.key)
        elif group.last_sent_at is not None and any(a.state == AlertState.FIRING for a in group.alerts.values()):
            due = group.last_sent_at + group.timing.repeat_interval
            group.next_flush = due if due > now else now + group.timing.repeat_interval
            self._timer(group)
        return flush
