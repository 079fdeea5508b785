"""Config models of the `alerting:` section: routes, receivers, inhibition, silences.

The routing tree follows Alertmanager's semantics where the two overlap (match,
match_re, continue, inherited group_by / group_wait / group_interval /
repeat_interval), so a team that knows one knows the other. Receiver kinds are
not listed here: `ReceiverConfig` gets one optional key per kind found by
`agent.notify.registry.receiver_kinds()`, so adding a receiver module adds its
config key and its JSON Schema without touching this file.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field, create_model, field_validator, model_validator

from agent.check import Model
from agent.durations import Duration
from agent.registry import RootConfig, Section, register_section

if TYPE_CHECKING:
    from agent.notify.base import Receiver, ReceiverSettings

RECEIVER_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
ALL_LABELS = "..."
#: silences must end before this: later ends cannot be shown as dates (year 10000 overflows)
LATEST_END = datetime(9999, 1, 1, tzinfo=UTC)


def receiver_kinds() -> dict[str, type[Receiver]]:
    """Receiver classes by kind; empty while `agent.notify.registry` does not exist."""
    try:
        from agent.notify.registry import receiver_kinds as kinds
    except ModuleNotFoundError as exc:
        if exc.name != "agent.notify.registry":
            raise
        return {}
    return dict(kinds())


def compile_matchers(v: dict[str, str], field: str) -> dict[str, str]:
    for label, pattern in v.items():
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"invalid regular expression for {field}.{label}: {pattern!r}: {exc}") from None
    return v


def full_match(pattern: str, value: str) -> bool:
    """Alertmanager's match_re: the regex is anchored at both ends."""
    return re.fullmatch(pattern, value) is not None


class Matching(Model):
    """Equality and anchored-regex matchers on alert labels."""

    match: dict[str, str] = Field(default_factory=dict, description="labels that must equal these values")
    match_re: dict[str, str] = Field(default_factory=dict, description="labels that must fully match these regexes")

    @field_validator("match_re")
    @classmethod
    def _regexes(cls, v: dict[str, str]) -> dict[str, str]:
        return compile_matchers(v, "match_re")

    def matches(self, labels: dict[str, str]) -> bool:
        return (all(labels.get(k) == v for k, v in self.match.items())
                and all(full_match(p, labels.get(k, "")) for k, p in self.match_re.items()))


class RouteConfig(Matching):
    """One node of the routing tree; unset timing and grouping keys inherit from the parent."""

    receiver: str | None = Field(None, description="receiver name; inherited from the parent route if unset")
    continue_: bool = Field(False, alias="continue", description="keep matching sibling routes after this one matched")
    group_by: list[str] | None = Field(None, description="labels that form a group; ['...'] groups by all labels")
    group_wait: Duration | None = Field(None, description="wait before the first notification of a new group")
    group_interval: Duration | None = Field(None, description="wait between notifications when a group changes")
    repeat_interval: Duration | None = Field(None, description="resend an unchanged firing group this often")
    routes: list[RouteConfig] = Field(default_factory=list, description="child routes, tried in order")

    @field_validator("group_by")
    @classmethod
    def _group_by(cls, v: list[str] | None) -> list[str] | None:
        if v is not None and ALL_LABELS in v and len(v) > 1:
            raise ValueError("'...' groups by all labels and cannot be combined with other labels")
        return v

    @field_validator("group_interval", "repeat_interval")
    @classmethod
    def _positive(cls, v: timedelta | None, info: Any) -> timedelta | None:
        if v is not None and v <= timedelta(0):
            raise ValueError(f"{info.field_name} must be more than 0, e.g. 1m or 4h")
        return v


class InhibitRule(Model):
    """A firing source alert mutes target alerts whose `equal` labels have the same values."""

    source_match: dict[str, str] = Field(default_factory=dict)
    source_match_re: dict[str, str] = Field(default_factory=dict)
    target_match: dict[str, str] = Field(default_factory=dict)
    target_match_re: dict[str, str] = Field(default_factory=dict)
    equal: list[str] = Field(default_factory=list, description="labels whose values must be equal in source and target")

    @field_validator("source_match_re", "target_match_re")
    @classmethod
    def _regexes(cls, v: dict[str, str], info: Any) -> dict[str, str]:
        return compile_matchers(v, info.field_name)

    @model_validator(mode="after")
    def _not_empty(self) -> InhibitRule:
        if not (self.source_match or self.source_match_re):
            raise ValueError("an inhibit rule needs source_match or source_match_re (else every alert would be a source)")
        if not (self.target_match or self.target_match_re):
            raise ValueError("an inhibit rule needs target_match or target_match_re (else it would mute every alert)")
        return self


def _utc(v: Any) -> Any:
    if isinstance(v, datetime) and v.tzinfo is None:
        return v.replace(tzinfo=UTC)
    return v


class SilenceConfig(Model):
    """A silence written in the config; the API adds more at runtime."""

    matchers: dict[str, str] = Field(default_factory=dict, description="labels that must equal these values")
    matchers_re: dict[str, str] = Field(default_factory=dict, description="labels that must fully match these regexes")
    starts_at: datetime = Field(description="ISO 8601 time; without a zone it is UTC")
    ends_at: datetime | None = Field(None, description="ISO 8601 time; or give `duration`")
    duration: Duration | None = Field(None, description="length instead of ends_at")
    comment: str = ""
    created_by: str = "config"

    @field_validator("starts_at", "ends_at")
    @classmethod
    def _utc_times(cls, v: datetime | None) -> datetime | None:
        return _utc(v)  # type: ignore[no-any-return]

    @field_validator("matchers_re")
    @classmethod
    def _regexes(cls, v: dict[str, str]) -> dict[str, str]:
        return compile_matchers(v, "matchers_re")

    @model_validator(mode="after")
    def _shape(self) -> SilenceConfig:
        if not (self.matchers or self.matchers_re):
            raise ValueError("a silence needs at least one matcher (matchers or matchers_re)")
        if (self.ends_at is None) == (self.duration is None):
            raise ValueError("set exactly one of ends_at or duration")
        field = "ends_at" if self.ends_at is not None else "duration"
        try:
            too_late = self.end >= LATEST_END
        except OverflowError:
            too_late = True
        if too_late:
            raise ValueError(f"{field}: the silence would end after {LATEST_END.date()}; "
                             "give a shorter duration or an earlier ends_at")
        return self

    @property
    def end(self) -> datetime:
        if self.ends_at is not None:
            return self.ends_at
        assert self.duration is not None
        return self.starts_at + self.duration


class MaintenanceWindow(Model):
    """A recurring silence: from each cron fire time for `duration`."""

    name: str | None = None
    matchers: dict[str, str] = Field(default_factory=dict)
    matchers_re: dict[str, str] = Field(default_factory=dict)
    cron: str = Field(description="5-field crontab of the window starts, e.g. '0 2 * * 0' (Sundays 02:00)")
    duration: Duration = Field(description="how long each window lasts")
    timezone: str = Field("UTC", description="IANA time zone the cron is read in")
    comment: str = ""

    @field_validator("matchers_re")
    @classmethod
    def _regexes(cls, v: dict[str, str]) -> dict[str, str]:
        return compile_matchers(v, "matchers_re")

    @field_validator("timezone")
    @classmethod
    def _zone(cls, v: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r}; use an IANA name such as UTC or Europe/Berlin") from None
        return v

    @model_validator(mode="after")
    def _shape(self) -> MaintenanceWindow:
        from apscheduler.triggers.cron import CronTrigger

        if not (self.matchers or self.matchers_re):
            raise ValueError("a maintenance window needs at least one matcher (matchers or matchers_re)")
        try:
            CronTrigger.from_crontab(self.cron)
        except ValueError as exc:
            raise ValueError(f"invalid cron expression {self.cron!r}: {exc}; expected 5 fields 'min hour dom month dow'") from None
        if self.duration <= timedelta(0):
            raise ValueError("duration must be positive")
        return self


class OutboxSettings(Model):
    """Retry policy of the durable outbox."""

    max_age: Duration = Field(default=timedelta(hours=24), description="drop a notification not delivered within this long")
    initial_backoff: Duration = Field(default=timedelta(seconds=1), description="first retry delay (doubles per attempt, jittered)")
    max_backoff: Duration = Field(default=timedelta(minutes=5), description="longest delay between two attempts")

    @model_validator(mode="after")
    def _order(self) -> OutboxSettings:
        if self.initial_backoff <= timedelta(0) or self.max_age <= timedelta(0):
            raise ValueError("initial_backoff and max_age must be positive")
        if self.max_backoff < self.initial_backoff:
            raise ValueError("max_backoff must be at least initial_backoff")
        return self


class ReceiverConfigBase(Model):
    """`name` plus exactly one kind key (slack, pagerduty, ...) holding that kind's settings."""

    name: str = Field(pattern=RECEIVER_NAME, max_length=128, description="referenced by routes")
    KINDS: ClassVar[tuple[str, ...]] = ()

    @model_validator(mode="before")
    @classmethod
    def _one_kind(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        known = ", ".join(cls.KINDS) or "(no receiver kinds are installed)"
        unknown = [k for k in data if k != "name" and k not in cls.KINDS]
        if unknown:
            raise ValueError(f"unknown receiver kind {unknown[0]!r}; known kinds: {known}")
        present = [k for k in cls.KINDS if k in data]
        if len(present) != 1:
            got = ", ".join(present) if present else "none"
            raise ValueError(f"a receiver needs exactly one kind key ({known}); got {got}")
        if data[present[0]] is None:  # `log:` with nothing after it
            data = {**data, present[0]: {}}
        return data

    @property
    def kind(self) -> str:
        return next(k for k in self.KINDS if getattr(self, k) is not None)

    @property
    def settings(self) -> ReceiverSettings:
        return getattr(self, self.kind)  # type: ignore[no-any-return]


def receiver_config_model(kinds: dict[str, type[Receiver]]) -> type[ReceiverConfigBase]:
    fields: dict[str, Any] = {kind: (cls.Settings | None, Field(None, description=(cls.__doc__ or kind).strip().splitlines()[0]))
                              for kind, cls in sorted(kinds.items())}
    model = create_model("ReceiverConfig", __base__=ReceiverConfigBase, **fields)
    model.KINDS = tuple(sorted(kinds))
    return model


if TYPE_CHECKING:
    ReceiverConfig = ReceiverConfigBase
else:
    ReceiverConfig = receiver_config_model(receiver_kinds())


class AlertingConfig(Model):
    runbook_base_url: str | None = Field(None, description="base URL that relative `runbook:` paths are joined to")
    route: RouteConfig | None = Field(None, description="the routing tree; without it alerts are tracked but not sent")
    receivers: list[ReceiverConfig] = Field(default_factory=list)
    inhibit: list[InhibitRule] = Field(default_factory=list)
    silences: list[SilenceConfig] = Field(default_factory=list)
    maintenance_windows: list[MaintenanceWindow] = Field(default_factory=list)
    outbox: OutboxSettings = Field(default_factory=lambda: OutboxSettings())
    max_silences: int = Field(1000, ge=1, le=100_000,
                              description="most silences active or pending at once (config and API); "
                                          "POST /api/v1/silences answers 409 beyond")

    @field_validator("runbook_base_url")
    @classmethod
    def _base(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"^https?://[^/\s]+", v):
            raise ValueError(f"runbook_base_url must be an http(s) URL, got {v!r}")
        return v

    def receiver(self, name: str) -> ReceiverConfigBase | None:
        return next((r for r in self.receivers if r.name == name), None)

    def semantic_issues(self, config: RootConfig | None = None) -> list[tuple[tuple[Any, ...], str]]:
        """Cross-field problems, as (path inside `alerting`, message)."""
        out: list[tuple[tuple[Any, ...], str]] = []
        names: dict[str, int] = {}
        for i, r in enumerate(self.receivers):
            if r.name in names:
                out.append((("receivers", i, "name"), f"duplicate receiver name {r.name!r} (also receivers[{names[r.name]}])"))
            else:
                names[r.name] = i
        configured = ", ".join(names) or "(none)"
        if self.route is not None:
            if self.route.receiver is None:
                out.append((("route", "receiver"), f"the root route needs a receiver; configured: {configured}"))
            if self.route.match or self.route.match_re:
                out.append((("route", "match"), "the root route matches every alert: put matchers on child routes"))
            out.extend(self._route_issues(self.route, ("route",), names, configured))
        elif self.receivers:
            out.append((("route",), "receivers are configured but no route sends anything to them"))
        if len(self.silences) > self.max_silences:
            out.append((("silences",), f"{len(self.silences)} silences configured, more than "
                                       f"alerting.max_silences ({self.max_silences}); raise max_silences"))
        for i, s in enumerate(self.silences):
            if s.end <= s.starts_at:
                out.append((("silences", i, "ends_at" if s.ends_at else "duration"),
                            f"ends_at ({s.end.isoformat()}) must be after starts_at ({s.starts_at.isoformat()})"))
        return out

    def _route_issues(self, route: RouteConfig, loc: tuple[Any, ...], names: dict[str, int],
                      configured: str) -> list[tuple[tuple[Any, ...], str]]:
        out: list[tuple[tuple[Any, ...], str]] = []
        if route.receiver is not None and route.receiver not in names:
            out.append(((*loc, "receiver"), f"unknown receiver {route.receiver!r}; configured: {configured}"))
        for i, child in enumerate(route.routes):
            out.extend(self._route_issues(child, (*loc, "routes", i), names, configured))
        return out


def alerting_of(config: RootConfig) -> AlertingConfig:
    """The `alerting:` section of a root config (registered here, so not an attribute the root declares)."""
    section = getattr(config, "alerting", None)
    if not isinstance(section, AlertingConfig):
        raise TypeError(f"the config has no alerting section (got {type(section).__name__})")
    return section


def _semantic_issues(config: RootConfig) -> list[tuple[tuple[Any, ...], str]]:
    return [(("alerting", *loc), msg) for loc, msg in alerting_of(config).semantic_issues(config)]


register_section(Section("alerting", AlertingConfig, many=False, default=AlertingConfig,
                         semantic_issues=_semantic_issues, order=10))
