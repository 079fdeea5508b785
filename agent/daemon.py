"""The long-running agent: config -> checks -> scheduler -> results fan-out.

Owns the lifecycle: start (fail fast on bad config), reload on SIGHUP or
`POST /-/reload` (a bad reload keeps the running config), and a clean stop on
SIGTERM/SIGINT: in-flight checks cancelled, state flushed, exit 0.
Components (alerting, ...) plug in through a small protocol: `start`,
`stop`, `reconfigure(config)`, `on_result(result)` and optional `add_routes`.

State: SQLite in `agent.state_dir` (one agent per directory, enforced by a
lock file), or a PostgreSQL `agent.state` shared by replicas. Then there is no
lock and nothing is written to the state directory: each replica heartbeats,
and `_rebalance` (every quarter lease) schedules the checks its place in the
cluster gives it (`agent.cluster`): it releases what moved away (alert state
handed over in the same transaction), claims what came to it and loads that
state, and runs the extra locations of checks with `locations:`, whose
per-location results go to the store for the owner to combine.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import fcntl
import gc
import logging
import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol

from aiohttp import web

from agent import __version__
from agent.check import CheckConfig
from agent.cluster import Cluster, HeartbeatThread, combine, default_name
from agent.config import ConfigBase, ConfigError, load_config
from agent.context import CheckContext
from agent.core import CheckResult, gc_paused
from agent.eventloop import loop_name
from agent.metrics import PRERENDER_SECONDS, Metrics, set_created_series
from agent.registry import get_type, sections
from agent.runner import build_checks, close_shared
from agent.scheduler import Scheduler
from agent.secrets import redact
from agent.store import AlertChanges, LocationResult, Store, StoreSchemaError
from agent.store import for_state as store_for_state
from agent.web import (
    KEEPALIVE_TIMEOUT,
    AcceptErrorReporter,
    ConnectionGuard,
    GuardedSite,
    connection_cap,
    quiet_bad_requests,
    raise_open_files_limit,
)

log = logging.getLogger("sre_agent")
#: a replica re-claims the checks it holds every this many rebalances (and after a lost lease), so an
#: ownership it lost while cut off from the store is found out
VERIFY_EVERY = 8


class Component(Protocol):
    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    async def reconfigure(self, config: ConfigBase) -> None: ...
    def on_result(self, result: CheckResult) -> None: ...


def _malloc_trim() -> Any:
    """glibc's malloc_trim, or None elsewhere (musl, macOS)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc.malloc_trim
    except (OSError, AttributeError):
        return None


_MALLOC_TRIM = _malloc_trim()


def release_freed_memory() -> None:
    """Give the heap glibc keeps after frees back to the system (a no-op without glibc)."""
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


class StateDirLock:
    """One agent per state directory: two would drain the same outbox and could page twice.

    An advisory `flock` on `<state_dir>/agent.lock`; the kernel drops it if the
    process dies, so a `kill -9` never leaves a stale lock. `sre-agent check`
    only reads the store and does not take it.
    """

    def __init__(self, state_dir: Path) -> None:
        self.path = Path(state_dir) / "agent.lock"
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        with contextlib.suppress(PermissionError):
            os.fchmod(fd, 0o600)  # also a lock file left 0644 by an older release
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise OSError(f"state directory {self.path.parent} is in use by another sre-agent (pid {holder}); "
                          "give each agent its own agent.state_dir") from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def history_retention(config: ConfigBase) -> dict[str, float]:
    """Checks whose history must outlive the default retention (SLOs over probes, status page uptime)."""
    out: dict[str, float] = {}
    needs: list[dict[str, float]] = []
    for cfg in config.all_checks():
        need = getattr(cfg, "history_needs", None)
        if callable(need):
            needs.append(need())
    for section in sections().values():
        if section.history_needs is not None:
            needs.append(section.history_needs(config))
    for need_map in needs:
        for check, seconds in need_map.items():
            out[check] = max(out.get(check, 0.0), seconds)
    return out


class Agent:
    def __init__(self, config_path: str | Path | None, registry: Any = None, *, config: ConfigBase | None = None) -> None:
        """`config`: the file at `config_path` already loaded (by the CLI); start uses it instead of loading again."""
        self.config_path = config_path
        self._preloaded = config
        self.config: ConfigBase | None = None
        self.metrics = Metrics(registry)
        self.store: Store | None = None
        self.scheduler: Scheduler | None = None
        self.context = CheckContext()
        self.components: list[Any] = []
        self.ready = False
        self.port: int | None = None
        self._stop = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._reload_lock = asyncio.Lock()
        self._lock: StateDirLock | None = None
        self._open_files = 1024
        self._loop_handler: tuple[asyncio.AbstractEventLoop, Any] | None = None
        self.cluster: Cluster | None = None
        #: replicas: checks whose alert state this replica owns (a subset of those it schedules)
        self.owned: set[str] = set()
        self._cluster_task: asyncio.Task[None] | None = None
        self._prerender_task: asyncio.Task[None] | None = None
        self._heartbeats: HeartbeatThread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._rebalance_lock = asyncio.Lock()
        self._rebalances = 0
        self._location_results: dict[str, LocationResult] = {}
        self._combined: dict[str, CheckResult] = {}

    @property
    def sharded(self) -> bool:
        return self.store is not None and self.store.shared

    # -- startup -----------------------------------------------------------------
    async def start(self) -> None:
        with gc_paused():  # freezes what start-up made at its end
            await self._start()

    async def _start(self) -> None:
        # raises ConfigError: nothing started
        self.config, self._preloaded = self._preloaded or load_config(self.config_path), None
        self._open_files = raise_open_files_limit()
        self.metrics.config_loaded(True, time.time())
        cfg = self.config.agent
        set_created_series(cfg.created_series)
        log.info("event loop: %s", loop_name(asyncio.get_running_loop()))
        asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(max_workers=32, thread_name_prefix="sre-agent-check"))
        if cfg.state is None:
            self._lock = StateDirLock(cfg.state_dir)
            self._lock.acquire()  # raises OSError: another agent owns this state directory
        try:
            self.store = self._open_state()
        except ValueError as exc:
            raise OSError(str(exc)) from None
        self.metrics.store_size.set_function(self.store.size_bytes)
        lease = cfg.replica.lease.total_seconds()
        shard = (cfg.shard.index, cfg.shard.count) if cfg.shard is not None else None
        self.cluster = Cluster(self.store, cfg.replica.name or default_name(), lease, cfg.location, shard=shard)
        self.store.member = self.cluster.name
        self.store.claim_lease = 2 * lease
        self.store.buffer_limit = cfg.state_buffer
        self.store.on_error = lambda exc: self.metrics.store_errors.inc()
        self.store.on_drop = lambda n: self.metrics.buffer_dropped.labels("result").inc(n)
        await self.store.open()
        for name, seconds in history_retention(self.config).items():
            self.store.set_retention(name, seconds)
        self.context = CheckContext(config=self.config, store=self.store)
        self.components = self._build_components()
        for component in self.components:
            if self.sharded and hasattr(component, "shard"):
                component.shard(self.cluster.name)
            await component.start()
        self.scheduler = Scheduler(self._publish, cfg.max_concurrency, on_lag=self.metrics.schedule_lag.observe,
                                   on_skip=lambda name: self.metrics.skipped.labels(name).inc())
        self.metrics.checks_configured.set(sum(1 for c in self.config.all_checks() if c.enabled))
        # The listener first: /metrics answers (the agent's own series) while the checks are scheduled,
        # and /readyz says 503 until they all are.
        await self._serve()
        if self.sharded:
            await self.cluster.beat()
            # heartbeats from now on, before anything slow: a gap longer than the lease would let the
            # others take this replica's checks while it starts
            self._loop = asyncio.get_running_loop()
            self._heartbeats = HeartbeatThread(self.cluster, self._heartbeat_store, self._renew_claims)
            self._heartbeats.start()
            await self._renew_claims()
            await self._rebalance()
        else:
            for n, check in enumerate(build_checks(self.config, self.context), 1):
                self.scheduler.add(check)
                if n % 1000 == 0:
                    await asyncio.sleep(0)  # requests are answered between batches of a large config
        self._cluster_metrics()
        self.scheduler.start()
        if self.sharded:
            self._cluster_task = asyncio.create_task(self._cluster_loop(), name="cluster")
        self._prerender_task = asyncio.create_task(self._prerender_loop(), name="prerender")
        # Config models, checks and metric children live as long as the process:
        # keep them out of every GC pass, and collect less often (full passes over
        # thousands of checks stalled the loop for 100-400 ms; see bench/README.md).
        gc.collect()
        gc.freeze()
        gc.set_threshold(50_000, 20, 100)
        # Loading a large config frees far more than it keeps (YAML nodes, raw dicts): hand it back.
        release_freed_memory()
        self.ready = True
        log.info("sre-agent %s running %d checks; metrics on http://%s:%s/metrics", __version__,
                 len(self.scheduler.checks), cfg.host_port[0], self.port)

    def _open_state(self) -> Store:
        """A store for agent.state (not opened yet): SQLite in the state directory, or the shared PostgreSQL."""
        assert self.config is not None
        cfg = self.config.agent
        return store_for_state(cfg.state.get_secret_value() if cfg.state is not None else None, cfg.state_dir,
                               cfg.history_retention.total_seconds(),
                               password=cfg.state_password.get_secret_value() if cfg.state_password else None,
                               raw_retention=cfg.history_raw_retention.total_seconds(), max_size=cfg.store_max_size)

    def _build_components(self) -> list[Any]:
        assert self.config is not None and self.store is not None
        components: list[Any] = []
        try:
            from agent.alerting.engine import build_component
        except ImportError:
            return components
        engine = build_component(self.config, self.store, self.metrics.registry, self.context)
        components.append(engine)
        from agent.digest.component import build_component as build_digest

        components.append(build_digest(self.config, self.store, engine, self.metrics.results.latest))
        return components

    async def _serve(self) -> None:
        """The listener, guarded so API connections can never take the descriptors checks need (see agent.web)."""
        from agent.api import build_app

        assert self.config is not None
        cfg = self.config.agent
        host, port = cfg.host_port
        loop = asyncio.get_running_loop()
        quiet_bad_requests()
        self._loop_handler = (loop, loop.get_exception_handler())
        loop.set_exception_handler(AcceptErrorReporter(self.metrics.api_accept_errors.inc,
                                                       fallback=loop.get_exception_handler()))
        guard = ConnectionGuard(connection_cap(cfg.api_max_connections, self._open_files),
                                on_reject=lambda reason: self.metrics.api_rejected.labels(reason).inc())
        self.metrics.api_connections.set_function(lambda: guard.open)
        self._runner = web.AppRunner(build_app(self, guard), access_log=None, handle_signals=False, shutdown_timeout=1.0,
                                     keepalive_timeout=KEEPALIVE_TIMEOUT)
        await self._runner.setup()
        site = GuardedSite(self._runner, host, port, guard)
        await site.start()
        self.port = site.sockets[0].getsockname()[1] if site.sockets else port

    # -- replicas ------------------------------------------------------------------------
    def _heartbeat_store(self) -> Store:
        """The heartbeat thread's own connection to agent.state."""
        assert self.store is not None
        store = self._open_state()
        store.member, store.claim_lease = self.store.member, self.store.claim_lease
        return store

    async def _cluster_loop(self) -> None:
        assert self.cluster is not None
        try:
            while True:
                await asyncio.sleep(self.cluster.beat_every)
                try:
                    await self._rebalance()
                    await self._publish_locations()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log.error("cluster step failed (retried in %.1fs): %s", self.cluster.beat_every, redact(str(exc)))
                self._cluster_metrics()
        finally:
            self._cluster_metrics()

    async def _renew_claims(self, store: Store | None = None) -> None:
        """Extend this replica's outbox claims; the workers may send until shortly before they run out.

        Called on the heartbeat thread with its store (then the workers hear of it on the main loop)."""
        store = store or self.store
        assert store is not None
        started = time.monotonic()
        await store.outbox_renew()
        until = started + store.claim_lease * 0.75

        def tell() -> None:
            for component in self.components:
                if hasattr(component, "claims_renewed"):
                    component.claims_renewed(until)

        if store is self.store:
            tell()
        else:
            assert self._loop is not None
            self._loop.call_soon_threadsafe(tell)

    def _cluster_metrics(self) -> None:
        cluster = self.cluster
        self.metrics.cluster_members.set(len(cluster.members) if cluster is not None and self.sharded else 1)
        self.metrics.shard_checks.set(len(self.scheduler.checks) if self.scheduler is not None else 0)
        self.metrics.lease_age.set(cluster.lease_age if cluster is not None else 0.0)

    @property
    def has_lease(self) -> bool:
        return self.cluster is None or self.cluster.has_lease

    def _alerting(self) -> Any:
        return next((c for c in self.components if hasattr(c, "acquire")), None)

    async def _rebalance(self) -> None:
        """Schedule what this replica's place in the cluster gives it (see the module docstring)."""
        if self.cluster is None or self.scheduler is None or self.config is None or self.store is None:
            return
        async with self._rebalance_lock:
            if not self.cluster.settled:
                return  # lost the lease, or rejoining: keep what is running, take nothing new
            me = self.cluster.name
            enabled = {c.name: c for c in self.config.all_checks() if c.enabled}
            primary: set[str] = set()
            run: set[str] = set()
            for name, cfg in enabled.items():
                where = self.cluster.placement(name, cfg.locations or 1)
                if where and where[0] == me:
                    primary.add(name)
                if me in where:
                    run.add(name)
            engine = self._alerting()
            started = time.monotonic()
            self._rebalances += 1
            if self.owned and (self.cluster.rejoined or self._rebalances % VERIFY_EVERY == 0):
                # after a lost lease the others may have taken checks: hold only what the store says is ours
                self.cluster.rejoined = False
                still = await self.store.claim_checks(me, self.owned, list(self.cluster.members))
                taken = self.owned - still
                if taken:
                    for name in taken - run:
                        await self._unschedule(name)
                    for name in taken & run:
                        self.metrics.forget_verdict(name)
                    if engine is not None:
                        await engine.forget(taken)
                    self.owned -= taken
            lose = self.owned - primary
            if lose:
                for name in lose - run:
                    await self._unschedule(name)
                for name in lose & run:  # still one of its locations: the combined status is the new owner's
                    self.metrics.forget_verdict(name)
                if engine is not None:
                    await engine.release(lose)
                else:
                    await self.store.write_alert_changes(_release(me, lose))
                self.owned -= lose
            gain = primary - self.owned
            if gain:
                got = await self.store.claim_checks(me, gain, list(self.cluster.members))
                if got and engine is not None:
                    await engine.acquire(got)
                self.owned |= got
            want = self.owned | (run - primary)
            for name in list(self.scheduler.checks):
                if name not in want:
                    await self._unschedule(name)
            added = sorted(want - set(self.scheduler.checks))
            for name in added:
                self.scheduler.add(get_type(enabled[name].type)(enabled[name], self.context))
            self.metrics.shard_checks.set(len(self.scheduler.checks))
            if lose or gain:
                log.info("rebalanced in %.2fs: gave up %d checks, took %d (%d asked for), running %d", time.monotonic()
                         - started, len(lose), len(self.owned & gain), len(gain), len(self.scheduler.checks))

    async def _unschedule(self, name: str) -> None:
        assert self.scheduler is not None
        check = self.scheduler.checks.get(name)
        if check is not None:
            await self.scheduler.remove(name)
            self.metrics.forget(name, check.config.type)
        self._location_results.pop(name, None)
        self._combined.pop(name, None)

    async def _publish_locations(self) -> None:
        """Send this replica's results of quorum checks to the store; combine those this replica owns."""
        assert self.store is not None and self.config is not None
        mine, self._location_results = list(self._location_results.values()), {}
        try:
            await self.store.publish_location_results(mine)
        except Exception:
            for r in mine:  # kept for the next round unless a newer one came
                self._location_results.setdefault(r.check, r)
            raise

    def _publish(self, result: CheckResult) -> None:
        cfg = self._quorum_config(result.check)
        if cfg is not None:
            self._publish_location(result, cfg)
            return
        self._fan_out(result)

    def _quorum_config(self, name: str) -> CheckConfig | None:
        if not self.sharded or self.scheduler is None:
            return None
        check = self.scheduler.checks.get(name)
        cfg = check.config if check is not None else None
        return cfg if cfg is not None and cfg.locations is not None else None

    def _publish_location(self, result: CheckResult, cfg: CheckConfig) -> None:
        """A quorum check's run here is one location's result; its owner turns them all into the check's."""
        assert self.cluster is not None
        own = LocationResult(result.check, self.cluster.name, self.cluster.location, result.status, result.timestamp,
                             result.summary)
        self._location_results[result.check] = own
        if result.check in self.owned:
            asyncio.get_running_loop().create_task(self._combine(result, cfg, own))

    async def _combine(self, result: CheckResult, cfg: CheckConfig, own: LocationResult) -> None:
        assert self.store is not None and self.cluster is not None
        try:
            await self._publish_locations()
            found = (await self.store.location_results([result.check])).get(result.check, [])
        except Exception as exc:
            log.warning("quorum check %s: the other locations' results are unreachable (%s); using this one only",
                        result.check, redact(str(exc)))
            found = [own]
        interval = cfg.interval.total_seconds() if cfg.interval is not None else 3600.0
        now = time.time()
        placed = set(self.cluster.placement(result.check, cfg.locations or 1))
        found = [r if r.replica != own.replica else own for r in found if r.replica in placed]
        if own.replica not in {r.replica for r in found}:
            found.append(own)
        timeout = cfg.timeout.total_seconds() if cfg.timeout is not None else 0.0
        verdict = combine(found, cfg.locations or 1, cfg.quorum_needed, now, stale_after=2 * interval + timeout)
        if result.check not in self.owned:
            return  # handed to another replica while the results were read: the verdict is its to give
        for r in found:
            self.metrics.location_status.labels(result.check, r.location or r.replica).set(float(r.status))
        combined = CheckResult(status=verdict.status, summary=verdict.summary, observations=dict(result.observations),
                               details={**result.details, "locations": {r.location or r.replica: r.status.name
                                                                        for r in found}},
                               check=result.check, type=result.type, labels=dict(result.labels),
                               timestamp=result.timestamp, duration_seconds=result.duration_seconds)
        self._fan_out(combined)

    def _fan_out(self, result: CheckResult) -> None:
        self.metrics.observe(result)
        if self.store is not None:
            self.store.add_result(result)
        for component in self.components:
            try:
                component.on_result(result)
            except Exception:
                log.exception("component %s failed on result of %s", type(component).__name__, result.check)

    # -- reload ------------------------------------------------------------------------
    async def reload(self) -> tuple[bool, list[str]]:
        """Load the config file again; apply it whole or not at all."""
        if not self.ready:  # the listener is up before every check is scheduled
            return False, ["the agent is still starting; reload once /readyz answers 200"]
        try:
            return await self._reload()
        finally:
            # A reload frees a whole config's worth of small objects; glibc keeps the freed heap,
            # so RSS rose ~11 KiB per reload (bench/reload_soak.py) with Python's own memory flat.
            await asyncio.get_running_loop().run_in_executor(None, release_freed_memory)

    async def _reload(self) -> tuple[bool, list[str]]:
        async with self._reload_lock:
            try:
                new = await asyncio.get_running_loop().run_in_executor(None, load_config, self.config_path)
            except ConfigError as exc:
                self.metrics.config_loaded(False, time.time())
                for issue in exc.issues:
                    log.error("reload rejected: %s", issue)
                return False, [str(i) for i in exc.issues]
            except Exception as exc:  # a loader bug: still a failed reload, never a dead task
                self.metrics.config_loaded(False, time.time())
                problem = redact(f"cannot load {self.config_path}: {type(exc).__name__}: {exc}")
                log.error("reload rejected: %s", problem, exc_info=log.isEnabledFor(logging.DEBUG))
                return False, [problem]
            assert self.scheduler is not None and self.config is not None and self.store is not None
            fixed = ("listen", "state_dir", "state", "state_password", "replica", "shard", "location")
            running = {k: getattr(self.config.agent, k) for k in fixed}
            if any(getattr(new.agent, k) != v for k, v in running.items()):
                log.warning("changes of agent.%s need a restart; keeping the running values", ", agent.".join(
                    k for k, v in running.items() if getattr(new.agent, k) != v))
                new = new.model_copy(update={"agent": new.agent.model_copy(update=running)})
            old_checks = {c.name: c for c in self.config.all_checks()}
            new_checks = {c.name: c for c in new.all_checks() if c.enabled}
            self.config = new
            set_created_series(new.agent.created_series)
            self.context.config = new
            for name, cfg in old_checks.items():
                if name not in new_checks or new_checks[name] != cfg:
                    if name in self.scheduler.checks:
                        await self.scheduler.remove(name)
                    if name not in new_checks:
                        self.metrics.forget(name, cfg.type)
            if not self.sharded:
                for name, cfg in new_checks.items():
                    if name not in self.scheduler.checks:
                        self.scheduler.add(get_type(cfg.type)(cfg, self.context))
            for check, seconds in history_retention(new).items():
                self.store.set_retention(check, seconds)
            for component in self.components:
                await component.reconfigure(new)
            if self.sharded:
                await self._rebalance()  # schedules the new and changed checks this replica owns
            self.metrics.checks_configured.set(len(new_checks))
            self.metrics.config_loaded(True, time.time())
            log.info("config reloaded: %d checks", len(self.scheduler.checks))
            return True, []

    # -- shutdown ------------------------------------------------------------------------
    def request_stop(self) -> None:
        self._stop.set()

    async def wait(self) -> None:
        await self._stop.wait()

    async def _prerender_loop(self) -> None:
        """Render new results' metric lines between scrapes, a batch per loop turn (see CheckSeries.refresh)."""
        while True:
            await asyncio.sleep(PRERENDER_SECONDS)
            try:
                more = True
                while more:  # a batch per loop turn: checks and requests run in between
                    more = self.metrics.results.refresh(budget=PRERENDER_BATCH) == PRERENDER_BATCH
                    await asyncio.sleep(0)
            except Exception:  # a scrape renders whatever is left; never let this task die silently
                log.exception("rendering metric lines ahead of scrapes failed")

    async def stop(self) -> None:
        self.ready = False
        if self._prerender_task is not None:
            self._prerender_task.cancel()
            await asyncio.gather(self._prerender_task, return_exceptions=True)
            self._prerender_task = None
        if self._cluster_task is not None:
            self._cluster_task.cancel()
            await asyncio.gather(self._cluster_task, return_exceptions=True)
            self._cluster_task = None
        if self._heartbeats is not None:
            await asyncio.to_thread(self._heartbeats.stop)
            self._heartbeats = None
            if self.cluster is not None:
                self.cluster.store = self.store
        if self.scheduler is not None:
            await self.scheduler.shutdown()
        for component in reversed(self.components):
            try:
                await asyncio.wait_for(component.stop(), timeout=2)
            except Exception:
                log.exception("stopping %s failed", type(component).__name__)
        if self.cluster is not None and self.store is not None and self.sharded:
            await asyncio.wait_for(self.cluster.leave(), timeout=3)  # the others take over now, not after the lease
        await close_shared(self.context)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._loop_handler is not None:
            loop, handler = self._loop_handler
            loop.set_exception_handler(handler)
            self._loop_handler = None
        if self.store is not None:
            await self.store.close()
            self.store = None
        if self._lock is not None:
            self._lock.release()
            self._lock = None
        log.info("sre-agent stopped")


#: checks rendered per loop turn by the pre-render task (about 10 ms of the loop each)
PRERENDER_BATCH = 500


def _release(owner: str, checks: set[str]) -> AlertChanges:
    """Give up checks without an alerting component (nothing else to write with the release)."""
    return AlertChanges(owner=owner, release=sorted(checks))


async def run_agent(config_path: str | Path | None, config: ConfigBase | None = None) -> int:
    """`sre-agent run`: returns the process exit code (`config`: the file already loaded, not loaded twice)."""
    agent = Agent(config_path, config=config)
    del config  # the agent holds it until a reload replaces it
    loop = asyncio.get_running_loop()
    try:
        await agent.start()
    except ConfigError:
        await agent.stop()
        raise
    except (OSError, StoreSchemaError) as exc:
        log.error("cannot start: %s", exc)
        await agent.stop()
        return 1
    loop.add_signal_handler(signal.SIGTERM, agent.request_stop)
    loop.add_signal_handler(signal.SIGINT, agent.request_stop)
    loop.add_signal_handler(signal.SIGHUP, lambda: loop.create_task(agent.reload()))
    try:
        await agent.wait()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(sig)
        await agent.stop()
    return 0


__all__ = ["Agent", "CheckConfig", "build_checks", "run_agent"]
