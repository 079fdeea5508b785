"""The routing tree: which receivers hear about an alert, and how alerts are grouped.

Alertmanager's algorithm: start at the root (which matches everything), descend
depth-first into the first child that matches; a child with `continue: true`
lets the following siblings match too; a node none of whose children match is
itself the destination. Children inherit the receiver and the grouping and
timing settings they do not set. Route ids are hashes of a node's content and
its parent's id, so editing one branch leaves the groups of the others alone
across a reload (two identical siblings share one group: the alert is sent once).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import timedelta

from agent.alerting.config import ALL_LABELS, RouteConfig, full_match

DEFAULT_GROUP_BY = ("check",)
DEFAULT_GROUP_WAIT = timedelta(seconds=30)
DEFAULT_GROUP_INTERVAL = timedelta(minutes=5)
DEFAULT_REPEAT_INTERVAL = timedelta(hours=4)


@dataclass(frozen=True)
class Timing:
    group_wait: float
    group_interval: float
    repeat_interval: float


@dataclass
class Route:
    """A resolved node: every setting filled in from its ancestors."""

    id: str
    receiver: str
    match: dict[str, str]
    match_re: dict[str, str]
    continue_: bool
    group_by: tuple[str, ...]
    timing: Timing
    routes: list[Route] = field(default_factory=list)

    def matches(self, labels: dict[str, str]) -> bool:
        return (all(labels.get(k) == v for k, v in self.match.items())
                and all(full_match(p, labels.get(k, "")) for k, p in self.match_re.items()))

    def destinations(self, labels: dict[str, str]) -> list[Route]:
        """Routes (leaf-most matching nodes) that take an alert with these labels."""
        out: list[Route] = []
        for child in self.routes:
            if not child.matches(labels):
                continue
            out.extend(child.destinations(labels))
            if not child.continue_:
                break
        return out or [self]

    def group_labels(self, labels: dict[str, str]) -> dict[str, str]:
        if self.group_by == (ALL_LABELS,):
            return dict(sorted(labels.items()))
        return {k: labels.get(k, "") for k in self.group_by}

    def group_key(self, labels: dict[str, str]) -> str:
        """Same route + receiver + grouping label values -> same group, across restarts."""
        text = json.dumps([self.id, self.receiver, self.group_labels(labels)], sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:24]

    def walk(self) -> list[Route]:
        out = [self]
        for child in self.routes:
            out.extend(child.walk())
        return out


def build_routes(cfg: RouteConfig, parent: Route | None = None) -> Route:
    """Resolve inheritance into a tree of `Route`s."""
    def pick(value: timedelta | None, inherited: float, default: timedelta) -> float:
        if value is not None:
            return value.total_seconds()
        return inherited if parent is not None else default.total_seconds()

    receiver = cfg.receiver or (parent.receiver if parent else "")
    group_by = tuple(cfg.group_by) if cfg.group_by is not None else (parent.group_by if parent else DEFAULT_GROUP_BY)
    timing = Timing(
        group_wait=pick(cfg.group_wait, parent.timing.group_wait if parent else 0.0, DEFAULT_GROUP_WAIT),
        group_interval=pick(cfg.group_interval, parent.timing.group_interval if parent else 0.0, DEFAULT_GROUP_INTERVAL),
        repeat_interval=pick(cfg.repeat_interval, parent.timing.repeat_interval if parent else 0.0, DEFAULT_REPEAT_INTERVAL),
    )
    content = json.dumps([parent.id if parent else "root", cfg.match, cfg.match_re, receiver, list(group_by)], sort_keys=True)
    route_id = hashlib.sha256(content.encode()).hexdigest()[:12]
    node = Route(id=route_id, receiver=receiver, match=dict(cfg.match), match_re=dict(cfg.match_re),
                 continue_=cfg.continue_, group_by=group_by, timing=timing)
    node.routes = [build_routes(child, node) for child in cfg.routes]
    return node
