"""Numbers as people read them: `12m`, `1.5 KiB`, `2026-05-01 03:04 UTC (3h ago)`.

Observation names carry their unit (Prometheus style: `latency_seconds`,
`size_bytes`, `error_ratio`, `last_update_timestamp_seconds`), so one function
renders any observation from its name. The terminal (`sre-agent check`), the
reports, the status page, the digest and every receiver use these, so an
on-call engineer reads the same words everywhere. Ground floor: standard
library only.
"""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime, tzinfo

#: unit tokens in observation names, as Prometheus spells them
UNITS = ("seconds", "bytes", "ratio", "percent", "days", "total", "count")
_BYTE_SUFFIXES = ("B", "KiB", "MiB", "GiB", "TiB")


def duration(seconds: float) -> str:
    """Two most significant units, as on-call people say it: 45s, 12m, 1h3m, 3d4h (negative: 0s)."""
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    parts: list[str] = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if s >= size:
            parts.append(f"{s // size}{unit}")
            s %= size
        elif parts:
            break
        if len(parts) == 2:
            break
    return "".join(parts)


def precise_duration(seconds: float) -> str:
    """Like `duration`, but sub-minute values keep their precision: 234ms, 2.3s, 12m; signed."""
    sign = "-" if seconds < 0 else ""
    a = abs(seconds)
    if a < 1:
        return f"{sign}{a * 1000:.0f}ms"
    if a < 60:
        return f"{sign}{a:.1f}s"
    return sign + duration(a)


def size(n: float) -> str:
    """Bytes in binary units: 512 B, 1.5 KiB, 3.0 TiB."""
    value = float(n)
    for suffix in _BYTE_SUFFIXES:
        if abs(value) < 1024 or suffix == _BYTE_SUFFIXES[-1]:
            return f"{value:.0f} {suffix}" if suffix == "B" else f"{value:.1f} {suffix}"
        value /= 1024
    raise AssertionError("unreachable")


def age(ts: float, now: float | None = None) -> str:
    """`3h ago`, `in 2d4h`, `just now`."""
    now = time.time() if now is None else now
    delta = now - ts
    if abs(delta) < 1:
        return "just now"
    return f"{duration(delta)} ago" if delta > 0 else f"in {duration(-delta)}"


def when(ts: float, zone: tzinfo | None = UTC) -> str:
    """`2026-05-01 03:04 UTC` (in `zone`; the local zone when None)."""
    moment = datetime.fromtimestamp(ts, zone) if zone is not None else datetime.fromtimestamp(ts).astimezone()
    return moment.strftime("%Y-%m-%d %H:%M %Z").strip()


def timestamp(ts: float, now: float | None = None, zone: tzinfo | None = UTC) -> str:
    """A Unix time as a date and its age: `2026-05-01 03:04 UTC (3h ago)`."""
    if not math.isfinite(ts) or ts <= 0:
        return "never"
    return f"{when(ts, zone)} ({age(ts, now)})"


def unit_of(name: str) -> str | None:
    """The unit token an observation name declares (`latency_seconds` -> seconds), if any."""
    for token in reversed(name.split("_")):
        if token in UNITS:
            return token
    return None


def is_timestamp(name: str) -> bool:
    """`last_update_timestamp_seconds`, `completed_timestamp`: a point in time, not a length."""
    tokens = name.split("_")
    return "timestamp" in tokens or name.endswith("_time_seconds")


def label(name: str) -> str:
    """`latency_seconds` -> `latency`, `disk_used_percent_max` -> `disk used max`,
    `last_update_timestamp_seconds` -> `last update` (a date says it is a time)."""
    unit = unit_of(name)
    tokens = [t for t in name.split("_") if t and t != unit and t != "timestamp"]
    return " ".join(tokens) or name


def observation(name: str, value: float, now: float | None = None) -> str:
    """An observation rendered with the unit its name declares.

    A timestamp shows as a date; its age is added when `now` is given (the
    terminal and the status page pass it; a stored alert message does not, since
    the age would be stale by the time it is read).
    """
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if is_timestamp(name):
        return timestamp(value, now) if now is not None else (when(value) if value > 0 else "never")
    unit = unit_of(name)
    if unit == "seconds":
        return precise_duration(value)
    if unit == "bytes":
        return size(value)
    if unit == "ratio":
        return f"{value * 100:.1f}%"
    if unit == "percent":
        return f"{value:.1f}%"
    if unit == "days":
        return f"{value:.1f} days"
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.4g}"
