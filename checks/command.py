"""Run a command as a check, the Nagios plugin way: exit code is the status.

Every team already has scripts and thousands of Nagios/Icinga plugins that
answer "is it healthy?" with exit code 0/1/2/3, a first line of text and
optional performance data after a `|`. This check runs one without a shell
(argv list, or a string split with shlex), bounds its output, kills the whole
process group when it runs too long (or when the runner cancels it), and
turns perfdata into observations.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shlex
import signal
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import Field, field_validator

from agent.core import CheckResult, Status
from agent.durations import human
from agent.secrets import redact
from checks._proc import kill_group
from checks.base import Check, CheckConfig

OUTPUT_LIMIT = 64 * 1024
SUMMARY_LIMIT = 300
DETAILS_LIMIT = 2000
# Kill a little before the runner's own deadline, so this check's result (with
# the process group really gone) wins the race against the runner's timeout.
_DEADLINE_SHARE = 0.95
_READ_CHUNK = 16 * 1024
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


@dataclass
class _Capture:
    """Output kept up to `OUTPUT_LIMIT`; the rest is read and dropped so the child never blocks."""

    data: bytearray = field(default_factory=bytearray)
    truncated: bool = False

    async def drain(self, stream: asyncio.StreamReader | None) -> None:
        if stream is None:
            return
        while chunk := await stream.read(_READ_CHUNK):
            room = OUTPUT_LIMIT - len(self.data)
            if len(chunk) > room:
                self.truncated = True
            if room > 0:
                self.data += chunk[:room]

    def text(self) -> str:
        return self.data.decode("utf-8", errors="replace")


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
    """A perfdata label as an observation name: lowercase [a-z0-9_] ('' if nothing is left)."""
    return re.sub(r"[^a-z0-9]+", "_", label.lower()).strip("_")


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
    Config = CommandConfig
    # A plugin that does not answer in time is a failing plugin (Nagios' own rule).
    timeout_status = Status.CRITICAL

    config: CommandConfig

    async def run(self) -> CheckResult:
        cfg = self.config
        program = cfg.command[0]
        try:
            proc = await asyncio.create_subprocess_exec(
                *cfg.command, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE, cwd=cfg.cwd, env={**os.environ, **cfg.env} if cfg.env else None,
                start_new_session=True)
        except FileNotFoundError as exc:
            # The exec error names what is missing: the program or the cwd.
            if cfg.cwd is not None and exc.filename == cfg.cwd:
                return self.result(Status.UNKNOWN, f"working directory {cfg.cwd} does not exist")
            return self.result(Status.UNKNOWN, f"command not found: {program}")
        except PermissionError:
            return self.result(Status.UNKNOWN, f"command not executable: {program} (permission denied)")
        except OSError as exc:
            return self.result(Status.UNKNOWN, f"cannot run {program}: {exc.strerror or exc}")

        out, err = _Capture(), _Capture()
        try:
            async with asyncio.timeout(self.timeout * _DEADLINE_SHARE):
                await asyncio.gather(out.drain(proc.stdout), err.drain(proc.stderr), proc.wait())
        except TimeoutError:
            kill_group(proc)
            await proc.wait()
            return self.result(Status.CRITICAL, f"timed out after {human(self.timeout)}", pid=proc.pid,
                               stdout=_clean(out.text(), DETAILS_LIMIT),
                               stderr=_clean(err.text(), DETAILS_LIMIT))
        finally:
            # Cancelled by the runner (its timeout or a shutdown): never leave the
            # command or anything it started running behind us.
            if proc.returncode is None:
                kill_group(proc)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(2):
                        await proc.wait()
        return self._interpret(proc.returncode, out, err)

    def _interpret(self, code: int | None, out: _Capture, err: _Capture) -> CheckResult:
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

        observations: dict[str, float] = {}
        perfdata = parse_perfdata(perf)
        for p in perfdata:
            name = observation_name(redact(p.label, ignore_case=True))  # before lowercasing hides a secret
            if name and p.value is not None and name not in observations:
                observations[name] = p.value
        return self.result(
            status, summary, observations, exit_code=code,
            perfdata=[{"label": p.label, "value": p.value, "uom": p.uom, "warn": p.warn, "crit": p.crit,
                       "min": p.min, "max": p.max} for p in perfdata],
            long_text=_clean(long_text, DETAILS_LIMIT),
            stderr=_clean(stderr, DETAILS_LIMIT),
            output_truncated=out.truncated or err.truncated)
