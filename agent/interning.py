"""One object for the equal parts of the many models of one config load.

Ten thousand checks are mostly written alike: the same `expect:` block, TLS
options, latency thresholds, labels and alert policy. pydantic gives each its
own copies (with their own `__dict__` and fields-set): 4.6 KiB a check, and
all of them alive at once while the config validates. Config models are
frozen, so equal parts can be one object: inside `sharing()`, every model
validated hands itself to `shared()` (an after-validator of
`agent.check.Model`), which returns the equal part seen before, or keeps this
one for the next. Copies become garbage as soon as they are made, so the peak
of a load drops with what it keeps. A part that cannot be compared by value
(unhashable, or with private state) is left as it is; outside `sharing()`
nothing is pooled.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any, TypeVar

from pydantic import BaseModel

M = TypeVar("M", bound=BaseModel)
_POOL: ContextVar[dict[Any, Any] | None] = ContextVar("sre_agent_shared_parts", default=None)
_PLAIN = frozenset({str, int, float, bool, type(None)})


@contextlib.contextmanager
def sharing() -> Iterator[None]:
    """Models validated inside share their equal parts (the pool is dropped on the way out)."""
    token = _POOL.set({})
    try:
        yield
    finally:
        _POOL.reset(token)


def shared(model: M) -> M:
    """`model` itself, each of its parts (models, dicts, lists, fields-set) replaced by an equal one seen before.

    Its parts were validated before it, so their own parts are pooled already.
    """
    pool = _POOL.get()
    if pool is None:
        return model
    values = model.__dict__
    for name, value in values.items():
        if type(value) not in _PLAIN:
            pooled = _part(pool, value)
            if pooled is not value:
                values[name] = pooled  # frozen models: nobody writes here after validation
    given = model.__pydantic_fields_set__
    pooled_given = pool.setdefault(("fields", frozenset(given)), given)
    if pooled_given is not given:
        object.__setattr__(model, "__pydantic_fields_set__", pooled_given)
    return model


def _part(pool: dict[Any, Any], value: Any) -> Any:
    """The equal part seen before, or `value` (then kept for the next); unmatchable parts as they are."""
    try:
        if isinstance(value, BaseModel):
            if (not getattr(value, "share_whole", True) or not value.model_config.get("frozen")
                    or value.__pydantic_private__ or value.__pydantic_extra__):
                return value  # unique, mutable or with state of its own
            key: Any = (type(value), *((name, _key(v)) for name, v in value.__dict__.items()))
        elif isinstance(value, dict):
            for k, v in value.items():
                if type(v) not in _PLAIN:
                    value[k] = _part(pool, v)
            key = (dict, *((type(k), k, _key(v)) for k, v in value.items()))
        elif isinstance(value, list):
            value[:] = [v if type(v) in _PLAIN else _part(pool, v) for v in value]
            key = (list, *(_key(v) for v in value))
        else:
            key = (type(value), value)
        return pool.setdefault(key, value)
    except TypeError:  # unhashable inside: not comparable by value
        return value


def _key(value: Any) -> Any:
    """What identifies a value: pooled parts by identity, anything else by type and value."""
    if isinstance(value, BaseModel | dict | list):
        return (type(value), id(value))
    hash(value)  # TypeError: not comparable by value
    return (type(value), value)
