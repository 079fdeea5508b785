"""Load and validate the YAML config: every error at once, by field path and line.

Pipeline: YAML (with line marks) -> `include:` merge -> `${ENV}` expansion ->
pydantic models (the single source of truth for the schema and the docs) ->
cross-field checks (unique names, known dependencies). Either a whole valid
`Config` comes out or a `ConfigError` listing every problem; nothing is half
applied.
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
from typing import Annotated, Any, Union

import yaml
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
)

from agent import registry
from agent.check import CheckConfig, Model
from agent.durations import Duration
from agent.secrets import Secret, expand_env, redact

EMBEDDED_DEFAULT = "quickstart.yaml"
#: shortest accepted agent.api_token
MIN_API_TOKEN = 16
#: smallest agent.store_max_size: history trimming must leave room for alert state and the outbox
MIN_STORE_SIZE = 16 << 20
_BYTE_SIZE: TypeAdapter[ByteSize] = TypeAdapter(ByteSize)


class AgentSettings(Model):
    listen: str = Field("127.0.0.1:9108", description="host:port for /metrics, /healthz and the API")
    state_dir: Path = Field(Path(".sre-agent"), description="where the SQLite state store lives")
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

    @field_validator("listen")
    @classmethod
    def _listen(cls, v: str) -> str:
        host, sep, port = v.rpartition(":")
        if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError(f"listen must be host:port with a port 0-65535, got {v!r}")
        return v

    @property
    def host_port(self) -> tuple[str, int]:
        host, _, port = self.listen.rpartition(":")
        return host.strip("[]") or "0.0.0.0", int(port)


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
        out: list[CheckConfig] = list(getattr(self, "checks", []))
        for section in _ordered_sections():
            if section.to_checks is not None:
                for entry in getattr(self, section.key, []):
                    out.extend(section.to_checks(entry, self))
        return [_with_defaults(c, self.defaults) for c in out]

    def check(self, name: str) -> CheckConfig:
        for c in self.all_checks():
            if c.name == name:
                return c
        raise KeyError(name)


def _with_defaults(c: CheckConfig, d: Defaults) -> CheckConfig:
    update: dict[str, Any] = {}
    if c.timeout is None:
        update["timeout"] = d.timeout
    if c.interval is None and c.cron is None:
        update["interval"] = d.interval
    return c.model_copy(update=update) if update else c


def _ordered_sections() -> list[registry.Section]:
    return sorted(registry.sections().values(), key=lambda sec: sec.order)


@cache
def config_model() -> type[ConfigBase]:
    models = tuple(t.Config for t in registry.check_types().values())
    check_union = Annotated[Union[models], Field(discriminator="type")] if len(models) > 1 else models[0]  # noqa: UP007
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


# --- YAML with line numbers ------------------------------------------------

#: libyaml's loader when PyYAML was built with it: ~10x faster on large configs
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Marks:
    """Path (tuple of keys/indices) -> 1-based line, built from the YAML node tree."""

    def __init__(self) -> None:
        self.lines: dict[tuple[Any, ...], int] = {}

    def walk(self, node: yaml.Node, path: tuple[Any, ...]) -> None:
        self.lines[path] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                k = key.value
                self.lines[(*path, k)] = key.start_mark.line + 1
                self.walk(value, (*path, k))
                self.lines[(*path, k)] = key.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                self.walk(item, (*path, i))

    def line_for(self, path: tuple[Any, ...]) -> int | None:
        p = tuple(path)
        while p:
            if p in self.lines:
                return self.lines[p]
            p = p[:-1]
        return self.lines.get(())


def _load_yaml(path: Path) -> list[tuple[Any, _Marks]]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([ConfigIssue("", f"cannot read config: {exc.strerror}", str(path))]) from None
    try:
        nodes = list(yaml.compose_all(text, Loader=_LOADER))
        docs = list(yaml.load_all(text, Loader=_LOADER))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else None
        problem = getattr(exc, "problem", None) or str(exc)
        context, context_mark = getattr(exc, "context", None), getattr(exc, "context_mark", None)
        if context and context_mark is not None:
            problem += f" ({context} at line {context_mark.line + 1})"
        raise ConfigError([ConfigIssue("", f"invalid YAML: {problem}", str(path), line)]) from None
    out = []
    for node, doc in zip(nodes, docs, strict=True):
        marks = _Marks()
        if node is not None:
            marks.walk(node, ())
        out.append((doc, marks))
    return out


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
        for i in range(len(data.get(section) or [])):
            origins.items[(section, i)] = (origins.main, origins.main_marks, (section, i))
    for n, pattern in enumerate(patterns):
        if not isinstance(pattern, str):
            continue
        full = pattern if os.path.isabs(pattern) else str(base / pattern)
        matches = sorted(glob.glob(full, recursive=True))
        if not matches and not glob.has_magic(pattern):
            issues.append(ConfigIssue(f"include[{n}]", f"file {pattern!r} does not exist", str(origins.main), origins.main_marks.line_for(("include", n))))
        for match in matches:
            try:
                docs = _load_yaml(Path(match))
            except ConfigError as exc:
                issues.extend(exc.issues)
                continue
            for doc, marks in docs:
                if doc is None:
                    continue
                if isinstance(doc, dict) and doc.get("kind") in kind_sections:
                    section = kind_sections[doc["kind"]]
                    data.setdefault(section, [])
                    origins.items[(section, len(data[section]))] = (Path(match), marks, ())
                    data[section].append(doc)
                    continue
                if not isinstance(doc, dict) or set(doc) - set(list_sections):
                    extra = sorted(set(doc) - set(list_sections)) if isinstance(doc, dict) else [type(doc).__name__]
                    issues.append(ConfigIssue("", f"an included file may only hold {', '.join(list_sections)} "
                                              f"(or a DataProduct / SLO document); found {', '.join(map(str, extra))}", match, 1))
                    continue
                for section in list_sections:
                    items = doc.get(section) or []
                    if not isinstance(items, list):
                        issues.append(ConfigIssue(section, "must be a list", match, marks.line_for((section,))))
                        continue
                    data.setdefault(section, [])
                    if data[section] is None:
                        data[section] = []
                    for j, item in enumerate(items):
                        origins.items[(section, len(data[section]))] = (Path(match), marks, (section, j))
                        data[section].append(item)


def load_config(path: str | os.PathLike[str] | None = None, env: dict[str, str] | None = None) -> ConfigBase:
    """Load, expand and validate; raise `ConfigError` with every issue found."""
    cfg_path = Path(path) if path is not None else embedded_default()
    docs = _load_yaml(cfg_path)
    docs = [(d, m) for d, m in docs if d is not None]
    if len(docs) > 1:
        raise ConfigError([ConfigIssue("", "the main config must be a single YAML document", str(cfg_path))])
    data, marks = docs[0] if docs else ({}, _Marks())
    if not isinstance(data, dict):
        raise ConfigError([ConfigIssue("", f"the config must be a mapping, got {type(data).__name__}", str(cfg_path), 1)])
    issues: list[ConfigIssue] = []
    origins = _Origins(cfg_path, marks)
    _merge_includes(data, cfg_path.parent, origins, issues)
    data, env_errors = expand_env(data, env)
    for err in env_errors:
        file, line = origins.locate(err.path)
        issues.append(ConfigIssue(format_path(err.path), err.message, file, line))
    model = config_model()
    config = None
    try:
        config = model.model_validate(data)
    except ValidationError as exc:
        for e in exc.errors(include_url=False):
            loc = _clean_loc(data, e["loc"], missing=e["type"] == "missing")
            if e["type"] in ("union_tag_invalid", "union_tag_not_found"):
                loc = (*loc, "type")
            file, line = origins.locate(loc)
            issues.append(ConfigIssue(format_path(loc), _message(model, data, loc, dict(e)), file, line))
    if config is not None and not issues:
        for loc, message in semantic_issues(config):
            file, line = origins.locate(loc)
            issues.append(ConfigIssue(format_path(loc), message, file, line))
    elif config is None:
        # Other errors stop the semantic pass; duplicate names are still reported with them.
        for loc, message in _duplicate_names(data):
            file, line = origins.locate(loc)
            issues.append(ConfigIssue(format_path(loc), message, file, line))
    if issues:
        # Error text quotes values, and a value may have come from ${ENV} or a *_file secret.
        raise ConfigError([replace(i, message=redact(i.message)) for i in _dedupe(issues)])
    assert config is not None
    return config


def _dedupe(issues: list[ConfigIssue]) -> list[ConfigIssue]:
    seen, out = set(), []
    for i in issues:
        if (i.path, i.message) not in seen:
            seen.add((i.path, i.message))
            out.append(i)
    return out


def _duplicate_names(data: dict[str, Any]) -> list[tuple[tuple[Any, ...], str]]:
    """Duplicate `name`s among the written checks, read from the raw data (the model did not validate)."""
    out: list[tuple[tuple[Any, ...], str]] = []
    checks = data.get("checks")
    names: dict[str, int] = {}
    for i, item in enumerate(checks if isinstance(checks, list) else []):
        name = item.get("name") if isinstance(item, dict) else None
        if not isinstance(name, str):
            continue
        if name in names:
            out.append((("checks", i, "name"), f"duplicate check name {name!r} (also used by checks[{names[name]}])"))
        else:
            names[name] = i
    return out


def semantic_issues(config: ConfigBase) -> list[tuple[tuple[Any, ...], str]]:
    """Checks across fields: unique names, known dependencies, no cycles."""
    out: list[tuple[tuple[Any, ...], str]] = []
    checks = config.all_checks()
    written = len(getattr(config, "checks", []))
    names: dict[str, int] = {}
    for i, c in enumerate(checks):
        loc: tuple[Any, ...] = ("checks", i, "name") if i < written else ("checks",)
        if c.name in names:
            out.append((loc, f"duplicate check name {c.name!r} (also used by checks[{names[c.name]}])"
                        if names[c.name] < written else f"duplicate check name {c.name!r}"))
        else:
            names[c.name] = i
    for i, c in enumerate(checks[:written]):
        for j, dep in enumerate(c.depends_on):
            if dep not in names:
                hint = difflib.get_close_matches(dep, names, n=1)
                out.append((("checks", i, "depends_on", j), f"unknown check {dep!r}" + (f"; did you mean {hint[0]!r}?" if hint else "")))
            elif dep == c.name:
                out.append((("checks", i, "depends_on", j), "a check cannot depend on itself"))
    for section in _ordered_sections():
        if section.semantic_issues is not None:
            out.extend(section.semantic_issues(config))
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
        known = ", ".join(sorted(registry.check_types())) if loc and loc[0] == "checks" else err.get("ctx", {}).get("expected_tags", "")
        return f"unknown type {tag!r}; known types: {known}"
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
