"""QA regression tests for backups, data freshness and SLOs (issues 4 and 5)."""
