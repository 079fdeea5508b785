"""The alerting QA regressions use the alerting tests' fixtures (fresh store, clock, receivers)."""

from tests.alerting.conftest import clock, receivers, store

__all__ = ["clock", "receivers", "store"]
