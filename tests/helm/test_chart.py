"""The Helm chart (helm/sre-agent): Helm's own lint and render, Kubernetes schemas, promtool, the agent's config loader.

No cluster here: `helm-python-sdk` bundles Helm's Go SDK (lint, render, the
values schema), `kubernetes-validate` the API's OpenAPI schemas. Each property
is checked on a grid of values: the defaults, sharded, PostgreSQL, namespaced
RBAC, and everything on.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest
import yaml

import agent
from agent.config import load_config

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "sre-agent"
#: the newest Kubernetes whose schemas kubernetes-validate bundles (1.37 today)
KUBE_VERSION = kubernetes_validate.latest_version()
RELEASE, NAMESPACE = "sre", "monitoring"
#: kinds whose schemas are not Kubernetes' own (Prometheus Operator CRDs)
CRD_KINDS = {"ServiceMonitor", "PrometheusRule"}
READ_VERBS = {"get", "list", "watch"}

PG = {"type": "postgres", "postgres": {"existingSecret": "sre-agent-pg"}}
GRID: dict[str, dict[str, Any]] = {
    "default": {},
    "sharded": {"replicas": 3, "sharding": {"enabled": True}, "state": PG},
    "postgres": {"replicas": 2, "state": {"type": "postgres", "postgres": {"existingSecret": "sre-agent-pg"}}},
    "namespaced": {"rbac": {"namespaces": ["payments", "shop"], "nodes": False},
                   "config": {"checks": [{"name": "payments", "type": "kubernetes",
                                          "namespaces": ["payments", "shop"]}]}},
    "everything": {
        "replicas": 2, "sharding": {"enabled": True}, "state": PG,
        "image": {"digest": "sha256:" + "a" * 64},
        "imagePullSecrets": ["ghcr"],
        "serviceMonitor": {"enabled": True, "release": "prom", "labels": {"team": "sre"}},
        "prometheusRule": {"enabled": True, "release": "prom",
                           "additionalGroups": [{"name": "extra", "rules": [
                               {"alert": "SreAgentAbsent", "expr": "absent(up{job=\"sre-agent\"})", "for": "5m",
                                "labels": {"severity": "critical"}}]}]},
        "dashboards": {"enabled": True, "labels": {"team": "sre"}},
        "rbac": {"pvcStats": True},
        "secrets": {"envFrom": ["sre-agent-env"],
                    "files": [{"secret": "slack-webhook"}, {"secret": "pagerduty", "mountPath": "/run/pd"}]},
        "extraEnv": [{"name": "TZ", "value": "UTC"}],
        "serviceAccount": {"annotations": {"iam.gke.io/gcp-service-account": "sre@example.iam.gserviceaccount.com"}},
        "service": {"annotations": {"example.com/scrape": "true"}},
        "podAnnotations": {"example.com/owner": "sre"}, "podLabels": {"team": "sre"},
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "monitoring", "effect": "NoSchedule"}],
        "affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 100, "podAffinityTerm": {"topologyKey": "kubernetes.io/hostname",
                                                "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "sre-agent"}}}}]}},
        "priorityClassName": "system-cluster-critical",
        "config": {
            "agent": {"log_format": "json", "api_token": "${SRE_AGENT_API_TOKEN}"},
            "checks": [{"name": "cluster-workloads", "type": "kubernetes", "pvc": {"critical": "95%"},
                        "cronjob_max_age": "26h"},
                       {"name": "self", "type": "http", "url": "http://127.0.0.1:9108/healthz"}],
            "alerting": {"route": {"receiver": "slack"},
                         "receivers": [{"name": "slack", "slack": {"webhook_url": "${SLACK_WEBHOOK_URL}"}}]},
        },
    },
}


def render(values: dict[str, Any], chart: Path = CHART) -> dict[str, str]:
    with helm.Chart.load(chart) as c:
        return c.render(values, name=RELEASE, namespace=NAMESPACE)


def manifests(values: dict[str, Any], chart: Path = CHART) -> list[dict[str, Any]]:
    out = []
    for path, text in sorted(render(values, chart).items()):
        if path.endswith("NOTES.txt"):
            continue
        out += [doc for doc in yaml.safe_load_all(text) if doc]
    return out


def of_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def workloads(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] in ("Deployment", "StatefulSet")]


def container(doc: dict[str, Any]) -> dict[str, Any]:
    (c,) = doc["spec"]["template"]["spec"]["containers"]
    return dict(c)


@pytest.fixture(params=sorted(GRID), ids=sorted(GRID))
def case(request: pytest.FixtureRequest) -> tuple[str, dict[str, Any]]:
    return request.param, GRID[request.param]


# -- Helm's lint and Kubernetes' schemas ------------------------------------------------------------

def test_lint_is_clean(case):
    _, values = case
    report = helm.lint(CHART, values, strict=True, kube_version=f"v{KUBE_VERSION}")
    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


def test_every_core_manifest_passes_kubernetes_validate_strict(case):
    _, values = case
    docs = manifests(values)
    core = [d for d in docs if d["kind"] not in CRD_KINDS]
    assert {"Deployment", "StatefulSet"} & {d["kind"] for d in core}
    for doc in core:
        kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)


def test_a_manifest_with_an_unknown_field_fails_strict_validation():
    """The validation above can fail: a misspelt field is rejected, not ignored."""
    (deployment,) = of_kind(manifests({}), "Deployment")
    broken = copy.deepcopy(deployment)
    broken["spec"]["template"]["spec"]["containers"][0]["securityContxt"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBE_VERSION, strict=True)


# -- workloads ----------------------------------------------------------------------------------

def test_restricted_pod_security_on_every_workload(case):
    _, values = case
    for doc in workloads(manifests(values)):
        pod = doc["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] == 65534
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        for key in ("hostNetwork", "hostPID", "hostIPC"):
            assert not pod.get(key)
        for volume in pod["volumes"]:
            assert set(volume) - {"name"} <= {"configMap", "secret", "emptyDir", "persistentVolumeClaim", "projected"}
        for c in pod["containers"] + pod.get("initContainers", []):
            sc = c["securityContext"]
            assert sc["runAsNonRoot"] is True and sc["runAsUser"] == 65534
            assert sc["readOnlyRootFilesystem"] is True
            assert sc["allowPrivilegeEscalation"] is False
            assert sc["capabilities"] == {"drop": ["ALL"]}
            assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
            assert "resources" in c and c["resources"]["requests"]
            assert not any(p.get("hostPort") for p in c.get("ports", []))


def test_probes_hit_healthz_and_readyz_on_the_port_the_agent_listens_on(case):
    _, values = case
    docs = manifests(values)
    (cm,) = of_kind(docs, "ConfigMap")[:1]
    listen = yaml.safe_load(cm["data"]["config.yaml"])["agent"]["listen"]
    for doc in workloads(docs):
        c = container(doc)
        assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
        assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
        assert c["ports"] == [{"name": "http", "containerPort": 9108, "protocol": "TCP"}]
        assert listen == "0.0.0.0:9108"


def test_deployment_by_default_statefulset_with_ordinal_and_count_when_sharded():
    (deployment,) = workloads(manifests({}))
    assert deployment["kind"] == "Deployment" and deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}, "one agent per SQLite state directory"
    env = {e["name"] for e in container(deployment)["env"]}
    assert "SRE_AGENT_SHARD_ORDINAL" not in env

    for values in (GRID["sharded"], {"sharding": {"enabled": True}, "state": PG}, GRID["postgres"]):
        (sts,) = workloads(manifests(values))
        assert sts["kind"] == "StatefulSet"
        env = {e["name"]: e for e in container(sts)["env"]}
        assert env["SRE_AGENT_SHARD_ORDINAL"]["valueFrom"]["fieldRef"]["fieldPath"] == \
            "metadata.labels['apps.kubernetes.io/pod-index']"
        assert env["SRE_AGENT_SHARD_COUNT"]["value"] == str(values.get("replicas", 1))
        assert sts["spec"]["serviceName"] == f"{RELEASE}-sre-agent-headless"
    headless = [s for s in of_kind(manifests(GRID["sharded"]), "Service") if s["spec"].get("clusterIP") == "None"]
    assert len(headless) == 1


def test_config_map_comes_from_values_and_a_change_rolls_the_pods():
    docs = manifests({})
    (cm,) = of_kind(docs, "ConfigMap")
    config = yaml.safe_load(cm["data"]["config.yaml"])
    assert config["checks"] == [{"name": "cluster-workloads", "type": "kubernetes"}]
    assert config["agent"]["state_dir"] == "/var/lib/sre-agent"
    (deployment,) = workloads(docs)
    checksum = deployment["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
    assert re.fullmatch(r"[0-9a-f]{64}", checksum)
    (same,) = workloads(manifests({"replicas": 1}))
    assert same["spec"]["template"]["metadata"]["annotations"]["checksum/config"] == checksum
    (changed,) = workloads(manifests({"config": {"defaults": {"interval": "30s"}}}))
    assert changed["spec"]["template"]["metadata"]["annotations"]["checksum/config"] != checksum
    mounts = {m["mountPath"]: m for m in container(deployment)["volumeMounts"]}
    env = {e["name"]: e.get("value") for e in container(deployment)["env"]}
    assert Path(env["SRE_AGENT_CONFIG"]).parent == Path(mounts["/etc/sre-agent/config"]["mountPath"])


def test_the_rendered_config_is_one_the_agent_accepts(case, tmp_path):
    name, values = case
    (cm,) = [d for d in of_kind(manifests(values), "ConfigMap")
             if "grafana_dashboard" not in d["metadata"].get("labels", {})]
    path = tmp_path / "config.yaml"
    path.write_text(cm["data"]["config.yaml"])
    config = load_config(path, env={"SLACK_WEBHOOK_URL": "https://hooks.example.invalid/x",
                                    "SRE_AGENT_API_TOKEN": "an-api-token-of-32-characters-xx",
                                    "SRE_AGENT_STATE_DSN": "postgresql://u:p@127.0.0.1:1/db",
                                    # what the pod's environment gives (the downward API, the StatefulSet)
                                    "SRE_AGENT_POD_NAME": "sre-sre-agent-0", "SRE_AGENT_SHARD_ORDINAL": "0",
                                    "SRE_AGENT_SHARD_COUNT": str(values.get("replicas", 1))})
    assert [c.type for c in config.all_checks()][0] == "kubernetes", name


def test_secrets_come_only_from_existing_secrets(case):
    _, values = case
    docs = manifests(values)
    assert not of_kind(docs, "Secret"), "the chart never renders a Secret"
    if values is GRID["everything"]:
        c = container(workloads(docs)[0])
        assert c["envFrom"] == [{"secretRef": {"name": "sre-agent-env"}}]
        mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
        assert mounts["/etc/sre-agent/secrets/slack-webhook"]["readOnly"] is True
        assert mounts["/run/pd"]["readOnly"] is True
        volumes = {v["name"]: v for v in workloads(docs)[0]["spec"]["template"]["spec"]["volumes"]}
        assert {v["secret"]["secretName"] for v in volumes.values() if "secret" in v} == {"slack-webhook", "pagerduty"}


# -- state ----------------------------------------------------------------------------------------

def test_sqlite_state_on_a_pvc_and_postgres_without_one():
    docs = manifests({})
    (claim,) = of_kind(docs, "PersistentVolumeClaim")
    volumes = {v["name"]: v for v in workloads(docs)[0]["spec"]["template"]["spec"]["volumes"]}
    assert volumes["state"]["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
    assert {"mountPath": "/var/lib/sre-agent", "name": "state"} in container(workloads(docs)[0])["volumeMounts"]

    pg = manifests(GRID["postgres"])
    assert not of_kind(pg, "PersistentVolumeClaim")
    (sts,) = workloads(pg)
    assert "volumeClaimTemplates" not in sts["spec"]
    volumes = {v["name"]: v for v in sts["spec"]["template"]["spec"]["volumes"]}
    assert "emptyDir" in volumes["state"]
    env = {e["name"]: e for e in container(sts)["env"]}
    assert env["SRE_AGENT_STATE_DSN"]["valueFrom"]["secretKeyRef"] == {"name": "sre-agent-pg", "key": "dsn"}


def test_pod_disruption_budget_allows_a_drain():
    (pdb,) = of_kind(manifests({}), "PodDisruptionBudget")
    assert pdb["spec"]["maxUnavailable"] == 1
    assert not of_kind(manifests({"podDisruptionBudget": {"enabled": False}}), "PodDisruptionBudget")


# -- RBAC -------------------------------------------------------------------------------------------

def _rules(docs: list[dict[str, Any]]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(d["kind"], d["metadata"].get("namespace", ""), r) for d in docs if d["kind"] in ("ClusterRole", "Role")
            for r in d["rules"]]


def test_rbac_verbs_are_only_get_list_watch(case):
    _, values = case
    rules = _rules(manifests(values))
    assert rules
    for _, _, rule in rules:
        assert set(rule["verbs"]) <= READ_VERBS, rule
        assert "*" not in rule["resources"] and "*" not in rule["apiGroups"]
    proxy = [r for _, _, r in rules if "nodes/proxy" in r["resources"]]
    if (values.get("rbac") or {}).get("pvcStats"):
        assert proxy == [{"apiGroups": [""], "resources": ["nodes/proxy"], "verbs": ["get"]}]
    else:
        assert proxy == []


def test_rbac_grants_what_the_check_reads():
    from checks._kube_api import CRONJOBS, DAEMONSETS, DEPLOYMENTS, JOBS, NODES, PODS, PVCS, STATEFULSETS

    granted = {(g, res) for _, _, r in _rules(manifests({})) for g in r["apiGroups"] for res in r["resources"]}
    for resource in (DEPLOYMENTS, STATEFULSETS, DAEMONSETS, PODS, JOBS, CRONJOBS, PVCS, NODES):
        assert (resource.group, resource.plural) in granted


def test_namespaced_rbac_is_a_role_per_namespace():
    docs = manifests(GRID["namespaced"])
    assert not of_kind(docs, "ClusterRole"), "nodes off and no PVC stats: nothing cluster-wide"
    roles = of_kind(docs, "Role")
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["payments", "shop"]
    bindings = of_kind(docs, "RoleBinding")
    assert all(b["subjects"] == [{"kind": "ServiceAccount", "name": f"{RELEASE}-sre-agent", "namespace": NAMESPACE}]
               for b in bindings)
    with_nodes = manifests({"rbac": {"namespaces": ["payments"], "pvcStats": True}})
    (cluster,) = of_kind(with_nodes, "ClusterRole")
    assert {res for r in cluster["rules"] for res in r["resources"]} == {"nodes", "nodes/proxy"}


# -- monitoring -------------------------------------------------------------------------------------

def test_service_monitor_carries_the_release_label():
    (sm,) = of_kind(manifests({"serviceMonitor": {"enabled": True, "release": "kps"}}), "ServiceMonitor")
    assert sm["metadata"]["labels"]["release"] == "kps"
    assert sm["spec"]["endpoints"] == [{"port": "http", "path": "/metrics", "interval": "30s", "scrapeTimeout": "10s"}]
    (bare,) = of_kind(manifests({"serviceMonitor": {"enabled": True, "release": ""}}), "ServiceMonitor")
    assert "release" not in bare["metadata"]["labels"]
    assert not of_kind(manifests({}), "ServiceMonitor"), "off by default: the CRD may not exist"


def test_prometheus_rule_holds_the_alert_rules_groups_and_passes_promtool(tmp_path):
    (rule,) = of_kind(manifests(GRID["everything"]), "PrometheusRule")
    assert rule["metadata"]["labels"]["release"] == "prom"
    expected = [g["name"] for p in sorted((ROOT / "alert_rules").glob("*.yml"))
                for g in yaml.safe_load(p.read_text())["groups"]]
    assert [g["name"] for g in rule["spec"]["groups"]] == expected + ["extra"]
    rules_file = tmp_path / "rules.yml"
    rules_file.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool missing: run scripts/test-deps.sh (Debian package prometheus)")
    proc = subprocess.run([promtool, "check", "rules", str(rules_file)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"SUCCESS: {sum(len(g['rules']) for g in rule['spec']['groups'])} rules found" in proc.stdout


def test_dashboards_become_labelled_config_maps(tmp_path):
    shipped = {p.name: json.loads(p.read_text()) for p in (CHART / "files" / "dashboards").glob("*.json")}
    assert shipped, "the chart carries the generated dashboards"
    rendered = {name: json.loads(text) for d in of_kind(manifests({"dashboards": {"enabled": True}}), "ConfigMap")
                if d["metadata"].get("labels", {}).get("grafana_dashboard") == "1" for name, text in d["data"].items()}
    assert rendered == shipped  # one ConfigMap per dashboard, its JSON untouched by Helm's templating
    chart = tmp_path / "sre-agent"
    shutil.copytree(CHART, chart)
    for old in (chart / "files" / "dashboards").glob("*.json"):
        old.unlink()
    board = {"title": "sre-agent checks", "uid": "sre-agent-checks", "panels": [
        {"type": "timeseries", "targets": [{"expr": "sre_agent_check_status", "legendFormat": "{{check}}"}]}]}
    (chart / "files" / "dashboards" / "sre_agent_checks.json").write_text(json.dumps(board))
    docs = manifests({"dashboards": {"enabled": True, "namespace": "grafana"}}, chart)
    (cm,) = [d for d in of_kind(docs, "ConfigMap") if "grafana_dashboard" in d["metadata"]["labels"]]
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert cm["metadata"]["namespace"] == "grafana"
    assert cm["metadata"]["name"] == f"{RELEASE}-sre-agent-dashboard-sre-agent-checks"
    assert json.loads(cm["data"]["sre_agent_checks.json"]) == board, "Grafana's {{check}} is not templated"
    assert not [d for d in of_kind(manifests({}, chart), "ConfigMap") if "grafana_dashboard" in d["metadata"]["labels"]]


def test_chart_copies_of_rules_and_dashboards_are_in_sync():
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "sync_chart_files.py"), "--check"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_sync_check_fails_on_a_stale_or_missing_copy(tmp_path, monkeypatch):
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import sync_chart_files as sync
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    src, dest = tmp_path / "alert_rules", tmp_path / "chart-files"
    src.mkdir()
    (src / "a.yml").write_text("groups: []\n")
    (src / "b.yml").write_text("groups: []\n")
    monkeypatch.setattr(sync, "ROOT", tmp_path)
    monkeypatch.setattr(sync, "PAIRS", [(src, "*.yml", dest)])
    assert sync.differences() == ["missing chart-files/a.yml (copy of alert_rules/a.yml)",
                                  "missing chart-files/b.yml (copy of alert_rules/b.yml)"]
    sync.sync()
    assert sync.differences() == []
    (src / "a.yml").write_text("groups: [{name: x, rules: []}]\n")
    (src / "b.yml").unlink()
    assert sync.differences() == ["extra chart-files/b.yml (no alert_rules/b.yml)",
                                  "stale chart-files/a.yml (differs from alert_rules/a.yml)"]


# -- values and their schema ------------------------------------------------------------------------

def _leaves(node: Any, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    if isinstance(node, dict) and node and path[:1] != ("config",):
        return [leaf for key, value in node.items() for leaf in _leaves(value, (*path, key))]
    return [path]


def test_the_schema_describes_every_value():
    schema = json.loads((CHART / "values.schema.json").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    for path in _leaves(values):
        node = schema
        described = ""
        for key in path:
            assert node.get("type") == "object", f"{'.'.join(path)}: {key}'s parent is not an object in the schema"
            if key in node.get("properties", {}):
                node = node["properties"][key]
                described = node.get("description", "")
            else:  # a map's key (resources.requests.cpu): the map's value schema and description cover it
                assert isinstance(node.get("additionalProperties"), dict), \
                    f"values.schema.json does not describe {'.'.join(path)}"
                node = node["additionalProperties"]
        assert described, f"{'.'.join(path)} has no description"

    def strict(node: dict[str, Any], where: str) -> None:
        if node.get("type") == "object" and "properties" in node and where not in ("config", "config.agent"):
            assert node.get("additionalProperties") is False, f"{where or 'the root'} accepts unknown keys"
        for key, child in node.get("properties", {}).items():
            strict(child, f"{where}.{key}".lstrip("."))

    strict(schema, "")


VALID = [
    {},
    GRID["everything"],
    {"image": {"tag": "0.1.0-rc1", "pullPolicy": "Always"}},
    {"state": {"type": "sqlite", "persistence": {"enabled": False}}},
    {"state": {"persistence": {"existingClaim": "old-state", "storageClassName": "fast", "size": "5Gi"}}},
    {"podDisruptionBudget": {"maxUnavailable": "50%"}},
    {"resources": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"cpu": 1, "memory": "1Gi"}}},
]
INVALID = [
    ({"replicas": 0}, "/replicas"),
    ({"replicas": "two"}, "/replicas"),
    ({"replica": 2}, "replica"),
    ({"image": {"repository": ""}}, "/image/repository"),
    ({"image": {"digest": "latest"}}, "/image/digest"),
    ({"image": {"pullPolicy": "Sometimes"}}, "/image/pullPolicy"),
    ({"state": {"type": "mysql"}}, "/state/type"),
    ({"state": {"persistence": {"size": "lots"}}}, "/state/persistence/size"),
    ({"rbac": {"namespaces": ["Payments"]}}, "/rbac/namespaces/0"),
    ({"rbac": {"verbs": ["create"]}}, "verbs"),
    ({"service": {"port": 70000}}, "/service/port"),
    ({"serviceMonitor": {"interval": "30"}}, "/serviceMonitor/interval"),
    ({"secrets": {"files": [{"mountPath": "/x"}]}}, "/secrets/files/0"),
    ({"secrets": {"envFrom": ["UPPER"]}}, "/secrets/envFrom/0"),
    ({"secrets": {"values": {"token": "s3cr3t"}}}, "values"),
    ({"podDisruptionBudget": {"maxUnavailable": 0}}, "/podDisruptionBudget/maxUnavailable"),
    ({"config": {"checks": [{"name": "x"}]}}, "/config/checks/0"),
]
INVALID_TOGETHER = [
    ({"replicas": 3}, "replicas share the checks only through one PostgreSQL store"),
    ({"sharding": {"enabled": True}}, "replicas share the checks only through one PostgreSQL store"),
    ({"state": {"type": "postgres"}}, "state.type postgres needs state.postgres.existingSecret"),
    ({"sharding": {"enabled": True}, "state": {**PG, "persistence": {"existingClaim": "x"}}},
     "leave existingClaim empty"),
    ({"config": {"agent": {"listen": "127.0.0.1:9108"}}}, "config.agent.listen is set by the chart"),
    ({"config": {"agent": {"state_dir": "/data"}}}, "config.agent.state_dir is set by the chart"),
]


@pytest.mark.parametrize("values", VALID, ids=range(len(VALID)))
def test_values_that_must_pass(values):
    with helm.Chart.load(CHART) as chart:
        chart.validate_schema(chart.merge_values(values))
    assert workloads(manifests(values))


@pytest.mark.parametrize(("values", "where"), INVALID, ids=[w for _, w in INVALID])
def test_values_that_must_fail_the_schema(values, where):
    with helm.Chart.load(CHART) as chart:
        with pytest.raises(helm.HelmValuesError) as err:
            chart.validate_schema(chart.merge_values(values))
    assert where in str(err.value)
    with pytest.raises(helm.HelmError):
        render(values)


@pytest.mark.parametrize(("values", "message"), INVALID_TOGETHER, ids=[m for _, m in INVALID_TOGETHER])
def test_values_that_must_fail_together_say_what_to_change(values, message):
    with pytest.raises(helm.HelmRenderError) as err:
        render(values)
    assert message in str(err.value)


# -- chart metadata ---------------------------------------------------------------------------------

def test_chart_app_version_is_the_agent_version_and_the_default_image_tag():
    meta = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert meta["appVersion"] == agent.__version__
    assert meta["version"] == agent.__version__
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["image"]["tag"] == ""
    (deployment,) = workloads(manifests({}))
    assert container(deployment)["image"] == f"{values['image']['repository']}:{agent.__version__}"
    (pinned,) = workloads(manifests({"image": {"digest": "sha256:" + "b" * 64}}))
    assert container(pinned)["image"] == f"{values['image']['repository']}@sha256:{'b' * 64}"


def test_notes_explain_metrics_and_file_descriptor_limits():
    notes = render({})["sre-agent/templates/NOTES.txt"]
    assert f"port-forward svc/{RELEASE}-sre-agent 9108:9108" in notes
    assert "curl -s http://127.0.0.1:9108/metrics" in notes
    assert "LimitNOFILE" in notes and "RLIMIT_NOFILE" in notes
    assert "lost whenever the pod is replaced" in render({"state": {"persistence": {"enabled": False}}})[
        "sre-agent/templates/NOTES.txt"]


def test_replicas_on_postgres_get_the_store_and_their_share_in_the_config(tmp_path):
    def rendered(values: dict[str, Any]) -> Any:
        (cm,) = [d for d in of_kind(manifests(values), "ConfigMap")
                 if "grafana_dashboard" not in d["metadata"].get("labels", {})]
        path = tmp_path / "config.yaml"
        path.write_text(cm["data"]["config.yaml"])
        return load_config(path, env={"SRE_AGENT_STATE_DSN": "postgresql://u:p@127.0.0.1:1/db",
                                      "SRE_AGENT_POD_NAME": "sre-sre-agent-1", "SRE_AGENT_SHARD_ORDINAL": "2",
                                      "SRE_AGENT_SHARD_COUNT": "3", "SRE_AGENT_API_TOKEN": "x" * 32,
                                      "SLACK_WEBHOOK_URL": "https://hooks.example.invalid/x"}).agent

    live = rendered(GRID["postgres"])  # live membership: each replica named after its pod
    assert live.state is not None and live.replica.name == "sre-sre-agent-1" and live.shard is None
    static = rendered(GRID["sharded"])  # static shards: the StatefulSet ordinal and the count
    assert static.state is not None and (static.shard.index, static.shard.count) == (2, 3)
    sqlite = rendered({})
    assert sqlite.state is None and sqlite.shard is None
    own = rendered({**GRID["postgres"], "config": {"agent": {"replica": {"name": "fixed", "lease": "30s"}}}})
    assert own.replica.name == "fixed"  # what the values set wins
