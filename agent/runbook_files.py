"""Find a runbook file on disk: for `sre-agent runbook`, the agent's API and the config loader.

A check's `runbook:` is a URL (kept as is) or a path such as
`runbooks/http-endpoint-down.md`. The path is looked up where an operator
would expect it: next to the config file, in the current directory, then in
the repository's (or installed package's) `runbooks/` folder. On the ground
floor so that the config loader, which refuses a `runbook:` naming no file,
resolves a path exactly as `sre-agent runbook` does.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
#: where an installed package keeps the shipped runbooks (the wheel's copy of `runbooks/`)
EMBEDDED = Path(__file__).resolve().parent / "_embedded"


class RunbookError(Exception):
    """The runbook cannot be shown; the message says why and where it looked."""


def is_url(runbook: str) -> bool:
    return runbook.startswith(("http://", "https://"))


def candidates(runbook: str, config_path: str | os.PathLike[str] | None) -> list[Path]:
    """Where a `runbook:` path may be: next to the config, in the current directory, then in
    the repository's (or installed package's) `runbooks/` folder."""
    rel = Path(runbook)
    if rel.is_absolute():
        return [rel]
    bases: list[Path] = []
    if config_path is not None:
        bases.append(Path(config_path).resolve().parent)
    bases.extend([Path.cwd(), REPO_ROOT, EMBEDDED])
    out: list[Path] = []
    for base in bases:
        for path in (base / rel, base / "runbooks" / rel.name):
            if path not in out:
                out.append(path)
    return out


def find_runbook(check: str, runbook: str | None, config_path: str | os.PathLike[str] | None) -> Path:
    """The runbook file of a check; `RunbookError` if it has none, it is a URL, or no file exists."""
    if not runbook:
        raise RunbookError(f"check {check!r} has no runbook: set `runbook:` on it (a path under runbooks/ or a URL)")
    if is_url(runbook):
        raise RunbookError(f"the runbook of check {check!r} is a URL: {runbook}")
    looked = candidates(runbook, config_path)
    for path in looked:
        if is_file(path):
            return path
    raise RunbookError(f"runbook {runbook!r} of check {check!r} not found; looked in: " + ", ".join(str(p) for p in looked))


def is_file(path: Path) -> bool:
    """`Path.is_file()` that says False, not raises, for a name too long or otherwise unusable."""
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False
