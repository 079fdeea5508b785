"""Find a check's runbook on disk, for `sre-agent runbook CHECK` and the agent's API.

The lookup lives on the ground floor (`agent.runbook_files`), where the
config loader uses it too to refuse a `runbook:` path that names no file;
this module keeps the alerting layer's name for it.
"""

from __future__ import annotations

from agent.runbook_files import REPO_ROOT, RunbookError, candidates, find_runbook, is_url

__all__ = ["REPO_ROOT", "RunbookError", "candidates", "find_runbook", "is_url"]
