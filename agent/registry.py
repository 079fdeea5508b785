"""The registries: check types by their YAML `type:`, and top-level config sections.

`agent/` never imports a concrete check type or a section's owner statically:
it asks this module, which imports plugin packages by name on first use. A
check type is found by scanning the `checks` package; a config section
(`alerting:`, `slos:`, `data_products:`) is registered by the module that owns
it, calling `register_section()` at import. Adding a check type is adding one
module to `checks/`; adding a section is one module that registers it and is
listed in `SECTION_MODULES` (or in its plugin package's own `SECTION_MODULES`),
a mapping of the section's key to that module, so `sre-agent check` imports
only the owners of the sections a config has (`discover_sections(keys)`).

Loading a config imports only the check types it names (`find_type`: a
type's module is named after it, `checks/http.py` for `type: http`, which the
full scan verifies), so `sre-agent check` does not import thirteen modules
and build their models for one http check; an unknown type, the JSON Schema
and the daemon's metric families scan everything (`check_types`).
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from agent.check import Check, CheckConfig
from agent.context import AgentSettingsView

if TYPE_CHECKING:
    from pydantic import BaseModel

#: packages scanned for check types: every public module's `Check` subclasses
CHECK_PACKAGES: tuple[str, ...] = ("checks",)
#: modules that register config sections when imported (besides those in CHECK_PACKAGES)
#: the agent's own config sections: key -> the module that registers it
SECTION_MODULES: dict[str, str] = {"alerting": "agent.alerting.config", "slos": "agent.slo.config",
                                   "status_page": "agent.statuspage.config", "digest": "agent.digest.config"}
#: modules of a check package that are not check types
_NOT_TYPES = {"base"}

Location = tuple[Any, ...]
Issue = tuple[Location, str]


class RootConfig(Protocol):
    """The validated root config (`agent.config.ConfigBase`) as a section's hooks see it."""

    @property
    def agent(self) -> AgentSettingsView: ...

    def all_checks(self) -> list[CheckConfig]: ...


@dataclass(frozen=True)
class Section:
    """A top-level config key owned by a module outside `agent.config`.

    `model` validates the value (for `many` sections, each item). `to_checks(item, config)` derives
    checks from an item (an SLO becomes an `slo` check). `semantic_issues(config)` reports what
    needs the whole config (unknown references, duplicates among its own items), as (path from
    the root, message).
    `kind` lets an included file hold one item as a document with `kind: <kind>`.
    `check_names(raw_item)` gives the names (-> type) of the checks an item derives, read from its
    raw data: while the item itself is invalid, references to those checks are not reported as
    unknown on top of its own errors.
    """

    key: str
    model: Any
    many: bool = True
    description: str = ""
    #: (one item of the section, the root config or None while that is being validated) -> derived checks
    to_checks: Callable[[Any, RootConfig | None], list[CheckConfig]] | None = None
    semantic_issues: Callable[[RootConfig], list[Issue]] | None = None
    kind: str | None = None
    default: Callable[[], Any] | None = field(default=None)
    #: check name -> seconds of result history the section needs kept (a status page's 30-day uptime)
    history_needs: Callable[[Any], dict[str, float]] | None = None
    check_names: Callable[[Any], dict[str, str]] | None = None
    #: position among the root's keys (JSON Schema, docs), after `agent`, `defaults`, `include`, `checks`
    order: int = 100


_lock = threading.RLock()
_types: dict[str, type[Check]] | None = None
#: the types imported so far, by `find_type` or the full scan
_loaded: dict[str, type[Check]] = {}
_sections: dict[str, Section] = {}
_discovered = False
_sections_discovered = False


def register_section(section: Section) -> None:
    """Called by a section's owner at import time; a second, different registration is a bug."""
    with _lock:
        known = _sections.get(section.key)
        if known is not None and known != section:
            raise RuntimeError(f"config section {section.key!r} registered twice")
        _sections[section.key] = section


def _scan(package_name: str) -> Iterable[type[Check]]:
    package = importlib.import_module(package_name)
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name):
        if info.name.startswith("_") or info.name in _NOT_TYPES:
            continue
        yield from _types_in(importlib.import_module(f"{package_name}.{info.name}"))


def _types_in(module: Any) -> Iterator[type[Check]]:
    for obj in vars(module).values():
        if (isinstance(obj, type) and issubclass(obj, Check) and obj is not Check
                and getattr(obj, "type", None) and obj.__module__ == module.__name__):
            yield obj


def find_type(name: str) -> type[Check] | None:
    """The check type `name`, importing only its own module (`<package>.<name>`); None if not found so.

    A type whose module is named otherwise is still found by `check_types()` (the full scan).
    """
    with _lock:
        known = _loaded.get(name) if _types is None else _types.get(name)
        if known is not None or _types is not None:
            return known
        if not name.isidentifier() or name.startswith("_") or name in _NOT_TYPES:
            return None
        for package in CHECK_PACKAGES:
            try:
                found = importlib.util.find_spec(f"{package}.{name}") is not None
            except (ImportError, ValueError):
                found = False
            if found:
                for cls in _types_in(importlib.import_module(f"{package}.{name}")):
                    _loaded.setdefault(cls.type, cls)
                if name in _loaded:
                    return _loaded[name]
        return None


def loaded_types() -> dict[str, type[Check]]:
    """The check types imported so far (what has shared resources to release)."""
    with _lock:
        return dict(_types if _types is not None else _loaded)


def discover_sections(keys: Iterable[str] | None = None) -> None:
    """Import the section modules: the agent's own and each plugin package's `SECTION_MODULES`.

    With `keys` (a config's top-level keys), only the owners of those sections; a package that
    lists its section modules without their keys has them all imported.
    """
    global _sections_discovered
    with _lock:
        if _sections_discovered:
            return
        wanted = None if keys is None else set(keys)
        declared: list[Mapping[str, str] | Sequence[str]] = [SECTION_MODULES]
        declared += [getattr(importlib.import_module(package), "SECTION_MODULES", ()) for package in CHECK_PACKAGES]
        for modules in declared:
            if isinstance(modules, Mapping):
                for key, module in modules.items():
                    if wanted is None or key in wanted:
                        importlib.import_module(module)
            else:
                for module in modules:
                    importlib.import_module(module)
        if wanted is None:
            _sections_discovered = True


def registered_sections() -> dict[str, Section]:
    """The sections registered so far, without importing any owner (see `discover_sections`)."""
    with _lock:
        return dict(_sections)


def discover() -> None:
    """Import every plugin package and section module once (idempotent, thread-safe)."""
    global _types, _discovered
    with _lock:
        if _discovered:
            return
        found: dict[str, type[Check]] = {}
        for package in CHECK_PACKAGES:
            for cls in _scan(package):
                if cls.type in found:
                    raise RuntimeError(f"check type {cls.type!r} defined twice: "
                                       f"{found[cls.type].__module__} and {cls.__module__}")
                found[cls.type] = cls
        discover_sections()
        _types = found
        _loaded.update(found)
        _discovered = True


def check_types() -> dict[str, type[Check]]:
    """YAML `type:` -> Check class, for every discovered check type."""
    discover()
    assert _types is not None
    return _types


def get_type(name: str) -> type[Check]:
    cls = find_type(name)
    if cls is not None:
        return cls
    types = check_types()
    if name not in types:
        raise KeyError(f"unknown check type {name!r}; known: {', '.join(sorted(types))}")
    return types[name]


def sections() -> dict[str, Section]:
    """Registered config sections by key, in registration order."""
    discover_sections()
    return dict(_sections)


def section_models() -> dict[str, type[BaseModel]]:
    """Convenience for docs: each section's model (item model for list sections)."""
    return {key: s.model for key, s in sections().items()}
