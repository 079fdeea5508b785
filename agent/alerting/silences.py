"""Why an alert is muted: silences, maintenance windows, inhibition, dependencies.

A muted firing alert keeps its state (the API shows it with `suppressed_by`)
but is left out of notifications; when the mute ends while it still fires, it
is sent. Silences come from the config (re-synced on every reload, ids derived
from their content) and from the API (kept in the store until they expire).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger

from agent.alerting.config import InhibitRule, MaintenanceWindow, SilenceConfig, full_match
from agent.core import Status

REASON_DEPENDENCY = "dependency"
REASON_SILENCED = "silenced"
REASON_INHIBITED = "inhibited"
REASONS = (REASON_SILENCED, REASON_INHIBITED, REASON_DEPENDENCY)


def _labels_match(labels: dict[str, str], equal: dict[str, str], regex: dict[str, str]) -> bool:
    return (all(labels.get(k) == v for k, v in equal.items())
            and all(full_match(p, labels.get(k, "")) for k, p in regex.items()))


@dataclass
class Silence:
    id: str
    matchers: dict[str, str]
    starts_at: float
    ends_at: float
    matchers_re: dict[str, str] = field(default_factory=dict)
    created_by: str = ""
    comment: str = ""
    source: str = "api"
    created_at: float = 0.0

    def status(self, now: float) -> str:
        if now < self.starts_at:
            return "pending"
        return "active" if now < self.ends_at else "expired"

    def matches(self, labels: dict[str, str]) -> bool:
        return _labels_match(labels, self.matchers, self.matchers_re)

    def to_dict(self, now: float | None = None) -> dict[str, Any]:
        d = asdict(self)
        d["starts_at_iso"] = _iso(self.starts_at)
        d["ends_at_iso"] = _iso(self.ends_at)
        if now is not None:
            d["status"] = self.status(now)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Silence:
        keys = {"id", "matchers", "starts_at", "ends_at", "matchers_re", "created_by", "comment", "source", "created_at"}
        return cls(**{k: v for k, v in d.items() if k in keys})

    @classmethod
    def from_config(cls, cfg: SilenceConfig) -> Silence:
        content = json.dumps([cfg.matchers, cfg.matchers_re, cfg.starts_at.isoformat(), cfg.end.isoformat()], sort_keys=True)
        return cls(id="cfg-" + hashlib.sha256(content.encode()).hexdigest()[:16], matchers=dict(cfg.matchers),
                   matchers_re=dict(cfg.matchers_re), starts_at=cfg.starts_at.timestamp(), ends_at=cfg.end.timestamp(),
                   created_by=cfg.created_by, comment=cfg.comment, source="config", created_at=cfg.starts_at.timestamp())


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts).astimezone().isoformat(timespec="seconds") if ts else ""


class Window:
    """A maintenance window: active from each cron fire time for `duration`."""

    def __init__(self, cfg: MaintenanceWindow, index: int) -> None:
        self.cfg = cfg
        self.name = cfg.name or f"maintenance_windows[{index}]"
        self._zone = ZoneInfo(cfg.timezone)
        self._trigger = CronTrigger.from_crontab(cfg.cron, timezone=self._zone)
        self._length = cfg.duration.total_seconds()

    def active(self, now: float) -> bool:
        return self.current(now) is not None

    def current(self, now: float) -> tuple[float, float] | None:
        """(start, end) of the window open at `now`, if one is."""
        since = datetime.fromtimestamp(now - self._length, self._zone)
        start = self._trigger.get_next_fire_time(None, since)
        if start is not None and now - self._length < start.timestamp() <= now:
            return start.timestamp(), start.timestamp() + self._length
        return None

    def matches(self, labels: dict[str, str]) -> bool:
        return _labels_match(labels, self.cfg.matchers, self.cfg.matchers_re)


@dataclass(frozen=True)
class Mute:
    """A silence or maintenance window in force now, as a status page or digest shows it."""

    kind: str  # "maintenance" (a window) or "silence"
    name: str
    comment: str
    starts_at: float
    ends_at: float
    matchers: dict[str, str] = field(default_factory=dict)
    matchers_re: dict[str, str] = field(default_factory=dict)
    source: str = "config"

    def matches(self, labels: dict[str, str]) -> bool:
        return _labels_match(labels, self.matchers, self.matchers_re)


@dataclass(frozen=True)
class Source:
    """A firing alert that may inhibit others."""

    dedup_key: str
    check: str
    labels: dict[str, str]


class Suppressor:
    """Decides whether (and why) an alert is muted at a moment."""

    def __init__(self, silences: Iterable[Silence] = (), windows: Iterable[MaintenanceWindow] = (),
                 inhibit: Iterable[InhibitRule] = ()) -> None:
        self.silences: dict[str, Silence] = {s.id: s for s in silences}
        self.windows = [Window(w, i) for i, w in enumerate(windows)]
        self.inhibit = list(inhibit)

    def configure(self, windows: Iterable[MaintenanceWindow], inhibit: Iterable[InhibitRule],
                  config_silences: Iterable[Silence]) -> None:
        self.windows = [Window(w, i) for i, w in enumerate(windows)]
        self.inhibit = list(inhibit)
        self.silences = {k: s for k, s in self.silences.items() if s.source != "config"}
        self.silences.update({s.id: s for s in config_silences})

    def signature(self, now: float) -> tuple[Any, ...]:
        """Everything time-dependent that `check` reads: the silences active at `now` (in the order they
        are tried) and which maintenance windows are open. Mutes can only move when this does, or an
        alert, a dependency's status, the firing sources or the config does."""
        silences = tuple((s.id, tuple(s.matchers.items()), tuple(s.matchers_re.items()))
                         for s in self.silences.values() if s.status(now) == "active")
        return silences, tuple(w.active(now) for w in self.windows)

    def is_source(self, labels: dict[str, str]) -> bool:
        """Whether an alert with these labels, firing, could inhibit another."""
        return any(_labels_match(labels, r.source_match, r.source_match_re) for r in self.inhibit)

    def active_silences(self, now: float) -> list[Silence]:
        return [s for s in self.silences.values() if s.status(now) == "active"]

    def in_force(self, now: float) -> list[Mute]:
        """Maintenance windows open and silences active at `now`, earliest end first."""
        out = [Mute("silence", s.comment or s.id, s.comment, s.starts_at, s.ends_at, dict(s.matchers),
                    dict(s.matchers_re), s.source) for s in self.active_silences(now)]
        for w in self.windows:
            span = w.current(now)
            if span is not None:
                out.append(Mute("maintenance", w.name, w.cfg.comment, span[0], span[1], dict(w.cfg.matchers),
                                dict(w.cfg.matchers_re)))
        return sorted(out, key=lambda m: (m.ends_at, m.name))

    def check(self, dedup_key: str, labels: dict[str, str], depends_on: Iterable[str], statuses: dict[str, Status],
              sources: list[Source], now: float) -> tuple[str, str] | None:
        """(reason, suppressed_by) for the first mute that applies, or None."""
        for dep in depends_on:
            status = statuses.get(dep)
            if status is not None and not status.up:
                return REASON_DEPENDENCY, f"dependency:{dep}"
        for s in self.silences.values():
            if s.status(now) == "active" and s.matches(labels):
                return REASON_SILENCED, f"silence:{s.id}"
        for w in self.windows:
            if w.matches(labels) and w.active(now):
                return REASON_SILENCED, f"maintenance:{w.name}"
        for rule in self.inhibit:
            if not _labels_match(labels, rule.target_match, rule.target_match_re):
                continue
            for src in sources:
                if src.dedup_key != dedup_key and _labels_match(src.labels, rule.source_match, rule.source_match_re) \
                        and all(src.labels.get(k) == labels.get(k) for k in rule.equal):
                    return REASON_INHIBITED, f"inhibited:{src.check}"
        return None
