"""Run an external program (plugins, restic, pgbackrest, pg_restore) and never leave it behind.

Backup tools hold locks and file handles, and plugins background helpers: one
left running blocks the next real backup, and a child that keeps the output
pipes open used to keep the check waiting and its descriptors open for good.
So every run here, however it ends (exit, deadline, cancelled by the runner):

- the program leads its own session and process group, and that whole group
  is killed once the program has exited;
- output is read until the program exits plus a short grace, then the pipes
  are closed, whoever still holds their other end;
- a child that left the group (`setsid`, a double fork) is found by a marker
  in its environment (`SRE_AGENT_RUN_ID`, unique per run) and killed too. The
  number of such leftovers is reported so callers can count them. A process
  that both leaves the group and clears its environment escapes; systemd's
  `KillMode=control-group` still ends it when the agent stops.

Secrets go in through the environment (RESTIC_PASSWORD_FILE, PGPASSWORD),
never through argv where `ps` would show them; output is bounded and redacted
before it is reported.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import subprocess
import time
from dataclasses import dataclass, field

import psutil

from agent.durations import human
from agent.secrets import redact

OUTPUT_LIMIT = 4 * 1024 * 1024
#: environment variable carrying a per-run token, to find children that left the process group
RUN_MARKER = "SRE_AGENT_RUN_ID"
#: how long output is still read after the program exited (a backgrounded child may hold the pipes)
OUTPUT_GRACE = 0.5
_REAP_TIMEOUT = 5.0
_REAP_ROUNDS = 3
# psutil derives start times from the boot time, which /proc gives in whole seconds.
_START_SLACK = 2.0


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


@dataclass
class Capture:
    """Output kept up to `limit` bytes; the rest is read and dropped so the child never blocks."""

    limit: int = OUTPUT_LIMIT
    data: bytearray = field(default_factory=bytearray)
    truncated: bool = False

    def add(self, chunk: bytes) -> None:
        room = self.limit - len(self.data)
        if len(chunk) > room:
            self.truncated = True
        if room > 0:
            self.data += chunk[:room]

    def text(self) -> str:
        return self.data.decode("utf-8", errors="replace")


@dataclass
class Finished:
    """How a run ended. `returncode` is negative for a signal, None if it never exited (not even killed)."""

    pid: int
    returncode: int | None
    stdout: Capture
    stderr: Capture
    timed_out: bool = False
    #: processes the run left behind (in its group or carrying its marker), killed
    leftovers: int = 0


class _Pipes(asyncio.SubprocessProtocol):
    def __init__(self, limit: int) -> None:
        loop = asyncio.get_running_loop()
        self.stdout, self.stderr = Capture(limit), Capture(limit)
        self.exited: asyncio.Future[None] = loop.create_future()
        self.pipes_closed: asyncio.Future[None] = loop.create_future()
        self._open = {1, 2}

    def pipe_data_received(self, fd: int, data: bytes | str) -> None:
        chunk = data.encode() if isinstance(data, str) else data
        (self.stdout if fd == 1 else self.stderr).add(chunk)

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        self._open.discard(fd)
        if not self._open and not self.pipes_closed.done():
            self.pipes_closed.set_result(None)

    def process_exited(self) -> None:
        if not self.exited.done():
            self.exited.set_result(None)


def kill_pgid(pgid: int) -> None:
    """SIGKILL a process group, never the agent's own."""
    if pgid <= 1 or pgid == os.getpgid(0):
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _left_behind(pgid: int, marker: str, since: float) -> dict[int, int]:
    """Live processes started since `since` in group `pgid` or carrying `marker`: pid -> their group."""
    me = os.getpid()
    found: dict[int, int] = {}
    for proc in psutil.process_iter(["create_time", "status"]):
        created, status = proc.info["create_time"], proc.info["status"]
        if proc.pid == me or created is None or created < since or status == psutil.STATUS_ZOMBIE:
            continue
        try:
            group = os.getpgid(proc.pid)
            if group == pgid or proc.environ().get(RUN_MARKER) == marker:
                found[proc.pid] = group
        except (psutil.Error, OSError):
            continue  # gone, or another user's process (not ours to read, so not our plugin's)
    return found


def reap_leftovers(pgid: int, marker: str, since: float) -> int:
    """Kill group `pgid` and every process carrying `marker`; how many processes were found.

    Blocking (it reads /proc): run it in a thread. A few rounds, because a
    leftover may fork while it is being killed.
    """
    seen: set[int] = set()
    for round_ in range(_REAP_ROUNDS):
        found = {pid: group for pid, group in _left_behind(pgid, marker, since - _START_SLACK).items()
                 if pid not in seen}
        if round_ == 0:
            kill_pgid(pgid)  # also what the scan could not see
        if not found:
            break
        for pid, group in found.items():
            kill_pgid(group)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        seen.update(found)
    return len(seen)


async def run_process(argv: list[str], *, limit: float, env: dict[str, str] | None = None, cwd: str | None = None,
                      output_limit: int = OUTPUT_LIMIT) -> Finished:
    """Run `argv` (no shell, stdin /dev/null) for at most `limit` seconds, then clean up after it.

    Raises OSError (FileNotFoundError, PermissionError, ...) when it cannot be
    started; a run past `limit` is killed and returned with `timed_out`.
    """
    loop = asyncio.get_running_loop()
    marker = secrets.token_hex(16)
    started = time.time()
    transport, pipes = await loop.subprocess_exec(
        lambda: _Pipes(output_limit), *argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, cwd=cwd, env={**os.environ, **(env or {}), RUN_MARKER: marker},
        start_new_session=True)
    pid = transport.get_pid()
    deadline = loop.time() + limit
    timed_out = False
    try:
        done, _ = await asyncio.wait([pipes.exited], timeout=limit)
        if done:
            grace = min(OUTPUT_GRACE, max(0.0, deadline - loop.time()))
            await asyncio.wait([pipes.pipes_closed], timeout=grace)
        else:
            timed_out = True
            kill_pgid(pid)
            await asyncio.wait([pipes.exited], timeout=_REAP_TIMEOUT)
        leftovers = await asyncio.to_thread(reap_leftovers, pid, marker, started)
    except BaseException:
        # Cancelled (the runner's timeout, a shutdown): clean up now, without awaiting anything.
        reap_leftovers(pid, marker, started)
        transport.close()
        raise
    transport.close()
    # The pipes' descriptors are released a loop turn or two after close(): be done with them on return.
    await asyncio.wait([pipes.pipes_closed], timeout=_REAP_TIMEOUT)
    return Finished(pid, transport.get_returncode(), pipes.stdout, pipes.stderr, timed_out, leftovers)


async def run_tool(argv: list[str], *, limit: float, env: dict[str, str] | None = None,
                   cwd: str | None = None) -> ProcResult:
    """Run `argv` (no shell) with extra `env` for at most `limit` seconds; ToolError if missing or too slow."""
    program = argv[0]
    try:
        run = await run_process(argv, limit=limit, env=env, cwd=cwd)
    except FileNotFoundError:
        raise ToolError(f"{program} not found (install it or set `bin:` to its path)") from None
    except PermissionError:
        raise ToolError(f"{program} is not executable (permission denied)") from None
    except OSError as exc:
        raise ToolError(f"cannot run {program}: {exc.strerror or exc}") from None
    if run.timed_out or run.returncode is None:
        raise ToolError(f"{os.path.basename(program)} did not finish within {human(limit)}; killed", timed_out=True)
    return ProcResult(run.returncode, run.stdout.text(), run.stderr.text(),
                      run.stdout.truncated or run.stderr.truncated)
