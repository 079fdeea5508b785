"""Values that backup and data checks read from config and from the world.

Config side: percentages (`50%`, `95.5%`), SLO phrases such as
`freshness: "< 1 hour"`. World side: whatever a database, an HTTP API or a
Prometheus answers as "the time of the last update" (datetime, date, epoch
number, ISO 8601 text), turned into one thing: Unix seconds, timezone-correct
(a naive timestamp is UTC unless the source says otherwise).
"""

from __future__ import annotations

import contextlib
import math
import re
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

from agent.durations import parse_duration

_PERCENT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*%\s*$")
PERCENT_PATTERN = r"^[0-9]+(\.[0-9]+)?%$"


def parse_percent(value: Any) -> float:
    """`"50%"` -> 50.0. Only text with a `%` sign: a bare 0.5 could mean 0.5% or 50%."""
    if isinstance(value, str):
        m = _PERCENT.match(value)
        if m is not None:
            number = float(m.group(1))
            if number > 100:
                raise ValueError(f"invalid percentage {value!r}: must be between 0% and 100%")
            return number
    raise ValueError(f"invalid percentage {value!r}: write a number from 0 to 100 followed by %, e.g. 5%, 50%, 99.5%")


def format_percent(value: float) -> str:
    return f"{value:g}%"


Percent = Annotated[
    float,
    BeforeValidator(parse_percent),
    PlainSerializer(format_percent, return_type=str),
    WithJsonSchema({"type": "string", "pattern": PERCENT_PATTERN, "examples": ["5%", "50%", "99.5%"]}),
]

_WORD_UNITS = {
    "ms": "ms", "millisecond": "ms", "milliseconds": "ms",
    "s": "s", "sec": "s", "secs": "s", "second": "s", "seconds": "s",
    "m": "m", "min": "m", "mins": "m", "minute": "m", "minutes": "m",
    "h": "h", "hr": "h", "hrs": "h", "hour": "h", "hours": "h",
    "d": "d", "day": "d", "days": "d",
    "w": "w", "week": "w", "weeks": "w",
}
_SLO_PHRASE = re.compile(r"^\s*(<=|<)?\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]+)\s*$")


def parse_slo_duration(value: Any) -> timedelta:
    """A data product's `freshness: "< 1 hour"` (or `"<= 30 minutes"`, `"2h"`) -> timedelta."""
    if isinstance(value, str):
        m = _SLO_PHRASE.match(value)
        if m is not None and m.group(3).lower() in _WORD_UNITS:
            result = parse_duration(f"{m.group(2)}{_WORD_UNITS[m.group(3).lower()]}")
            if result > timedelta(0):
                return result
        with contextlib.suppress(ValueError):
            result = parse_duration(value.strip().lstrip("<=").strip())
            if result > timedelta(0):
                return result
    raise ValueError(f"invalid freshness objective {value!r}: write '< N unit' such as '< 1 hour', "
                     "'< 30 minutes', '< 2 days', or a duration such as 1h")


# --- timestamps from the world --------------------------------------------------

EpochUnit = Literal["s", "ms", "us", "ns"]
_EPOCH_DIVISOR = {"s": 1, "ms": 1e3, "us": 1e6, "ns": 1e9}
_FRACTION = re.compile(r"(\.\d{6})\d+")


#: the last second `datetime` can represent (9999-12-31T23:59:59Z); a larger epoch has the wrong unit
MAX_EPOCH_SECONDS = 253402300799.0


class NotATimestamp(ValueError):
    """The source answered something that is not a point in time (e.g. a name)."""

    def __init__(self, value: Any, hint: str = "", unit_guess: str | None = None) -> None:
        shown = repr(value)
        shown = shown if len(shown) <= 60 else shown[:57] + "..."
        super().__init__(f"not a timestamp: got {type(value).__name__} {shown}" + (f" ({hint})" if hint else ""))
        self.type_name = type(value).__name__
        #: the epoch unit that would make a too-large number a plausible time ("ms", "us", "ns")
        self.unit_guess = unit_guess


def parse_iso8601(text: str, tz: tzinfo = UTC) -> float:
    """ISO 8601 / RFC 3339 text -> Unix seconds. Nanosecond fractions (Go, restic) are cut to µs."""
    s = text.strip()
    if s.endswith(("Z", "z")):
        s = s[:-1] + "+00:00"
    s = _FRACTION.sub(r"\1", s)
    try:
        parsed = datetime.fromisoformat(s)
    except ValueError:
        raise NotATimestamp(text) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=tz)
    return parsed.timestamp()


def to_epoch(value: Any, tz: tzinfo = UTC, epoch_unit: EpochUnit = "s") -> float:
    """A timestamp-ish value -> Unix seconds; naive datetimes are read in `tz` (UTC by default).

    Raises `NotATimestamp` for anything else (text that is not ISO 8601, bools, bytes).
    """
    if isinstance(value, datetime):
        return (value if value.tzinfo is not None else value.replace(tzinfo=tz)).timestamp()
    if isinstance(value, date):
        return datetime.combine(value, time(0), tzinfo=tz).timestamp()
    if isinstance(value, bool):
        raise NotATimestamp(value)
    if isinstance(value, int | float | Decimal):
        number = float(value)
        if not math.isfinite(number):
            raise NotATimestamp(value)
        return _epoch_seconds(number, epoch_unit, value)
    if isinstance(value, str):
        text = value.strip()
        if re.fullmatch(r"-?\d+(\.\d+)?", text):
            return _epoch_seconds(float(text), epoch_unit, value)
        return parse_iso8601(text, tz)
    raise NotATimestamp(value)


def _epoch_seconds(number: float, epoch_unit: EpochUnit, value: Any) -> float:
    """An epoch number in `epoch_unit` -> seconds; past year 9999 the unit is wrong (ms read as s)."""
    seconds = number / _EPOCH_DIVISOR[epoch_unit]
    if abs(seconds) <= MAX_EPOCH_SECONDS:
        return seconds
    divisor = _EPOCH_DIVISOR[epoch_unit]
    guess = next((u for u, d in _EPOCH_DIVISOR.items() if d > divisor and abs(number / d) <= MAX_EPOCH_SECONDS), None)
    hint = f"read as epoch {epoch_unit} it is after the year 9999" + (f"; it looks like epoch {guess}" if guess else "")
    raise NotATimestamp(value, hint, guess)


def timezone_named(name: str | None) -> tzinfo:
    """`None` -> UTC; an IANA name (`Europe/Berlin`) -> its zone; else ValueError."""
    if name is None or name.upper() in ("UTC", "Z"):
        return UTC
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown timezone {name!r}: use an IANA name such as UTC, Europe/Berlin, America/New_York") from None
