"""Receivers: deliver notifications to Slack, PagerDuty, Alertmanager, a webhook or the log.

Receivers know nothing of checks: they get a `Notification` (alerts of one
group) and answer with a `Delivery` outcome; the outbox (agent.alerting)
owns retries and durability.
"""
