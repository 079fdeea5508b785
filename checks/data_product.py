"""Data products (the data-mesh guide's DataProduct documents) as checks."""

from __future__ import annotations

from typing import Any

from checks.base import CheckConfig, Model


class DataProductEntry(Model):
    apiVersion: str
    kind: str

    def to_checks(self, config: Any) -> list[CheckConfig]:
        return []
