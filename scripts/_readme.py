"""The README's generated blocks: replace the text between two marker comments, or report it stale."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def update_block(start: str, end: str, render: Callable[[], str], what: str, script: str) -> int:
    """Write render()'s block between the markers (`--check`: exit 1 when it differs); the exit code."""
    text = README.read_text()
    if start not in text or end not in text:
        print(f"README.md has no {what} markers", file=sys.stderr)
        return 1
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    new = head + render() + tail
    if "--check" in sys.argv:
        if new != text:
            print(f"README.md {what} is stale: run scripts/{script}", file=sys.stderr)
            return 1
        return 0
    README.write_text(new)
    return 0
