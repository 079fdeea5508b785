"""The `kubernetes` check's conditions: API objects (as JSON) in, findings out; no I/O, no clock of its own.

Each function reads one kind of object the way kubernetes-mixin's alerts read
kube-state-metrics, and returns a `Finding` per object in trouble. Whether a
finding has held long enough (`for:`) is decided by the caller, which keeps the
first time each finding was seen; a finding's `progress` is a fingerprint of
the object's rollout progress, so a workload that is still moving (more
replicas updated than last time) starts its clock again, as the mixin's
`changes(...updated[10m]) == 0` does.

| condition | objects | finding | status | default for |
|---|---|---|---|---|
| replicas | Deployment, StatefulSet, DaemonSet | available < desired, not progressing | CRITICAL | 15m |
| rollout | same | Progressing=False, generation not observed, update not rolled out | WARNING | 15m |
| crashloop | Pod | a container waiting in CrashLoopBackOff | CRITICAL | 15m |
| not_ready | Pod (not Job-owned) | Pending, Unknown, or Running but not Ready | WARNING | 15m |
| waiting | Pod | a container waiting for another reason (ImagePullBackOff, ...) | WARNING | 1h |
| jobs | Job | Failed=True (unless a later run of the same CronJob completed) | CRITICAL | 0 |
| cronjobs | CronJob | last success older than cronjob_max_age | CRITICAL | 0 |
| nodes | Node | Ready not True / Memory, Disk or PID pressure | CRITICAL / WARNING | 15m / 10m |
| pvc | PersistentVolumeClaim | used bytes / capacity (kubelet stats) over the thresholds | per threshold | 0 |
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from agent.core import Status
from agent.durations import human

CONDITIONS = ("replicas", "rollout", "crashloop", "not_ready", "waiting", "jobs", "cronjobs", "nodes", "pvc")
DEFAULT_FOR: dict[str, float] = {"replicas": 900, "rollout": 900, "crashloop": 900, "not_ready": 900,
                                 "waiting": 3600, "jobs": 0, "cronjobs": 0, "nodes": 900, "pvc": 0}
NODE_PRESSURE_FOR = 600.0
#: how each condition reads in a summary
LABELS = {"replicas": "unavailable", "rollout": "rollout stuck", "crashloop": "crash looping",
          "not_ready": "not ready", "waiting": "containers waiting", "jobs": "jobs failed",
          "cronjobs": "cronjobs late", "nodes": "nodes", "pvc": "volumes filling up"}
_PRESSURES = ("MemoryPressure", "DiskPressure", "PIDPressure")
_MESSAGE_CHARS = 100


@dataclass(frozen=True)
class Finding:
    """One object in trouble for one condition (`sub`: the container or the pressure type)."""

    condition: str
    kind: str
    namespace: str | None
    name: str
    detail: str
    status: Status
    hold: float
    sub: str = ""
    progress: str = ""

    @property
    def key(self) -> str:
        return "|".join((self.condition, self.kind, self.namespace or "", self.name, self.sub))

    @property
    def obj(self) -> str:
        where = f"{self.namespace}/{self.name}" if self.namespace else self.name
        return f"{self.kind.lower()} {where}"


def _meta(obj: dict[str, Any]) -> tuple[str | None, str]:
    meta = obj.get("metadata") or {}
    return meta.get("namespace"), str(meta.get("name", "?"))


def _condition(obj: dict[str, Any], kind: str) -> dict[str, Any] | None:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == kind:
            return dict(cond)
    return None


def _short(text: Any) -> str:
    flat = " ".join(str(text or "").split())
    return flat if len(flat) <= _MESSAGE_CHARS else flat[:_MESSAGE_CHARS - 3] + "..."


def parse_time(value: Any) -> float | None:
    """An RFC 3339 timestamp of the API (`2026-12-01T10:00:00Z`) -> Unix seconds."""
    if not value:
        return None
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


# -- workloads -----------------------------------------------------------------------------

def _desired_available(kind: str, obj: dict[str, Any]) -> tuple[int, int, int]:
    """(desired, available, updated) replicas of a Deployment, StatefulSet or DaemonSet."""
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    if kind == "DaemonSet":
        return (int(status.get("desiredNumberScheduled") or 0), int(status.get("numberAvailable") or 0),
                int(status.get("updatedNumberScheduled") or 0))
    desired = int(spec["replicas"]) if spec.get("replicas") is not None else 1
    available = status.get("availableReplicas")
    if available is None and kind == "StatefulSet":
        available = status.get("readyReplicas")
    return desired, int(available or 0), int(status.get("updatedReplicas") or 0)


def workloads(kind: str, objects: Iterable[dict[str, Any]], conditions: set[str]) -> list[Finding]:
    out: list[Finding] = []
    for obj in objects:
        ns, name = _meta(obj)
        spec, status = obj.get("spec") or {}, obj.get("status") or {}
        if spec.get("paused"):
            continue
        desired, available, updated = _desired_available(kind, obj)
        observed = int(status.get("observedGeneration") or 0)
        if "replicas" in conditions and available < desired:
            out.append(Finding("replicas", kind, ns, name, f"{available}/{desired} available", Status.CRITICAL,
                               DEFAULT_FOR["replicas"], progress=f"{observed}:{updated}"))
        if "rollout" in conditions:
            stuck = _rollout_stuck(kind, obj, desired, updated, observed)
            if stuck is not None:
                out.append(Finding("rollout", kind, ns, name, stuck, Status.WARNING, DEFAULT_FOR["rollout"],
                                   progress=f"{observed}:{updated}"))
    return out


def _rollout_stuck(kind: str, obj: dict[str, Any], desired: int, updated: int, observed: int) -> str | None:
    status = obj.get("status") or {}
    progressing = _condition(obj, "Progressing")
    if kind == "Deployment" and progressing is not None and progressing.get("status") == "False":
        reason = progressing.get("reason") or "no progress"
        return f"Progressing=False ({reason})"
    generation = int((obj.get("metadata") or {}).get("generation") or 0)
    if generation and observed < generation:
        return f"generation {generation} not observed by its controller (at {observed})"
    if kind == "StatefulSet":
        update, current = status.get("updateRevision"), status.get("currentRevision")
        if update and current and update != current and updated < desired:
            return f"revision {update} rolled out to {updated}/{desired}"
    if kind == "DaemonSet":
        misscheduled = int(status.get("numberMisscheduled") or 0)
        if updated < desired:
            return f"update rolled out to {updated}/{desired} nodes"
        if misscheduled:
            return f"{misscheduled} pods on nodes they should not run on"
    return None


# -- pods ------------------------------------------------------------------------------------

def _owned_by_job(pod: dict[str, Any]) -> bool:
    return any(ref.get("kind") == "Job" for ref in (pod.get("metadata") or {}).get("ownerReferences") or [])


def _container_statuses(pod: dict[str, Any]) -> Iterable[dict[str, Any]]:
    status = pod.get("status") or {}
    yield from status.get("initContainerStatuses") or []
    yield from status.get("containerStatuses") or []


def pods(objects: Iterable[dict[str, Any]], conditions: set[str]) -> list[Finding]:
    out: list[Finding] = []
    for pod in objects:
        ns, name = _meta(pod)
        if (pod.get("metadata") or {}).get("deletionTimestamp"):
            continue
        crashlooping = False
        for cs in _container_statuses(pod):
            waiting = (cs.get("state") or {}).get("waiting")
            if not waiting:
                continue
            container, reason = str(cs.get("name", "?")), str(waiting.get("reason") or "Waiting")
            if reason == "CrashLoopBackOff":
                crashlooping = True
                if "crashloop" in conditions:
                    last = ((cs.get("lastState") or {}).get("terminated")) or {}
                    detail = f"{container}: CrashLoopBackOff, {int(cs.get('restartCount') or 0)} restarts"
                    if last:
                        detail += f", last exit {last.get('reason', '?')} ({last.get('exitCode', '?')})"
                    out.append(Finding("crashloop", "Pod", ns, name, detail, Status.CRITICAL,
                                       DEFAULT_FOR["crashloop"], sub=container))
            elif "waiting" in conditions:
                message = _short(waiting.get("message"))
                out.append(Finding("waiting", "Pod", ns, name, f"{container}: {reason}" + (f": {message}" if message else ""),
                                   Status.WARNING, DEFAULT_FOR["waiting"], sub=f"{container}:{reason}"))
        if "not_ready" in conditions and not crashlooping and not _owned_by_job(pod):
            not_ready = _not_ready(pod)
            if not_ready is not None:
                out.append(Finding("not_ready", "Pod", ns, name, not_ready, Status.WARNING, DEFAULT_FOR["not_ready"]))
    return out


def _not_ready(pod: dict[str, Any]) -> str | None:
    phase = (pod.get("status") or {}).get("phase") or "Unknown"
    if phase in ("Succeeded", "Failed"):
        return None
    if phase in ("Pending", "Unknown"):
        scheduled = _condition(pod, "PodScheduled")
        if scheduled is not None and scheduled.get("status") == "False":
            return f"{phase}: {scheduled.get('reason') or 'not scheduled'}: {_short(scheduled.get('message'))}".rstrip(": ")
        return phase
    ready = _condition(pod, "Ready")
    if ready is None or ready.get("status") != "True":
        reason = (ready or {}).get("reason") or "Ready condition not True"
        return f"{phase}, not ready ({reason})"
    return None


# -- jobs and cronjobs ---------------------------------------------------------------------------

def _cronjob_owner(job: dict[str, Any]) -> str | None:
    for ref in (job.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("kind") == "CronJob":
            return str(ref.get("name"))
    return None


def jobs(objects: Iterable[dict[str, Any]]) -> list[Finding]:
    """Failed Jobs; a failed run of a CronJob is forgiven once a later run of it completed."""
    items = list(objects)
    completed_at: dict[tuple[str | None, str], float] = {}
    for job in items:
        owner = _cronjob_owner(job)
        complete = _condition(job, "Complete")
        if owner and complete is not None and complete.get("status") == "True":
            created = parse_time((job.get("metadata") or {}).get("creationTimestamp")) or 0.0
            key = (_meta(job)[0], owner)
            completed_at[key] = max(completed_at.get(key, 0.0), created)
    out: list[Finding] = []
    for job in items:
        failed = _condition(job, "Failed")
        if failed is None or failed.get("status") != "True":
            continue
        ns, name = _meta(job)
        owner = _cronjob_owner(job)
        created = parse_time((job.get("metadata") or {}).get("creationTimestamp")) or 0.0
        if owner and completed_at.get((ns, owner), -1.0) > created:
            continue
        detail = f"Failed ({failed.get('reason') or 'no reason'})"
        out.append(Finding("jobs", "Job", ns, name, detail, Status.CRITICAL, DEFAULT_FOR["jobs"]))
    return out


def cronjobs(objects: Iterable[dict[str, Any]], max_age: float, now: float) -> list[Finding]:
    out: list[Finding] = []
    for cj in objects:
        if (cj.get("spec") or {}).get("suspend"):
            continue
        ns, name = _meta(cj)
        last = parse_time((cj.get("status") or {}).get("lastSuccessfulTime"))
        if last is None:
            created = parse_time((cj.get("metadata") or {}).get("creationTimestamp"))
            if created is not None and now - created > max_age:
                out.append(Finding("cronjobs", "CronJob", ns, name,
                                   f"never succeeded (created {human(now - created)} ago, max {human(max_age)})",
                                   Status.CRITICAL, DEFAULT_FOR["cronjobs"]))
        elif now - last > max_age:
            out.append(Finding("cronjobs", "CronJob", ns, name,
                               f"last success {human(now - last)} ago (max {human(max_age)})",
                               Status.CRITICAL, DEFAULT_FOR["cronjobs"]))
    return out


# -- nodes -------------------------------------------------------------------------------------

def nodes(objects: Iterable[dict[str, Any]]) -> list[Finding]:
    out: list[Finding] = []
    for node in objects:
        _, name = _meta(node)
        ready = _condition(node, "Ready")
        if ready is None or ready.get("status") != "True":
            state = (ready or {}).get("status", "missing")
            reason = (ready or {}).get("reason")
            out.append(Finding("nodes", "Node", None, name, f"NotReady (Ready={state}" + (f", {reason})" if reason else ")"),
                               Status.CRITICAL, DEFAULT_FOR["nodes"], sub="Ready"))
        for pressure in _PRESSURES:
            cond = _condition(node, pressure)
            if cond is not None and cond.get("status") == "True":
                out.append(Finding("nodes", "Node", None, name, pressure, Status.WARNING, NODE_PRESSURE_FOR,
                                   sub=pressure))
    return out


# -- persistent volume claims ---------------------------------------------------------------------

def pvc_nodes(claims: Iterable[dict[str, Any]], pod_list: Iterable[dict[str, Any]]) -> dict[str, set[tuple[str, str]]]:
    """Node -> the bound claims (namespace, name) its running pods mount: whose kubelet to ask."""
    wanted = {(_meta(c)[0] or "", _meta(c)[1]) for c in claims if (c.get("status") or {}).get("phase") == "Bound"}
    out: dict[str, set[tuple[str, str]]] = {}
    for pod in pod_list:
        node = (pod.get("spec") or {}).get("nodeName")
        if not node or (pod.get("status") or {}).get("phase") != "Running":
            continue
        ns = _meta(pod)[0] or ""
        for volume in (pod.get("spec") or {}).get("volumes") or []:
            claim = (volume.get("persistentVolumeClaim") or {}).get("claimName")
            if claim and (ns, claim) in wanted:
                out.setdefault(str(node), set()).add((ns, str(claim)))
    return out


@dataclass(frozen=True)
class VolumeUsage:
    namespace: str
    name: str
    used: float
    capacity: float

    @property
    def percent(self) -> float:
        return 100.0 * self.used / self.capacity if self.capacity > 0 else 0.0


def volume_usage(summary: dict[str, Any], wanted: set[tuple[str, str]]) -> list[VolumeUsage]:
    """The wanted claims' usage in a kubelet stats summary (`pods[].volume[].pvcRef`)."""
    out = []
    for pod in summary.get("pods") or []:
        for volume in pod.get("volume") or []:
            ref = volume.get("pvcRef") or {}
            key = (str(ref.get("namespace", "")), str(ref.get("name", "")))
            if key in wanted and volume.get("capacityBytes"):
                out.append(VolumeUsage(key[0], key[1], float(volume.get("usedBytes") or 0),
                                       float(volume["capacityBytes"])))
    return out


def pvc_findings(usages: Iterable[VolumeUsage], evaluate: Callable[[float], Status],
                 size: Callable[[float], str]) -> list[Finding]:
    worst: dict[tuple[str, str], VolumeUsage] = {}
    for u in usages:
        key = (u.namespace, u.name)
        if key not in worst or u.percent > worst[key].percent:
            worst[key] = u
    out = []
    for (ns, name), u in sorted(worst.items()):
        status = evaluate(u.percent)
        if status != Status.OK:
            out.append(Finding("pvc", "PersistentVolumeClaim", ns, name,
                               f"{u.percent:.1f}% used ({size(u.used)} of {size(u.capacity)})", status,
                               DEFAULT_FOR["pvc"]))
    return out
