"""The kubernetes check: the real `kubernetes` client against the API emulator of tests/kubeapi.py.

Every test writes a kubeconfig for the emulator on 127.0.0.1 (or, for the
in-cluster path, a ServiceAccount token and CA file and the service
environment variables) and runs the check as the agent does. The emulator
answers with the shapes of a real API server: `DeploymentList` with
`apiVersion`, `metadata.resourceVersion` and paging, `Status` objects for
401/403/404, kubelet stats summaries through the node proxy.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from agent.config import ConfigError, load_config
from agent.context import CheckContext
from agent.core import Status
from agent.runner import execute
from agent.store import for_state_dir
from checks import _kube_api
from checks.kubernetes import META_PREFIX, KubernetesCheck, KubernetesConfig
from tests import kubeapi as k
from tests.checks.certs import make_ca, make_leaf, server_context

ROOT = Path(__file__).resolve().parents[2]
GIB = 1024**3


@pytest.fixture
def api():
    with k.KubeApiServer() as server:
        yield server


def make_check(api: k.KubeApiServer, tmp_path: Path, context: CheckContext | None = None,
               **cfg: Any) -> KubernetesCheck:
    # A generous timeout: the first run in a process imports the client (seconds on a loaded machine).
    doc = {"name": "payments-workloads", "type": "kubernetes", "timeout": "30s",
           "kubeconfig": str(api.kubeconfig(tmp_path / "kubeconfig")), "context": "prod", **cfg}
    return KubernetesCheck(KubernetesConfig.model_validate(doc), context or CheckContext())


async def warm_up(api: k.KubeApiServer, tmp_path: Path) -> None:
    """Use the client once in this process: its first use imports the API modules (seconds on a busy machine),
    which a test with a short timeout must not pay."""
    check = make_check(api, tmp_path, namespace="warm-up")
    assert (await execute(check)).status == Status.OK
    await check.close()


async def run_at(check: KubernetesCheck, at: float):
    check.clock = lambda: at
    return await execute(check)


def crashlooping(ns: str, name: str, restarts: int = 12) -> dict[str, Any]:
    return k.pod(ns, name, ready=False, restarts=restarts,
                 waiting=("CrashLoopBackOff", "back-off 5m0s restarting failed container=api pod=" + name))


# -- reading and reporting ----------------------------------------------------------------------

async def test_healthy_namespace_reads_real_lists_and_ignores_other_namespaces(api, tmp_path):
    api.add("deployments", k.deployment("payments", "api"), k.deployment("payments", "web"),
            k.deployment("shop", "broken", available=0))
    api.add("statefulsets", k.statefulset("payments", "db"))
    api.add("daemonsets", k.daemonset("payments", "agent"))
    api.add("pods", k.pod("payments", "api-7d9f8b6c5d-x2v9k"), k.pod("payments", "web-6c4d9f7b8-q7w2e"),
            crashlooping("shop", "broken-5b6c7d8e9-aaaaa"))
    api.add("jobs", k.job("payments", "migrate-42", complete=True))
    check = make_check(api, tmp_path, namespace="payments")
    result = await execute(check)
    await check.close()

    assert result.status == Status.OK, result.summary
    assert result.summary.startswith("healthy in namespace payments: 1 daemonsets, 2 deployments, 1 jobs, 2 pods, "
                                     "1 statefulsets")
    assert result.observations["deployments_total"] == 2 and result.observations["deployments_failing"] == 0
    assert result.observations["pods_total"] == 2
    assert "nodes_total" not in result.observations  # nodes are cluster-scoped: not a default in a namespace
    paths = {r.split("?")[0] for r in api.requests}
    assert paths == {"/apis/apps/v1/namespaces/payments/deployments", "/apis/apps/v1/namespaces/payments/statefulsets",
                     "/apis/apps/v1/namespaces/payments/daemonsets", "/api/v1/namespaces/payments/pods",
                     "/apis/batch/v1/namespaces/payments/jobs"}
    assert api.token not in json.dumps(result.details) + result.summary


async def test_crashloop_counts_only_after_its_for_duration(api, tmp_path):
    api.add("pods", crashlooping("payments", "api-7d9f8b6c5d-x2v9k"))
    check = make_check(api, tmp_path, namespace="payments")
    t0 = time.time()

    first = await run_at(check, t0)
    assert first.status == Status.OK, first.summary
    assert "1 pending (e.g. crash looping pod payments/api-7d9f8b6c5d-x2v9k for 0ms of 15m)" in first.summary

    later = await run_at(check, t0 + 14 * 60)
    assert later.status == Status.OK

    held = await run_at(check, t0 + 15 * 60 + 5)
    await check.close()
    assert held.status == Status.CRITICAL
    assert held.summary == ("crash looping: pod payments/api-7d9f8b6c5d-x2v9k (api: CrashLoopBackOff, 12 restarts, "
                            "last exit Error (1) for 15m5s)")
    assert held.observations["pods_failing"] == 1
    assert held.details["problems"][0]["for_seconds"] == 900


async def test_for_state_survives_a_restart(api, tmp_path):
    """The first sighting is stored; a new process (new check, new context, reopened store) keeps the clock."""
    api.add("pods", crashlooping("payments", "api-7d9f8b6c5d-x2v9k"))
    t0 = time.time()
    store = for_state_dir(tmp_path / "state", 86400)
    await store.open()
    try:
        first = make_check(api, tmp_path, CheckContext(store=store), namespace="payments")
        assert (await run_at(first, t0)).status == Status.OK
        await first.close()
    finally:
        await store.close()
    stored = store_doc = None

    store = for_state_dir(tmp_path / "state", 86400)
    await store.open()
    try:
        stored = await store.get_meta(META_PREFIX + "payments-workloads")
        store_doc = json.loads(stored or "{}")
        again = make_check(api, tmp_path, CheckContext(store=store), namespace="payments")
        result = await run_at(again, t0 + 16 * 60)
        await again.close()
    finally:
        await store.close()
    assert list(store_doc["since"]) == ["crashloop|Pod|payments|api-7d9f8b6c5d-x2v9k|api"]
    assert result.status == Status.CRITICAL, result.summary
    assert "for 16m" in result.summary


async def test_a_resolved_condition_forgets_its_clock(api, tmp_path):
    api.add("pods", crashlooping("payments", "api-7d9f8b6c5d-x2v9k"))
    check = make_check(api, tmp_path, namespace="payments")
    t0 = time.time()
    await run_at(check, t0)
    api.objects["pods"] = [k.pod("payments", "api-7d9f8b6c5d-x2v9k")]
    assert (await run_at(check, t0 + 60)).status == Status.OK
    api.objects["pods"] = [crashlooping("payments", "api-7d9f8b6c5d-x2v9k")]
    result = await run_at(check, t0 + 16 * 60)
    await check.close()
    assert result.status == Status.OK, "the clock restarted when the pod recovered"
    assert "1 pending" in result.summary


async def test_a_rollout_that_progresses_restarts_the_replicas_clock(api, tmp_path):
    api.add("deployments", k.deployment("payments", "api", replicas=3, available=1, updated=1))
    check = make_check(api, tmp_path, namespace="payments", conditions=["replicas"])
    t0 = time.time()
    await run_at(check, t0)
    api.objects["deployments"] = [k.deployment("payments", "api", replicas=3, available=1, updated=2)]
    assert (await run_at(check, t0 + 10 * 60)).status == Status.OK
    assert (await run_at(check, t0 + 20 * 60)).status == Status.OK, "progress at 10m restarted the 15m clock"
    stuck = await run_at(check, t0 + 25 * 60 + 1)
    await check.close()
    assert stuck.status == Status.CRITICAL
    assert stuck.summary == "unavailable: deployment payments/api (1/3 available for 15m1s)"


async def test_summary_names_the_first_few_objects_then_how_many_more(api, tmp_path):
    api.add("pods", *(crashlooping("payments", f"worker-6c4d9f7b8-{i}") for i in range(5)))
    check = make_check(api, tmp_path, namespace="payments", **{"for": "0s"})
    result = await execute(check)
    await check.close()
    assert result.status == Status.CRITICAL
    assert result.summary.startswith("crash looping: pod payments/worker-6c4d9f7b8-0 (")
    assert result.summary.count("pod payments/") == 3
    assert result.summary.endswith(" and 2 more")
    assert len(result.details["problems"]) == 5


async def test_every_condition_cluster_wide(api, tmp_path):
    now = time.time()
    api.add("deployments", k.deployment("payments", "api", available=1),
            k.deployment("payments", "stuck", progressing=("False", "ProgressDeadlineExceeded")),
            k.deployment("payments", "fine"))
    api.add("statefulsets", k.statefulset("payments", "db", replicas=3, ready=2),
            k.statefulset("payments", "cache", updated=1, current_revision="cache-1", update_revision="cache-2"))
    api.add("daemonsets", k.daemonset("kube-system", "fluent-bit", desired=3, available=2))
    api.add("pods",
            crashlooping("payments", "api-7d9f8b6c5d-x2v9k"),
            k.pod("payments", "web-6c4d9f7b8-q7w2e", ready=False, waiting=("ImagePullBackOff",
                  'Back-off pulling image "registry.example/web:9.9.9"')),
            k.pod("payments", "report-5d6f7-zzzzz", phase="Pending", ready=False,
                  unschedulable="0/3 nodes are available: 3 Insufficient memory."),
            k.pod("payments", "batch-abcde", phase="Pending", ready=False, owner=("Job", "batch"),
                  unschedulable="0/3 nodes are available"),
            k.pod("payments", "old-7d9f8b6c5d-gone1", ready=False, deleting=True),
            k.pod("payments", "done-abcde", phase="Succeeded", ready=False))
    api.add("jobs", k.job("payments", "migrate-42", failed=True),
            k.job("payments", "nightly-100", failed=True, cronjob="nightly", created=now - 7200),
            k.job("payments", "nightly-101", complete=True, cronjob="nightly", created=now - 3600))
    api.add("cronjobs", k.cronjob("payments", "report", last_success=now - 30 * 3600),
            k.cronjob("payments", "nightly", last_success=now - 3600),
            k.cronjob("payments", "paused", last_success=now - 90 * 86400, suspend=True),
            k.cronjob("payments", "fresh", last_success=None, created=now - 3600),
            k.cronjob("payments", "never", last_success=None, created=now - 3 * 86400))
    api.add("nodes", k.node("node-a"), k.node("node-b", ready="Unknown"), k.node("node-c", pressure=("DiskPressure",)))
    api.add("persistentvolumeclaims", k.pvc("payments", "data-db-0"), k.pvc("payments", "data-db-1"))
    api.add("pods", k.pod("payments", "db-0", node="node-a", claims=("data-db-0",)),
            k.pod("payments", "db-1", node="node-c", claims=("data-db-1",)))
    api.node_stats["node-a"] = k.stats_summary("node-a", [("payments", "db-0", "data-db-0", 9.8 * GIB, 10 * GIB)])
    api.node_stats["node-c"] = k.stats_summary("node-c", [("payments", "db-1", "data-db-1", 8.7 * GIB, 10 * GIB)])

    check = make_check(api, tmp_path, **{"for": "0s", "cronjob_max_age": "26h", "pvc": {"warning": "85%", "critical": "97%"}})
    result = await execute(check)
    await check.close()

    assert result.status == Status.CRITICAL, result.summary
    problems = {(p["condition"], p["kind"], p["name"]) for p in result.details["problems"]}
    assert problems == {
        ("replicas", "Deployment", "api"), ("rollout", "Deployment", "stuck"),
        ("replicas", "StatefulSet", "db"), ("rollout", "StatefulSet", "cache"),
        ("replicas", "DaemonSet", "fluent-bit"),
        ("crashloop", "Pod", "api-7d9f8b6c5d-x2v9k"),
        ("waiting", "Pod", "web-6c4d9f7b8-q7w2e"), ("not_ready", "Pod", "web-6c4d9f7b8-q7w2e"),
        ("not_ready", "Pod", "report-5d6f7-zzzzz"),
        ("jobs", "Job", "migrate-42"),
        ("cronjobs", "CronJob", "report"), ("cronjobs", "CronJob", "never"),
        ("nodes", "Node", "node-b"), ("nodes", "Node", "node-c"),
        ("pvc", "PersistentVolumeClaim", "data-db-0"), ("pvc", "PersistentVolumeClaim", "data-db-1"),
    }
    by = {(p["condition"], p["name"]): p for p in result.details["problems"]}
    assert by[("pvc", "data-db-0")]["status"] == "CRITICAL" and by[("pvc", "data-db-1")]["status"] == "WARNING"
    assert by[("nodes", "node-c")]["status"] == "WARNING" and by[("nodes", "node-b")]["status"] == "CRITICAL"
    assert by[("cronjobs", "report")]["detail"] == "last success 1d6h ago (max 1d2h)"
    assert by[("not_ready", "report-5d6f7-zzzzz")]["detail"].startswith("Pending: Unschedulable: 0/3 nodes")
    for label in ("unavailable:", "crash looping:", "jobs failed:", "cronjobs late:", "nodes:", "volumes filling up:",
                  "rollout stuck:", "not ready:", "containers waiting:"):
        assert label in result.summary
    assert result.summary.index("unavailable:") < result.summary.index("rollout stuck:"), "CRITICAL groups first"
    assert result.observations["pvc_used_percent_max"] == 98.0
    assert result.observations["nodes_total"] == 3 and result.observations["nodes_failing"] == 2
    # Only the kubelets running a pod that mounts a watched claim are asked.
    assert sorted(r for r in api.requests if "proxy" in r) == ["/api/v1/nodes/node-a/proxy/stats/summary",
                                                              "/api/v1/nodes/node-c/proxy/stats/summary"]


async def test_selector_limits_what_is_read(api, tmp_path):
    part_of = {"app.kubernetes.io/part-of": "payments"}
    api.add("deployments", k.deployment("payments", "api", labels=part_of),
            k.deployment("payments", "unrelated", available=0, labels={"app": "other"}))
    check = make_check(api, tmp_path, namespaces=["payments", "shop"], selector="app.kubernetes.io/part-of=payments",
                       conditions=["replicas"], **{"for": "0s"})
    result = await execute(check)
    await check.close()
    assert result.status == Status.OK, result.summary
    assert result.summary == ("healthy in namespaces payments, shop matching app.kubernetes.io/part-of=payments: "
                              "1 deployments")
    shop = [r for r in api.requests if r.startswith("/apis/apps/v1/namespaces/shop/deployments?")]
    assert len(shop) == 1
    assert parse_qs(urlsplit(shop[0]).query) == {"labelSelector": ["app.kubernetes.io/part-of=payments"], "limit": ["500"]}


async def test_large_lists_are_read_page_by_page(api, tmp_path):
    api.add("pods", *(k.pod("payments", f"worker-{i}") for i in range(1100)))
    check = make_check(api, tmp_path, namespace="payments", conditions=["crashloop"])
    result = await execute(check)
    await check.close()
    assert result.observations["pods_total"] == 1100
    pages = [r for r in api.requests if r.startswith("/api/v1/namespaces/payments/pods")]
    assert len(pages) == 3 and "continue=" in pages[1] and "continue=" in pages[2]


# -- errors --------------------------------------------------------------------------------------

async def test_forbidden_names_the_verb_resource_namespace_and_grant(api, tmp_path):
    api.forbidden.add(("pods", "payments"))
    api.add("deployments", k.deployment("payments", "api"))
    check = make_check(api, tmp_path, namespace="payments")
    result = await execute(check)
    await check.close()
    assert result.status == Status.UNKNOWN
    assert result.summary.startswith(f"cannot list pods in namespace payments (as {k.SERVICE_ACCOUNT}): "
                                     "grant get/list/watch on pods")
    assert "pods_total" not in result.observations
    assert result.observations["deployments_total"] == 1


async def test_forbidden_in_an_api_group_and_at_cluster_scope(api, tmp_path):
    api.forbidden |= {("deployments", None), ("nodes", None)}
    check = make_check(api, tmp_path, conditions=["replicas", "nodes"])
    result = await execute(check)
    await check.close()
    assert result.status == Status.UNKNOWN
    errors = result.details["errors"]
    assert (f"cannot list deployments.apps in all namespaces (cluster scope) (as {k.SERVICE_ACCOUNT}): "
            'grant get/list/watch on deployments.apps in API group "apps" with a ClusterRole') in errors
    assert f"cannot list nodes (as {k.SERVICE_ACCOUNT}): grant get/list/watch on nodes with a ClusterRole" in errors


async def test_a_denied_list_does_not_hide_a_critical_problem_nor_reset_clocks(api, tmp_path):
    api.add("deployments", k.deployment("payments", "api", available=0))
    api.add("pods", crashlooping("payments", "api-7d9f8b6c5d-x2v9k"))
    check = make_check(api, tmp_path, namespace="payments", conditions=["replicas", "crashloop"])
    t0 = time.time()
    await run_at(check, t0)
    api.forbidden.add(("pods", "payments"))
    denied = await run_at(check, t0 + 16 * 60)
    assert denied.status == Status.CRITICAL
    assert denied.summary.startswith("unavailable: deployment payments/api (0/3 available for 16m)")
    assert "cannot list pods in namespace payments" in denied.summary
    api.forbidden.clear()
    back = await run_at(check, t0 + 17 * 60)
    await check.close()
    assert "crash looping: pod payments/api-7d9f8b6c5d-x2v9k" in back.summary, "the pod's clock ran on while unread"


async def test_rejected_token_is_unknown_with_401(api, tmp_path):
    kubeconfig = api.kubeconfig(tmp_path / "kubeconfig", token="expired-token")
    check = KubernetesCheck(KubernetesConfig(name="w", type="kubernetes", kubeconfig=str(kubeconfig), context="prod",
                                             namespace="payments", conditions=["crashloop"], timeout="30s"),
                            CheckContext())
    result = await execute(check)
    await check.close()
    assert result.status == Status.UNKNOWN
    assert result.summary.startswith("cannot list pods in namespace payments: 401 Unauthorized: the API server "
                                     "rejected the credentials")
    assert "expired-token" not in result.summary + json.dumps(result.details)


async def test_the_context_picks_the_user(api, tmp_path):
    """The kubeconfig's current context is another user's: without `context:` the agent is refused."""
    kubeconfig = api.kubeconfig(tmp_path / "kubeconfig")
    check = KubernetesCheck(KubernetesConfig(name="w", type="kubernetes", kubeconfig=str(kubeconfig),
                                             namespace="payments", conditions=["crashloop"], timeout="30s"),
                            CheckContext())
    result = await execute(check)
    await check.close()
    assert "401 Unauthorized" in result.summary


async def test_unserved_resource_is_unknown_with_404(api, tmp_path):
    api.unserved.add("cronjobs")
    check = make_check(api, tmp_path, namespace="payments", conditions=["cronjobs"], cronjob_max_age="26h")
    result = await execute(check)
    await check.close()
    assert result.status == Status.UNKNOWN
    assert result.summary == ("cannot list cronjobs.batch in namespace payments: 404 Not Found: the server could "
                              "not find the requested resource (does this API server serve batch/v1 cronjobs?)")


async def test_a_slow_api_server_is_unknown_with_the_reason(api, tmp_path):
    api.add("deployments", k.deployment("payments", "api"))
    await warm_up(api, tmp_path)
    check = make_check(api, tmp_path, namespace="payments", timeout="2s")
    api.delays["/api/v1/namespaces/payments/pods"] = 10
    result = await execute(check)
    await check.close()
    assert result.status == Status.UNKNOWN
    # The request's own timeout and the check's deadline fire together; either names the list and why.
    assert result.summary.startswith("cannot list pods in namespace payments: the API server did not answer in time") \
        or result.summary.startswith(f"timed out after 2.0s waiting for the API server ({api.url}): "), result.summary
    assert "pods in namespace payments" in result.summary


async def test_a_list_that_never_ends_stops_at_the_deadline(api, tmp_path):
    api.add("pods", k.pod("payments", "api-7d9f8b6c5d-x2v9k"))
    await warm_up(api, tmp_path)
    check = make_check(api, tmp_path, namespace="payments", conditions=["crashloop"], timeout="1s")
    api.endless_pages = True
    result = await execute(check)
    await check.close()
    # The reading thread ends too (a hang here would be the bug; the bound only keeps the suite from hanging).
    await asyncio.wait_for(asyncio.get_running_loop().shutdown_default_executor(), 20)
    assert result.status == Status.UNKNOWN
    assert result.summary.startswith("cannot list pods in namespace payments: the API server did not finish the list "
                                     "in time") or result.summary.startswith("timed out after 1.0s"), result.summary


async def test_pvc_usage_comes_from_the_kubelet_stats_summary(api, tmp_path):
    api.add("persistentvolumeclaims", k.pvc("payments", "data-db-0"), k.pvc("payments", "spare"))
    api.add("pods", k.pod("payments", "db-0", node="node-a", claims=("data-db-0",)), k.pod("payments", "api-1", node="node-b"))
    api.node_stats["node-a"] = k.stats_summary("node-a", [("payments", "db-0", "data-db-0", 8.6 * GIB, 10 * GIB)])
    check = make_check(api, tmp_path, namespace="payments", conditions=["pvc"])
    result = await execute(check)
    await check.close()
    assert result.status == Status.WARNING, result.summary
    assert result.summary == ("volumes filling up: persistentvolumeclaim payments/data-db-0 "
                              "(86.0% used (9.2GB of 10.7GB))")
    assert result.observations["pvcs_total"] == 2 and result.observations["pvcs_failing"] == 1
    assert [r for r in api.requests if "proxy" in r] == ["/api/v1/nodes/node-a/proxy/stats/summary"]


async def test_an_unreadable_pod_list_keeps_the_volume_clocks(api, tmp_path):
    """The pods say which kubelets to ask: while they cannot be listed, a filling volume keeps its clock."""
    api.add("persistentvolumeclaims", k.pvc("payments", "data-db-0"))
    api.add("pods", k.pod("payments", "db-0", node="node-a", claims=("data-db-0",)))
    api.node_stats["node-a"] = k.stats_summary("node-a", [("payments", "db-0", "data-db-0", 9.9 * GIB, 10 * GIB)])
    check = make_check(api, tmp_path, namespace="payments", conditions=["pvc"], **{"for": "10m"})
    t0 = time.time()
    assert (await run_at(check, t0)).status == Status.OK
    api.forbidden.add(("pods", "payments"))
    assert (await run_at(check, t0 + 5 * 60)).status == Status.UNKNOWN
    api.forbidden.clear()
    result = await run_at(check, t0 + 11 * 60)
    await check.close()
    assert result.status == Status.CRITICAL, result.summary
    assert "for 11m" in result.summary


async def test_pvc_without_nodes_proxy_grant_names_it(api, tmp_path):
    api.add("persistentvolumeclaims", k.pvc("payments", "data-db-0"))
    api.add("pods", k.pod("payments", "db-0", node="node-a", claims=("data-db-0",)))
    api.forbidden.add(("nodes/proxy", None))
    check = make_check(api, tmp_path, namespace="payments", pvc={"critical": "90%"})
    result = await execute(check)
    await check.close()
    assert result.status == Status.UNKNOWN
    assert result.summary.startswith(f"cannot get nodes/proxy for node node-a (kubelet stats summary) "
                                     f"(as {k.SERVICE_ACCOUNT}): grant get on nodes/proxy with a ClusterRole")


# -- connecting ------------------------------------------------------------------------------------

async def test_in_cluster_service_account_over_tls(tmp_path, monkeypatch):
    ca = make_ca(tmp_path / "pki")
    with k.KubeApiServer(tls=server_context(make_leaf(tmp_path / "pki", ca))) as api:
        api.add("deployments", k.deployment("payments", "api"))
        token = tmp_path / "token"
        token.write_text(api.token)
        monkeypatch.setattr(_kube_api, "SA_TOKEN_FILE", str(token))
        monkeypatch.setattr(_kube_api, "SA_CA_FILE", str(ca.cert_file))
        monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
        monkeypatch.setenv("KUBERNETES_SERVICE_PORT", str(api.port))
        check = KubernetesCheck(KubernetesConfig(name="w", type="kubernetes", namespace="payments",
                                                 conditions=["replicas"], timeout="30s"), CheckContext())
        result = await execute(check)
        await check.close()
    assert result.status == Status.OK, result.summary
    assert result.details["api_server"] == f"https://127.0.0.1:{api.port}"


async def test_outside_a_pod_without_kubeconfig_says_what_to_set(monkeypatch):
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    check = KubernetesCheck(KubernetesConfig(name="w", type="kubernetes", timeout="30s"), CheckContext())
    result = await execute(check)
    await check.close()
    assert result.status == Status.UNKNOWN
    assert result.summary == "no in-cluster ServiceAccount (Service host/port is not set.); outside a pod set kubeconfig"


async def test_missing_kubeconfig_file(tmp_path):
    check = KubernetesCheck(KubernetesConfig(name="w", type="kubernetes", kubeconfig=str(tmp_path / "nope"),
                                             timeout="30s"), CheckContext())
    result = await execute(check)
    assert result.summary == f"kubeconfig {tmp_path / 'nope'}: no such file"


async def test_without_the_extra_the_result_names_the_pip_line(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "kubernetes", None)
    check = KubernetesCheck(KubernetesConfig(name="w", type="kubernetes", kubeconfig=str(tmp_path / "kc"),
                                             timeout="30s"), CheckContext())
    (tmp_path / "kc").write_text("{}")
    result = await execute(check)
    assert result.status == Status.UNKNOWN
    assert result.summary == "missing Python package 'kubernetes': pip install 'sre-agent[kubernetes]'"


def test_the_client_is_imported_only_when_a_check_runs():
    code = ("import sys; import agent.registry as r; r.discover(); import checks.kubernetes; "
            "print(sorted(m for m in sys.modules if m == 'kubernetes' or m.startswith('kubernetes.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


# -- config ----------------------------------------------------------------------------------------

def _load(tmp_path: Path, check: str) -> None:
    cfg = tmp_path / "agent.yaml"
    cfg.write_text(f"agent: {{state_dir: {tmp_path}}}\nchecks:\n  - {check}\n")
    load_config(cfg)


@pytest.mark.parametrize(("check", "message"), [
    ("{name: w, type: kubernetes, namespace: a, namespaces: [b]}", "set namespace or namespaces, not both"),
    ("{name: w, type: kubernetes, namespace: Payments}", "invalid namespace 'Payments'"),
    ("{name: w, type: kubernetes, namespaces: [a, a]}", "namespace 'a' is listed twice"),
    ("{name: w, type: kubernetes, selector: 'app=web,,tier'}", "invalid label selector 'app=web,,tier'"),
    ("{name: w, type: kubernetes, selector: 'app in prod'}", "cannot parse 'app in prod'"),
    ("{name: w, type: kubernetes, conditions: [cronjobs]}", "set cronjob_max_age"),
    ("{name: w, type: kubernetes, conditions: [pods]}", "conditions[0]"),
    ("{name: w, type: kubernetes, conditions: [jobs], cronjob_max_age: 1d}", "conditions leave out cronjobs"),
    ("{name: w, type: kubernetes, context: prod}", "set kubeconfig too"),
    ("{name: w, type: kubernetes, pvc: {warning: 95%, critical: 90%}}", "must not be above critical"),
    ("{name: w, type: kubernetes, pvc: {warning: 0.8}}", "invalid percentage 0.8"),
    ("{name: w, type: kubernetes, for: 15}", "expected a duration string"),
])
def test_config_errors_name_the_field(tmp_path, check, message):
    with pytest.raises(ConfigError) as err:
        _load(tmp_path, check)
    assert message in str(err.value)


def test_default_conditions_depend_on_scope_and_keys():
    def conds(**kw: Any) -> set[str]:
        return KubernetesConfig(name="w", type="kubernetes", **kw).effective_conditions

    workload = {"replicas", "rollout", "crashloop", "not_ready", "waiting", "jobs"}
    assert conds(namespace="payments") == workload
    assert conds() == workload | {"nodes"}
    assert conds(cronjob_max_age="26h", pvc={}) == workload | {"nodes", "cronjobs", "pvc"}
    assert KubernetesConfig(name="w", type="kubernetes", pvc={}).pvc_thresholds.critical == 97
    _load_ok = KubernetesConfig.model_validate({"name": "w", "type": "kubernetes", "selector":
                                                "app.kubernetes.io/part-of=payments,tier!=db,env in (prod, staging),!canary"})
    assert _load_ok.selector


def test_sre_agent_check_on_the_command_line(api, tmp_path):
    """`sre-agent check` in a fresh process: the Nagios exit code and the summary, through a kubeconfig."""
    api.add("deployments", k.deployment("payments", "api", available=1))
    api.add("nodes", k.node("node-a"))
    kubeconfig = api.kubeconfig(tmp_path / "kubeconfig")
    cfg = tmp_path / "agent.yaml"
    cfg.write_text(f"""
agent: {{state_dir: {tmp_path / 'state'}}}
checks:
  - name: payments-workloads
    type: kubernetes
    kubeconfig: {kubeconfig}
    context: prod
    namespace: payments
    for: 0s
    timeout: 30s
""")
    proc = subprocess.run([sys.executable, "-m", "agent.cli", "check", "-c", str(cfg), "payments-workloads", "-o", "json"],
                          capture_output=True, text=True, timeout=60, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 2, proc.stderr
    (result,) = json.loads(proc.stdout)
    assert result["summary"] == "unavailable: deployment payments/api (1/3 available)"
    assert result["observations"]["deployments_failing"] == 1
    assert api.token not in proc.stdout + proc.stderr
