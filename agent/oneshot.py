"""Run checks once, now, outside the daemon: `sre-agent check`, its suites and reports.

The same runner as the daemon (timeouts, redaction), the same check
instances, and the daemon's state store opened read-mostly when it exists, so
an SLO over probe history sees what the daemon recorded. No scheduler, no
alerting, no HTTP listener: nothing is sent.

Which checks run is a `Selection`: names and globs (`'payments-*'`), tags
(`--tag smoke`; a suite is a tag), labels (`--label team=payments`, all must
hold) or `--all`; a check runs when it matches every kind of criterion given.
The checks of a selected suite that do not run (disabled, or filtered out by a
name or label) are reported SKIPPED with the reason, so a suite's report
always lists the whole suite.
"""

from __future__ import annotations

import asyncio
import difflib
import fnmatch
import glob
import time
from dataclasses import dataclass

from agent.check import Check, CheckConfig
from agent.config import ConfigBase
from agent.context import CheckContext
from agent.core import CheckResult
from agent.reports import Entry, Report
from agent.runner import build_checks, close_shared, execute
from agent.store import for_state_dir as store_for_state_dir

DISABLED = "disabled in the config (enabled: false)"


class SelectionError(ValueError):
    """The selection names something the config does not have; the message says what there is."""


@dataclass(frozen=True)
class Selection:
    """What `sre-agent check` was asked to run."""

    patterns: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    labels: tuple[tuple[str, str], ...] = ()
    run_all: bool = False

    @property
    def empty(self) -> bool:
        return not (self.patterns or self.tags or self.labels or self.run_all)

    def describe(self) -> str:
        """`suite smoke, label team=payments` / `checks web-*` / `all checks`."""
        parts = []
        if self.tags:
            parts.append(("suite " if len(self.tags) == 1 else "suites ") + ", ".join(self.tags))
        if self.patterns:
            parts.append(("check " if len(self.patterns) == 1 else "checks ") + ", ".join(self.patterns))
        if self.labels:
            parts.append(("label " if len(self.labels) == 1 else "labels ") + ", ".join(f"{k}={v}" for k, v in self.labels))
        return ", ".join(parts) or "all checks"


@dataclass(frozen=True)
class Planned:
    config: CheckConfig
    #: why it does not run; None: it runs
    skip: str | None = None


def _is_glob(pattern: str) -> bool:
    return glob.has_magic(pattern)


def plan(checks: list[CheckConfig], selection: Selection) -> list[Planned]:
    """The checks a selection runs, and the other members of its suites with the reason they do not.

    Raises `SelectionError` for a name, glob or tag that matches no check at all: a typo must not
    turn a suite into an empty, green run.
    """
    names = [c.name for c in checks]
    exact = [p for p in selection.patterns if not _is_glob(p)]
    unknown = [p for p in exact if p not in names]
    if unknown:
        hint = difflib.get_close_matches(unknown[0], names, n=1)
        raise SelectionError(f"unknown check{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)}"
                             + (f" (did you mean {hint[0]!r}?)" if hint else "")
                             + "\nconfigured checks: " + (", ".join(names) or "(none)"))
    for p in selection.patterns:
        if _is_glob(p) and not any(fnmatch.fnmatchcase(n, p) for n in names):
            raise SelectionError(f"no check matches {p!r}; configured checks: {', '.join(names) or '(none)'}")
    known_tags = sorted({t for c in checks for t in c.tags})
    for tag in selection.tags:
        if tag not in known_tags:
            raise SelectionError(f"no check has tag {tag!r}; tags in the config: {', '.join(known_tags) or '(none)'}")
    labels = dict(selection.labels)

    def position(c: CheckConfig) -> int:
        """Checks named or globbed come in the order of the patterns that matched them."""
        for i, p in enumerate(selection.patterns):
            if c.name == p or (_is_glob(p) and fnmatch.fnmatchcase(c.name, p)):
                return i
        return len(selection.patterns)

    def excluded(c: CheckConfig) -> str | None:
        """Why a member of a selected suite is left out by the other criteria."""
        if selection.patterns and position(c) == len(selection.patterns):
            return f"not selected: its name matches none of {', '.join(selection.patterns)}"
        for key, value in labels.items():
            if c.labels.get(key) != value:
                have = c.labels.get(key)
                return f"not selected: label {key}={value} asked, the check has " + (f"{key}={have}" if have else f"no {key} label")
        return None

    out: list[Planned] = []
    for c in sorted(checks, key=position):
        in_suite = bool(selection.tags) and bool(set(c.tags) & set(selection.tags))
        if selection.tags and not in_suite:
            continue
        reason = excluded(c)
        if reason is not None:
            if in_suite:
                out.append(Planned(c, reason))
            continue
        if not c.enabled and c.name not in exact:  # a check named exactly runs even when disabled
            out.append(Planned(c, DISABLED))
            continue
        out.append(Planned(c))
    if not out:
        raise SelectionError(f"no check matches {selection.describe()}; configured checks: {', '.join(names) or '(none)'}")
    return out


async def run_selection(config: ConfigBase, selection: Selection) -> Report:
    """Run what `plan()` selects; every planned check becomes an entry (run or SKIPPED)."""
    planned = plan(config.all_checks(), selection)
    started, t0 = time.time(), time.perf_counter()
    to_run = [p.config.name for p in planned if p.skip is None]
    results = {r.check: r for r in await run_once(config, to_run)} if to_run else {}
    entries = [Entry(check=p.config.name, type=p.config.type, result=results.get(p.config.name), skipped=p.skip,
                     tags=list(p.config.tags), labels=dict(p.config.labels)) for p in planned]
    return Report(entries=entries, started_at=started, duration_seconds=time.perf_counter() - t0,
                  title=f"sre-agent check: {selection.describe()}")


async def run_once(config: ConfigBase, names: list[str] | None = None) -> list[CheckResult]:
    """Results of the named checks (in that order), or of every enabled check, run concurrently."""
    store = None
    db = config.agent.state_dir / "state.db"
    if db.exists():
        store = store_for_state_dir(config.agent.state_dir, config.agent.history_retention.total_seconds())
        await store.open()
    context = CheckContext(config=config, store=store)
    checks = build_checks(config, context, names)
    if names:
        order = {n: i for i, n in enumerate(names)}
        checks.sort(key=lambda c: order[c.name])
    semaphore = asyncio.Semaphore(config.agent.max_concurrency)

    async def one(check: Check) -> CheckResult:
        async with semaphore:
            return await execute(check)

    try:
        return list(await asyncio.gather(*(one(c) for c in checks)))
    finally:
        for c in checks:
            await c.close()
        await close_shared(context)
        if store is not None:
            await store.close()
