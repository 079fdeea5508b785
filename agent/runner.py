"""The one place that owns a check's failure: timeout, exceptions, timing.

A check returns a result for expected failures; whatever it raises (or a
timeout) is turned into a result here. `CancelledError` is re-raised: the
scheduler cancelling a run on shutdown is not a check failure. It also
builds check instances from a config and releases what their types share,
for the daemon and the one-shot runner alike.
"""

from __future__ import annotations

import asyncio
import logging
import time

from agent.check import Check
from agent.config import ConfigBase
from agent.context import CheckContext
from agent.core import CheckResult, Status
from agent.durations import human
from agent.registry import get_type, loaded_types
from agent.secrets import REDACTOR, clip, redact

log = logging.getLogger("sre_agent.runner")
#: the agent's own extras for clients several check types share; a type names its own in `Check.requires`
_EXTRAS = {"sqlalchemy": "sql", "psycopg": "sql", "boto3": "s3", "botocore": "s3"}


async def execute(check: Check) -> CheckResult:
    """Run one check under its timeout and return a complete, redacted result."""
    cfg = check.config
    timeout = check.timeout
    started_wall = time.time()
    started = time.perf_counter()
    try:
        # A little slack so a check's own, more precise timeout result wins the race.
        async with asyncio.timeout(timeout + min(1.0, max(0.25, timeout * 0.1))):
            result = await check.run()
        if not isinstance(result, CheckResult):
            raise TypeError(f"{type(check).__name__}.run() returned {type(result).__name__}, not CheckResult")
    except TimeoutError:
        result = CheckResult(status=check.timeout_status, summary=f"timed out after {human(timeout)}")
    except asyncio.CancelledError:
        raise
    except ModuleNotFoundError as exc:
        top = (exc.name or "").split(".")[0]
        extra = {**_EXTRAS, **type(check).requirements(cfg)}.get(top)
        hint = f": pip install 'sre-agent[{extra}]'" if extra else ""
        result = CheckResult(status=Status.UNKNOWN, summary=f"missing Python package {exc.name!r}{hint}")
    except Exception as exc:  # a plugin bug must not kill the agent
        log.warning("check %s raised %s: %s", cfg.name, type(exc).__name__, exc, exc_info=log.isEnabledFor(logging.DEBUG))
        detail = clip(str(exc).strip().splitlines()[0], 300) if str(exc).strip() else ""
        result = CheckResult(status=Status.UNKNOWN, summary=f"check raised {type(exc).__name__}" + (f": {detail}" if detail else ""))
    result.duration_seconds = time.perf_counter() - started
    result.timestamp = started_wall
    result.check = cfg.name
    result.type = cfg.type
    # The config's own labels and thresholds are shared by every result of the check, not copied.
    result.labels = {**cfg.labels, **result.labels} if result.labels else cfg.labels
    # From the config, not the run: a check that timed out still shows what it is judged against.
    result.thresholds = check.thresholds
    result.summary = redact(result.summary)
    # Observation names and details come from the target too (perfdata labels, URLs, output).
    # A check may have lowercased a secret into a name, so names are matched ignoring case.
    result.observations = {redact(name, ignore_case=True): value for name, value in result.observations.items()}
    result.details = REDACTOR.redact_obj(result.details)
    return result


def build_checks(config: ConfigBase, context: CheckContext, names: list[str] | None = None) -> list[Check]:
    """Instances of the configured checks (all enabled ones, or the named ones even if disabled)."""
    out = []
    for cfg in config.all_checks():
        if names is not None and cfg.name not in names:
            continue
        if not cfg.enabled and names is None:
            continue
        out.append(get_type(cfg.type)(cfg, context))
    return out


async def close_shared(context: CheckContext) -> None:
    """Release what each check type shares across its checks (sessions, pools), at shutdown."""
    for cls in loaded_types().values():  # a type never imported shares nothing
        try:
            await asyncio.wait_for(cls.close_shared(context), timeout=2)
        except Exception as exc:
            log.warning("closing shared resources of %s checks failed: %s", cls.type, exc)
