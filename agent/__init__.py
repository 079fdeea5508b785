"""sre-agent: one daemon for health, SLO, backup and freshness checks."""

__version__ = "0.1.0"
