"""restic and pgBackRest, asked through their own command lines.

Both tools know more about their repositories than any listing could: restic
decrypts its snapshot index (`restic snapshots --json`) and can re-read data
packs (`restic check --read-data-subset`); pgBackRest reports a stanza status
code, every full/diff/incr backup and the WAL archive range
(`pgbackrest info --output=json`). Parsing is kept in pure functions so the
recorded outputs in tests/fixtures/pgbackrest exercise every status code.
The restic password reaches restic through RESTIC_PASSWORD_FILE or
RESTIC_PASSWORD in its environment, never argv.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from agent.core import Status
from agent.secrets import redact
from checks._backup_sources import BackupItem, Inventory, PgBackRestSource, ResticSource, SourceError
from checks._proc import ToolError, run_tool
from checks._values import NotATimestamp, parse_iso8601

# --- restic ----------------------------------------------------------------------------

_VERSION = re.compile(r"restic (\d+)\.(\d+)\.(\d+)")
_versions: dict[str, tuple[int, int, int] | None] = {}
RESTIC_EXIT = {10: "repository does not exist", 11: "cannot lock the repository", 12: "wrong password"}


def restic_env(src: ResticSource) -> dict[str, str]:
    env = dict(src.env)
    env["RESTIC_REPOSITORY"] = src.repository
    if src.password_file:
        env["RESTIC_PASSWORD_FILE"] = src.password_file
    elif src.password is not None:
        env["RESTIC_PASSWORD"] = src.password.get_secret_value()
    if src.cache_dir:
        env["RESTIC_CACHE_DIR"] = src.cache_dir
    return env


async def restic_version(binary: str, limit: float) -> tuple[int, int, int] | None:
    """`restic version` once per binary (JSON output of `check` needs 0.17+)."""
    if binary not in _versions:
        try:
            out = await run_tool([binary, "version"], limit=limit)
        except ToolError as exc:
            raise SourceError(Status.UNKNOWN, exc.message) from None
        m = _VERSION.search(out.stdout)
        _versions[binary] = (int(m[1]), int(m[2]), int(m[3])) if m else None
    return _versions[binary]


#: first match wins: a network failure also reads "unable to open config file", but the repository may well exist
_KNOWN_ERRORS = (("wrong password", "wrong password"), ("connection refused", "repository unreachable"),
                 ("no such host", "repository unreachable"), ("i/o timeout", "repository unreachable"),
                 ("network is unreachable", "repository unreachable"),
                 ("unable to open config file", "repository does not exist"),
                 ("repository does not exist", "repository does not exist"))


def _restic_failure(what: str, code: int, reason: str) -> SourceError:
    lowered = reason.lower()
    known = RESTIC_EXIT.get(code) or next((label for needle, label in _KNOWN_ERRORS if needle in lowered), None)
    if known is None or known in lowered:
        return SourceError(Status.CRITICAL, f"{what} failed: {reason}")
    return SourceError(Status.CRITICAL, f"{what} failed: {known} ({reason})")


def parse_snapshots(text: str) -> list[BackupItem]:
    """`restic snapshots --json` -> items, newest first. Size/duration from `summary` (restic 0.17+)."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SourceError(Status.UNKNOWN, f"restic snapshots printed invalid JSON: {exc.msg}") from None
    if not isinstance(data, list):
        raise SourceError(Status.UNKNOWN, f"restic snapshots printed {type(data).__name__}, expected a list")
    items = []
    for snap in data:
        try:
            stamp = parse_iso8601(str(snap["time"]))
        except (KeyError, TypeError, NotATimestamp):
            continue
        summary = snap.get("summary") or {}
        size = summary.get("total_bytes_processed")
        duration = None
        try:
            if summary.get("backup_start") and summary.get("backup_end"):
                duration = parse_iso8601(summary["backup_end"]) - parse_iso8601(summary["backup_start"])
                stamp = parse_iso8601(summary["backup_end"])
        except NotATimestamp:
            duration = None
        items.append(BackupItem(str(snap.get("short_id") or snap.get("id", "?")), stamp,
                                int(size) if isinstance(size, int | float) else None, duration))
    items.sort(key=lambda i: i.timestamp, reverse=True)
    return items


async def inspect_restic(src: ResticSource, limit: float) -> Inventory:
    argv = [src.bin, "snapshots", "--json", "--no-lock"]
    if src.host:
        argv += ["--host", src.host]
    for tag in src.tags:
        argv += ["--tag", tag]
    if src.snapshot_path:
        argv += ["--path", src.snapshot_path]
    try:
        out = await run_tool(argv, limit=limit, env=restic_env(src))
    except ToolError as exc:
        raise SourceError(Status.CRITICAL if exc.timed_out else Status.UNKNOWN, exc.message) from None
    if out.returncode != 0:
        raise _restic_failure("restic snapshots", out.returncode, out.error_line())
    items = parse_snapshots(out.stdout)
    if not items:
        raise SourceError(Status.CRITICAL, "restic repository has no snapshots" + (" matching the filters" if argv[4:] else ""))
    return Inventory(items[0], items[1] if len(items) > 1 else None, len(items), details={"snapshot": items[0].name})


@dataclass
class VerifyOutcome:
    ok: bool
    message: str
    details: dict[str, Any] = field(default_factory=dict)
    #: the repository was locked by another restic (a backup running): try again next run
    retry: bool = False


_LOCKED = ("unable to create lock", "repository is already locked", "failed to lock")


def parse_check_json(stdout: str) -> tuple[int | None, list[str]]:
    """restic 0.17+ `check --json`: (num_errors from the summary line, error messages)."""
    num_errors: int | None = None
    errors: list[str] = []
    for line in stdout.splitlines():
        try:
            msg = json.loads(line)
        except json.JSONDecodeError:
            continue
        if not isinstance(msg, dict):
            continue
        if msg.get("message_type") == "summary" and isinstance(msg.get("num_errors"), int):
            num_errors = msg["num_errors"]
        elif msg.get("message_type") in ("error", "exit_error"):
            inner = msg.get("error")
            text = msg.get("message") or (inner.get("message") if isinstance(inner, dict) else None)
            if text:
                errors.append(str(text))
    return num_errors, errors


async def restic_check(src: ResticSource, read_data_subset: str | None, limit: float) -> VerifyOutcome:
    """`restic check [--read-data-subset X]`; the exit code decides, JSON adds detail when supported."""
    version = await restic_version(src.bin, min(limit, 30))
    argv = [src.bin, "check"]
    if read_data_subset:
        argv += ["--read-data-subset", read_data_subset]
    use_json = version is not None and version >= (0, 17, 0)
    if use_json:
        argv.append("--json")
    try:
        out = await run_tool(argv, limit=limit, env=restic_env(src))
    except ToolError as exc:
        return VerifyOutcome(False, exc.message, {"timed_out": exc.timed_out})
    details: dict[str, Any] = {"exit_code": out.returncode, "read_data_subset": read_data_subset,
                               "restic_version": ".".join(map(str, version)) if version else None}
    num_errors, errors = parse_check_json(out.stdout) if use_json else (None, [])
    if num_errors is not None:
        details["num_errors"] = num_errors
    if out.returncode == 0 and not num_errors:
        return VerifyOutcome(True, "restic check: no errors" + (f" (read {read_data_subset} of the data)" if read_data_subset else ""),
                             details)
    reason = redact(errors[0])[:300] if errors else _check_reason(out.stderr)
    if out.returncode == 11 or any(needle in out.stderr.lower() for needle in _LOCKED):
        return VerifyOutcome(False, "restic check skipped: the repository is locked by another restic process "
                                    "(a backup or prune running); retrying next run", details, retry=True)
    known = RESTIC_EXIT.get(out.returncode)
    return VerifyOutcome(False, f"restic check failed: {known or reason}", details)


def _check_reason(stderr: str) -> str:
    """The first concrete error restic printed (e.g. a pack whose ID does not match), else its Fatal line."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    concrete = [line for line in lines if not line.startswith(("Fatal:", "using temporary cache", "create exclusive lock",
                                                               "load indexes", "check ", "read ", "["))]
    fatal = [line for line in lines if line.startswith("Fatal:")]
    picked = concrete[0] if concrete else (fatal[-1] if fatal else "non-zero exit code")
    return redact(picked)[:300]


# --- pgBackRest ------------------------------------------------------------------------

#: pgBackRest's stanza status codes (src/command/info/info.c) and what each means for us.
PGBACKREST_STATUS: dict[int, tuple[Status, str]] = {
    0: (Status.OK, "ok"),
    1: (Status.CRITICAL, "missing stanza path"),
    2: (Status.CRITICAL, "no valid backups"),
    3: (Status.CRITICAL, "missing stanza data"),
    4: (Status.WARNING, "different across repos"),
    5: (Status.CRITICAL, "database mismatch across repos"),
    6: (Status.CRITICAL, "requested backup not found"),
    99: (Status.CRITICAL, "other"),
}


def pgbackrest_argv(src: PgBackRestSource) -> list[str]:
    if src.command:
        return list(src.command)
    argv = [src.bin, f"--stanza={src.stanza}"]
    if src.config:
        argv.append(f"--config={src.config}")
    if src.repo:
        argv.append(f"--repo={src.repo}")
    return [*argv, "info", "--output=json"]


def parse_pgbackrest_info(text: str, stanza: str) -> Inventory:
    """Judge one stanza of `pgbackrest info --output=json`; raise SourceError when it has no usable backup."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SourceError(Status.UNKNOWN, f"pgbackrest info printed invalid JSON: {exc.msg}") from None
    entry = next((s for s in data if isinstance(s, dict) and s.get("name") == stanza), None) if isinstance(data, list) else None
    if entry is None:
        raise SourceError(Status.CRITICAL, f"pgbackrest knows no stanza {stanza!r}")
    status_obj = entry.get("status") or {}
    code = status_obj.get("code")
    status, meaning = PGBACKREST_STATUS.get(code, (Status.UNKNOWN, "unknown status code")) if isinstance(code, int) \
        else (Status.UNKNOWN, "no status code")
    repo_errors = [f"repo{r.get('key')}: {str((r.get('status') or {}).get('message', '')).splitlines()[0]}"
                   for r in entry.get("repo") or [] if (r.get("status") or {}).get("code") not in (0, None)]
    message = f"stanza {stanza}: {status_obj.get('message') or meaning} (pgBackRest status {code})"
    if repo_errors:
        message += "; " + "; ".join(repo_errors)
    backups = [b for b in entry.get("backup") or [] if isinstance((b.get("timestamp") or {}).get("stop"), int | float)]
    if not backups:
        raise SourceError(Status.CRITICAL if status == Status.OK else status, message if status != Status.OK
                          else f"stanza {stanza}: no backups")
    backups.sort(key=lambda b: b["timestamp"]["stop"])
    items = [_pgbr_item(b) for b in reversed(backups)]
    inv = Inventory(items[0], items[1] if len(items) > 1 else None, len(items))
    if status != Status.OK:
        inv.problems.append((status, redact(message)))
    newest_raw = backups[-1]
    if newest_raw.get("error"):
        inv.problems.append((Status.WARNING, f"backup {newest_raw.get('label')} has errors (page checksum failures)"))
    last: dict[str, Any] = {}
    for kind in ("full", "diff", "incr"):
        of_kind = [b for b in backups if b.get("type") == kind]
        if of_kind:
            b = of_kind[-1]
            last[kind] = {"label": b.get("label"), "stop": b["timestamp"]["stop"]}
            inv.observations[f"last_{kind}_timestamp_seconds"] = float(b["timestamp"]["stop"])
    repo_size = ((newest_raw.get("info") or {}).get("repository") or {}).get("size")
    if isinstance(repo_size, int | float):
        inv.observations["repository_size_bytes"] = float(repo_size)
    wal = _wal_range(entry, newest_raw)
    if wal["max"] is None:
        inv.problems.append((Status.WARNING, "no WAL segment archived for the current database"))
    elif (stop := (newest_raw.get("archive") or {}).get("stop")) and wal["max"] < stop:
        inv.problems.append((Status.WARNING, f"WAL archive ends at {wal['max']}, before the newest backup's {stop}"))
    held = ((status_obj.get("lock") or {}).get("backup") or {}).get("held")
    inv.details.update({"stanza": stanza, "status_code": code, "status_message": status_obj.get("message"),
                        "label": newest_raw.get("label"), "type": newest_raw.get("type"), "last": last,
                        "wal_archive": wal, "backup_running": bool(held)})
    return inv


def _pgbr_item(b: dict[str, Any]) -> BackupItem:
    ts = b["timestamp"]
    size = (b.get("info") or {}).get("size")
    start = ts.get("start")
    return BackupItem(str(b.get("label")), float(ts["stop"]), int(size) if isinstance(size, int | float) else None,
                      float(ts["stop"] - start) if isinstance(start, int | float) else None, b.get("type"))


def _wal_range(entry: dict[str, Any], newest: dict[str, Any]) -> dict[str, str | None]:
    """min/max WAL of the archive that belongs to the newest backup's database (over all repos)."""
    db_id = (newest.get("database") or {}).get("id")
    ranges = [a for a in entry.get("archive") or [] if (a.get("database") or {}).get("id") == db_id] \
        or list(entry.get("archive") or [])
    mins = [a["min"] for a in ranges if a.get("min")]
    maxs = [a["max"] for a in ranges if a.get("max")]
    return {"min": min(mins) if mins else None, "max": max(maxs) if maxs else None}


async def inspect_pgbackrest(src: PgBackRestSource, limit: float) -> Inventory:
    try:
        out = await run_tool(pgbackrest_argv(src), limit=limit)
    except ToolError as exc:
        raise SourceError(Status.CRITICAL if exc.timed_out else Status.UNKNOWN, exc.message) from None
    if out.returncode != 0:
        raise SourceError(Status.CRITICAL, f"pgbackrest info failed (exit {out.returncode}): {out.error_line()}")
    return parse_pgbackrest_info(out.stdout, src.stanza)
