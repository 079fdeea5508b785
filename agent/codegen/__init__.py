"""Generated artifacts: what the agent writes for other tools from the config it runs.

`rules` builds Prometheus recording and alerting rules (one file per SLO plus
one for every check); dashboards go beside it. Generators read validated
config models and the metric names the agent emits, and never run checks.
"""
