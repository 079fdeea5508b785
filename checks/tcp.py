"""TCP probe: can a client connect, and does the service say what it should?

The cheapest liveness signal for anything that is not HTTP (databases,
brokers, SMTP, SSH): a connect with a deadline, then optionally a line sent
and a substring awaited. Also home to what every network probe shares: the
`Port` type, latency findings and the wording of connect errors.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import socket
import time
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, WithJsonSchema

from agent.core import CheckResult, Status
from agent.durations import format_duration, human
from agent.secrets import clip, redact
from checks.base import Check, CheckConfig, DurationThresholds, named_levels

MAX_READ = 64 * 1024


def _port(v: int) -> int:
    if not 1 <= v <= 65535:
        raise ValueError(f"port must be 1-65535, got {v}")
    return v


Port = Annotated[int, AfterValidator(_port), WithJsonSchema({"type": "integer", "minimum": 1, "maximum": 65535})]


def check_host(v: str) -> str:
    """A host name or IP address, without scheme, port or path."""
    host = v.strip()
    if not host or "://" in host or "/" in host or " " in host:
        raise ValueError(f"host must be a host name or IP address (no scheme, port or path), got {v!r}")
    return host


Host = Annotated[str, AfterValidator(check_host)]


def seconds_text(seconds: float) -> str:
    """`300ms`, `2s`, `2.5s`: a timeout as a config would write it (never rounded down)."""
    if seconds < 1 or seconds.is_integer():
        return format_duration(timedelta(seconds=seconds))
    return f"{seconds:g}s"


def latency_finding(thresholds: DurationThresholds | None, seconds: float,
                    what: str = "latency") -> tuple[Status, str] | None:
    """`latency 612ms over warning threshold 500ms`, or None when under both."""
    if thresholds is None:
        return None
    level = thresholds.evaluate(seconds)
    if level is Status.OK:
        return None
    limit = thresholds.critical if level is Status.CRITICAL else thresholds.warning
    assert limit is not None
    return level, f"{what} {human(seconds)} over {level.name.lower()} threshold {format_duration(limit)}"


def connect_error(exc: OSError, host: str) -> str:
    """A short sentence for a failed connect: refused, unresolvable, unreachable..."""
    if isinstance(exc, ConnectionRefusedError) or exc.errno == errno.ECONNREFUSED:
        return "connection refused"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve host {host!r}"
    if "refused" in str(exc).lower():  # happy eyeballs folds several errors into one OSError
        return "connection refused"
    return redact(f"cannot connect: {exc.strerror or exc}")


async def close_writer(writer: asyncio.StreamWriter, grace: float = 1.0) -> None:
    """Close a stream without letting a peer that never acknowledges hold us up."""
    writer.close()
    with contextlib.suppress(Exception):
        async with asyncio.timeout(grace):
            await writer.wait_closed()
    if not writer.transport.is_closing():
        writer.transport.abort()


class TcpConfig(CheckConfig):
    type: Literal["tcp"]
    host: Host = Field(description="host name or IP address")
    port: Port = Field(description="TCP port, 1-65535")
    send: str | None = Field(default=None, description="text sent after connecting (YAML escapes such as \\r\\n apply)")
    expect: str | None = Field(default=None, description="substring that must arrive before the timeout")
    latency: DurationThresholds | None = Field(default=None, description="thresholds on the whole exchange")

    def observation_thresholds(self) -> dict[str, dict[str, float]]:
        return named_levels(latency_seconds=self.latency.levels() if self.latency else {})


class TcpCheck(Check):
    type = "tcp"
    runbooks = {"": "runbooks/tcp-port-down.md"}
    Config = TcpConfig
    timeout_status = Status.CRITICAL
    config: TcpConfig

    async def run(self) -> CheckResult:
        cfg = self.config
        target = f"{cfg.host}:{cfg.port}"
        obs: dict[str, float] = {}
        received = bytearray()
        phase = "connecting"
        started = time.perf_counter()
        writer: asyncio.StreamWriter | None = None
        try:
            async with asyncio.timeout(self.timeout):
                reader, writer = await asyncio.open_connection(cfg.host, cfg.port)
                obs["connect_seconds"] = time.perf_counter() - started
                if cfg.send:
                    phase = "sending"
                    writer.write(cfg.send.encode())
                    await writer.drain()
                if cfg.expect is not None:
                    phase = f"waiting for {cfg.expect!r}"
                    await self._read_until(reader, cfg.expect.encode(), received)
        except TimeoutError:
            return self._fail(f"timed out after {seconds_text(self.timeout)} {phase}", obs, received)
        except OSError as exc:
            return self._fail(connect_error(exc, cfg.host) if phase == "connecting"
                              else redact(f"connection failed while {phase}: {exc.strerror or exc}"), obs, received)
        finally:
            if writer is not None:
                await close_writer(writer)
        total = time.perf_counter() - started
        obs["latency_seconds"] = total
        details = self._details(received)
        if cfg.expect is not None and cfg.expect.encode() not in received:
            return self.result(Status.CRITICAL, redact(f"connection closed before {cfg.expect!r} was received "
                                                       f"(got {len(received)} bytes)"), obs, **details)
        head = f"connected to {target} in {human(obs['connect_seconds'])}"
        if cfg.expect is not None:
            head += redact(f", got {cfg.expect!r} after {human(total)}")
        finding = latency_finding(cfg.latency, total)
        if finding is None:
            return self.result(Status.OK, head, obs, **details)
        return self.result(finding[0], f"{head}: {finding[1]}", obs, **details)

    @staticmethod
    async def _read_until(reader: asyncio.StreamReader, wanted: bytes, into: bytearray) -> None:
        while wanted not in into and len(into) < MAX_READ:
            chunk = await reader.read(MAX_READ - len(into))
            if not chunk:
                return
            into += chunk

    def _details(self, received: bytearray) -> dict[str, Any]:
        details: dict[str, Any] = {"host": self.config.host, "port": self.config.port}
        if received:
            details["received"] = clip(received[:256 + 4096].decode("utf-8", errors="replace"), 256, "")
            details["bytes_received"] = len(received)
        return details

    def _fail(self, summary: str, obs: dict[str, float], received: bytearray) -> CheckResult:
        if received:
            summary += f" (got {len(received)} bytes)"
        return self.result(Status.CRITICAL, summary, obs, **self._details(received))
