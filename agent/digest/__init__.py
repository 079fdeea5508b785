"""The daily digest (the morning checklist): `digest:` config, building it, sending it once a day.

`config` holds the section (registered at import, light: the config loader
imports it); `build` assembles a `agent.notify.digest.Digest` from the
running agent (latest results, alerting's incident log and alerts, SLO,
backup, freshness and TLS observations); `component` schedules it in the
daemon and queues it through the outbox, once per day even across restarts,
and serves it at `GET /api/v1/digest` for `sre-agent digest --print`.
"""
