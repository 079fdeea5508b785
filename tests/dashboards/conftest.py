"""The dashboards' proof runs a restore drill: it shares the session's PostgreSQL cluster (tests/pgcluster.py)."""

from tests.pgcluster import pg_cluster  # noqa: F401
