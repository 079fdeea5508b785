"""Assemble the digest from what the running agent knows at `now`.

- failing now: every enabled check whose latest result is not OK, with when
  its alert started (if it has one);
- incidents of the last 24 h from the store's incident log: start (first
  failing result), fired, acknowledged (an API silence), resolved;
- SLOs: budget left and burn rates from the `slo` checks' latest results;
- backups: age and the RPO (`max_age`), the last restore drill, how long the
  restore took (the measured RTO) and how old its data was;
- the stalest datasets (`freshness` / `data_product` ages);
- TLS certificates expiring within `certificates_within` (any check that
  reports `cert_expiry_days`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from agent.check import CheckConfig
from agent.core import Alert, CheckResult, Status
from agent.digest.config import DigestConfig
from agent.notify.digest import (
    INCIDENT_WINDOW,
    BackupLine,
    CertLine,
    DatasetLine,
    Digest,
    FailingCheck,
    IncidentLine,
    SloLine,
)
from agent.store import Store

#: burn windows shown per SLO, in this order, when the SLO reports them
BURN_WINDOWS = ("1h", "6h", "1d", "3d")
DATASET_TYPES = ("freshness", "data_product")


def _slo(cfg: CheckConfig, result: CheckResult | None) -> SloLine:
    spec = getattr(cfg, "slo", None)
    obs = result.observations if result is not None else {}
    burn = {w: obs[f"burn_rate_{w}"] for w in BURN_WINDOWS if f"burn_rate_{w}" in obs}
    return SloLine(name=str(getattr(spec, "name", cfg.name)), status=result.status.name if result else "UNKNOWN",
                   objective=getattr(spec, "objective_ratio", None), budget_left=obs.get("error_budget_remaining_ratio"),
                   burn=burn)


def _backup(cfg: CheckConfig, result: CheckResult | None) -> BackupLine:
    obs = result.observations if result is not None else {}
    max_age = getattr(cfg, "max_age", None)
    drill = obs.get("restore_success")
    return BackupLine(check=cfg.name, status=result.status.name if result else "UNKNOWN",
                      age_seconds=obs.get("age_seconds"), rpo_seconds=max_age.total_seconds() if max_age else None,
                      drill_ok=None if drill is None else drill >= 1.0,
                      restore_seconds=obs.get("restore_duration_seconds"),
                      drill_data_age_seconds=obs.get("restore_data_age_seconds"))


async def build_digest(settings: DigestConfig, checks: list[CheckConfig], latest: dict[str, CheckResult],
                       alerts: list[Alert], store: Store | None, now: float, *, agent_url: str = "") -> Digest:
    zone = settings.zone_name
    enabled = [c for c in checks if c.enabled]
    since: dict[str, float] = {}
    for a in alerts:
        if a.starts_at > 0:
            since[a.check] = min(since.get(a.check, a.starts_at), a.starts_at)
    failing = [FailingCheck(c.name, c.type, r.status.name, r.summary, since.get(c.name))
               for c in enabled if (r := latest.get(c.name)) is not None and r.status != Status.OK]
    incidents = []
    if store is not None:
        for i in await store.incidents(now - INCIDENT_WINDOW, now):
            doc: dict[str, Any] = i.doc
            incidents.append(IncidentLine(check=i.check, severity=str(doc.get("severity", "")),
                                          summary=str(doc.get("summary", "")), fired_at=i.fired_at,
                                          failing_since=i.failing_since, acknowledged_at=i.acknowledged_at,
                                          resolved_at=i.resolved_at))
    datasets = [DatasetLine(c.name, r.status.name, r.observations["age_seconds"]) for c in enabled
                if c.type in DATASET_TYPES and (r := latest.get(c.name)) is not None and "age_seconds" in r.observations]
    datasets.sort(key=lambda d: -d.age_seconds)
    within = settings.certificates_within.total_seconds() / 86400
    certs = [CertLine(c.name, r.status.name, r.observations["cert_expiry_days"]) for c in enabled
             if (r := latest.get(c.name)) is not None and r.observations.get("cert_expiry_days", within + 1) <= within]
    certs.sort(key=lambda c: c.days_left)
    return Digest(
        day=datetime.fromtimestamp(now, ZoneInfo(zone)).date().isoformat(), timezone=zone, generated_at=now,
        checks=len(enabled), title=settings.title, agent_url=agent_url, failing=failing, incidents=incidents,
        slos=[_slo(c, latest.get(c.name)) for c in enabled if c.type == "slo"],
        backups=[_backup(c, latest.get(c.name)) for c in enabled if c.type == "backup"],
        datasets=datasets[: settings.datasets], certs=certs, cert_days=within)
