"""Config of the `status_page:` section: whether the page is served, its groups, what stays private.

Off by default (`GET /` and `/status` answer 404 until `enabled: true`): a
page for customers is a decision, not a side effect of running the agent.
Without `groups:` the page has one group per `service` label; with them,
exactly the listed checks are public. `private_checks` are never shown, and
addresses matching `private_urls` (internal names and private IP ranges by
default) are masked in every summary.
"""

from __future__ import annotations

import difflib
import fnmatch
from datetime import timedelta
from typing import Any

from pydantic import Field, field_validator

from agent.check import CheckConfig, Model
from agent.durations import Duration
from agent.registry import Section, register_section

#: hosts (and IP ranges, as globs) masked in summaries unless `private_urls` says otherwise
DEFAULT_PRIVATE_URLS: tuple[str, ...] = (
    "localhost", "*.localhost", "127.*", "10.*", "192.168.*", "172.1[6-9].*", "172.2[0-9].*", "172.3[01].*",
    "169.254.*", "::1", "fc*:*", "fd*:*", "fe80:*", "*.internal", "*.local", "*.lan", "*.corp", "*.home.arpa",
    "*.svc", "*.cluster.local",
)
#: the longest uptime window the page shows, kept in the store for every public check
UPTIME_HISTORY = timedelta(days=30, hours=1)
OTHER_GROUP = "Other"


class StatusGroup(Model):
    """A group of components on the page, in the order written."""

    name: str = Field(min_length=1, max_length=100, description="heading of the group, e.g. Web")
    description: str | None = Field(None, max_length=500)
    checks: list[str] = Field(min_length=1, description="the checks shown in this group, in this order")


class StatusPageConfig(Model):
    enabled: bool = Field(False, description="serve the page at GET / and /status, and /api/v2/summary.json")
    title: str = Field("Status", min_length=1, max_length=100, description="page title, e.g. Payments status")
    description: str | None = Field(None, max_length=1000, description="a line under the title")
    groups: list[StatusGroup] = Field(default_factory=list,
                                      description="components by group; default: one group per `service` label")
    private_checks: list[str] = Field(default_factory=list, description="checks never shown, whatever the groups")
    private_urls: list[str] = Field(default_factory=lambda: list(DEFAULT_PRIVATE_URLS),
                                    description="host globs masked in summaries; default: internal names and "
                                                "private IP ranges")
    slos: list[str] | None = Field(None, description="SLOs shown with their budget left (names); default: every SLO "
                                                     "without groups, with groups those whose SLI is a shown check")
    show_summaries: bool = Field(True, description="show each check's last summary (redacted, private hosts masked)")
    refresh: Duration = Field(timedelta(seconds=60), description="how often the page reloads itself in a browser")

    @field_validator("private_urls")
    @classmethod
    def _globs(cls, v: list[str]) -> list[str]:
        for pattern in v:
            if not pattern or any(c.isspace() for c in pattern):
                raise ValueError(f"invalid host pattern {pattern!r}: a host glob such as *.internal or 10.*")
        return [p.lower() for p in v]

    @field_validator("refresh")
    @classmethod
    def _refresh(cls, v: timedelta) -> timedelta:
        if v < timedelta(seconds=5):
            raise ValueError("refresh must be at least 5s")
        return v

    def host_is_private(self, host: str) -> bool:
        host = host.lower().strip("[]")
        return any(fnmatch.fnmatchcase(host, p) for p in self.private_urls)

    def public_checks(self, checks: list[CheckConfig]) -> list[tuple[str, CheckConfig]]:
        """(group name, check) for every check on the page, in page order."""
        by_name = {c.name: c for c in checks}
        private = set(self.private_checks)
        if self.groups:
            return [(g.name, by_name[n]) for g in self.groups for n in g.checks if n in by_name and n not in private]
        shown = [c for c in checks if c.enabled and c.name not in private and c.type != "slo"]
        services = list(dict.fromkeys(c.labels.get("service") or OTHER_GROUP for c in shown))
        if OTHER_GROUP in services:  # the group of checks without a service label goes last
            services.remove(OTHER_GROUP)
            services.append(OTHER_GROUP)
        return [(s, c) for s in services for c in shown if (c.labels.get("service") or OTHER_GROUP) == s]

    def public_slos(self, checks: list[CheckConfig]) -> list[CheckConfig]:
        """SLO checks whose budget the page shows: those named in `slos`; by default every SLO when
        there are no groups, and with groups those whose SLI is a check on the page."""
        private = set(self.private_checks)
        slos = [c for c in checks if c.type == "slo" and c.enabled and c.name not in private]
        if self.slos is not None:
            wanted = set(self.slos)
            return [c for c in slos if c.name in wanted or _slo_name(c) in wanted]
        if not self.groups:
            return slos
        shown = {c.name for _, c in self.public_checks(checks)}
        return [c for c in slos if _sli_check(c) in shown]


def _slo_name(check: CheckConfig) -> str | None:
    return getattr(getattr(check, "slo", None), "name", None)


def _sli_check(check: CheckConfig) -> str | None:
    return getattr(getattr(getattr(check, "slo", None), "sli", None), "check", None)


def _semantic_issues(config: Any) -> list[tuple[tuple[Any, ...], str]]:
    page: StatusPageConfig = config.status_page
    names = [c.name for c in config.all_checks()]
    out: list[tuple[tuple[Any, ...], str]] = []

    def unknown(name: str, loc: tuple[Any, ...]) -> None:
        hint = difflib.get_close_matches(name, names, n=1)
        out.append((loc, f"unknown check {name!r}" + (f"; did you mean {hint[0]!r}?" if hint else "")))

    for i, name in enumerate(page.private_checks):
        if name not in names:
            unknown(name, ("status_page", "private_checks", i))
    slo_names = {n for c in config.all_checks() if c.type == "slo" for n in (c.name, _slo_name(c)) if n}
    for i, name in enumerate(page.slos or []):
        if name not in slo_names:
            hint = difflib.get_close_matches(name, sorted(slo_names), n=1)
            out.append((("status_page", "slos", i), f"unknown SLO {name!r}" + (f"; did you mean {hint[0]!r}?" if hint
                                                                                 else "")))
    placed: dict[str, str] = {}
    groups: set[str] = set()
    for i, group in enumerate(page.groups):
        if group.name in groups:
            out.append((("status_page", "groups", i, "name"), f"duplicate group name {group.name!r}"))
        groups.add(group.name)
        for j, name in enumerate(group.checks):
            loc = ("status_page", "groups", i, "checks", j)
            if name not in names:
                unknown(name, loc)
            elif name in page.private_checks:
                out.append((loc, f"check {name!r} is in private_checks: a private check is never shown"))
            elif name in placed:
                out.append((loc, f"check {name!r} is already in group {placed[name]!r}; a check shows once"))
            else:
                placed[name] = group.name
    return out


def _history_needs(config: Any) -> dict[str, float]:
    page: StatusPageConfig = config.status_page
    if not page.enabled:
        return {}
    checks = config.all_checks()
    shown = [c.name for _, c in page.public_checks(checks)] + [c.name for c in page.public_slos(checks)]
    return dict.fromkeys(shown, UPTIME_HISTORY.total_seconds())


register_section(Section("status_page", StatusPageConfig, many=False, default=StatusPageConfig,
                         description="the public status page (off by default)", semantic_issues=_semantic_issues,
                         history_needs=_history_needs, order=40))
