"""Config models of the `alerting:` section (routes, receivers, inhibit, silences)."""

from __future__ import annotations

from pydantic import Field

from checks.base import Model


class AlertingConfig(Model):
    runbook_base_url: str | None = Field(None, description="base URL that relative `runbook:` paths are joined to")
