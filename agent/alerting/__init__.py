"""Alerting: check results -> alert state -> routes -> durable outbox -> receivers."""
