"""SLO tests: config, evaluation, probe history, a real Prometheus, rules and promtool."""
