"""Load and validate the YAML config: every error at once, by field path and line.

Pipeline: YAML (bounded and strict, with line marks: `agent.yamlfile`) ->
`include:` merge -> `${ENV}` expansion -> pydantic models (the single source
of truth for the schema and the docs) -> cross-field checks (unique names,
known dependencies, each section's own) -> what the machine must provide
(runbook files, optional packages). Either a whole valid `Config` comes out
or a `ConfigError` listing every problem, sorted by file and line; nothing is
half applied, and no other exception escapes, whatever the input. When the
models reject some part, the cross-field checks still run on the valid rest
(`_partial_view`), so a duplicate name or an unknown reference is reported in
the same run as a bad port.
"""

from __future__ import annotations

import difflib
import glob
import os
import re
import typing
from dataclasses import dataclass, replace
from datetime import timedelta
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import (
    BaseModel,
    ByteSize,
    Field,
    SecretStr,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    create_model,
    field_validator,
    model_validator,
)

from agent import registry, runbook_files, yamlfile
from agent.check import NAME_PATTERN, CheckConfig, Model, missing_packages
from agent.core import gc_paused
from agent.durations import Duration
from agent.interning import sharing
from agent.secrets import InlineSecret, Secret, dsn_rule, expand_env, redact

EMBEDDED_DEFAULT = "quickstart.yaml"
#: shortest accepted agent.api_token
MIN_API_TOKEN = 16
#: smallest agent.store_max_size: history trimming must leave room for alert state and the outbox
MIN_STORE_SIZE = 16 << 20
_BYTE_SIZE: TypeAdapter[ByteSize] = TypeAdapter(ByteSize)


#: `agent.state`: a PostgreSQL URL, a secret as a whole (it may carry the password)
StateUrl = Annotated[InlineSecret, dsn_rule("a postgresql:// URL such as postgresql://sre@db:5432/sre_agent (or unset "
                                            "for SQLite in state_dir)", schemes=("postgresql", "postgres"))]


class ReplicaSettings(Model):
    """This agent as one of several replicas on a shared `agent.state` (PostgreSQL)."""

    name: str | None = Field(None, min_length=1, max_length=128,
                             description="this replica's name, unique among them (e.g. ${POD_NAME}); default hostname-pid")
    lease: Duration = Field(timedelta(seconds=15), description="heartbeat TTL: a replica silent this long is taken as "
                            "gone and its checks move to the others")

    @field_validator("lease")
    @classmethod
    def _lease(cls, v: timedelta) -> timedelta:
        if v < timedelta(seconds=1):
            raise ValueError("lease must be at least 1s, e.g. 15s")
        return v


class ShardSettings(Model):
    """Static sharding: this replica runs shard `index` of `count` (e.g. the StatefulSet ordinal); no membership."""

    index: int = Field(ge=0, description="this replica's shard, 0 .. count-1")
    count: int = Field(ge=1, le=10_000, description="how many shards the checks are split into")

    @model_validator(mode="after")
    def _index_below_count(self) -> ShardSettings:
        if self.index >= self.count:
            raise ValueError(f"index must be below count (0 .. {self.count - 1}), got {self.index}")
        return self


class AgentSettings(Model):
    listen: str = Field("127.0.0.1:9108", description="host:port for /metrics, /healthz and the API")
    state_dir: Path = Field(Path(".sre-agent"), description="where the SQLite state store lives (unused by `run` "
                            "when agent.state is set)")
    state: StateUrl | None = Field(None, description="postgresql://user@host:port/db: state shared by replicas "
                                   "(unset: SQLite in state_dir)")
    state_password: Secret | None = Field(None, description="password for agent.state (or state_password_file, or "
                                          "${ENV} in the URL)")
    state_buffer: int = Field(100_000, ge=100, le=10_000_000, description="results held in memory while agent.state is "
                              "unreachable; past it the oldest go (counted); notifications are never dropped")
    replica: ReplicaSettings = Field(default_factory=ReplicaSettings)
    shard: ShardSettings | None = Field(None, description="static sharding instead of live membership (needs agent.state)")
    location: str | None = Field(None, min_length=1, max_length=64, description="where this replica probes from, for "
                                 "checks with `locations:`")
    api_token: Secret | None = Field(None, description="bearer token for API writes (or api_token_file); "
                                                      f"at least {MIN_API_TOKEN} characters")
    max_concurrency: int = Field(256, ge=1, le=100_000, description="checks running at once, across all types")
    api_max_connections: int = Field(256, ge=1, le=100_000,
                                     description="open connections to the API at once; past it the oldest idle "
                                                 "one is closed, or the new one answered 503 (lowered to fit the "
                                                 "open-files limit, keeping descriptors for checks)")
    external_url: str | None = Field(None, description="URL where this agent is reached, for links in alerts")
    log_level: str = Field("info", pattern=r"^(debug|info|warning|error)$")
    log_format: str = Field("text", pattern=r"^(text|json)$")
    history_retention: Duration = Field(timedelta(days=2), description="how long check results are kept (longer for SLO checks)")
    history_raw_retention: Duration = Field(timedelta(hours=1), description="results younger than this are kept one by "
                                            "one; older ones as one aggregate per check and minute (exact counts)")
    store_max_size: ByteSize | None = Field(ByteSize(1 << 30), description="cap on the state store's size, e.g. 1GiB or "
                                            "500MB: past it the oldest history is deleted (alert state never is); "
                                            "null: no cap")
    prometheus_url: str | None = Field(None, description="default Prometheus for SLOs and prometheus sources")
    event_loop: Literal["auto", "asyncio", "uvloop"] = Field(
        "auto", description="the asyncio event loop: uvloop when installed (auto), required (uvloop), or the "
                            "standard one (asyncio); a change needs a restart")
    created_series: bool = Field(False, description="also expose prometheus_client's `<name>_created` series next "
                                 "to every counter and histogram (doubles their cardinality)")

    @field_validator("api_token")
    @classmethod
    def _api_token(cls, v: SecretStr | None) -> SecretStr | None:
        # An empty token (`${VAR}` set but empty) must not read as "no authentication".
        if v is None:
            return v
        token = v.get_secret_value()
        if not token.strip():
            raise ValueError("api_token is empty (an unset or empty ${VAR}?): set a token of at least "
                             f"{MIN_API_TOKEN} characters, or remove the key to keep the write API disabled")
        if any(c.isspace() for c in token):
            raise ValueError("api_token must not contain whitespace")
        if len(token) < MIN_API_TOKEN:
            raise ValueError(f"api_token is too short ({len(token)} characters): use at least {MIN_API_TOKEN}, "
                             "e.g. the output of `openssl rand -hex 32`")
        return v

    @field_validator("history_retention", "history_raw_retention")
    @classmethod
    def _positive_retention(cls, v: timedelta, info: ValidationInfo) -> timedelta:
        if v <= timedelta(0):
            raise ValueError(f"{info.field_name} must be positive, e.g. 1h")
        return v

    @field_validator("store_max_size", mode="before")
    @classmethod
    def _size(cls, v: Any) -> Any:
        if v is None:
            return v
        try:
            size = _BYTE_SIZE.validate_python(v)
        except Exception:
            raise ValueError(f"store_max_size must be a size such as 1GiB, 500MB or 1073741824, got {v!r}") from None
        if size < MIN_STORE_SIZE:
            raise ValueError(f"store_max_size must be at least 16MiB (the alert state and outbox need room), got {v!r}")
        return size

    @model_validator(mode="after")
    def _shard_needs_state(self) -> AgentSettings:
        if self.shard is not None and self.state is None:
            raise ValueError("shard needs a shared agent.state (postgresql://...): with SQLite one agent runs every check")
        return self

    @field_validator("listen")
    @classmethod
    def _listen(cls, v: str) -> str:
        return check_listen(v)

    @property
    def host_port(self) -> tuple[str, int]:
        host, _, port = self.listen.rpartition(":")
        return host.strip("[]") or "0.0.0.0", int(port)


def check_listen(v: Any) -> str:
    """`agent.listen` is host:port (the host may be empty or a [v6] address)."""
    if not isinstance(v, str):
        raise ValueError(f"listen must be host:port, got {type(v).__name__}")
    host, sep, port = v.rpartition(":")
    if not sep or not port.isdigit() or len(port) > 5 or not 0 <= int(port) <= 65535:
        raise ValueError(f"listen must be host:port with a port 0-65535, got {v[:80]!r}")
    return v


class Defaults(Model):
    interval: Duration = timedelta(seconds=30)
    timeout: Duration = timedelta(seconds=10)

    @field_validator("interval", "timeout")
    @classmethod
    def _positive(cls, v: timedelta, info: ValidationInfo) -> timedelta:
        if v <= timedelta(0):
            raise ValueError(f"{info.field_name} must be positive, e.g. 30s")
        return v


class ConfigBase(Model):
    """Fields of the root; `config_model()` adds `checks` with every registered type."""

    agent: AgentSettings = Field(default_factory=AgentSettings)
    defaults: Defaults = Field(default_factory=Defaults)
    include: list[str] = Field(default_factory=list, description="globs of more files with checks/slos/data_products")

    def all_checks(self) -> list[CheckConfig]:
        """Checks as written plus those derived by registered sections (`slos:`, `data_products:`)."""
        return [c for _, c in self.located_checks()]

    def located_checks(self) -> list[tuple[tuple[Any, ...], CheckConfig]]:
        """Each check with where it comes from: `("checks", i)`, or the item deriving it (`("slos", i)`)."""
        written = [(("checks", i), _with_defaults(c, self.defaults)) for i, c in enumerate(getattr(self, "checks", []))]
        return [*written, *_derived_checks(self)]

    def check(self, name: str) -> CheckConfig:
        """The check named `name`, else the one check derived from a section item of that name
        (`sre-agent check api-availability` runs the SLO's check `slo-api-availability`)."""
        located = self.located_checks()
        for _, c in located:
            if c.name == name:
                return c
        for section in _ordered_sections():
            if section.to_checks is None:
                continue
            for i, entry in enumerate(getattr(self, section.key, [])):
                if _item_name(entry) == name:
                    derived = [c for loc, c in located if loc == (section.key, i)]
                    if len(derived) == 1:
                        return derived[0]
        raise KeyError(name)


def _item_name(entry: Any) -> str | None:
    name = getattr(entry, "name", None) or getattr(getattr(entry, "metadata", None), "name", None)
    return name if isinstance(name, str) else None


def _derived_checks(config: Any) -> list[tuple[tuple[Any, ...], CheckConfig]]:
    out: list[tuple[tuple[Any, ...], CheckConfig]] = []
    for section in _ordered_sections():
        if section.to_checks is not None:
            for i, entry in enumerate(getattr(config, section.key, [])):
                out.extend(((section.key, i), _with_defaults(c, config.defaults)) for c in section.to_checks(entry, config))
    return out


def _with_defaults(c: CheckConfig, d: Defaults) -> CheckConfig:
    update: dict[str, Any] = {}
    if c.timeout is None:
        update["timeout"] = d.timeout
    if c.interval is None and c.cron is None:
        update["interval"] = d.interval
    return c.model_copy(update=update) if update else c


def _ordered_sections() -> list[registry.Section]:
    """The sections registered so far: every one, unless a config was loaded with `lazy_sections`."""
    return sorted(registry.registered_sections().values(), key=lambda sec: sec.order)


def config_model(types: frozenset[str] | None = None) -> type[ConfigBase]:
    """The root model: `checks` takes every registered type, or only `types` (those a config names)."""
    registry.discover_sections()
    return _config_model(types, frozenset(registry.registered_sections()))


@cache
def _config_model(types: frozenset[str] | None, sections: frozenset[str]) -> type[ConfigBase]:
    """(`sections`: the keys registered, part of the cache key: a later registration makes a new model.)"""
    if types is None:
        classes = list(registry.check_types().values())
    else:
        found = [registry.find_type(name) for name in sorted(types)]
        classes = [cls for cls in found if cls is not None]
    models = tuple(t.Config for t in classes)
    check_union: Any = _NoType  # no checks named: none to validate
    if models:  # a tagged union even of one type, so error paths keep their shape (`checks[0].<tag>.<key>`)
        check_union = Annotated[Union[(*models, _NoType) if len(models) == 1 else models], Field(discriminator="type")]  # noqa: UP007
    fields: dict[str, Any] = {"checks": (list[check_union], Field(default_factory=list))}  # type: ignore[valid-type]
    for section in _ordered_sections():
        if section.many:
            item: Any = section.model
            fields[section.key] = (list[item], Field(default_factory=list, description=section.description))
        else:
            fields[section.key] = (section.model, Field(default_factory=section.default or section.model,
                                                        description=section.description))
    model = create_model("Config", __base__=ConfigBase, **fields)
    model.model_rebuild()
    return model


Config = ConfigBase  # for type hints; instances are of config_model()


class _NoType(CheckConfig):
    """The second member of a union built for a config naming a single check type (it never matches)."""

    type: Literal["\x00"]


def _named_types(data: dict[str, Any]) -> frozenset[str] | None:
    """The check types a config's `checks:` name, when each is found by its own module; else None (all).

    An unknown or missing type needs every type: its error lists them and suggests the closest.
    """
    items = data.get("checks")
    if not isinstance(items, list) or not items:
        return frozenset() if items is None or items == [] else None
    names = {item.get("type") if isinstance(item, dict) else None for item in items}
    if not all(isinstance(n, str) and registry.find_type(n) is not None for n in names):
        return None
    return frozenset(n for n in names if isinstance(n, str))


@dataclass(frozen=True)
class ConfigIssue:
    path: str
    message: str
    file: str | None = None
    line: int | None = None

    def __str__(self) -> str:
        where = ""
        if self.file:
            where = f"{self.file}:{self.line}: " if self.line else f"{self.file}: "
        return f"{where}{self.path or '<root>'}: {self.message}"


class ConfigError(Exception):
    def __init__(self, issues: list[ConfigIssue]):
        self.issues = issues
        super().__init__("\n".join(str(i) for i in issues))


# --- reading files -----------------------------------------------------------

_Marks = yamlfile.Marks


def _load_yaml(path: Path, issues: list[ConfigIssue]) -> list[tuple[Any, _Marks]]:
    """The file's documents; problems that do not stop reading it (duplicate keys) go to `issues`."""
    try:
        docs, problems = yamlfile.load(path)
    except yamlfile.YamlFileError as exc:
        raise ConfigError([_issue(exc.problem)]) from None
    issues.extend(_issue(p) for p in problems)
    return [(d.data, d.marks) for d in docs]


def _issue(problem: yamlfile.YamlProblem) -> ConfigIssue:
    return ConfigIssue(format_path(problem.path), problem.message, problem.file, problem.line)


# --- loading -----------------------------------------------------------------

def _list_sections() -> tuple[str, ...]:
    """Sections an included file may add items to: `checks` and every registered list section."""
    return ("checks", *(sec.key for sec in _ordered_sections() if sec.many))


def _kind_sections() -> dict[str, str]:
    """`kind:` of a document that is one item of a section (`DataProduct`, `SLO`) -> the section."""
    return {sec.kind: sec.key for sec in _ordered_sections() if sec.kind}


class _Origins:
    """Where each merged list item came from, for error lines in included files."""

    def __init__(self, main: Path, marks: _Marks) -> None:
        self.main, self.main_marks = main, marks
        self.items: dict[tuple[str, int], tuple[Path, _Marks, tuple[Any, ...]]] = {}
        self.files: list[str] = [str(main)]  # in load order, for sorting issues

    def locate(self, path: tuple[Any, ...]) -> tuple[str, int | None]:
        if len(path) >= 2 and (path[0], path[1]) in self.items:
            file, marks, prefix = self.items[(path[0], path[1])]
            return str(file), marks.line_for((*prefix, *path[2:]))
        return str(self.main), self.main_marks.line_for(path)


def _merge_includes(data: dict[str, Any], base: Path, origins: _Origins, issues: list[ConfigIssue]) -> None:
    patterns = data.get("include") or []
    if not isinstance(patterns, list):
        return  # the model reports the wrong type
    list_sections, kind_sections = _list_sections(), _kind_sections()
    for section in list_sections:
        items = data.get(section)
        for i in range(len(items) if isinstance(items, list) else 0):
            origins.items[(section, i)] = (origins.main, origins.main_marks, (section, i))
    for n, pattern in enumerate(patterns):
        if not isinstance(pattern, str):
            continue
        full = pattern if os.path.isabs(pattern) else str(base / pattern)
        try:
            matches = sorted(glob.glob(full, recursive=True))
        except (OSError, ValueError) as exc:
            issues.append(ConfigIssue(f"include[{n}]", f"invalid include pattern: {exc}", str(origins.main),
                                      origins.main_marks.line_for(("include", n))))
            continue
        if not matches and not glob.has_magic(pattern):
            issues.append(ConfigIssue(f"include[{n}]", f"file {pattern!r} does not exist", str(origins.main), origins.main_marks.line_for(("include", n))))
        for match in matches:
            if match not in origins.files:
                origins.files.append(match)
            try:
                docs = _load_yaml(Path(match), issues)
            except ConfigError as exc:
                issues.extend(exc.issues)
                continue
            for doc, marks in docs:
                if doc is None:
                    continue
                kind = doc.get("kind") if isinstance(doc, dict) else None
                if isinstance(kind, str) and kind in kind_sections:
                    section = kind_sections[kind]
                    if _mergeable(data, section):
                        data.setdefault(section, [])
                        origins.items[(section, len(data[section]))] = (Path(match), marks, ())
                        data[section].append(doc)
                    continue
                if not isinstance(doc, dict) or set(doc) - set(list_sections):
                    extra = sorted(map(str, set(doc) - set(list_sections))) if isinstance(doc, dict) else [type(doc).__name__]
                    issues.append(ConfigIssue("", f"an included file may only hold {', '.join(list_sections)} "
                                              f"(or a DataProduct / SLO document); found {', '.join(extra)}", match, 1))
                    continue
                for section in list_sections:
                    items = doc.get(section) or []
                    if not isinstance(items, list):
                        issues.append(ConfigIssue(section, "must be a list", match, marks.line_for((section,))))
                        continue
                    if not items or not _mergeable(data, section):
                        continue
                    if data.get(section) is None:
                        data[section] = []
                    for j, item in enumerate(items):
                        origins.items[(section, len(data[section]))] = (Path(match), marks, (section, j))
                        data[section].append(item)


def _mergeable(data: dict[str, Any], section: str) -> bool:
    """Included items join the main file's list; when that is not a list, the model reports it."""
    return data.get(section) is None or isinstance(data[section], list)


def load_config(path: str | os.PathLike[str] | None = None, env: dict[str, str] | None = None, *,
                lazy_sections: bool = False) -> ConfigBase:
    """Load, expand and validate; raise `ConfigError` with every issue found, sorted by file and line.

    `lazy_sections` (`sre-agent check`): the config has attributes only for the sections it
    has (those of the registry's sections whose owners are imported), so a config of checks
    alone imports no alerting, SLO or data-product models. A section left out would be its
    default, which has no issue to report; a config with `include:` loads every section.
    """
    with gc_paused(), sharing():
        return _load_config(path, env, lazy_sections)


def _load_config(path: str | os.PathLike[str] | None, env: dict[str, str] | None,
                 lazy_sections: bool = False) -> ConfigBase:
    cfg_path = Path(path) if path is not None else embedded_default()
    issues: list[ConfigIssue] = []
    docs = [(d, m) for d, m in _load_yaml(cfg_path, issues) if d is not None]
    if len(docs) > 1:
        raise ConfigError([ConfigIssue("", "the main config must be a single YAML document", str(cfg_path))])
    data, marks = docs[0] if docs else ({}, _Marks())
    if not isinstance(data, dict):
        raise ConfigError([ConfigIssue("", f"the config must be a mapping, got {type(data).__name__}", str(cfg_path), 1)])
    registry.discover_sections(data if lazy_sections and not data.get("include") else None)
    origins = _Origins(cfg_path, marks)
    _merge_includes(data, cfg_path.parent, origins, issues)
    data, env_errors = expand_env(data, env)
    for err in env_errors:
        file, line = origins.locate(err.path)
        issues.append(ConfigIssue(format_path(err.path), err.message, file, line))
    model = _config_model(_named_types(data), frozenset(registry.registered_sections()))
    view: _ConfigView | None = None
    try:
        view = _ConfigView(model.model_validate(data))
    except ValidationError as exc:
        error_locs = []
        for e in exc.errors(include_url=False):
            if e["type"] == "default_factory_not_called":
                continue  # a default computed from other fields, one of which has its own error
            loc = _clean_loc(data, e["loc"], missing=e["type"] == "missing")
            if e["type"] in ("union_tag_invalid", "union_tag_not_found"):
                loc = (*loc, "type")
            error_locs.append(loc)
            file, line = origins.locate(loc)
            issues.append(ConfigIssue(format_path(loc), _message(model, data, loc, dict(e)), file, line))
        # Cross-references are checked on the valid part too: every error in one run.
        view = _partial_view(model, data, error_locs)
    if view is not None:
        for loc, message in [*semantic_issues(view), *environment_issues(view, cfg_path)]:
            file, line = origins.locate(loc)
            issues.append(ConfigIssue(format_path(loc), message, file, line))
    if issues:
        # Error text quotes values, and a value may have come from ${ENV} or a *_file secret.
        rank = {f: n for n, f in enumerate(origins.files)}
        ordered = sorted(_dedupe(issues), key=lambda i: (i.file is not None, rank.get(i.file or "", len(rank)),
                                                          i.file or "", i.line or 0))
        raise ConfigError([replace(i, message=redact(i.message)) for i in ordered])
    assert view is not None
    return view.config


def agent_listen(path: str | os.PathLike[str] | None = None, env: dict[str, str] | None = None) -> str:
    """`agent.listen` alone, for commands that only talk to a running agent (`alerts`, `silence`).

    Nothing else is validated or expanded: such a command must not need the receivers' secrets
    in its environment, nor fail on a check it never runs.
    """
    cfg_path = Path(path) if path is not None else embedded_default()
    issues: list[ConfigIssue] = []
    docs = [(d, m) for d, m in _load_yaml(cfg_path, issues) if d is not None]
    data, marks = docs[0] if len(docs) == 1 else ({}, _Marks())
    agent = data.get("agent") if isinstance(data, dict) else None
    value = agent.get("listen") if isinstance(agent, dict) else None
    if value is None:
        return str(AgentSettings.model_fields["listen"].default)
    loc = ("agent", "listen")
    value, env_errors = expand_env(value, env, loc)
    problems = [err.message for err in env_errors]
    if not problems:
        try:
            return check_listen(value)
        except ValueError as exc:
            problems.append(str(exc))
    raise ConfigError([ConfigIssue(format_path(loc), redact(m), str(cfg_path), marks.line_for(loc)) for m in problems])


def _dedupe(issues: list[ConfigIssue]) -> list[ConfigIssue]:
    seen, out = set(), []
    for i in issues:
        if (i.path, i.message) not in seen:
            seen.add((i.path, i.message))
            out.append(i)
    return out


# --- checks across fields ------------------------------------------------------------

Location = tuple[Any, ...]


class _ConfigView:
    """A config as the cross-field checks see it, with `located_checks()` computed once.

    For a config that did not validate it is the valid part (`_partial_view`): invalid items of
    list sections are left out and `positions` maps the remaining ones back to where they are
    written, so every path (and every `slos[3]` quoted in a message) names the file's item. The
    written checks keep their positions, an invalid one standing in by its raw `name`, `type` and
    `depends_on` (so a reference to it is not "unknown"), and the names an invalid SLO or data
    product would derive are known too. A single section (`alerting:`) whose own data had errors
    is `incomplete`: its cross-field hook waits until it is valid.
    """

    def __init__(self, config: ConfigBase, checks: list[CheckConfig] | None = None,
                 derived_stand_ins: list[tuple[Location, CheckConfig]] | None = None,
                 stand_ins: set[int] | None = None, incomplete: frozenset[str] = frozenset(),
                 positions: dict[str, list[int]] | None = None) -> None:
        self.config = config
        self.checks = list(getattr(config, "checks", [])) if checks is None else checks
        self.derived_stand_ins = derived_stand_ins or []
        #: ids of the checks that were not validated (no runbook / extras checks on them)
        self.stand_ins = stand_ins or set()
        #: ids of the stand-ins for derived checks: names to resolve references, never duplicates
        self.names_only = {id(c) for _, c in self.derived_stand_ins}
        self.incomplete = incomplete
        #: list section -> written index of each item the config holds (only where items were left out)
        self.positions = positions or {}
        self._located: list[tuple[Location, CheckConfig]] | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.config, name)

    def written(self, loc: Location) -> Location:
        """`loc` in the config -> the same item's path in the file."""
        where = self.positions.get(loc[0]) if loc else None
        if where is not None and len(loc) >= 2 and isinstance(loc[1], int) and 0 <= loc[1] < len(where):
            return (loc[0], where[loc[1]], *loc[2:])
        return loc

    def written_text(self, message: str) -> str:
        """`slos[2]` quoted in a hook's message -> the written position of that item."""
        for key in self.positions:
            message = re.sub(rf"\b{re.escape(key)}\[(\d+)\]",
                             lambda m: format_path(self.written((m[0].split("[")[0], int(m[1])))), message)
        return message

    def located_checks(self) -> list[tuple[Location, CheckConfig]]:
        if self._located is None:
            defaults = self.config.defaults
            written = [(("checks", i), _with_defaults(c, defaults)) for i, c in enumerate(self.checks)
                       if isinstance(c.name, str)]
            derived = [(self.written(loc), c) for loc, c in _derived_checks(self.config)]
            self._located = [*written, *derived, *self.derived_stand_ins]
        return list(self._located)

    def all_checks(self) -> list[CheckConfig]:
        return [c for _, c in self.located_checks()]


def _stand_in(raw: Any) -> CheckConfig:
    """An invalid written check, as far as references go: its raw name, type and depends_on."""
    item = raw if isinstance(raw, dict) else {}
    name, kind, deps = item.get("name"), item.get("type"), item.get("depends_on")
    fields: dict[str, Any] = {
        "name": name if isinstance(name, str) and re.match(NAME_PATTERN, name) else None,
        "type": kind if isinstance(kind, str) else "",
        "depends_on": deps if isinstance(deps, list) and all(isinstance(d, str) for d in deps) else []}
    return CheckConfig.model_construct(**fields)


#: validation rounds while pruning an invalid config down to its valid part
_PRUNE_ROUNDS = 4


def _partial_view(model: type[ConfigBase], data: dict[str, Any], error_locs: list[Location]) -> _ConfigView | None:
    """The valid part of `data`: invalid list items left out (their positions remembered), a single
    section's invalid field left to its default. None if no valid part is found."""
    list_keys = set(_list_sections())
    pruned = dict(data)
    kept = {key: list(range(len(data[key]))) for key in list_keys if isinstance(data.get(key), list)}
    incomplete: set[str] = set()
    config: ConfigBase | None = None
    locs = error_locs
    for _ in range(_PRUNE_ROUNDS):
        for loc in locs:
            if not loc:
                return None
            key = loc[0]
            if key in kept and len(loc) >= 2 and isinstance(loc[1], int):
                if 0 <= loc[1] < len(kept[key]):
                    kept[key][loc[1]] = -1  # marked; removed below, so later rounds' indices stay right
                continue
            incomplete.add(str(key))
            if key not in list_keys and len(loc) >= 2 and isinstance(pruned.get(key), dict) and loc[1] in pruned[key]:
                pruned[key] = {k: v for k, v in pruned[key].items() if k != loc[1]}
            else:
                pruned.pop(key, None)
                kept.pop(key, None)
        for key, indices in kept.items():
            kept[key] = [i for i in indices if i >= 0]
            pruned[key] = [data[key][i] for i in kept[key]]
        try:
            config = model.model_validate(pruned)
            break
        except ValidationError as exc:
            locs = [_clean_loc(pruned, e["loc"], missing=e["type"] == "missing") for e in exc.errors(include_url=False)
                    if e["type"] != "default_factory_not_called"]
    if config is None:
        return None
    positions = {key: where for key, where in kept.items() if len(where) != len(data[key])}
    stand_ins: set[int] = set()
    written: list[CheckConfig] = list(getattr(config, "checks", []))
    raw_checks = data.get("checks")
    if "checks" in positions and isinstance(raw_checks, list):
        valid = iter(written)
        kept_set = set(kept["checks"])
        written = []
        for i, raw in enumerate(raw_checks):
            if i in kept_set:
                written.append(next(valid))
            else:
                stand = _stand_in(raw)
                stand_ins.add(id(stand))
                written.append(stand)
        del positions["checks"]  # the stand-ins keep every written check at its index
    derived: list[tuple[Location, CheckConfig]] = []
    for section in _ordered_sections():
        raw_items = data.get(section.key)
        if section.check_names is None or section.key not in positions or not isinstance(raw_items, list):
            continue
        kept_set = set(kept[section.key])
        for i, raw in enumerate(raw_items):
            if i in kept_set:
                continue
            for name, kind in section.check_names(raw).items():
                fields: dict[str, Any] = {"name": name, "type": kind, "depends_on": []}
                stand = CheckConfig.model_construct(**fields)
                stand_ins.add(id(stand))
                derived.append(((section.key, i), stand))
    return _ConfigView(config, written, derived, stand_ins, frozenset(incomplete), positions)


def semantic_issues(config: Any) -> list[tuple[tuple[Any, ...], str]]:
    """Checks across fields: unique names, known dependencies, then each section's own hook."""
    view = config if isinstance(config, _ConfigView) else _ConfigView(config)
    out: list[tuple[tuple[Any, ...], str]] = []
    located = view.located_checks()
    # Items of one section sharing a name are that section's own error (`duplicate SLO name`).
    own_duplicates = {s.key for s in _ordered_sections() if s.semantic_issues is not None}
    first: dict[str, Location] = {}
    for loc, c in located:
        if id(c) in view.names_only:
            continue
        if c.name in first:
            held = first[c.name]
            if held[0] == loc[0] and loc[0] in own_duplicates:
                continue
            how = "used by" if held[0] == "checks" else "derived from"
            out.append(((*loc, "name") if loc[0] == "checks" else loc,
                        f"duplicate check name {c.name!r} (also {how} {format_path(held)})"))
        else:
            first[c.name] = loc
    known = {c.name for _, c in located}
    for loc, c in located:
        if loc[0] != "checks":
            continue
        for j, dep in enumerate(c.depends_on):
            if dep not in known:
                hint = difflib.get_close_matches(dep, sorted(known), n=1)
                out.append(((*loc, "depends_on", j), f"unknown check {dep!r}" + (f"; did you mean {hint[0]!r}?" if hint else "")))
            elif dep == c.name:
                out.append(((*loc, "depends_on", j), "a check cannot depend on itself"))
    for section in _ordered_sections():
        if section.semantic_issues is not None and section.key not in view.incomplete:
            out.extend((view.written(loc), view.written_text(message)) for loc, message in section.semantic_issues(view))
    return out


def environment_issues(config: Any, config_path: str | os.PathLike[str] | None) -> list[tuple[tuple[Any, ...], str]]:
    """What the machine must provide: runbook files that exist, the Python packages a check needs."""
    view = config if isinstance(config, _ConfigView) else _ConfigView(config)
    out: list[tuple[tuple[Any, ...], str]] = []
    checks = [(loc, c) for loc, c in view.located_checks() if id(c) not in view.stand_ins]
    types = {name: registry.find_type(name) for name in {c.type for _, c in checks}}  # each type once
    needs = {id(c): cls.requirements(c) if (cls := types[c.type]) is not None else {} for _, c in checks}
    missing = missing_packages({m: e for need in needs.values() for m, e in need.items()})  # each module once
    found: dict[str, list[Path] | None] = {}  # runbook -> where it was looked for, None if found
    for loc, c in checks:
        written = loc[0] == "checks"
        if c.runbook and not runbook_files.is_url(c.runbook):
            if c.runbook not in found:
                looked = runbook_files.candidates(c.runbook, config_path)
                found[c.runbook] = None if any(runbook_files.is_file(p) for p in looked) else looked
            looked_in = found[c.runbook]
            if looked_in is not None:
                out.append(((*loc, "runbook") if written else loc,
                            f"runbook {c.runbook!r} not found (looked in: {', '.join(map(str, looked_in))}); "
                            "give an existing file, or an http(s) URL for a runbook kept elsewhere"))
        by_extra: dict[str, list[str]] = {}
        for module, extra in needs[id(c)].items():
            if module in missing:
                by_extra.setdefault(extra, []).append(module)
        for extra, modules in sorted(by_extra.items()):
            names = ", ".join(repr(m) for m in modules)
            out.append(((*loc, "type") if written else loc,
                        f"{'check ' + repr(c.name) + ' ' if not written else ''}needs the Python package"
                        f"{'s' if len(modules) > 1 else ''} {names}, not installed: pip install 'sre-agent[{extra}]'"))
    return out


def format_path(loc: tuple[Any, ...] | list[Any]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _clean_loc(data: Any, loc: tuple[Any, ...], missing: bool = False) -> tuple[Any, ...]:
    """Drop pydantic's union tags / class names that are not keys in the data."""
    out: list[Any] = []
    node = data
    for n, part in enumerate(loc):
        last = n == len(loc) - 1
        if isinstance(node, dict):
            # A discriminated union's tag follows the list index; it may also be a key (`command:`).
            if n > 0 and isinstance(loc[n - 1], int) and part == node.get("type"):
                continue
            if part in node:
                out.append(part)
                node = node[part]
            elif last and not missing and part in (node.get("type"), node.get("kind")):
                pass  # a model-level error of a tagged union member: the path ends at the member
            elif last:
                out.append(part)
            # else: a union tag or a validator name: skip
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            out.append(part)
            node = node[part]
        elif isinstance(part, str) and not last and not isinstance(node, dict | list):
            continue
        else:
            out.append(part)
            node = None
    return tuple(out)


def _message(model: type[BaseModel], data: Any, loc: tuple[Any, ...], err: dict[str, Any]) -> str:
    kind = err["type"]
    msg = str(err["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")
    if kind == "extra_forbidden":
        allowed = _allowed_keys(model, data, loc[:-1])
        key = str(loc[-1]) if loc else "?"
        hint = difflib.get_close_matches(key, allowed, n=1)
        return (f"unknown key {key!r}" + (f"; did you mean {hint[0]!r}?" if hint else "")
                + (f" (allowed: {', '.join(allowed)})" if allowed else ""))
    if kind == "union_tag_invalid":
        tag = err.get("ctx", {}).get("tag")
        tags = sorted(registry.check_types()) if loc and loc[0] == "checks" else \
            [t.strip().strip("'") for t in str(err.get("ctx", {}).get("expected_tags", "")).split(",")]
        hint = difflib.get_close_matches(str(tag), tags, n=1)
        if hint:
            return f"unknown type {tag!r}; did you mean {hint[0]!r}? Known types: {', '.join(tags)}"
        return f"unknown type {tag!r}; known types: {', '.join(tags)}"
    if kind == "union_tag_not_found":
        return "missing 'type'; known types: " + ", ".join(sorted(registry.check_types()))
    if kind == "missing":
        return "required field is missing"
    if kind == "string_pattern_mismatch" and len(loc) == 3 and loc[0] == "checks" and loc[-1] == "name":
        return f"invalid name {_at(data, loc)!r}: use lowercase letters, digits, '_', '.', '-' and start with a letter or digit"
    if "input" in err and kind.endswith(("_type", "_parsing")):
        value = err["input"]
        shown = (f" {value!r}" if isinstance(value, int | float | bool | str) and len(repr(value)) <= 80
                 and not _SECRETISH.search(format_path(loc)) else "")
        return f"{msg}, got {type(value).__name__}{shown}"
    return msg


#: paths whose values are never echoed in an error, whatever their type
_SECRETISH = re.compile(r"(?i)token|key|password|passwd|secret|webhook|header|dsn|auth|credential")


def _at(data: Any, loc: tuple[Any, ...]) -> Any:
    for part in loc:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def _allowed_keys(model: type[BaseModel], data: Any, loc: tuple[Any, ...]) -> list[str]:
    """Follow `loc` through the models to list the keys allowed at that point."""
    current: Any = model
    node = data
    for part in loc:
        node = node[part] if isinstance(node, dict | list) and _has(node, part) else None
        current = _unwrap(current, node)
        if isinstance(current, type) and issubclass(current, BaseModel) and isinstance(part, str):
            field = current.model_fields.get(part) or next(
                (f for f in current.model_fields.values() if f.alias == part), None)
            current = field.annotation if field else None
        elif isinstance(part, int):
            args = typing.get_args(current)
            current = args[0] if args else None
        if current is None:
            return []
    current = _unwrap(current, node)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return sorted((f.alias or n) for n, f in current.model_fields.items())
    return []


def _has(node: Any, part: Any) -> bool:
    if isinstance(node, dict):
        return part in node
    return isinstance(part, int) and 0 <= part < len(node)


def _unwrap(tp: Any, node: Any) -> Any:
    """Strip Annotated/Optional; pick a union member by the data's `type`/`kind`."""
    for _ in range(5):
        origin = typing.get_origin(tp)
        if origin is Annotated:
            tp = typing.get_args(tp)[0]
        elif origin in (Union, getattr(__import__("types"), "UnionType", None)):
            members = [typing.get_args(a)[0] if typing.get_origin(a) is Annotated else a  # tagged members
                       for a in typing.get_args(tp) if a is not type(None)]
            chosen = None
            if isinstance(node, dict):
                for m in members:
                    if isinstance(m, type) and issubclass(m, BaseModel):
                        t = m.model_fields.get("type") or m.model_fields.get("kind")
                        if t is not None and node.get("type", node.get("kind")) in typing.get_args(t.annotation):
                            chosen = m
                if chosen is None:
                    chosen = next((m for m in members if isinstance(m, type) and issubclass(m, BaseModel)), None)
            tp = chosen or members[0]
        else:
            return tp
    return tp


def embedded_default() -> Path:
    """The quickstart config shipped with the package (or the repo's examples/)."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "_embedded" / EMBEDDED_DEFAULT, here.parent / "examples" / EMBEDDED_DEFAULT):
        if candidate.exists():
            return candidate
    raise ConfigError([ConfigIssue("", "no -c FILE given and the embedded quickstart config is missing")])


def json_schema() -> dict[str, Any]:
    schema = config_model().model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "sre-agent configuration"
    return schema
