"""Reading the Kubernetes API for the `kubernetes` check: the official client, raw JSON, errors in words.

The official `kubernetes` client (the `kubernetes` extra) loads the kubeconfig
or the in-cluster ServiceAccount, signs requests and speaks TLS; it is
imported here, inside functions, so `sre-agent check` and the daemon start
without it. Its calls block, so the check runs them in threads; every call
carries `_request_timeout` (what is left of the check's timeout) so a hung API
server frees its thread, and reads are never retried (a retry would outlive the
deadline). Lists are read as JSON (`_preload_content=False`), not into the
client's models: the conditions only read a few fields, and decoding a few
thousand pods into models costs more CPU than the probe itself. Lists are paged
(`limit` + `continue`) so a large cluster is not read in one response.

Failures become `ApiFailure` with the sentence an operator needs: a 403 names
the verb, the resource and the namespace the ServiceAccount lacks and the grant
that fixes it; a 401, a 404 and a timeout say what happened and where.
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass
from typing import Any

#: where a pod finds its ServiceAccount (module attributes so tests can point them elsewhere)
SA_TOKEN_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/token"
SA_CA_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"
PAGE_SIZE = 500
_USER = re.compile(r'User "([^"]+)"')


@dataclass(frozen=True)
class Resource:
    """A list endpoint of the API: plural, API group, and the client's names for it."""

    plural: str
    kind: str
    group: str
    api: str
    #: the client's method names: list_namespaced_<singular>, list_<singular>_for_all_namespaces
    singular: str
    namespaced: bool = True

    @property
    def qualified(self) -> str:
        return f"{self.plural}.{self.group}" if self.group else self.plural


DEPLOYMENTS = Resource("deployments", "Deployment", "apps", "AppsV1Api", "deployment")
STATEFULSETS = Resource("statefulsets", "StatefulSet", "apps", "AppsV1Api", "stateful_set")
DAEMONSETS = Resource("daemonsets", "DaemonSet", "apps", "AppsV1Api", "daemon_set")
PODS = Resource("pods", "Pod", "", "CoreV1Api", "pod")
JOBS = Resource("jobs", "Job", "batch", "BatchV1Api", "job")
CRONJOBS = Resource("cronjobs", "CronJob", "batch", "BatchV1Api", "cron_job")
PVCS = Resource("persistentvolumeclaims", "PersistentVolumeClaim", "", "CoreV1Api", "persistent_volume_claim")
NODES = Resource("nodes", "Node", "", "CoreV1Api", "node", namespaced=False)


class ApiFailure(Exception):
    """A read that failed, as one sentence for the summary; `kind` is the object kind it left unread."""

    def __init__(self, summary: str, kind: str, status: int | None = None) -> None:
        super().__init__(summary)
        self.summary = summary
        self.kind = kind
        self.status = status


def _where(namespace: str | None) -> str:
    return f"in namespace {namespace}" if namespace else "in all namespaces (cluster scope)"


def _grant(verbs: str, resource: str, group: str, cluster: bool) -> str:
    grant = f"grant {verbs} on {resource}"
    if group:
        grant += f' in API group "{group}"'
    return grant + (" with a ClusterRole" if cluster else "")


def _server_message(body: Any) -> str:
    try:
        doc = json.loads(body) if body else {}
    except (TypeError, ValueError):
        return ""
    message = doc.get("message") if isinstance(doc, dict) else None
    return str(message) if message else ""


def describe_error(exc: BaseException, verb: str, resource: str, group: str, kind: str,
                   namespace: str | None, *, cluster_scoped: bool = False, target: str = "") -> ApiFailure:
    """An exception from the client -> the sentence that says what is missing or what went wrong."""
    from kubernetes.client.exceptions import ApiException

    where = f"for {target}" if target else ("" if cluster_scoped else _where(namespace))
    what = f"{verb} {resource}" + (f" {where}" if where else "")
    if isinstance(exc, ApiException) and exc.status:
        message = _server_message(exc.body)
        if exc.status == 403:
            user = _USER.search(message)
            who = f" (as {user.group(1)})" if user else ""
            verbs = "get" if verb == "get" and "/" in resource else "get/list/watch"
            grant = _grant(verbs, resource, group, cluster_scoped or namespace is None)
            return ApiFailure(f"cannot {what}{who}: {grant}", kind, 403)
        if exc.status == 401:
            return ApiFailure(f"cannot {what}: 401 Unauthorized: the API server rejected the credentials "
                              "(expired or revoked token, or a kubeconfig for another cluster?)", kind, 401)
        if exc.status == 404:
            detail = message or "the server could not find the requested resource"
            if not target:
                detail += f" (does this API server serve {group + '/' if group else ''}v1 {resource.split('.')[0]}?)"
            return ApiFailure(f"cannot {what}: 404 Not Found: {detail}", kind, 404)
        detail = message or (exc.reason or "")
        return ApiFailure(f"cannot {what}: HTTP {exc.status} {detail}".rstrip(), kind, exc.status)
    return ApiFailure(f"cannot {what}: {_transport_reason(exc)}", kind)


def _transport_reason(exc: BaseException) -> str:
    """urllib3's errors nest the useful part (refused, timed out, certificate) inside a retry error."""
    import urllib3.exceptions as u3

    inner: BaseException = exc
    if isinstance(exc, u3.MaxRetryError) and exc.reason is not None:
        inner = exc.reason
    if isinstance(inner, u3.ReadTimeoutError | u3.ConnectTimeoutError | TimeoutError):
        return "the API server did not answer in time"
    if isinstance(inner, u3.NewConnectionError):
        return f"cannot connect to the API server: {str(inner).split(': ', 1)[-1]}"
    if isinstance(inner, u3.SSLError):
        return f"TLS error talking to the API server: {inner}"
    text = str(inner).strip().splitlines()[0] if str(inner).strip() else ""
    return f"{type(inner).__name__}: {text}" if text else type(inner).__name__


class KubeReader:
    """One configured API client; every method blocks (call it from a thread)."""

    def __init__(self, kubeconfig: str | None, context: str | None) -> None:
        self.kubeconfig = kubeconfig
        self.context = context
        self._client: Any = None
        self._closed = False

    def connect(self, apis: tuple[str, ...] = ()) -> None:
        """Load the kubeconfig (or the in-cluster ServiceAccount) once; `ApiFailure` when it cannot.

        `apis` (e.g. "AppsV1Api") are imported here, one after the other: the client imports each
        API module and its models on first use, a second or two of CPU that threads importing at
        once only slow down.
        """
        if self._closed:
            raise ApiFailure("the check was stopped", "")
        if self._client is not None:
            return
        import urllib3
        from kubernetes import client, config
        from kubernetes.config.config_exception import ConfigException

        for name in apis:
            getattr(client, name)

        cfg = client.Configuration()
        try:
            if self.kubeconfig is not None:
                path = os.path.expanduser(self.kubeconfig)
                if not os.path.isfile(path):
                    raise ApiFailure(f"kubeconfig {self.kubeconfig}: no such file", "")
                config.load_kube_config(config_file=path, context=self.context, client_configuration=cfg,
                                        persist_config=False)
            else:
                from kubernetes.config.incluster_config import InClusterConfigLoader

                InClusterConfigLoader(token_filename=SA_TOKEN_FILE, cert_filename=SA_CA_FILE).load_and_set(cfg)
        except ConfigException as exc:
            if self.kubeconfig is None:
                raise ApiFailure(f"no in-cluster ServiceAccount ({exc}); outside a pod set kubeconfig", "") from None
            raise ApiFailure(f"kubeconfig {self.kubeconfig}: {exc}", "") from None
        # Connection errors get one more try; reads none (they would outlive the check's deadline).
        cfg.retries = urllib3.Retry(total=1, connect=1, read=0, status=0, other=0, redirect=0)
        # The node proxy's path (stats/summary) is a path parameter: send its slash as a slash, as kubectl does
        # (object names cannot contain one, so no other parameter changes).
        cfg.safe_chars_for_path_param = "/"
        self._client = client.ApiClient(cfg)

    @property
    def host(self) -> str:
        return str(self._client.configuration.host) if self._client is not None else ""

    def reset(self) -> None:
        """Drop the client (after a 401: the next run reloads credentials that may have rotated)."""
        if self._client is not None:
            self._client.close()
            self._client = None

    def list(self, resource: Resource, namespace: str | None, selector: str | None, timeout: float) -> list[dict[str, Any]]:
        """Every object of a list (all pages), as the API's JSON."""
        self.connect()
        from kubernetes import client

        api = getattr(client, resource.api)(self._client)
        args: tuple[str, ...] = ()
        if not resource.namespaced:
            method = getattr(api, f"list_{resource.singular}")
        elif namespace is None:
            method = getattr(api, f"list_{resource.singular}_for_all_namespaces")
        else:
            method, args = getattr(api, f"list_namespaced_{resource.singular}"), (namespace,)
        items: list[dict[str, Any]] = []
        token: str | None = None
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:  # pages keep coming: stop with the check's deadline, not after it
                where = f" {_where(namespace)}" if resource.namespaced else ""
                raise ApiFailure(f"cannot list {resource.qualified}{where}: the API server did not finish the list "
                                 f"in time ({len(items)} objects read)", resource.kind)
            kwargs: dict[str, Any] = {"limit": PAGE_SIZE, "_preload_content": False,
                                      "_request_timeout": max(left, 0.05)}
            if selector:
                kwargs["label_selector"] = selector
            if token:
                kwargs["_continue"] = token
            try:
                page = _json(method(*args, **kwargs))
            except ApiFailure:
                raise
            except Exception as exc:
                raise describe_error(exc, "list", resource.qualified, resource.group, resource.kind, namespace,
                                     cluster_scoped=not resource.namespaced) from None
            items.extend(page.get("items") or [])
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                return items

    def node_stats(self, node: str, timeout: float) -> dict[str, Any]:
        """The kubelet's stats summary of a node, through the API server's node proxy."""
        self.connect()
        from kubernetes import client

        api = client.CoreV1Api(self._client)
        try:
            return _json(api.connect_get_node_proxy_with_path(node, "stats/summary", _preload_content=False,
                                                              _request_timeout=max(timeout, 0.05)))
        except Exception as exc:
            raise describe_error(exc, "get", "nodes/proxy", "", "PersistentVolumeClaim", None,
                                 cluster_scoped=True, target=f"node {node} (kubelet stats summary)") from None

    def close(self) -> None:
        self._closed = True
        self.reset()


def _json(response: Any) -> dict[str, Any]:
    try:
        data = response.data
    finally:
        release = getattr(response, "release_conn", None)
        if release is not None:
            release()
    try:
        doc = json.loads(data)
    except ValueError:
        raise ValueError(f"the API server answered {len(data)} bytes that are not JSON") from None
    if not isinstance(doc, dict):
        raise ValueError("the API server answered JSON that is not an object")
    return doc
