"""QA regressions for the core agent and health checks (issue 2)."""
