"""`sre-agent notify test RECEIVER`: send a clearly marked test alert through a receiver, now.

The first thing anyone does after configuring Slack or PagerDuty is to ask
"does it arrive?". This builds the receiver from the config exactly as the
daemon does and calls it directly (not through the outbox: nothing is
queued, retried or remembered), then prints what the receiver answered, so a
wrong webhook URL, a bad routing key or a refused login shows up at once.
"""

from __future__ import annotations

import asyncio
import getpass
import socket
import sys
import time
import uuid

import click

from agent.cli.common import config_option, load_or_exit
from agent.core import Alert, AlertState, Severity, Status

TEST_CHECK = "sre-agent-test"
#: receivers that keep the alert open until they get its resolve
STATEFUL_KINDS = ("pagerduty", "alertmanager")


def test_alert(receiver: str, severity: Severity, now: float, agent_url: str | None) -> Alert:
    """An alert no one can mistake for a real one: the check, the summary and a label say TEST."""
    try:
        who = getpass.getuser()
    except (KeyError, OSError):
        who = "unknown user"
    return Alert(
        check=TEST_CHECK, type="test", state=AlertState.FIRING, severity=severity,
        summary=(f"[TEST] sre-agent test alert for receiver {receiver!r}, sent by {who} on {socket.gethostname()} "
                 "with `sre-agent notify test`. If you can read this, the receiver works. No action needed."),
        dedup_key=f"{TEST_CHECK}-{uuid.uuid4().hex[:16]}", labels={"test": "true", "receiver": receiver},
        status=Status.WARNING if severity == Severity.WARNING else Status.CRITICAL, starts_at=now,
        generator_url=agent_url)


def register(main: click.Group) -> None:
    @main.group()
    def notify() -> None:
        """Receiver tools."""

    @notify.command("test")
    @config_option
    @click.argument("receiver")
    @click.option("--severity", type=click.Choice([s.value for s in Severity]), default=Severity.WARNING.value,
                  show_default=True, help="severity of the test alert (critical may page someone)")
    @click.option("--resolve", is_flag=True, help="send the resolve afterwards (closes PagerDuty's test incident)")
    def notify_test(config_path: str | None, receiver: str, severity: str, resolve: bool) -> None:
        """Send a test alert through RECEIVER (not the outbox) and print its answer.

        Exit code 0 if the receiver accepted it, 1 if not.
        """
        from agent import logs
        from agent.alerting.engine import build_receiver
        from agent.alerting.lifecycle import agent_url
        from agent.notify.base import Notification, Outcome

        config = load_or_exit(config_path)
        logs.setup(config.agent.log_level, config.agent.log_format)  # the log receiver writes here
        alerting = getattr(config, "alerting", None)
        cfg = alerting.receiver(receiver) if alerting is not None else None
        if cfg is None:
            names = ", ".join(r.name for r in alerting.receivers) if alerting is not None else ""
            click.echo(f"unknown receiver {receiver!r}; configured receivers: {names or '(none)'}", err=True)
            sys.exit(2)
        now = time.time()
        alert = test_alert(receiver, Severity(severity), now, agent_url(config.agent.external_url, config.agent.listen))
        rcv = build_receiver(cfg)
        steps = [("test alert", alert)]
        if resolve:
            steps.append(("resolve", Alert.from_dict({**alert.to_dict(), "state": AlertState.RESOLVED.value,
                                                      "ends_at": now})))

        async def send_all() -> bool:
            ok = True
            guard = max(30.0, 3 * rcv.settings.timeout.total_seconds())
            try:
                for what, a in steps:
                    n = Notification(receiver=receiver, group_key=f"{{}}:{TEST_CHECK}", group_labels={},
                                     alerts=[a], idempotency_key=uuid.uuid4().hex, created_at=time.time(),
                                     kind="firing" if a.state == AlertState.FIRING else "resolved",
                                     extra={"new": [a.dedup_key] if a.state == AlertState.FIRING else [],
                                            "test": True})
                    try:
                        async with asyncio.timeout(guard):
                            delivery = await rcv.send(n)
                    except TimeoutError:
                        click.echo(f"{what}: no outcome from {receiver} within {guard:g}s", err=True)
                        ok = False
                        continue
                    accepted = delivery.outcome == Outcome.SENT
                    ok = ok and accepted
                    word = {Outcome.SENT: "accepted", Outcome.RETRY: "not accepted (would be retried)",
                            Outcome.FAILED: "refused (permanent)"}[delivery.outcome]
                    click.echo(f"{what} -> {receiver} ({cfg.kind}): {word}")
                    if delivery.detail:
                        click.echo(f"  answer: {delivery.detail}")
                    if delivery.retry_after is not None:
                        click.echo(f"  retry after: {delivery.retry_after:g}s")
                    if not accepted:
                        break
            finally:
                await rcv.close()
            return ok

        ok = asyncio.run(send_all())
        if ok and not resolve and cfg.kind in STATEFUL_KINDS:
            click.echo(f"the test alert stays open in {cfg.kind} until resolved there; --resolve sends the resolve")
        sys.exit(0 if ok else 1)
