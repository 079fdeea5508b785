"""Which runbook an alert links to when its check does not name one.

Every alert carries a `runbook_url` (the on-call person's first click), so
each check type declares default runbooks in `runbooks/` (`Check.runbooks`:
"" for the type's own, other keys for narrower alert families such as
`host` + "disk"), and the agent's own alert families are listed here. A
check's own `runbook:` wins; otherwise `effective_runbook()` gives the type's
default, which the alerting engine joins to `alerting.runbook_base_url` (or the
agent serves at `/api/v1/runbooks/<check>`). tests/test_runbooks.py proves
every file exists and has the six sections an SRE expects.
"""

from __future__ import annotations

from functools import cache

from agent.check import CheckConfig
from agent.registry import check_types

#: the agent's own alert families (not a check type's) -> runbook path, relative to the repo root
AGENT_RUNBOOKS: dict[str, str] = {
    "agent.notification": "runbooks/agent-notification-failing.md",
}


@cache
def runbook_families() -> dict[str, str]:
    """Every family -> its runbook: `type` and `type.aspect` from the check types, then the agent's own."""
    out: dict[str, str] = {}
    for name, cls in sorted(check_types().items()):
        for aspect, path in cls.runbooks.items():
            out[f"{name}.{aspect}" if aspect else name] = path
    out.update(AGENT_RUNBOOKS)
    return out


def default_runbook(check_type: str, aspect: str | None = None) -> str | None:
    """The narrowest runbook known: `host` + `disk` -> disk-filling.md, else the type's own."""
    families = runbook_families()
    if aspect:
        narrow = families.get(f"{check_type}.{aspect}")
        if narrow:
            return narrow
    return families.get(check_type)


def effective_runbook(check: CheckConfig) -> str | None:
    """The runbook an alert of this check links to: its own `runbook:`, else its type's default."""
    return check.runbook or default_runbook(check.type)
