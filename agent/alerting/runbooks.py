"""Find a check's runbook on disk, for `sre-agent runbook CHECK` and the agent's API.

A check's `runbook:` is a URL (kept as is) or a path such as
`runbooks/http-endpoint-down.md`. The path is looked up where an operator
would expect it: next to the config file, in the current directory, then in
the repository's (or installed package's) `runbooks/` folder.
"""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


class RunbookError(Exception):
    """The runbook cannot be shown; the message says why and where it looked."""


def is_url(runbook: str) -> bool:
    return runbook.startswith(("http://", "https://"))


def candidates(runbook: str, config_path: str | Path | None) -> list[Path]:
    rel = Path(runbook)
    if rel.is_absolute():
        return [rel]
    bases: list[Path] = []
    if config_path is not None:
        bases.append(Path(config_path).resolve().parent)
    bases.extend([Path.cwd(), REPO_ROOT])
    out: list[Path] = []
    for base in bases:
        for path in (base / rel, base / "runbooks" / rel.name):
            if path not in out:
                out.append(path)
    return out


def find_runbook(check: str, runbook: str | None, config_path: str | Path | None) -> Path:
    """The runbook file of a check; `RunbookError` if it has none, it is a URL, or no file exists."""
    if not runbook:
        raise RunbookError(f"check {check!r} has no runbook: set `runbook:` on it (a path under runbooks/ or a URL)")
    if is_url(runbook):
        raise RunbookError(f"the runbook of check {check!r} is a URL: {runbook}")
    looked = candidates(runbook, config_path)
    for path in looked:
        if path.is_file():
            return path
    raise RunbookError(f"runbook {runbook!r} of check {check!r} not found; looked in: " + ", ".join(str(p) for p in looked))
