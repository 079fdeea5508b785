"""What the status page shows, assembled from the running agent, and its two renderings.

`build()` reads the latest result of each public check, its uptime over
24 h / 7 d / 30 d and its response times from the store's history, the open
incidents and the silences and maintenance windows in force from alerting,
and the SLO checks' budget left. The result, a `PageView`, is rendered as
HTML (Jinja2 templates in this package, autoescaped, inline SVG, one
stylesheet from the same origin: nothing from a CDN) and as the Statuspage.io
`summary.json` shape, so existing status-page tooling can read it.

Component status follows Statuspage's vocabulary: OK is `operational`,
WARNING and UNKNOWN `degraded_performance`, CRITICAL `major_outage`; a check
in an open maintenance window, or failing while silenced, is
`under_maintenance`. A group is `partial_outage` when some of its checks are
down and `major_outage` when all are. The page's indicator is `critical`
when a component is in a major outage, `major` for a partial one, `minor`
for degraded performance, else `none`.

Everything text-like that reaches the page passes `public_text()`: secrets
redacted, addresses matching `private_urls` masked, length bounded.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from agent import humanize
from agent.alerting.api import AlertingService
from agent.alerting.silences import Mute
from agent.check import CheckConfig
from agent.core import Alert, CheckResult, Severity, Status
from agent.secrets import redact
from agent.statuspage.config import StatusPageConfig
from agent.store import Store

OPERATIONAL = "operational"
DEGRADED = "degraded_performance"
PARTIAL = "partial_outage"
MAJOR = "major_outage"
MAINTENANCE = "under_maintenance"
STATUS_TEXT = {OPERATIONAL: "Operational", DEGRADED: "Degraded performance", PARTIAL: "Partial outage",
               MAJOR: "Major outage", MAINTENANCE: "Under maintenance"}
_BY_RESULT = {Status.OK: OPERATIONAL, Status.WARNING: DEGRADED, Status.UNKNOWN: DEGRADED, Status.CRITICAL: MAJOR}
INDICATOR_TEXT = {"none": "All Systems Operational", "minor": "Minor Service Outage",
                  "major": "Partial System Outage", "critical": "Major System Outage"}
IMPACT = {Severity.INFO: "none", Severity.WARNING: "minor", Severity.CRITICAL: "major", Severity.EMERGENCY: "critical"}
UPTIME_WINDOWS = (("24h", 86400.0), ("7d", 7 * 86400.0), ("30d", 30 * 86400.0))
SPARK_BUCKETS, SPARK_SPAN = 48, 86400.0
BAR_DAYS = 30
SPARK_WIDTH, SPARK_HEIGHT = 120.0, 28.0
SUMMARY_MAX = 300
PAGE_ID = "sre-agent"

_URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]{1,20}://[^\s\"'<>]+")
#: host[:port] tokens outside URLs: IPv4 addresses, bracketed IPv6, dotted names ending in a label that starts
#: with a letter (so `10.5s` or `v1.2` are not hosts)
_HOST = re.compile(r"(?<![\w/.-])(\[[0-9a-fA-F:]+\]|\d{1,3}(?:\.\d{1,3}){3}|(?:[A-Za-z0-9-]+\.)+[A-Za-z][A-Za-z0-9-]*"
                   r"|localhost)(:\d{1,5})?(?![\w.-]*\w)")
PRIVATE = "[private]"


def public_text(text: str, page: StatusPageConfig, limit: int = SUMMARY_MAX) -> str:
    """Text fit for a public page: redacted, private hosts masked, one line, at most `limit` characters."""
    out = " ".join(text.split())

    def url(m: re.Match[str]) -> str:
        try:
            host = urlsplit(m.group(0)).hostname or ""
        except ValueError:
            return PRIVATE
        return PRIVATE if not host or page.host_is_private(host) else m.group(0)

    def host(m: re.Match[str]) -> str:
        return PRIVATE if page.host_is_private(m.group(1)) else m.group(0)

    parts = []
    last = 0
    for m in _URL.finditer(out):  # bare hosts are looked for outside URLs only
        parts.append(_HOST.sub(host, out[last:m.start()]))
        parts.append(url(m))
        last = m.end()
    parts.append(_HOST.sub(host, out[last:]))
    text = redact("".join(parts))  # after masking: a redaction mark would cut a URL short
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


@dataclass
class Bar:
    """One day of the uptime strip."""

    label: str
    level: str  # "good", "warn", "bad", "none"


@dataclass
class Component:
    id: str
    name: str
    description: str | None
    group: str
    status: str
    status_text: str
    summary: str
    updated_at: float | None
    uptime: dict[str, float | None]
    spark_points: str
    spark_title: str
    bars: list[Bar]
    mute: str | None = None

    @property
    def status_label(self) -> str:
        return STATUS_TEXT.get(self.status, self.status)


@dataclass
class Group:
    id: str
    name: str
    description: str | None
    components: list[Component]

    @property
    def status(self) -> str:
        return group_status([c.status for c in self.components])

    @property
    def status_label(self) -> str:
        return STATUS_TEXT[self.status]


@dataclass
class Incident:
    id: str
    name: str
    impact: str
    status: str  # investigating | identified
    started_at: float
    summary: str
    components: list[str]


@dataclass
class Maintenance:
    id: str
    name: str
    kind: str
    comment: str
    starts_at: float
    ends_at: float
    components: list[str]


@dataclass
class SloView:
    name: str
    objective: float | None
    budget_left: float | None
    status: str
    summary: str


@dataclass
class PageView:
    title: str
    description: str | None
    indicator: str
    updated_at: float
    refresh_seconds: int
    groups: list[Group]
    incidents: list[Incident] = field(default_factory=list)
    maintenances: list[Maintenance] = field(default_factory=list)
    slos: list[SloView] = field(default_factory=list)
    url: str = ""

    @property
    def status_description(self) -> str:
        if self.indicator == "none" and any(c.status == MAINTENANCE for g in self.groups for c in g.components):
            return "Service Under Maintenance"
        return INDICATOR_TEXT[self.indicator]


def group_status(statuses: list[str]) -> str:
    if not statuses:
        return OPERATIONAL
    if all(s == MAJOR for s in statuses):
        return MAJOR
    if MAJOR in statuses or PARTIAL in statuses:
        return PARTIAL
    if DEGRADED in statuses:
        return DEGRADED
    if MAINTENANCE in statuses:
        return MAINTENANCE
    return OPERATIONAL


def indicator(statuses: list[str]) -> str:
    if MAJOR in statuses:
        return "critical"
    if PARTIAL in statuses:
        return "major"
    if DEGRADED in statuses:
        return "minor"
    return "none"


def _labels(cfg: CheckConfig, result: CheckResult | None) -> dict[str, str]:
    """The labels an alert of this check carries, for matching silences and windows."""
    return {**cfg.labels, **(result.labels if result else {}), "check": cfg.name, "type": cfg.type}


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "group"


def sparkline(values: list[float | None], span: float = SPARK_SPAN) -> tuple[str, str]:
    """SVG polyline points (numbers only) for the mean durations, and a title with the range."""
    known = [v for v in values if v is not None]
    when = f"last {humanize.precise_duration(span)}" if span < SPARK_SPAN else "last 24 h"
    if not known:
        return "", "no response times in the last 24 h"
    top = max(known) or 1.0
    step = SPARK_WIDTH / max(1, len(values) - 1)
    points = [f"{i * step:.1f},{SPARK_HEIGHT - 2 - (v / top) * (SPARK_HEIGHT - 4):.1f}"
              for i, v in enumerate(values) if v is not None]
    if len(points) == 1:  # one point draws nothing: a flat line at its height
        y = points[0].split(",")[1]
        points = [f"0.0,{y}", f"{SPARK_WIDTH:.1f},{y}"]
    return " ".join(points), (f"response time, {when}: mean {humanize.precise_duration(sum(known) / len(known))}, "
                              f"peak {humanize.precise_duration(top)}")


def _bar(start: float, total: int, good: int) -> Bar:
    day = datetime.fromtimestamp(start, UTC).strftime("%Y-%m-%d")
    if total == 0:
        return Bar(f"{day}: no data", "none")
    ratio = good / total
    level = "good" if ratio >= 0.999 else "warn" if ratio >= 0.99 else "bad"
    return Bar(f"{day}: {ratio * 100:.2f}% up", level)


async def _history(store: Store | None, check: str, now: float) -> tuple[dict[str, float | None], str, str, list[Bar]]:
    uptime: dict[str, float | None] = {}
    if store is None:
        return {k: None for k, _ in UPTIME_WINDOWS}, "", "no history", []
    for key, span in UPTIME_WINDOWS:
        good, total = await store.success_counts(check, now - span, now)
        uptime[key] = good / total * 100 if total else None
    since = now - SPARK_SPAN
    spark = await store.buckets(check, since, now, SPARK_BUCKETS)
    for _ in range(3):  # a young history: zoom in on the part that has data, so the line has a shape
        first = next((i for i, b in enumerate(spark) if b.total), None)
        if first is None or first == 0:
            break
        since = spark[first].start
        spark = await store.buckets(check, since, now, SPARK_BUCKETS)
    points, title = sparkline([b.mean_duration for b in spark], now - since)
    day_end = (now // 86400 + 1) * 86400  # whole UTC days, today last
    days = await store.buckets(check, day_end - BAR_DAYS * 86400, day_end, BAR_DAYS)
    return uptime, points, title, [_bar(b.start, b.total, b.good) for b in days]


def _component_status(result: CheckResult | None, mutes: list[Mute]) -> tuple[str, str | None]:
    status = _BY_RESULT[result.status] if result is not None else OPERATIONAL
    window = next((m for m in mutes if m.kind == "maintenance"), None)
    if window is not None:
        return MAINTENANCE, f"maintenance until {humanize.when(window.ends_at)}"
    silence = next((m for m in mutes if m.kind == "silence"), None)
    if silence is not None:
        if status != OPERATIONAL:
            return MAINTENANCE, f"being worked on, until {humanize.when(silence.ends_at)}"
        return status, None
    return status, None


async def build(page: StatusPageConfig, checks: list[CheckConfig], latest: dict[str, CheckResult],
                alerting: AlertingService | None, store: Store | None, now: float | None = None,
                url: str = "") -> PageView:
    """The page as of `now`: only public checks, only public text."""
    now = time.time() if now is None else now
    mutes = alerting.in_force(now) if alerting is not None else []
    public = page.public_checks(checks)
    groups: dict[str, Group] = {}
    descriptions = {g.name: g.description for g in page.groups}
    affected: dict[int, list[str]] = {}
    for group_name, cfg in public:
        result = latest.get(cfg.name)
        labels = _labels(cfg, result)
        mine = [m for m in mutes if m.matches(labels)]
        for m in mine:
            affected.setdefault(id(m), []).append(cfg.name)
        status, mute = _component_status(result, mine)
        uptime, points, title, bars = await _history(store, cfg.name, now)
        if result is None:
            summary = "no result yet"
        elif page.show_summaries:
            summary = public_text(result.summary, page)
        else:
            summary = STATUS_TEXT[status]
        component = Component(
            id=cfg.name, name=cfg.name, description=public_text(cfg.description, page) if cfg.description else None,
            group=group_name, status=status, status_text=STATUS_TEXT[status], summary=summary,
            updated_at=result.timestamp if result else None, uptime=uptime, spark_points=points, spark_title=title,
            bars=bars, mute=mute)
        group = groups.setdefault(group_name, Group(_slug(group_name), group_name, descriptions.get(group_name), []))
        group.components.append(component)
    shown = {c.name for _, c in public}
    incidents = [_incident(a, page) for a in (alerting.alerts({"firing"}) if alerting is not None else [])
                 if a.check in shown]
    maintenances = [Maintenance(id=f"{m.kind}-{i}", name=public_text(m.name, page, 100), kind=m.kind,
                                comment=public_text(m.comment, page) if m.comment else "", starts_at=m.starts_at,
                                ends_at=m.ends_at, components=affected[id(m)])
                    for i, m in enumerate(mutes) if id(m) in affected]
    slos = [_slo(cfg, latest.get(cfg.name), page) for cfg in page.public_slos(checks)]
    statuses = [c.status for g in groups.values() for c in g.components]
    return PageView(title=page.title, description=page.description, indicator=indicator(statuses), updated_at=now,
                    refresh_seconds=int(page.refresh.total_seconds()), groups=list(groups.values()),
                    incidents=sorted(incidents, key=lambda i: i.started_at), maintenances=maintenances, slos=slos,
                    url=url)


def _incident(alert: Alert, page: StatusPageConfig) -> Incident:
    return Incident(id=alert.dedup_key, name=alert.check, impact=IMPACT[alert.severity],
                    status="identified" if alert.suppressed_by else "investigating", started_at=alert.starts_at,
                    summary=public_text(alert.summary, page) if page.show_summaries else "", components=[alert.check])


def _slo(cfg: CheckConfig, result: CheckResult | None, page: StatusPageConfig) -> SloView:
    spec = getattr(cfg, "slo", None)
    objective = getattr(spec, "objective_ratio", None)
    name = str(getattr(spec, "name", cfg.name))
    budget = result.observations.get("error_budget_remaining_ratio") if result is not None else None
    status = _BY_RESULT[result.status] if result is not None else OPERATIONAL
    summary = public_text(result.summary, page) if result is not None and page.show_summaries else ""
    return SloView(name=name, objective=objective, budget_left=budget, status=status, summary=summary)


# -- Statuspage.io's summary.json --------------------------------------------------------------

def _iso(ts: float | None) -> str | None:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z") if ts else None


def summary_json(view: PageView) -> dict[str, Any]:
    """The shape of Statuspage's `GET /api/v2/summary.json`."""
    updated = _iso(view.updated_at)
    components: list[dict[str, Any]] = []
    position = 0
    for group in view.groups:
        position += 1
        gid = f"group-{group.id}"
        components.append({"id": gid, "name": group.name, "status": group.status, "created_at": None,
                           "updated_at": updated, "position": position, "description": group.description,
                           "showcase": False, "start_date": None, "group_id": None, "page_id": PAGE_ID,
                           "group": True, "only_show_if_degraded": False,
                           "components": [c.id for c in group.components]})
        for c in group.components:
            position += 1
            components.append({"id": c.id, "name": c.name, "status": c.status, "created_at": None,
                               "updated_at": _iso(c.updated_at) or updated, "position": position,
                               "description": c.description, "showcase": True, "start_date": None,
                               "group_id": gid, "page_id": PAGE_ID, "group": False, "only_show_if_degraded": False})
    incidents = [{"id": i.id, "name": i.name, "status": i.status, "created_at": _iso(i.started_at),
                  "updated_at": updated, "monitoring_at": None, "resolved_at": None, "impact": i.impact,
                  "shortlink": view.url, "started_at": _iso(i.started_at), "page_id": PAGE_ID,
                  "incident_updates": [{"id": f"{i.id}-1", "status": i.status, "body": i.summary, "incident_id": i.id,
                                        "created_at": _iso(i.started_at), "updated_at": updated,
                                        "display_at": _iso(i.started_at),
                                        "affected_components": [{"code": c, "name": c} for c in i.components]}],
                  "components": [{"id": c, "name": c} for c in i.components]} for i in view.incidents]
    maintenances = [{"id": m.id, "name": m.name, "status": "in_progress", "created_at": _iso(m.starts_at),
                     "updated_at": updated, "monitoring_at": None, "resolved_at": None, "impact": "maintenance",
                     "shortlink": view.url, "started_at": _iso(m.starts_at), "page_id": PAGE_ID,
                     "incident_updates": [], "components": [{"id": c, "name": c} for c in m.components],
                     "scheduled_for": _iso(m.starts_at), "scheduled_until": _iso(m.ends_at)}
                    for m in view.maintenances]
    return {"page": {"id": PAGE_ID, "name": view.title, "url": view.url, "time_zone": "Etc/UTC", "updated_at": updated},
            "components": components, "incidents": incidents, "scheduled_maintenances": maintenances,
            "status": {"indicator": view.indicator, "description": view.status_description}}


# -- HTML -----------------------------------------------------------------------------------------

def _environment() -> Any:
    from jinja2 import Environment, PackageLoader, StrictUndefined

    env = Environment(loader=PackageLoader("agent.statuspage", "templates"), autoescape=True,
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["when"] = lambda ts: humanize.when(ts) if ts else "never"
    env.filters["age"] = lambda ts, now: humanize.age(ts, now) if ts else "never"
    env.filters["pct"] = lambda v, digits=2: "—" if v is None else f"{v:.{digits}f}%"
    return env


_ENV: Any = None


def render_html(view: PageView) -> str:
    global _ENV
    if _ENV is None:
        _ENV = _environment()
    return str(_ENV.get_template("status.html.j2").render(page=view, now=view.updated_at, STATUS_TEXT=STATUS_TEXT))


def stylesheet() -> bytes:
    from importlib.resources import files

    return files("agent.statuspage").joinpath("static", "status.css").read_bytes()
