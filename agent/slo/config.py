"""Config models of the `slos:` section."""

from __future__ import annotations

from typing import Any

from checks.base import CheckConfig, Model


class SloEntry(Model):
    name: str

    def to_checks(self, config: Any) -> list[CheckConfig]:
        return []
