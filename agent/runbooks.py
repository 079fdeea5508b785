"""Which runbook an alert links to when its check does not name one.

Every alert carries a `runbook_url` (the on-call person's first click), so
each check type and alert family the agent ships has a default runbook in
`runbooks/`. A check's own `runbook:` wins; otherwise the alerting engine
asks `default_runbook(type, aspect)` and joins the path to
`alerting.runbook_base_url`. tests/test_runbooks.py proves every file here
exists and has the six sections an SRE expects.
"""

from __future__ import annotations

#: check type (or `type.aspect` for a narrower alert family) -> runbook path, relative to the repo root
RUNBOOK_FAMILIES: dict[str, str] = {
    # health checks
    "http": "runbooks/http-endpoint-down.md",
    "http.latency": "runbooks/slow-api-responses.md",
    "tls": "runbooks/tls-certificate-expiring.md",
    "http.tls": "runbooks/tls-certificate-expiring.md",
    "tcp": "runbooks/tcp-port-down.md",
    "dns": "runbooks/dns-resolution-failed.md",
    "host": "runbooks/host-resources.md",
    "host.cpu": "runbooks/host-cpu-high.md",
    "host.memory": "runbooks/host-memory-high.md",
    "host.disk": "runbooks/disk-filling.md",
    "process": "runbooks/process-missing.md",
    "command": "runbooks/command-check-failed.md",
    "file": "runbooks/file-stale.md",
    # SLOs
    "slo": "runbooks/slo-burn.md",
    # backups
    "backup": "runbooks/backup-stale.md",
    "backup.failed": "runbooks/backup-failed.md",
    "backup.restore": "runbooks/restore-drill-failed.md",
    "restore": "runbooks/restore-drill-failed.md",
    # data freshness
    "freshness": "runbooks/data-stale.md",
    "data_product": "runbooks/data-stale.md",
    # Kubernetes workloads
    "kubernetes": "runbooks/kubernetes-workloads.md",
    # the agent itself
    "agent.notification": "runbooks/agent-notification-failing.md",
}


def default_runbook(check_type: str, aspect: str | None = None) -> str | None:
    """The narrowest runbook known: `host` + `disk` -> disk-filling.md, else the type's own."""
    if aspect:
        narrow = RUNBOOK_FAMILIES.get(f"{check_type}.{aspect}")
        if narrow:
            return narrow
    return RUNBOOK_FAMILIES.get(check_type)

