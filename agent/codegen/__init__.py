"""Generated artifacts: what the agent writes for other tools from the config it runs.

`rules` builds Prometheus recording and alerting rules (one file per SLO plus
one for every check); `dashboards` builds the Grafana dashboards of
`dashboards/*.dashboard.py`, whose shared grafanalib pieces are in `grafana`
(imported only by the `dashboards` commands). Generators read validated
config models and the metric names the agent emits, and never run checks.
"""
