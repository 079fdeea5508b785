"""The daily digest as receivers see it: the morning checklist, one document, one set of words.

A `Digest` is built by the agent (`agent.digest`) from what it knows at send
time and travels through the outbox like any notification (`kind="digest"`,
the document in `extra["digest"]`), so it is durable and retried. Receivers
render it: Slack as Block Kit sections, email as HTML and plain text, the
webhook as JSON, the log as lines; all from `sections()` here, so every
channel says the same. Paging receivers (PagerDuty, Alertmanager) do not
take digests: a morning summary must not wake anyone.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from agent import humanize

from .base import Notification

KIND = "digest"
#: how long ago an incident may have ended and still be in the digest
INCIDENT_WINDOW = 24 * 3600.0
_ORDER = {"CRITICAL": 0, "UNKNOWN": 1, "WARNING": 2, "OK": 3}


@dataclass
class FailingCheck:
    check: str
    type: str
    status: str
    summary: str
    since: float | None = None


@dataclass
class IncidentLine:
    check: str
    severity: str
    summary: str
    fired_at: float
    failing_since: float | None = None
    acknowledged_at: float | None = None
    resolved_at: float | None = None

    @property
    def started_at(self) -> float:
        return self.failing_since if self.failing_since is not None else self.fired_at

    @property
    def detect_seconds(self) -> float | None:
        """From the first failing result to the alert firing (time to detect)."""
        return self.fired_at - self.failing_since if self.failing_since is not None else None

    @property
    def ack_seconds(self) -> float | None:
        """From the alert firing to its acknowledgement (a silence through the API)."""
        return self.acknowledged_at - self.fired_at if self.acknowledged_at is not None else None

    @property
    def resolve_seconds(self) -> float | None:
        """From the first failing result to the resolve (time to recover)."""
        return self.resolved_at - self.started_at if self.resolved_at is not None else None


@dataclass
class SloLine:
    name: str
    status: str
    objective: float | None = None
    budget_left: float | None = None
    #: window label -> burn rate (1 = spending the budget exactly over the SLO window)
    burn: dict[str, float] = field(default_factory=dict)


@dataclass
class BackupLine:
    check: str
    status: str
    age_seconds: float | None = None
    rpo_seconds: float | None = None
    drill_ok: bool | None = None
    restore_seconds: float | None = None
    drill_data_age_seconds: float | None = None


@dataclass
class DatasetLine:
    check: str
    status: str
    age_seconds: float


@dataclass
class CertLine:
    check: str
    status: str
    days_left: float


@dataclass
class Section:
    title: str
    lines: list[str]
    #: "ok" when there is nothing to look at, else "attention"
    tone: str = "attention"


@dataclass
class Digest:
    day: str
    timezone: str
    generated_at: float
    checks: int = 0
    title: str = "Daily digest"
    agent_url: str = ""
    failing: list[FailingCheck] = field(default_factory=list)
    incidents: list[IncidentLine] = field(default_factory=list)
    slos: list[SloLine] = field(default_factory=list)
    backups: list[BackupLine] = field(default_factory=list)
    datasets: list[DatasetLine] = field(default_factory=list)
    certs: list[CertLine] = field(default_factory=list)
    cert_days: float = 14.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Digest:
        d = dict(d)
        lists = {"failing": FailingCheck, "incidents": IncidentLine, "slos": SloLine, "backups": BackupLine,
                 "datasets": DatasetLine, "certs": CertLine}
        for key, item in lists.items():
            d[key] = [item(**x) for x in d.get(key, [])]
        return cls(**d)

    @property
    def zone(self) -> ZoneInfo:
        try:
            return ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            return ZoneInfo("UTC")

    @property
    def subject(self) -> str:
        """`Daily digest 2026-05-01: 2 failing, 3 incidents`."""
        return f"{self.title} {self.day}: {self.headline()}"

    def headline(self) -> str:
        parts = [f"{len(self.failing)} failing" if self.failing else "nothing failing",
                 f"{len(self.incidents)} incident{'s' if len(self.incidents) != 1 else ''} in 24 h"]
        low = [s for s in self.slos if s.budget_left is not None and s.budget_left < 0.25]
        if low:
            parts.append(f"{len(low)} SLO{'s' if len(low) != 1 else ''} low on budget")
        if self.certs:
            parts.append(f"{len(self.certs)} certificate{'s' if len(self.certs) != 1 else ''} expiring")
        bad = [b for b in self.backups if b.status != "OK" or b.drill_ok is False]
        if bad:
            parts.append(f"{len(bad)} backup{'s' if len(bad) != 1 else ''} to look at")
        return ", ".join(parts)

    # -- the words, shared by every receiver ----------------------------------------------------

    def _at(self, ts: float | None) -> str:
        """`07:10` today (in the digest's zone), `04-30 23:10` before."""
        if ts is None:
            return "?"
        zone = self.zone
        moment = datetime.fromtimestamp(ts, zone)
        today = datetime.fromtimestamp(self.generated_at, zone).date()
        return moment.strftime("%H:%M" if moment.date() == today else "%m-%d %H:%M")

    def sections(self) -> list[Section]:
        now = self.generated_at
        out: list[Section] = []
        failing = sorted(self.failing, key=lambda f: (_ORDER.get(f.status, 9), f.check))
        out.append(Section(f"Failing now ({len(failing)} of {self.checks} checks)",
                           [f"{f.status} {f.check} ({f.type}): {_line(f.summary)}"
                            + (f" · since {self._at(f.since)}, {humanize.duration(now - f.since)}" if f.since else "")
                            for f in failing] or ["Nothing is failing."], "attention" if failing else "ok"))
        out.append(Section(self._incidents_title(), [self._incident(i) for i in self.incidents]
                           or ["No incidents in the last 24 hours."], "attention" if self.incidents else "ok"))
        if self.slos:
            out.append(Section("SLOs", [self._slo(s) for s in self.slos],
                               "attention" if any(s.status != "OK" for s in self.slos) else "ok"))
        if self.backups:
            out.append(Section("Backups", [self._backup(b) for b in self.backups],
                               "attention" if any(b.status != "OK" or b.drill_ok is False for b in self.backups)
                               else "ok"))
        if self.datasets:
            out.append(Section("Stalest datasets",
                               [f"{d.check}: {humanize.duration(d.age_seconds)} old [{d.status}]" for d in self.datasets],
                               "attention" if any(d.status != "OK" for d in self.datasets) else "ok"))
        out.append(Section(f"TLS certificates expiring within {self.cert_days:g} days",
                           [f"{c.check}: {c.days_left:.1f} days left [{c.status}]" for c in self.certs]
                           or [f"No certificate expires within {self.cert_days:g} days."],
                           "attention" if self.certs else "ok"))
        return out

    def _incidents_title(self) -> str:
        title = f"Incidents, last 24 h ({len(self.incidents)})"
        means = []
        for label, values in (("MTTD", [i.detect_seconds for i in self.incidents]),
                              ("MTTA", [i.ack_seconds for i in self.incidents]),
                              ("MTTR", [i.resolve_seconds for i in self.incidents])):
            known = [v for v in values if v is not None]
            if known:
                means.append(f"{label} {humanize.duration(sum(known) / len(known))}")
        return title + (" · " + " · ".join(means) if means else "")

    def _incident(self, i: IncidentLine) -> str:
        if i.resolved_at is not None:
            when = f"{self._at(i.started_at)} → {self._at(i.resolved_at)} ({humanize.duration(i.resolved_at - i.started_at)})"
        else:
            when = f"since {self._at(i.started_at)}, still firing ({humanize.duration(self.generated_at - i.started_at)})"
        facts = [f"{label} {humanize.duration(v)}" for label, v in (
            ("detected in", i.detect_seconds), ("acknowledged after", i.ack_seconds),
            ("resolved in", i.resolve_seconds)) if v is not None]
        return f"{i.severity.upper()} {i.check}: {_line(i.summary)} · {when}" + (f" · {', '.join(facts)}" if facts else "")

    @staticmethod
    def _slo(s: SloLine) -> str:
        target = f" ({s.objective * 100:g}%)" if s.objective is not None else ""
        budget = f"{s.budget_left * 100:.0f}% budget left" if s.budget_left is not None else "budget unknown"
        burn = ", ".join(f"{w} {rate:.2g}x" for w, rate in s.burn.items())
        return f"{s.name}{target}: {budget}" + (f", burn {burn}" if burn else "") + f" [{s.status}]"

    @staticmethod
    def _backup(b: BackupLine) -> str:
        parts = []
        if b.age_seconds is not None:
            parts.append(f"newest {humanize.duration(b.age_seconds)} old"
                         + (f" (RPO {humanize.duration(b.rpo_seconds)})" if b.rpo_seconds else ""))
        if b.drill_ok is None:
            parts.append("no restore drill yet")
        else:
            drill = "last drill passed" if b.drill_ok else "last drill FAILED"
            if b.restore_seconds is not None:
                drill += f", restored in {humanize.duration(b.restore_seconds)} (RTO)"
            if b.drill_data_age_seconds is not None:
                drill += f", data {humanize.duration(b.drill_data_age_seconds)} old at restore"
            parts.append(drill)
        return f"{b.check}: " + " · ".join(parts) + f" [{b.status}]"

    def text(self) -> str:
        """The whole digest as plain text (terminal, log, the email's text part)."""
        lines = [f"{self.title} {self.day} ({self.timezone})", self.headline(), ""]
        for section in self.sections():
            lines.append(section.title)
            lines += [f"  - {line}" for line in section.lines]
            lines.append("")
        if self.agent_url:
            lines.append(f"Agent: {self.agent_url}")
        return "\n".join(lines).rstrip() + "\n"


def _line(text: str) -> str:
    return " ".join(text.split())


def of(notification: Notification) -> Digest:
    """The digest a `kind="digest"` notification carries."""
    return Digest.from_dict(notification.extra["digest"])


def notification(digest: Digest, receiver: str, idempotency_key: str, now: float) -> Notification:
    return Notification(receiver=receiver, group_key=f"digest:{digest.day}", group_labels={}, alerts=[],
                        idempotency_key=idempotency_key, created_at=now, kind=KIND,
                        extra={"digest": digest.to_dict()})
