"""Turn a check's results into alert state: inactive -> pending -> firing -> resolved.

Pure functions over an `AlertRecord` and an injected `now`, so thresholds
(`after`, `resolve_after`, `for`) are tested without a clock or a store. One
record per alert family: a check, or a check plus `details["alert_key"]` for
checks (SLOs) that raise several families. The `dedup_key` depends on those
names only, so the same alert keeps its key across restarts and severity
changes (PagerDuty updates the incident instead of opening a new one).
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import quote, urljoin

from agent.check import AlertPolicy, CheckConfig
from agent.core import Alert, AlertState, CheckResult, Severity, Status
from agent.runbooks import effective_runbook

DEDUP_PREFIX = "sre-agent/"
DEDUP_LENGTH = 32


def dedup_key(check: str, alert_key: str | None = None) -> str:
    """Stable per alert family: sha256 of "sre-agent/<check>[/<alert_key>]", 32 hex chars."""
    text = DEDUP_PREFIX + check + (f"/{alert_key}" if alert_key else "")
    return hashlib.sha256(text.encode()).hexdigest()[:DEDUP_LENGTH]


def alert_key_of(result: CheckResult) -> str | None:
    key = result.details.get("alert_key") if isinstance(result.details, dict) else None
    return str(key) if key else None


@dataclass
class AlertRecord:
    """What the engine remembers (and persists) about one alert family."""

    dedup_key: str
    check: str
    type: str
    alert_key: str | None = None
    state: AlertState = AlertState.INACTIVE
    fails: int = 0
    passes: int = 0
    failing_since: float | None = None
    starts_at: float | None = None
    ends_at: float | None = None
    severity: Severity = Severity.CRITICAL
    status: Status = Status.OK
    summary: str = ""
    observations: dict[str, float] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    updated_at: float = 0.0
    suppressed_by: str | None = None
    #: what the groups holding this alert knew about it when its check moved to another replica
    #: (`Dispatcher.release`), for the new owner to adopt; empty while a replica holds it
    handover: list[dict[str, Any]] = field(default_factory=list)

    @property
    def active(self) -> bool:
        return self.state in (AlertState.PENDING, AlertState.FIRING)

    @property
    def idle(self) -> bool:
        """Nothing worth persisting: no alert and no counters running."""
        return self.state == AlertState.INACTIVE and self.fails == 0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.update(state=self.state.value, severity=self.severity.value, status=self.status.name)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AlertRecord:
        d = dict(d)
        d.update(state=AlertState(d["state"]), severity=Severity(d["severity"]), status=Status[d["status"]])
        return cls(**d)


def is_failing(status: Status, policy: AlertPolicy) -> bool | None:
    """True for a failing result, False for a passing one, None for one that does not count."""
    if status == Status.UNKNOWN:
        return True if policy.on_unknown else None
    return status != Status.OK


def evaluate(record: AlertRecord, result: CheckResult, cfg: CheckConfig, now: float,
             failing: bool | None = None) -> AlertRecord:
    """The record after one result. `failing` overrides the result's own verdict
    (a result about another family of the same check counts as passing here)."""
    policy = cfg.alert
    verdict = is_failing(result.status, policy) if failing is None else failing
    rec = AlertRecord(**{**record.__dict__, "observations": dict(record.observations), "labels": dict(record.labels),
                         "handover": []})
    rec.type = result.type or rec.type
    if not policy.enabled:
        return _resolve(rec, now) if rec.state == AlertState.FIRING else _reset(rec, now)
    if verdict is None:
        return rec
    if verdict:
        rec.fails += 1
        rec.passes = 0
        if rec.state in (AlertState.INACTIVE, AlertState.RESOLVED):
            rec.state = AlertState.PENDING
            rec.failing_since = result.timestamp
            rec.starts_at = None
            rec.ends_at = None
            rec.suppressed_by = None
        rec.severity = cfg.severity_for(result.status)
        rec.status = result.status
        rec.summary = result.summary
        rec.observations = dict(result.observations)
        rec.labels = dict(result.labels)
        if rec.state == AlertState.PENDING and _due(rec, policy, now):
            rec.state = AlertState.FIRING
            rec.starts_at = now
        rec.updated_at = now
        return rec
    if rec.state in (AlertState.INACTIVE, AlertState.RESOLVED) and rec.fails == 0:
        return rec
    rec.passes += 1
    rec.fails = 0
    if rec.state == AlertState.PENDING:
        return _reset(rec, now)
    if rec.state == AlertState.FIRING and rec.passes >= policy.resolve_after:
        rec.summary = result.summary if result.status == Status.OK else rec.summary
        rec.observations = dict(result.observations) or rec.observations
        rec.status = Status.OK  # what it recovered to (a result about another family passes for this one)
        return _resolve(rec, now)
    rec.updated_at = now if rec.state == AlertState.FIRING else rec.updated_at
    return rec


def _due(rec: AlertRecord, policy: AlertPolicy, now: float) -> bool:
    if policy.for_ is not None:
        return rec.failing_since is not None and now - rec.failing_since >= policy.for_.total_seconds()
    return rec.fails >= policy.after


def tick(record: AlertRecord, cfg: CheckConfig, now: float) -> AlertRecord:
    """A pending `for:` alert fires when its period is up, even between results."""
    if record.state == AlertState.PENDING and cfg.alert.enabled and cfg.alert.for_ is not None \
            and _due(record, cfg.alert, now):
        rec = AlertRecord(**record.__dict__)
        rec.state, rec.starts_at, rec.updated_at = AlertState.FIRING, now, now
        return rec
    return record


def _resolve(rec: AlertRecord, now: float) -> AlertRecord:
    rec.state = AlertState.RESOLVED
    rec.ends_at = now
    rec.fails = 0
    rec.failing_since = None
    rec.updated_at = now
    return rec


def _reset(rec: AlertRecord, now: float) -> AlertRecord:
    rec.state = AlertState.RESOLVED if rec.state == AlertState.RESOLVED else AlertState.INACTIVE
    rec.fails = 0
    rec.failing_since = None
    rec.updated_at = now
    return rec


def runbook_url(runbook: str | None, base_url: str | None, agent_url: str, check: str) -> str | None:
    """Absolute URLs are kept; a relative path joins `runbook_base_url`, else the agent serves it."""
    if not runbook:
        return None
    if runbook.startswith(("http://", "https://")):
        return runbook
    if base_url:
        return urljoin(base_url if base_url.endswith("/") else base_url + "/", runbook.lstrip("/"))
    return f"{agent_url}/api/v1/runbooks/{quote(check, safe='')}"


def to_alert(rec: AlertRecord, cfg: CheckConfig | None, base_url: str | None, agent_url: str) -> Alert:
    """The `Alert` receivers see: labels, runbook and a link back to the check."""
    labels = {**(cfg.labels if cfg else {}), **rec.labels, "check": rec.check, "type": rec.type,
              "severity": rec.severity.value}
    annotations = {"summary": rec.summary}
    if rec.alert_key:
        annotations["alert_key"] = rec.alert_key
    if cfg is not None and cfg.description:
        annotations["description"] = cfg.description
    return Alert(
        check=rec.check, type=rec.type, state=rec.state, severity=rec.severity, summary=rec.summary,
        dedup_key=rec.dedup_key, labels=labels, annotations=annotations, observations=dict(rec.observations),
        runbook_url=runbook_url(effective_runbook(cfg) if cfg else None, base_url, agent_url, rec.check),
        generator_url=f"{agent_url}/api/v1/checks?name={quote(rec.check, safe='')}",
        status=rec.status, starts_at=rec.starts_at or rec.failing_since or rec.updated_at,
        ends_at=rec.ends_at if rec.state == AlertState.RESOLVED else None, suppressed_by=rec.suppressed_by,
    )


def agent_url(external_url: str | None, listen: str, bound_port: int | None = None) -> str:
    """Where links in alerts point: `agent.external_url`, else the listen address (with
    the port actually bound when `listen` asked for port 0)."""
    if external_url:
        return external_url.rstrip("/")
    host, _, port = listen.rpartition(":")
    if port == "0" and bound_port:
        port = str(bound_port)
    host = host.strip("[]")
    if host in ("", "0.0.0.0", "::"):
        host = "127.0.0.1"
    return f"http://{'[' + host + ']' if ':' in host else host}:{port}"
