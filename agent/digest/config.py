"""Config of the `digest:` section: when the daily digest goes out, to whom, in which time zone.

```yaml
digest:
  schedule: "0 8 * * *"        # cron, in `timezone` (default: the agent host's zone)
  receivers: [slack-ops, email-sre]
```

Without a schedule nothing is sent (the digest can still be read with
`sre-agent digest --print`). Receivers must exist and take digests: PagerDuty
and Alertmanager are refused, a morning summary must not page anyone.
"""

from __future__ import annotations

import contextlib
import difflib
import os
from datetime import timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator

from agent.check import Model
from agent.durations import Duration
from agent.registry import Section, register_section


def local_zone_name() -> str:
    """The agent host's IANA zone: $TZ, else where /etc/localtime points, else UTC."""
    candidates = [os.environ.get("TZ", "").removeprefix(":")]
    with contextlib.suppress(OSError):
        candidates.append(str(Path("/etc/localtime").resolve()).partition("zoneinfo/")[2])
    with contextlib.suppress(OSError):
        candidates.append(Path("/etc/timezone").read_text(encoding="utf-8").strip())
    for name in candidates:
        if name:
            try:
                ZoneInfo(name)
            except (ZoneInfoNotFoundError, ValueError):
                continue
            return name
    return "UTC"


class DigestConfig(Model):
    schedule: str | None = Field(None, description="5-field cron of the send time, e.g. '0 8 * * *'; unset: not sent")
    receivers: list[str] = Field(default_factory=list, description="receivers it goes to (slack, email, webhook, log)")
    timezone: str | None = Field(None, description="IANA zone the schedule and the day are read in; "
                                                   "default: the agent host's zone")
    title: str = Field("Daily digest", min_length=1, max_length=100)
    certificates_within: Duration = Field(timedelta(days=14), description="list TLS certificates expiring this soon")
    datasets: int = Field(5, ge=0, le=100, description="how many of the stalest datasets to list")

    @field_validator("schedule")
    @classmethod
    def _cron(cls, v: str | None) -> str | None:
        if v is not None:
            from apscheduler.triggers.cron import CronTrigger

            try:
                CronTrigger.from_crontab(v)
            except ValueError as exc:
                raise ValueError(f"invalid cron expression {v!r}: {exc}; expected 5 fields "
                                 "'min hour dom month dow', e.g. '0 8 * * *'") from None
        return v

    @field_validator("timezone")
    @classmethod
    def _zone(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                ZoneInfo(v)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"unknown time zone {v!r}; use an IANA name such as UTC or Europe/Berlin") from None
        return v

    @property
    def zone_name(self) -> str:
        return self.timezone or local_zone_name()


def _semantic_issues(config: Any) -> list[tuple[tuple[Any, ...], str]]:
    from agent.alerting.config import receiver_kinds

    d: DigestConfig = config.digest
    out: list[tuple[tuple[Any, ...], str]] = []
    if d.schedule is not None and not d.receivers:
        out.append((("digest", "receivers"), "a digest schedule needs receivers to send it to"))
    if d.receivers and d.schedule is None:
        out.append((("digest", "schedule"), "receivers are set but no schedule says when to send, e.g. '0 8 * * *'"))
    alerting = getattr(config, "alerting", None)
    configured = {r.name: r for r in (alerting.receivers if alerting is not None else [])}
    kinds = receiver_kinds()
    takers = ", ".join(sorted(k for k, cls in kinds.items() if cls.takes_digest))
    for i, name in enumerate(d.receivers):
        loc = ("digest", "receivers", i)
        receiver = configured.get(name)
        if receiver is None:
            hint = difflib.get_close_matches(name, list(configured), n=1)
            out.append((loc, f"unknown receiver {name!r}" + (f"; did you mean {hint[0]!r}?" if hint else "")
                        + f"; configured: {', '.join(configured) or '(none)'}"))
        elif not kinds[receiver.kind].takes_digest:
            out.append((loc, f"receiver {name!r} is {receiver.kind}: a digest must not page anyone; use {takers}"))
    if len(set(d.receivers)) != len(d.receivers):
        out.append((("digest", "receivers"), "a receiver is listed twice"))
    return out


register_section(Section("digest", DigestConfig, many=False, default=DigestConfig,
                         description="the daily digest (the morning checklist)", semantic_issues=_semantic_issues,
                         order=50))
