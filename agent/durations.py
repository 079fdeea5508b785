"""Durations as SREs write them (`500ms`, `30s`, `5m`, `1h30m`, `30d`).

Config holds strings, code holds `timedelta`. A bare number is refused on
purpose: `timeout: 10` could mean seconds or milliseconds.
"""

from __future__ import annotations

import functools
import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_WHOLE = re.compile(r"^(?:\d+(?:\.\d+)?(?:ms|s|m|h|d|w))+$")
PATTERN = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h|d|w))+$"
#: the longest duration accepted: a century is beyond any interval, window or retention, and
#: keeps `now + duration` far from datetime's year-9999 limit
MAX = timedelta(days=36500)


def parse_duration(value: Any) -> timedelta:
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool) or not isinstance(value, str):
        raise ValueError(f"expected a duration string such as 30s, 5m, 1h, 30d; got {value!r}")
    return _parse_text(value)


@functools.lru_cache(maxsize=1024)
def _parse_text(value: str) -> timedelta:
    """A config of 10,000 checks writes the same few durations 40,000 times: parse each text once."""
    text = value.strip()
    if not _WHOLE.match(text):
        raise ValueError(f"invalid duration {value!r}: use a number with a unit (ms, s, m, h, d, w), e.g. 500ms, 30s, 5m, 1h30m")
    seconds = sum(float(n) * _UNITS[u] for n, u in _PART.findall(text))
    if not seconds <= MAX.total_seconds():  # also inf, from a number too long for a float
        raise ValueError(f"duration {_shown(text)} is too long: at most {MAX.days}d")
    return timedelta(seconds=seconds)


def _shown(text: str) -> str:
    return repr(text) if len(text) <= 40 else repr(text[:20] + "..." + text[-8:])


def format_duration(td: timedelta) -> str:
    total = td.total_seconds()
    if total < 1 and total != 0:
        return f"{round(total * 1000)}ms"
    if total < 60 and total != int(total):
        return f"{total:g}s"
    parts = []
    rest = int(total)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if rest >= size:
            parts.append(f"{rest // size}{unit}")
            rest %= size
    return "".join(parts) or "0s"


def human(seconds: float) -> str:
    """Short human form for messages: 3d4h, 12m, 45s."""
    sign = "-" if seconds < 0 else ""
    s = abs(seconds)
    if s < 1:
        return f"{sign}{s * 1000:.0f}ms"
    if s < 60:
        return f"{sign}{s:.1f}s"
    parts = _PART.findall(format_duration(timedelta(seconds=int(s))))
    return sign + "".join(n + u for n, u in parts[:2])


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema({"type": "string", "pattern": PATTERN, "examples": ["30s", "5m", "1h"]}),
]
