"""Kubernetes workloads, read straight from the API server: kubernetes-mixin's conditions without Prometheus.

kubernetes-mixin's alerts (KubePodCrashLooping, KubeDeploymentReplicasMismatch,
KubeNodeNotReady, KubePersistentVolumeFillingUp, ...) need kube-state-metrics
and a Prometheus to evaluate them. This check reads the same conditions from
the API server with the official client (the `kubernetes` extra), with the same
`for:` semantics, plus a CronJob last-success check the mixin lacks. It creates
no pods and runs in the agent's process, so there are no leftover checker pods
and no duplicate runs (Kuberhealthy's two most common complaints).

One run lists what the enabled conditions need (workloads, pods, jobs,
cronjobs, nodes, PVCs; per namespace or cluster-wide; paged), in threads, under
the check's timeout; PVC usage comes from the kubelets' stats summaries through
the API server's node proxy, asking only the nodes that run a pod mounting a
watched claim. `checks._kube_conditions` turns objects into findings; here a
finding becomes a problem once it has held for its `for` duration. When each
finding was first seen is kept in the state store's meta table (key
`kubernetes.for.<check>`, JSON), so a restart does not reset the clocks.

The result is the worst problem (a read that failed makes it UNKNOWN unless a
CRITICAL problem was found anyway); the summary names the objects per condition
(the first few, then "and N more"); observations count objects per kind
(`pods_total`, `pods_failing`, ...).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from agent.core import CheckResult, Status
from agent.durations import Duration, format_duration, human
from checks import _kube_conditions as cond
from checks._kube_api import (
    CRONJOBS,
    DAEMONSETS,
    DEPLOYMENTS,
    JOBS,
    NODES,
    PODS,
    PVCS,
    STATEFULSETS,
    ApiFailure,
    KubeReader,
    Resource,
)
from checks._values import Percent
from checks.base import Check, CheckConfig, Model
from checks.file import format_size

log = logging.getLogger("sre_agent.checks.kubernetes")

Condition = Literal["replicas", "rollout", "crashloop", "not_ready", "waiting", "jobs", "cronjobs", "nodes", "pvc"]
META_PREFIX = "kubernetes.for."
#: objects named per condition in the summary before "and N more"
SUMMARY_OBJECTS = 3
#: kubelet stats summaries fetched at once
NODE_STATS_CONCURRENCY = 8
_NAMESPACE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_SEL_KEY = r"(?:[a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?"
_SEL_VALUE = r"(?:[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?"
_SEL_REQUIREMENT = re.compile(
    rf"^(?:!\s*{_SEL_KEY}|{_SEL_KEY}\s*(?:(?:==|=|!=)\s*{_SEL_VALUE}|\s(?:in|notin)\s*\(\s*{_SEL_VALUE}"
    rf"(?:\s*,\s*{_SEL_VALUE})*\s*\)|\s*[<>]\s*-?\d+)?)$")
_KINDS: dict[str, str] = {"Deployment": "deployments", "StatefulSet": "statefulsets", "DaemonSet": "daemonsets",
                          "Pod": "pods", "Job": "jobs", "CronJob": "cronjobs", "Node": "nodes",
                          "PersistentVolumeClaim": "pvcs"}


def split_selector(selector: str) -> list[str]:
    """Requirements of a label selector: commas outside `in (...)` lists separate them."""
    parts, depth, current = [], 0, ""
    for ch in selector:
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            parts.append(current.strip())
            current = ""
        else:
            current += ch
    parts.append(current.strip())
    return parts


class PvcThresholds(Model):
    """Used space of a PersistentVolumeClaim, in percent (kubelet stats: usedBytes / capacityBytes)."""

    warning: Percent | None = Field(85.0, description="WARNING at this used share, e.g. 85%")
    critical: Percent | None = Field(97.0, description="CRITICAL at this used share, e.g. 97%")

    @model_validator(mode="after")
    def _ordered(self) -> PvcThresholds:
        if self.warning is not None and self.critical is not None and self.warning > self.critical:
            raise ValueError(f"warning ({self.warning:g}%) must not be above critical ({self.critical:g}%)")
        return self

    def evaluate(self, percent: float) -> Status:
        if self.critical is not None and percent >= self.critical:
            return Status.CRITICAL
        if self.warning is not None and percent >= self.warning:
            return Status.WARNING
        return Status.OK


class KubernetesConfig(CheckConfig):
    """Workload health read from the API server (needs `pip install 'sre-agent[kubernetes]'`)."""

    type: Literal["kubernetes"]
    kubeconfig: str | None = Field(None, description="kubeconfig file (~ expanded); absent: the pod's in-cluster "
                                                     "ServiceAccount")
    context: str | None = Field(None, description="kubeconfig context; absent: its current-context")
    namespace: str | None = Field(None, description="one namespace to watch; absent (and no namespaces): all, "
                                                    "which needs cluster-wide RBAC")
    namespaces: list[str] | None = Field(None, min_length=1, description="several namespaces instead of namespace")
    selector: str | None = Field(None, description="label selector for workloads, pods, jobs, cronjobs and PVCs "
                                                   "(nodes are all checked), e.g. app.kubernetes.io/part-of=payments")
    for_: Duration | None = Field(None, alias="for", description="how long a condition must hold before it counts, "
                                                                 "for every condition; absent: each condition's "
                                                                 "default (kubernetes-mixin's: 15m, waiting 1h, "
                                                                 "node pressure 10m, jobs/cronjobs/pvc at once)")
    conditions: list[Condition] | None = Field(
        None, min_length=1,
        description="what to check; absent: all that apply: nodes only cluster-wide, cronjobs when "
                    "cronjob_max_age is set, pvc when pvc is set")
    cronjob_max_age: Duration | None = Field(None, description="cronjobs: CRITICAL when the last successful run is "
                                                               "older than this (or none ran since creation), e.g. 26h")
    pvc: PvcThresholds | None = Field(None, description="pvc: used-space thresholds, default {warning: 85%, "
                                                        "critical: 97%}; needs get on nodes/proxy")

    @field_validator("kubeconfig", "context")
    @classmethod
    def _not_blank(cls, v: str | None) -> str | None:
        if v is not None and not v.strip():
            raise ValueError("must not be empty; leave the key out instead")
        return v

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, v: str | None) -> str | None:
        if v is not None and (len(v) > 63 or not _NAMESPACE.match(v)):
            raise ValueError(f"invalid namespace {v!r}: lowercase letters, digits and '-', at most 63 characters")
        return v

    @field_validator("namespaces")
    @classmethod
    def _namespaces(cls, v: list[str] | None) -> list[str] | None:
        if v is None:
            return v
        for ns in v:
            cls._namespace(ns)
        dupes = sorted({ns for ns in v if v.count(ns) > 1})
        if dupes:
            raise ValueError(f"namespace {dupes[0]!r} is listed twice")
        return v

    @field_validator("selector")
    @classmethod
    def _selector(cls, v: str | None) -> str | None:
        if v is None:
            return v
        for requirement in split_selector(v):
            if not _SEL_REQUIREMENT.match(requirement):
                raise ValueError(f"invalid label selector {v!r}: cannot parse {requirement!r}; write requirements "
                                 "such as app=web, tier!=db, env in (prod,staging), !canary, separated by commas")
        return v

    @field_validator("conditions")
    @classmethod
    def _unique(cls, v: list[str] | None) -> list[str] | None:
        if v is not None:
            dupes = sorted({c for c in v if v.count(c) > 1})
            if dupes:
                raise ValueError(f"condition {dupes[0]!r} is listed twice")
        return v

    @field_validator("for_", "cronjob_max_age")
    @classmethod
    def _durations(cls, v: timedelta | None, info: Any) -> timedelta | None:
        if v is not None and v < timedelta(0):
            raise ValueError("must not be negative")
        if v is not None and info.field_name == "cronjob_max_age" and v <= timedelta(0):
            raise ValueError("must be positive, e.g. 26h")
        return v

    @model_validator(mode="after")
    def _coherent(self) -> KubernetesConfig:
        if self.namespace is not None and self.namespaces is not None:
            raise ValueError("set namespace or namespaces, not both")
        if self.context is not None and self.kubeconfig is None:
            raise ValueError("context selects a context of a kubeconfig file: set kubeconfig too (e.g. ~/.kube/config)")
        if self.conditions is not None:
            if "cronjobs" in self.conditions and self.cronjob_max_age is None:
                raise ValueError("conditions include cronjobs: set cronjob_max_age (e.g. 26h for a daily job)")
            if self.cronjob_max_age is not None and "cronjobs" not in self.conditions:
                raise ValueError("cronjob_max_age is set but conditions leave out cronjobs")
            if self.pvc is not None and "pvc" not in self.conditions:
                raise ValueError("pvc thresholds are set but conditions leave out pvc")
        return self

    @property
    def scope(self) -> list[str | None]:
        """The namespaces to list in; [None] is every namespace (one cluster-wide list)."""
        if self.namespaces is not None:
            return list(self.namespaces)
        return [self.namespace] if self.namespace is not None else [None]

    @property
    def effective_conditions(self) -> set[str]:
        if self.conditions is not None:
            return set(self.conditions)
        out = {"replicas", "rollout", "crashloop", "not_ready", "waiting", "jobs"}
        if self.scope == [None]:
            out.add("nodes")
        if self.cronjob_max_age is not None:
            out.add("cronjobs")
        if self.pvc is not None:
            out.add("pvc")
        return out

    @property
    def pvc_thresholds(self) -> PvcThresholds:
        return self.pvc if self.pvc is not None else PvcThresholds()

    def hold_for(self, finding: cond.Finding) -> float:
        return self.for_.total_seconds() if self.for_ is not None else finding.hold


@dataclass
class _Reads:
    """What one run read: objects per (resource, namespace), and what failed."""

    objects: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    failures: list[ApiFailure] = field(default_factory=list)

    def failed_kinds(self) -> set[str]:
        kinds = {f.kind for f in self.failures if f.kind}
        if "Pod" in kinds:  # the pods say which kubelets hold a claim's usage
            kinds.add("PersistentVolumeClaim")
        return kinds


class KubernetesCheck(Check):
    type = "kubernetes"
    runbooks = {"": "runbooks/kubernetes-workloads.md"}
    Config = KubernetesConfig
    requires = {"kubernetes": "kubernetes"}  # the official client, imported in KubeReader

    config: KubernetesConfig

    def __init__(self, config: CheckConfig, context: Any) -> None:
        super().__init__(config, context)
        self.clock: Callable[[], float] = time.time
        self._reader = KubeReader(self.config.kubeconfig, self.config.context)
        self._state: dict[str, dict[str, Any]] | None = None

    # -- for: state ---------------------------------------------------------------------------
    @property
    def _meta_key(self) -> str:
        return META_PREFIX + self.name

    async def _load_state(self) -> dict[str, dict[str, Any]]:
        if self._state is not None:
            return self._state
        state: dict[str, dict[str, Any]] = {}
        store = self.context.store
        if store is not None:
            try:
                raw = await store.get_meta(self._meta_key)
                doc = json.loads(raw) if raw else {}
                for key, entry in (doc.get("since") or {}).items():
                    if isinstance(entry, dict) and isinstance(entry.get("since"), int | float):
                        state[str(key)] = {"since": float(entry["since"]), "progress": str(entry.get("progress", ""))}
            except Exception as exc:  # a broken row must not break the check: the clocks start again
                log.warning("check %s: cannot read its for: state (%s); the clocks start now", self.name, exc)
        self._state = state
        return state

    async def _save_state(self, state: dict[str, dict[str, Any]]) -> None:
        changed = state != self._state
        self._state = state
        store = self.context.store
        if not changed or store is None:
            return
        try:
            await store.set_meta(self._meta_key, json.dumps({"version": 1, "since": state}, sort_keys=True))
        except Exception as exc:
            log.warning("check %s: cannot store its for: state: %s", self.name, exc)

    # -- reading -------------------------------------------------------------------------------
    def _resources(self, conditions: set[str]) -> list[Resource]:
        out: list[Resource] = []
        if conditions & {"replicas", "rollout"}:
            out += [DEPLOYMENTS, STATEFULSETS, DAEMONSETS]
        if conditions & {"crashloop", "not_ready", "waiting"}:
            out.append(PODS)
        if "jobs" in conditions:
            out.append(JOBS)
        if "cronjobs" in conditions:
            out.append(CRONJOBS)
        if "nodes" in conditions:
            out.append(NODES)
        if "pvc" in conditions:
            out.append(PVCS)
        return out

    async def _read(self, conditions: set[str], deadline: float) -> _Reads:
        loop = asyncio.get_running_loop()
        reads = _Reads()
        selector = self.config.selector
        lists: list[tuple[str, Resource, str | None, str | None]] = []
        for resource in self._resources(conditions):
            for ns in (self.config.scope if resource.namespaced else [None]):
                lists.append((resource.plural, resource, ns, selector if resource.namespaced else None))
        if "pvc" in conditions and (selector is not None or PODS not in self._resources(conditions)):
            # The pods that mount a claim need not carry the claim's labels.
            for ns in self.config.scope:
                lists.append(("pods-for-pvc", PODS, ns, None))

        async def one(slot: str, resource: Resource, ns: str | None, sel: str | None) -> None:
            try:
                items = await self.in_thread(self._reader.list, resource, ns, sel, deadline - loop.time())
            except ApiFailure as failure:
                reads.failures.append(failure)
                return
            reads.objects.setdefault(slot, []).extend(items)
            if slot == resource.plural:
                reads.counts[_KINDS[resource.kind]] = reads.counts.get(_KINDS[resource.kind], 0) + len(items)

        await _gather_named([(f"list {r.qualified}" + (f" in namespace {ns}" if ns else ""), one(s, r, ns, sel))
                             for s, r, ns, sel in lists], deadline)
        for failure in reads.failures:
            if failure.status == 401:
                await self.in_thread(self._reader.reset)
                break
        return reads

    async def _pvc_usage(self, reads: _Reads, deadline: float) -> list[cond.VolumeUsage]:
        loop = asyncio.get_running_loop()
        claims = reads.objects.get("persistentvolumeclaims", [])
        pod_list = reads.objects.get("pods-for-pvc", reads.objects.get("pods", []))
        by_node = cond.pvc_nodes(claims, pod_list)
        usages: list[cond.VolumeUsage] = []
        semaphore = asyncio.Semaphore(NODE_STATS_CONCURRENCY)

        async def one(node: str, wanted: set[tuple[str, str]]) -> None:
            async with semaphore:
                try:
                    summary = await self.in_thread(self._reader.node_stats, node, deadline - loop.time())
                except ApiFailure as failure:
                    reads.failures.append(failure)
                    return
            usages.extend(cond.volume_usage(summary, wanted))

        await _gather_named([(f"get nodes/proxy stats of node {node}", one(node, wanted))
                             for node, wanted in sorted(by_node.items())], deadline)
        return usages

    # -- the run -------------------------------------------------------------------------------
    async def run(self) -> CheckResult:
        conditions = self.config.effective_conditions
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        state = await self._load_state()
        try:
            # An exec credential plugin (aws eks get-token, gke-gcloud-auth-plugin) may hang: bound it too.
            apis = tuple(sorted({r.api for r in self._resources(conditions)}))
            await asyncio.wait_for(self.in_thread(self._reader.connect, apis), timeout=max(deadline - loop.time(), 0.01))
        except ApiFailure as failure:
            return self.result(Status.UNKNOWN, failure.summary)
        except TimeoutError:
            source = f"kubeconfig {self.config.kubeconfig}" if self.config.kubeconfig else "the in-cluster ServiceAccount"
            return self.result(Status.UNKNOWN, f"timed out after {human(self.timeout)} loading credentials from {source}")
        try:
            reads = await self._read(conditions, deadline)
            usages = await self._pvc_usage(reads, deadline) if "pvc" in conditions else []
        except _Deadline as exc:
            return self.result(Status.UNKNOWN, f"timed out after {human(self.timeout)} waiting for the API server "
                                               f"({self._reader.host}): {exc.pending} did not answer",
                               api_server=self._reader.host)
        now = self.clock()
        findings = self._findings(reads, usages, conditions, now)
        active, pending, new_state = self._hold(findings, state, reads.failed_kinds(), now)
        await self._save_state(new_state)
        return self._result(reads, usages, active, pending)

    def _findings(self, reads: _Reads, usages: list[cond.VolumeUsage], conditions: set[str],
                  now: float) -> list[cond.Finding]:
        o = reads.objects
        out: list[cond.Finding] = []
        for resource in (DEPLOYMENTS, STATEFULSETS, DAEMONSETS):
            out += cond.workloads(resource.kind, o.get(resource.plural, []), conditions)
        out += cond.pods(o.get("pods", []), conditions)
        if "jobs" in conditions:
            out += cond.jobs(o.get("jobs", []))
        if "cronjobs" in conditions and self.config.cronjob_max_age is not None:
            out += cond.cronjobs(o.get("cronjobs", []), self.config.cronjob_max_age.total_seconds(), now)
        if "nodes" in conditions:
            out += cond.nodes(o.get("nodes", []))
        if "pvc" in conditions:
            out += cond.pvc_findings(usages, self.config.pvc_thresholds.evaluate, format_size)
        return out

    def _hold(self, findings: list[cond.Finding], state: dict[str, dict[str, Any]], failed_kinds: set[str],
              now: float) -> tuple[list[tuple[cond.Finding, float]], list[tuple[cond.Finding, float]],
                                   dict[str, dict[str, Any]]]:
        """Split findings into problems (held for their `for`) and pending ones; the state to keep."""
        new_state: dict[str, dict[str, Any]] = {}
        active: list[tuple[cond.Finding, float]] = []
        pending: list[tuple[cond.Finding, float]] = []
        for f in findings:
            prev = state.get(f.key)
            since = prev["since"] if prev is not None and prev.get("progress", "") == f.progress else now
            since = min(since, now)
            new_state[f.key] = {"since": since, "progress": f.progress}
            held = now - since
            (active if held >= self.config.hold_for(f) else pending).append((f, held))
        # Objects of a kind that could not be read this time keep their clocks.
        for key, entry in state.items():
            if key not in new_state and key.split("|")[1] in failed_kinds:
                new_state[key] = entry
        return active, pending, new_state

    def _scope_text(self) -> str:
        if self.config.namespaces is not None:
            where = f"in namespaces {', '.join(self.config.namespaces)}"
        elif self.config.namespace is not None:
            where = f"in namespace {self.config.namespace}"
        else:
            where = "in all namespaces"
        return where + (f" matching {self.config.selector}" if self.config.selector else "")

    def _result(self, reads: _Reads, usages: list[cond.VolumeUsage], active: list[tuple[cond.Finding, float]],
                pending: list[tuple[cond.Finding, float]]) -> CheckResult:
        observations: dict[str, float] = {}
        failing: dict[str, set[str]] = {}
        for f, _ in active:
            failing.setdefault(_KINDS[f.kind], set()).add(f"{f.namespace}/{f.name}")
        unread = {_KINDS[k] for k in reads.failed_kinds() if k in _KINDS}
        for kind, count in sorted(reads.counts.items()):
            if kind in unread:
                continue
            observations[f"{kind}_total"] = float(count)
            observations[f"{kind}_failing"] = float(len(failing.get(kind, ())))
        if usages:
            observations["pvc_used_percent_max"] = round(max(u.percent for u in usages), 3)
        status = max((f.status for f, _ in active), default=Status.OK, key=_severity_rank)
        problems = _describe(active, self.config)
        errors = [f.summary for f in reads.failures]
        if errors and status != Status.CRITICAL:
            status = Status.UNKNOWN
            summary = "; ".join(errors[:2]) + (f" (and {len(errors) - 2} more errors)" if len(errors) > 2 else "")
            if problems:
                summary += "; also " + problems
        elif problems:
            summary = problems + ("; " + "; ".join(errors) if errors else "")
        else:
            counts = ", ".join(f"{n} {k}" for k, n in sorted(reads.counts.items()) if n)
            summary = f"healthy {self._scope_text()}: {counts or 'no objects found'}"
        if pending and not errors:
            first, held = sorted(pending, key=lambda p: -p[1])[0]
            summary += (f"; {len(pending)} pending (e.g. {cond.LABELS[first.condition]} {first.obj} for "
                        f"{human(held)} of {format_duration(timedelta(seconds=self.config.hold_for(first)))})")
        details: dict[str, Any] = {
            "api_server": self._reader.host,
            "scope": self._scope_text(),
            "conditions": sorted(self.config.effective_conditions),
            "problems": [_finding_detail(f, held, self.config) for f, held in active],
            "pending": [_finding_detail(f, held, self.config) for f, held in pending],
            "errors": errors,
        }
        return self.result(status, summary, observations, **details)

    async def close(self) -> None:
        await self.in_thread(self._reader.close)


class _Deadline(Exception):
    def __init__(self, pending: str) -> None:
        super().__init__(pending)
        self.pending = pending


async def _gather_named(calls: list[tuple[str, Awaitable[None]]], deadline: float) -> None:
    """Run the calls together until the deadline; past it, `_Deadline` names those still waiting.

    A task group, so that nothing outlives this call: on the deadline, or when the runner cancels the
    check, every call still running is cancelled and awaited (its thread ends on its own request timeout).
    """
    pending = {name for name, _ in calls}

    async def tracked(name: str, call: Awaitable[None]) -> None:
        await call
        pending.discard(name)

    try:
        # A little past the deadline: each request's own timeout (the time left) should fire first.
        async with asyncio.timeout_at(deadline + 0.05), asyncio.TaskGroup() as group:
            for name, call in calls:
                group.create_task(tracked(name, call))
    except TimeoutError:
        names = sorted(pending)
        raise _Deadline(", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")) from None
    except BaseExceptionGroup as failed:  # a bug in one call: report it as itself, not as a group
        raise failed.exceptions[0] from None


def _severity_rank(status: Status) -> int:
    return {Status.OK: 0, Status.WARNING: 1, Status.UNKNOWN: 2, Status.CRITICAL: 3}[status]


def _finding_detail(f: cond.Finding, held: float, config: KubernetesConfig) -> dict[str, Any]:
    return {"condition": f.condition, "kind": f.kind, "namespace": f.namespace, "name": f.name, "detail": f.detail,
            "status": f.status.name, "held_seconds": round(held, 3), "for_seconds": config.hold_for(f)}


def _describe(active: list[tuple[cond.Finding, float]], config: KubernetesConfig) -> str:
    """`crash looping: pod a/b (...), pod a/c (...) and 2 more; unavailable: ...`, worst conditions first."""
    groups: dict[str, list[tuple[cond.Finding, float]]] = {}
    for item in active:
        groups.setdefault(item[0].condition, []).append(item)
    order = sorted(groups, key=lambda c: (-max(_severity_rank(f.status) for f, _ in groups[c]),
                                          cond.CONDITIONS.index(c)))
    parts = []
    for name in order:
        items = sorted(groups[name], key=lambda i: (-_severity_rank(i[0].status), i[0].obj))
        shown = []
        for f, held in items[:SUMMARY_OBJECTS]:
            since = f" for {human(held)}" if config.hold_for(f) > 0 else ""
            shown.append(f"{f.obj} ({f.detail}{since})")
        text = ", ".join(shown)
        if len(items) > SUMMARY_OBJECTS:
            text += f" and {len(items) - SUMMARY_OBJECTS} more"
        parts.append(f"{cond.LABELS[name]}: {text}")
    return "; ".join(parts)
