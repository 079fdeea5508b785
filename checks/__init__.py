"""Check types: one module per type, discovered at first use.

Adding a type is adding one module here with one `Check` subclass; nothing
else changes. Modules must import cheaply: heavy clients (SQLAlchemy,
kubernetes, boto3) are imported inside `run()`.
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache

from checks.base import Check, CheckConfig

__all__ = ["Check", "CheckConfig", "registry", "get_type"]

_NOT_TYPES = {"base"}


@cache
def registry() -> dict[str, type[Check]]:
    """Map YAML `type:` -> Check class, for every module in this package."""
    found: dict[str, type[Check]] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        if info.name.startswith("_") or info.name in _NOT_TYPES:
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        for obj in vars(module).values():
            if isinstance(obj, type) and issubclass(obj, Check) and obj is not Check and getattr(obj, "type", None):
                if obj.__module__ != module.__name__:
                    continue
                if obj.type in found:
                    raise RuntimeError(f"check type {obj.type!r} defined twice: {found[obj.type].__module__} and {module.__name__}")
                found[obj.type] = obj
    return found


def get_type(name: str) -> type[Check]:
    types = registry()
    if name not in types:
        raise KeyError(f"unknown check type {name!r}; known: {', '.join(sorted(types))}")
    return types[name]
