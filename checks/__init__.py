"""Check types: one module per type, found by `agent.registry`'s discovery.

Adding a type is adding one module here, named after its `type`, with one
`Check` subclass; nothing else changes. Modules must import cheaply: heavy clients (SQLAlchemy,
kubernetes, boto3) are imported inside `run()`. `registry()` and `get_type()`
are kept for plugin authors and tests; the agent itself asks `agent.registry`.
"""

from __future__ import annotations

from agent.check import Check, CheckConfig
from agent.registry import check_types, get_type

__all__ = ["Check", "CheckConfig", "registry", "get_type"]

#: config sections this package registers: key -> its module (`agent.registry` imports them for a
#: config, `sre-agent check` only those of the sections it has; check types are imported only when
#: a config names them)
SECTION_MODULES = {"data_products": "checks.data_product"}


def registry() -> dict[str, type[Check]]:
    """Map YAML `type:` -> Check class, for every module in this package."""
    return check_types()
