"""Run an external tool (restic, pgbackrest, pg_restore, plugins) and never leave it behind.

`kill_group` is shared with the command check. Backup tools hold locks and file handles: one left running after a timeout
blocks the next real backup. Every call here has a deadline; on timeout or
when the runner cancels the check, the tool's whole process group is killed
(it leads its own session) and reaped before we return. Secrets go in through
the environment (RESTIC_PASSWORD_FILE, PGPASSWORD), never through argv where
`ps` would show them; output is bounded and redacted before it is reported.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from dataclasses import dataclass

from agent.durations import human
from agent.secrets import redact

OUTPUT_LIMIT = 4 * 1024 * 1024
_READ_CHUNK = 64 * 1024
_REAP_TIMEOUT = 5.0


@dataclass
class ProcResult:
    returncode: int
    stdout: str
    stderr: str
    truncated: bool = False

    def error_line(self) -> str:
        """The most telling line of stderr (restic/pgbackrest put `Fatal:`/`ERROR:` last), redacted."""
        lines = [line.strip() for line in self.stderr.splitlines() if line.strip()]
        for prefix in ("Fatal:", "ERROR:", "pg_restore: error:", "error:"):
            picked = [line for line in lines if line.startswith(prefix)]
            if picked:
                return redact(picked[0] if prefix == "pg_restore: error:" else picked[-1])[:300]
        return redact(lines[-1])[:300] if lines else f"exit code {self.returncode}"


class ToolError(Exception):
    """The tool could not be run or did not finish; `message` is safe to show."""

    def __init__(self, message: str, *, timed_out: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.timed_out = timed_out


def kill_group(proc: asyncio.subprocess.Process) -> None:
    """SIGKILL the child's process group (it leads one: start_new_session=True)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    except PermissionError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()


async def _drain(stream: asyncio.StreamReader | None, into: bytearray) -> bool:
    truncated = False
    if stream is None:
        return truncated
    while chunk := await stream.read(_READ_CHUNK):
        room = OUTPUT_LIMIT - len(into)
        if len(chunk) > room:
            truncated = True
        if room > 0:
            into += chunk[:room]
    return truncated


async def run_tool(argv: list[str], *, limit: float, env: dict[str, str] | None = None,
                   cwd: str | None = None) -> ProcResult:
    """Run `argv` (no shell) with extra `env` for at most `limit` seconds; ToolError if missing or too slow."""
    program = argv[0]
    full_env = {**os.environ, **env} if env else None
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, env=full_env, cwd=cwd, start_new_session=True)
    except FileNotFoundError:
        raise ToolError(f"{program} not found (install it or set `bin:` to its path)") from None
    except PermissionError:
        raise ToolError(f"{program} is not executable (permission denied)") from None
    except OSError as exc:
        raise ToolError(f"cannot run {program}: {exc.strerror or exc}") from None
    out, err = bytearray(), bytearray()
    truncated = False
    try:
        async with asyncio.timeout(limit):
            t_out, t_err, _ = await asyncio.gather(_drain(proc.stdout, out), _drain(proc.stderr, err), proc.wait())
            truncated = t_out or t_err
    except TimeoutError:
        kill_group(proc)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(_REAP_TIMEOUT):
                await proc.wait()
        raise ToolError(f"{os.path.basename(program)} did not finish within {human(limit)}; killed",
                        timed_out=True) from None
    finally:
        if proc.returncode is None:  # cancelled by the runner: never leave the tool running
            kill_group(proc)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_REAP_TIMEOUT):
                    await proc.wait()
    assert proc.returncode is not None
    return ProcResult(proc.returncode, out.decode("utf-8", errors="replace"),
                      err.decode("utf-8", errors="replace"), truncated)
