"""Freshness and data product tests share the session's throwaway PostgreSQL cluster (tests/pgcluster.py)."""

from tests.pgcluster import pg_cluster  # noqa: F401
