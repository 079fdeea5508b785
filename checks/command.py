"""Run a command as a check, the Nagios plugin way: exit code is the status.

Every team already has scripts and thousands of Nagios/Icinga plugins that
answer "is it healthy?" with exit code 0/1/2/3, a first line of text and
optional performance data after a `|`. This check runs one without a shell
(argv list, or a string split with shlex), bounds its output, and turns
perfdata into observations. Nothing the plugin starts outlives its run: its
process group is killed after every run (on exit, timeout or cancellation),
output is read until it exits plus a short grace, and children that escaped
the group are found and killed too (see `checks._proc`), counted in
`sre_agent_command_leftover_processes_total`.
"""

from __future__ import annotations

import logging
import re
import shlex
import signal
import time
import unicodedata
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field, field_validator

from agent import catalogue
from agent.core import CheckResult, Sample, Status
from agent.durations import human
from agent.secrets import redact
from checks._proc import Capture, Finished, run_process
from checks.base import Check, CheckConfig, MetricFamily

if TYPE_CHECKING:
    from agent.context import CheckContext

OUTPUT_LIMIT = 64 * 1024
SUMMARY_LIMIT = 300
DETAILS_LIMIT = 2000
# Kill a little before the runner's own deadline, so this check's result (with
# the process group really gone) wins the race against the runner's timeout.
_DEADLINE_SHARE = 0.95
LEFTOVERS_METRIC = "sre_agent_command_leftover_processes_total"
_LEFTOVER_LOG_INTERVAL = 600.0
log = logging.getLogger("sre_agent.checks.command")
# Text kept past a cut point while redacting, so a long secret there is still recognised.
_REDACT_MARGIN = 4096
_ENV_NAME = re.compile(r"^[^=\x00]+$")
_PERFDATA = re.compile(
    r"""(?:'(?P<qlabel>(?:[^']|'')+)'|(?P<label>[^\s'=]+))
        =(?P<value>U|[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)
        (?P<uom>[a-zA-Z%]*)
        (?P<rest>(?:;[^;\s]*){0,4})""",
    re.X,
)


class CommandConfig(CheckConfig):
    type: Literal["command"]
    command: list[str] = Field(description="argv list, or a string split like a shell would (no shell runs it)")
    env: dict[str, str] = Field(default_factory=dict, description="extra environment variables (the agent's are inherited)")
    cwd: str | None = Field(None, description="working directory")

    @field_validator("command", mode="before")
    @classmethod
    def _split(cls, v: Any) -> Any:
        if isinstance(v, str):
            try:
                return shlex.split(v)
            except ValueError as exc:
                raise ValueError(f"cannot split command {v!r}: {exc}") from None
        return v

    @field_validator("command")
    @classmethod
    def _not_empty(cls, v: list[str]) -> list[str]:
        if not v or not v[0].strip():
            raise ValueError("command must name a program, e.g. [/usr/lib/nagios/plugins/check_disk, -w, 10%]")
        if any("\x00" in arg for arg in v):
            raise ValueError("command arguments must not contain NUL bytes")
        return v

    @field_validator("env")
    @classmethod
    def _env_names(cls, v: dict[str, str]) -> dict[str, str]:
        for name in v:
            if not _ENV_NAME.match(name):
                raise ValueError(f"invalid environment variable name {name!r}")
        return v


@dataclass(frozen=True)
class PerfValue:
    label: str
    value: float | None
    uom: str = ""
    warn: str = ""
    crit: str = ""
    min: str = ""
    max: str = ""


def parse_perfdata(text: str) -> list[PerfValue]:
    """Parse Nagios perfdata: `'label'=value[UOM];[warn];[crit];[min];[max]`, space separated."""
    out = []
    for m in _PERFDATA.finditer(text):
        label = m["qlabel"].replace("''", "'") if m["qlabel"] is not None else m["label"]
        value = None if m["value"] == "U" else float(m["value"])
        extra = (m["rest"].split(";")[1:] + ["", "", "", ""])[:4]
        out.append(PerfValue(label, value, m["uom"], *extra))
    return out


def split_plugin_output(stdout: str) -> tuple[str, str, str]:
    """(first line text, long text, perfdata) as the Nagios plugin API lays them out.

    Perfdata is what follows `|` on the first line, plus everything after the
    first `|` in the long-text lines that follow.
    """
    lines = stdout.splitlines()
    if not lines:
        return "", "", ""
    first, _, perf = lines[0].partition("|")
    long_lines: list[str] = []
    perf_parts = [perf]
    in_perf = False
    for line in lines[1:]:
        if in_perf:
            perf_parts.append(line)
        elif "|" in line:
            text, _, rest = line.partition("|")
            long_lines.append(text)
            perf_parts.append(rest)
            in_perf = True
        else:
            long_lines.append(line)
    return first.strip(), "\n".join(long_lines).strip(), " ".join(perf_parts).strip()


def observation_name(label: str) -> str:
    """A perfdata label as an observation name: lowercase [a-z0-9_], accents folded ('' if nothing is left).

    A filesystem path loses its slashes (`/var/log` -> `var_log`) and the root
    filesystem, which check_disk labels `/`, is `root`.
    """
    ascii_label = unicodedata.normalize("NFKD", label).encode("ascii", "ignore").decode("ascii")
    name = re.sub(r"[^a-z0-9]+", "_", ascii_label.lower()).strip("_")
    if not name and label.strip() and set(label.strip()) == {"/"}:
        return "root"
    return name


def observation_names(labels: list[str]) -> list[str]:
    """One distinct, valid observation name per perfdata label, in output order.

    Stable for a plugin whose output keeps its order: the first label to claim a
    name keeps it, later ones get `_2`, `_3`... (`/` and `root` become `root`
    and `root_2`). A label with nothing usable left (`%`, `日本`) is named by
    its position: `perf_3` for the third value.
    """
    names: list[str] = []
    taken: set[str] = set()
    for position, label in enumerate(labels, start=1):
        base = observation_name(label) or f"perf_{position}"
        name, n = base, 1
        while name in taken:
            n += 1
            name = f"{base}_{n}"
        taken.add(name)
        names.append(name)
    return names


def _clean(text: str, limit: int) -> str:
    """Scrub secrets, then cut to `limit` characters.

    Redaction runs before the cut so a secret is never half shown; it runs on
    a bounded prefix because its regexes are slow on very long lines.
    """
    text = redact(text[: limit + _REDACT_MARGIN])
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)


class CommandCheck(Check):
    type = "command"
    runbooks = {"": "runbooks/command-check-failed.md"}
    Config = CommandConfig
    metric_families: ClassVar[dict[str, MetricFamily]] = catalogue.families(LEFTOVERS_METRIC, make=MetricFamily)
    # A plugin that does not answer in time is a failing plugin (Nagios' own rule).
    timeout_status = Status.CRITICAL

    config: CommandConfig

    def __init__(self, config: CheckConfig, context: CheckContext) -> None:
        super().__init__(config, context)
        self._leftovers_total = 0
        self._leftovers_logged = -_LEFTOVER_LOG_INTERVAL

    async def run(self) -> CheckResult:
        cfg = self.config
        program = cfg.command[0]
        try:
            run = await run_process(cfg.command, limit=self.timeout * _DEADLINE_SHARE, env=cfg.env, cwd=cfg.cwd,
                                    output_limit=OUTPUT_LIMIT)
        except FileNotFoundError as exc:
            # The exec error names what is missing: the program or the cwd.
            if cfg.cwd is not None and exc.filename == cfg.cwd:
                return self.result(Status.UNKNOWN, f"working directory {cfg.cwd} does not exist")
            return self.result(Status.UNKNOWN, f"command not found: {program}")
        except PermissionError:
            return self.result(Status.UNKNOWN, f"command not executable: {program} (permission denied)")
        except OSError as exc:
            return self.result(Status.UNKNOWN, f"cannot run {program}: {exc.strerror or exc}")
        self._count_leftovers(run)
        if run.timed_out:
            result = self.result(Status.CRITICAL, f"timed out after {human(self.timeout)}", pid=run.pid,
                                 stdout=_clean(run.stdout.text(), DETAILS_LIMIT),
                                 stderr=_clean(run.stderr.text(), DETAILS_LIMIT))
        else:
            result = self._interpret(run.returncode, run.stdout, run.stderr)
        if run.leftovers:
            result.details["leftover_processes"] = run.leftovers
        result.samples.append(Sample(LEFTOVERS_METRIC, float(self._leftovers_total)))
        return result

    def _count_leftovers(self, run: Finished) -> None:
        if not run.leftovers:
            return
        self._leftovers_total += run.leftovers
        now = time.monotonic()
        if now - self._leftovers_logged >= _LEFTOVER_LOG_INTERVAL:
            self._leftovers_logged = now
            log.warning("command check %s: the plugin left %d process(es) running after it exited; killed them "
                        "(%d so far; counted in %s)", self.name, run.leftovers, self._leftovers_total,
                        LEFTOVERS_METRIC)

    def _interpret(self, code: int | None, out: Capture, err: Capture) -> CheckResult:
        stdout, stderr = out.text(), err.text()
        first, long_text, perf = split_plugin_output(stdout)
        if not first:
            first = next((line.strip() for line in stderr.splitlines() if line.strip()), "")
        text = _clean(first, SUMMARY_LIMIT)
        if code is not None and code < 0:
            status, summary = Status.UNKNOWN, f"killed by signal {_signal_name(-code)}" + (f": {text}" if text else "")
        elif code in (0, 1, 2, 3):
            status = Status(code)
            summary = text or f"exit code {code} (no output)"
        else:
            status = Status.UNKNOWN
            summary = f"exit code {code}" + (f": {text}" if text else " (no output)")

        perfdata = parse_perfdata(perf)
        # redacted before lowercasing could hide a secret in a label
        names = observation_names([redact(p.label, ignore_case=True) for p in perfdata])
        observations = {name: p.value for name, p in zip(names, perfdata, strict=True) if p.value is not None}
        return self.result(
            status, summary, observations, exit_code=code,
            perfdata=[{"label": p.label, "name": name, "value": p.value, "uom": p.uom, "warn": p.warn,
                       "crit": p.crit, "min": p.min, "max": p.max} for name, p in zip(names, perfdata, strict=True)],
            long_text=_clean(long_text, DETAILS_LIMIT),
            stderr=_clean(stderr, DETAILS_LIMIT),
            output_truncated=out.truncated or err.truncated)
