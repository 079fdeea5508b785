"""A Kubernetes API server emulator on 127.0.0.1, for the real `kubernetes` client.

Serves what the `kubernetes` check reads, shaped as a real API server answers
(kube-apiserver 1.3x JSON): `DeploymentList`/`PodList`/... with `apiVersion`,
`kind`, `metadata.resourceVersion` and paging (`limit`, `continue`,
`remainingItemCount`); items without `kind`/`apiVersion`, as in real lists;
label selectors (`=`, `==`, `!=`, `in`, `notin`, `key`, `!key`); the kubelet
stats summary through `/api/v1/nodes/{node}/proxy/stats/summary`; bearer-token
authentication (401), RBAC denials with the API server's own `Status` and
message (403), unknown resources and nodes (404), and slow answers.

kmock's Kubernetes emulator was considered: its list answers carry no `kind` or
`apiVersion` and a placeholder `resourceVersion`, which is not what a real
server sends, so this module serves exact shapes instead. It runs its own
event loop in a thread, so both a check under test (whose client blocks in
executor threads) and an agent subprocess can reach it.

The object builders (`deployment()`, `pod()`, ...) make objects the way the
controllers leave them (status, conditions, owner references, timestamps).
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import ssl
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web

#: plural -> (group, version, kind, namespaced)
RESOURCES: dict[str, tuple[str, str, str, bool]] = {
    "deployments": ("apps", "v1", "Deployment", True),
    "statefulsets": ("apps", "v1", "StatefulSet", True),
    "daemonsets": ("apps", "v1", "DaemonSet", True),
    "pods": ("", "v1", "Pod", True),
    "jobs": ("batch", "v1", "Job", True),
    "cronjobs": ("batch", "v1", "CronJob", True),
    "persistentvolumeclaims": ("", "v1", "PersistentVolumeClaim", True),
    "nodes": ("", "v1", "Node", False),
}
SERVICE_ACCOUNT = "system:serviceaccount:monitoring:sre-agent"
_PATH = re.compile(r"^/(?:api/v1|apis/(?P<group>[a-z0-9.-]+)/(?P<version>v[0-9a-z]+))"
                   r"(?:/namespaces/(?P<ns>[a-z0-9-]+))?/(?P<plural>[a-z]+)$")
_PROXY = re.compile(r"^/api/v1/nodes/(?P<node>[^/]+)/proxy/stats/summary$")


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _status(code: int, reason: str, message: str, details: dict[str, Any] | None = None) -> web.Response:
    body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
            "reason": reason, "details": details if details is not None else {}, "code": code}
    return web.json_response(body, status=code)


def _requirement_matches(req: str, labels: dict[str, str]) -> bool:
    req = req.strip()
    m = re.fullmatch(r"(\S+)\s+(in|notin)\s*\((.*)\)", req)
    if m:
        values = {v.strip() for v in m.group(3).split(",")}
        present = m.group(1) in labels and labels[m.group(1)] in values
        return present if m.group(2) == "in" else not present
    m = re.fullmatch(r"(\S+?)\s*(==|=|!=)\s*(\S*)", req)
    if m:
        equal = labels.get(m.group(1)) == m.group(3)
        return equal if m.group(2) != "!=" else not equal
    if req.startswith("!"):
        return req[1:].strip() not in labels
    return req in labels


def selector_matches(selector: str, labels: dict[str, str]) -> bool:
    parts, depth, current = [], 0, ""
    for ch in selector:
        depth += (ch == "(") - (ch == ")")
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    parts.append(current)
    return all(_requirement_matches(p, labels) for p in parts if p.strip())


@dataclass
class KubeApiServer:
    """Start with `with KubeApiServer() as api:`; put objects in `api.objects[plural]`."""

    token: str = field(default_factory=lambda: "sa-token-" + uuid.uuid4().hex)
    tls: ssl.SSLContext | None = None
    objects: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: {p: [] for p in RESOURCES})
    #: node -> kubelet stats summary
    node_stats: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: (resource, namespace or None for cluster scope) the ServiceAccount may not list; ("nodes/proxy", node)
    forbidden: set[tuple[str, str | None]] = field(default_factory=set)
    #: resources this server does not serve (404)
    unserved: set[str] = field(default_factory=set)
    #: path prefix -> seconds to wait before answering
    delays: dict[str, float] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)
    resource_version: int = 184467
    #: a broken server whose lists never end: every page, however far, has a `continue`
    endless_pages: bool = False

    def __post_init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._stopping: asyncio.Event | None = None
        self._runner: web.AppRunner | None = None
        self.port = 0

    # -- lifecycle -----------------------------------------------------------------------------
    def __enter__(self) -> KubeApiServer:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    async def _start(self) -> None:
        self._stopping = asyncio.Event()
        app = web.Application()
        app.router.add_get("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, shutdown_timeout=1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self.tls)
        await site.start()
        self.port = int(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]

    async def _stop(self) -> None:
        assert self._stopping is not None and self._runner is not None
        self._stopping.set()
        await self._runner.cleanup()

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def kubeconfig(self, path: Path, context: str = "prod", token: str | None = None,
                   ca_file: Path | None = None) -> Path:
        """A kubeconfig file for this server: cluster `emulator`, user `sre-agent`, the given context."""
        cluster: dict[str, Any] = {"server": self.url}
        if ca_file is not None:
            cluster["certificate-authority"] = str(ca_file)
        doc = {
            "apiVersion": "v1", "kind": "Config", "preferences": {},
            "clusters": [{"name": "emulator", "cluster": cluster}],
            "users": [{"name": "sre-agent", "user": {"token": token if token is not None else self.token}},
                      {"name": "someone-else", "user": {"token": "not-the-agents-token"}}],
            # The current context is another user's: only an explicit `context:` reaches the agent's user.
            "contexts": [{"name": context, "context": {"cluster": "emulator", "user": "sre-agent"}},
                         {"name": "other", "context": {"cluster": "emulator", "user": "someone-else"}}],
            "current-context": "other",
        }
        path.write_text(json.dumps(doc))
        return path

    def add(self, plural: str, *objs: dict[str, Any]) -> None:
        self.objects[plural].extend(objs)

    # -- serving -------------------------------------------------------------------------------
    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(request.path_qs)
        for prefix, seconds in self.delays.items():
            if request.path.startswith(prefix):
                assert self._stopping is not None
                try:
                    await asyncio.wait_for(self._stopping.wait(), timeout=seconds)
                except TimeoutError:
                    pass
        if request.headers.get("Authorization", "").lower() != f"bearer {self.token}".lower():
            return _status(401, "Unauthorized", "Unauthorized")
        proxy = _PROXY.match(request.path)
        if proxy:
            return self._stats(proxy.group("node"))
        m = _PATH.match(request.path)
        if not m or m.group("plural") not in RESOURCES or m.group("plural") in self.unserved:
            return _status(404, "NotFound", "the server could not find the requested resource")
        plural, ns = m.group("plural"), m.group("ns")
        group, version, kind, namespaced = RESOURCES[plural]
        if (m.group("group") or "") != group or (m.group("version") or "v1") != version or (ns and not namespaced):
            return _status(404, "NotFound", "the server could not find the requested resource")
        if (plural, ns) in self.forbidden:
            scope = f'in the namespace "{ns}"' if ns else "at the cluster scope"
            name = f"{plural}.{group}" if group else plural
            details = {"kind": plural, **({"group": group} if group else {})}
            return _status(403, "Forbidden", f'{name} is forbidden: User "{SERVICE_ACCOUNT}" cannot list resource '
                                             f'"{plural}" in API group "{group}" {scope}', details)
        items = [o for o in self.objects[plural] if ns is None or o["metadata"].get("namespace") == ns]
        selector = request.query.get("labelSelector")
        if selector:
            items = [o for o in items if selector_matches(selector, o["metadata"].get("labels") or {})]
        start = 0
        if request.query.get("continue"):
            start = json.loads(base64.b64decode(request.query["continue"]))["start"]
        limit = int(request.query.get("limit", "0") or 0)
        page = items[start:start + limit] if limit else items[start:]
        meta: dict[str, Any] = {"resourceVersion": str(self.resource_version)}
        if limit and (start + limit < len(items) or self.endless_pages):
            token = {"v": "meta.k8s.io/v1", "rv": self.resource_version, "start": start + limit}
            meta["continue"] = base64.b64encode(json.dumps(token).encode()).decode()
            meta["remainingItemCount"] = max(len(items) - start - limit, 1)
        return web.json_response({"kind": f"{kind}List", "apiVersion": f"{group}/{version}" if group else version,
                                  "metadata": meta, "items": page})

    def _stats(self, node: str) -> web.Response:
        if ("nodes/proxy", node) in self.forbidden or ("nodes/proxy", None) in self.forbidden:
            return _status(403, "Forbidden", f'nodes "{node}" is forbidden: User "{SERVICE_ACCOUNT}" cannot get '
                                             'resource "nodes/proxy" in API group "" at the cluster scope',
                           {"name": node, "kind": "nodes"})
        if node not in self.node_stats:
            return _status(404, "NotFound", f'nodes "{node}" not found', {"name": node, "kind": "nodes"})
        return web.json_response(self.node_stats[node])


@contextmanager
def running(**kwargs: Any) -> Iterator[KubeApiServer]:
    with KubeApiServer(**kwargs) as api:
        yield api


# -- objects as the controllers leave them ---------------------------------------------------------

def _metadata(name: str, namespace: str | None, labels: dict[str, str] | None, created: float | None,
              generation: int | None = None, owner: tuple[str, str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "uid": str(uuid.uuid4()), "resourceVersion": str(100000 + len(name)),
                            "creationTimestamp": iso(created if created is not None else time.time() - 86400),
                            "labels": labels or {}}
    if namespace is not None:
        meta["namespace"] = namespace
    if generation is not None:
        meta["generation"] = generation
    if owner is not None:
        meta["ownerReferences"] = [{"apiVersion": "batch/v1" if owner[0] in ("Job", "CronJob") else "apps/v1",
                                    "kind": owner[0], "name": owner[1], "uid": str(uuid.uuid4()),
                                    "controller": True, "blockOwnerDeletion": True}]
    return meta


def _cond(kind: str, status: str, reason: str = "", message: str = "", ago: float = 3600) -> dict[str, Any]:
    c = {"type": kind, "status": status, "lastTransitionTime": iso(time.time() - ago)}
    if reason:
        c["reason"] = reason
    if message:
        c["message"] = message
    return c


def deployment(namespace: str, name: str, *, replicas: int = 3, available: int | None = None,
               updated: int | None = None, generation: int = 4, observed: int | None = None,
               progressing: tuple[str, str] = ("True", "NewReplicaSetAvailable"),
               labels: dict[str, str] | None = None) -> dict[str, Any]:
    available = replicas if available is None else available
    updated = replicas if updated is None else updated
    status: dict[str, Any] = {
        "observedGeneration": generation if observed is None else observed,
        "replicas": replicas, "updatedReplicas": updated, "readyReplicas": available,
        "conditions": [
            _cond("Available", "True" if available >= replicas else "False",
                  "MinimumReplicasAvailable" if available >= replicas else "MinimumReplicasUnavailable",
                  "Deployment has minimum availability." if available >= replicas
                  else "Deployment does not have minimum availability."),
            _cond("Progressing", progressing[0], progressing[1],
                  f'ReplicaSet "{name}-7d9f8b6c5d" has successfully progressed.' if progressing[0] == "True"
                  else f'ReplicaSet "{name}-7d9f8b6c5d" has timed out progressing.'),
        ],
    }
    if available:
        status["availableReplicas"] = available
    if available < replicas:
        status["unavailableReplicas"] = replicas - available
    return {
        "metadata": _metadata(name, namespace, labels or {"app": name}, None, generation)
        | {"annotations": {"deployment.kubernetes.io/revision": "3"}},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"containers": [{"name": name, "image": f"registry.example/{name}:1.4.2"}]}},
                 "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}},
                 "revisionHistoryLimit": 10, "progressDeadlineSeconds": 600},
        "status": status,
    }


def statefulset(namespace: str, name: str, *, replicas: int = 3, ready: int | None = None,
                updated: int | None = None, current_revision: str | None = None, update_revision: str | None = None,
                labels: dict[str, str] | None = None) -> dict[str, Any]:
    ready = replicas if ready is None else ready
    updated = replicas if updated is None else updated
    rev = f"{name}-5f7c9d8b4"
    return {
        "metadata": _metadata(name, namespace, labels or {"app": name}, None, 2),
        "spec": {"replicas": replicas, "serviceName": name, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [{"name": name, "image": "postgres:17"}]}},
                 "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}},
                 "podManagementPolicy": "OrderedReady"},
        "status": {"observedGeneration": 2, "replicas": replicas, "readyReplicas": ready, "availableReplicas": ready,
                   "currentReplicas": replicas - (replicas - updated), "updatedReplicas": updated,
                   "currentRevision": current_revision or rev, "updateRevision": update_revision or rev,
                   "collisionCount": 0},
    }


def daemonset(namespace: str, name: str, *, desired: int = 3, available: int | None = None,
              updated: int | None = None, labels: dict[str, str] | None = None) -> dict[str, Any]:
    available = desired if available is None else available
    updated = desired if updated is None else updated
    status = {"currentNumberScheduled": desired, "desiredNumberScheduled": desired, "numberMisscheduled": 0,
              "numberReady": available, "observedGeneration": 1, "updatedNumberScheduled": updated}
    if available:
        status["numberAvailable"] = available
    if available < desired:
        status["numberUnavailable"] = desired - available
    return {
        "metadata": _metadata(name, namespace, labels or {"app": name}, None, 1),
        "spec": {"selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [{"name": name, "image": "fluent-bit:3"}]}},
                 "updateStrategy": {"type": "RollingUpdate"}},
        "status": status,
    }


def pod(namespace: str, name: str, *, phase: str = "Running", ready: bool = True, node: str = "node-a",
        waiting: tuple[str, str] | None = None, restarts: int = 0, owner: tuple[str, str] | None = None,
        labels: dict[str, str] | None = None, claims: tuple[str, ...] = (), unschedulable: str | None = None,
        deleting: bool = False) -> dict[str, Any]:
    container = name.rsplit("-", 2)[0]
    state: dict[str, Any] = {"running": {"startedAt": iso(time.time() - 7200)}}
    last: dict[str, Any] = {}
    if waiting is not None:
        state = {"waiting": {"reason": waiting[0], "message": waiting[1]}}
        if waiting[0] == "CrashLoopBackOff":
            last = {"terminated": {"exitCode": 1, "reason": "Error", "startedAt": iso(time.time() - 90),
                                   "finishedAt": iso(time.time() - 80), "containerID": "containerd://3f2a"}}
    conditions = [_cond("PodScheduled", "False" if unschedulable else "True",
                        "Unschedulable" if unschedulable else "", unschedulable or "")]
    if phase != "Pending" or not unschedulable:
        conditions += [_cond("Initialized", "True"), _cond("ContainersReady", "True" if ready else "False",
                                                           "" if ready else "ContainersNotReady"),
                       _cond("Ready", "True" if ready else "False", "" if ready else "ContainersNotReady")]
    status: dict[str, Any] = {"phase": phase, "conditions": conditions, "qosClass": "Burstable"}
    if not unschedulable:
        status.update({"hostIP": "10.0.1.7", "podIP": "10.244.1.23", "startTime": iso(time.time() - 7200),
                       "containerStatuses": [{"name": container, "ready": ready, "restartCount": restarts,
                                              "image": f"registry.example/{container}:1.4.2",
                                              "imageID": "", "started": ready, "state": state, "lastState": last}]})
    meta = _metadata(name, namespace, labels or {"app": container}, None, owner=owner)
    if deleting:
        meta["deletionTimestamp"] = iso(time.time())
    spec: dict[str, Any] = {"containers": [{"name": container, "image": f"registry.example/{container}:1.4.2"}],
                            "restartPolicy": "Never" if owner and owner[0] == "Job" else "Always",
                            "volumes": [{"name": f"vol-{c}", "persistentVolumeClaim": {"claimName": c}} for c in claims]}
    if not unschedulable:
        spec["nodeName"] = node
    return {"metadata": meta, "spec": spec, "status": status}


def job(namespace: str, name: str, *, failed: bool = False, complete: bool = False,
        cronjob: str | None = None, created: float | None = None) -> dict[str, Any]:
    conditions = []
    status: dict[str, Any] = {"startTime": iso((created or time.time() - 600) + 1)}
    if failed:
        conditions.append(_cond("Failed", "True", "BackoffLimitExceeded", "Job has reached the specified backoff limit"))
        status["failed"] = 7
    if complete:
        conditions.append(_cond("Complete", "True"))
        status["succeeded"] = 1
        status["completionTime"] = iso((created or time.time() - 600) + 30)
    if conditions:
        status["conditions"] = conditions
    return {"metadata": _metadata(name, namespace, {"job-name": name}, created if created is not None else time.time() - 600,
                                  owner=("CronJob", cronjob) if cronjob else None),
            "spec": {"backoffLimit": 6, "completions": 1, "parallelism": 1,
                     "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "run", "image": "busybox"}]}}},
            "status": status}


def cronjob(namespace: str, name: str, *, last_success: float | None, created: float | None = None,
            suspend: bool = False, schedule: str = "0 3 * * *") -> dict[str, Any]:
    status: dict[str, Any] = {}
    if last_success is not None:
        status["lastSuccessfulTime"] = iso(last_success)
        status["lastScheduleTime"] = iso(last_success - 30)
    return {"metadata": _metadata(name, namespace, {"app": name}, created if created is not None else time.time() - 30 * 86400),
            "spec": {"schedule": schedule, "suspend": suspend, "concurrencyPolicy": "Forbid",
                     "successfulJobsHistoryLimit": 3, "failedJobsHistoryLimit": 1,
                     "jobTemplate": {"spec": {"template": {"spec": {"restartPolicy": "OnFailure",
                                                                    "containers": [{"name": name, "image": "busybox"}]}}}}},
            "status": status}


def node(name: str, *, ready: str = "True", pressure: tuple[str, ...] = ()) -> dict[str, Any]:
    conditions = [_cond(p, "True" if p in pressure else "False",
                        f"Kubelet{'Has' if p in pressure else 'HasNo'}{p.replace('Pressure', '')}Pressure")
                  for p in ("MemoryPressure", "DiskPressure", "PIDPressure")]
    conditions.append(_cond("Ready", ready, "KubeletReady" if ready == "True" else "NodeStatusUnknown",
                            "kubelet is posting ready status" if ready == "True" else "Kubelet stopped posting node status."))
    return {"metadata": _metadata(name, None, {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux"}, None),
            "spec": {"podCIDR": "10.244.1.0/24", "providerID": f"kind://docker/kind/{name}"},
            "status": {"conditions": conditions, "addresses": [{"type": "InternalIP", "address": "10.0.1.7"}],
                       "capacity": {"cpu": "4", "memory": "16369708Ki", "pods": "110"},
                       "nodeInfo": {"kubeletVersion": "v1.34.1", "containerRuntimeVersion": "containerd://2.1.4",
                                    "operatingSystem": "linux", "architecture": "amd64"}}}


def pvc(namespace: str, name: str, *, size: str = "10Gi", labels: dict[str, str] | None = None,
        phase: str = "Bound") -> dict[str, Any]:
    return {"metadata": _metadata(name, namespace, labels or {}, None),
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}},
                     "storageClassName": "standard", "volumeMode": "Filesystem", "volumeName": f"pvc-{uuid.uuid4()}"},
            "status": {"phase": phase, "accessModes": ["ReadWriteOnce"], "capacity": {"storage": size}}}


def stats_summary(node_name: str, volumes: list[tuple[str, str, str, float, float]]) -> dict[str, Any]:
    """A kubelet /stats/summary: volumes are (pod namespace, pod name, claim name, used bytes, capacity bytes)."""
    now = iso(time.time())
    by_pod: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for ns, pod_name, claim, used, capacity in volumes:
        by_pod.setdefault((ns, pod_name), []).append({
            "time": now, "availableBytes": int(capacity - used), "capacityBytes": int(capacity),
            "usedBytes": int(used), "inodesFree": 655000, "inodes": 655360, "inodesUsed": 360,
            "name": f"vol-{claim}", "pvcRef": {"name": claim, "namespace": ns}})
    pods = []
    for (ns, pod_name), vols in by_pod.items():
        pods.append({"podRef": {"name": pod_name, "namespace": ns, "uid": str(uuid.uuid4())},
                     "startTime": now, "containers": [],
                     "cpu": {"time": now, "usageNanoCores": 1250000, "usageCoreNanoSeconds": 912345678},
                     "memory": {"time": now, "workingSetBytes": 52428800},
                     "volume": vols + [{"time": now, "availableBytes": 4096, "capacityBytes": 8192, "usedBytes": 12,
                                        "name": "kube-api-access-x2v9k"}]})
    return {"node": {"nodeName": node_name, "startTime": now,
                     "cpu": {"time": now, "usageNanoCores": 350000000},
                     "memory": {"time": now, "workingSetBytes": 2147483648},
                     "fs": {"time": now, "availableBytes": 50000000000, "capacityBytes": 100000000000,
                            "usedBytes": 50000000000}},
            "pods": pods}
