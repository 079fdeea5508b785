"""Email receiver against a real SMTP server on 127.0.0.1 (aiosmtpd), STARTTLS with a generated cert."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.config import ConfigError, load_config
from agent.core import AlertState, Severity
from agent.notify.base import Outcome
from agent.notify.email import EmailReceiver, EmailSettings, thread_root
from agent.notify.registry import build
from tests.agentproc import AgentProcess, free_port
from tests.checks.certs import Issued, make_ca, make_leaf, server_context
from tests.notify.conftest import Clock, make_alert, make_notification
from tests.notify.smtpserver import SilentServer, SmtpServer

PASSWORD = "smtp-pa55-wörd-secret"


@pytest.fixture
def pki(tmp_path: Path) -> tuple[Issued, Issued]:
    ca = make_ca(tmp_path / "pki")
    return ca, make_leaf(tmp_path / "pki", ca)


@pytest.fixture
def tls_server(pki: tuple[Issued, Issued]) -> Iterator[SmtpServer]:
    with SmtpServer(server_context(pki[1]), logins={"agent": PASSWORD}) as server:
        yield server


def receiver(port: int, ca: Issued | None, tmp_path: Path, **smtp: Any) -> EmailReceiver:
    secret = tmp_path / "smtp-password"
    secret.write_text(PASSWORD + "\n")
    settings: dict[str, Any] = {
        "to": ["oncall@example.com", "SRE Team <sre@example.com>"], "from": "sre-agent <alerts@example.com>",
        "subject_prefix": "[prod]", "timeout": "3s",
        "smtp": {"host": "127.0.0.1", "port": port, "starttls": True, "username": "agent",
                 "password_file": str(secret), **({"ca_file": str(ca.cert_file)} if ca else {}), **smtp}}
    r = build("email", "email-sre", settings)
    assert isinstance(r, EmailReceiver)
    r.clock = Clock()
    return r


async def test_starttls_login_and_both_bodies_with_slacks_content(tls_server: SmtpServer, pki: tuple[Issued, Issued],
                                                                  tmp_path: Path) -> None:
    r = receiver(tls_server.port, pki[0], tmp_path)
    alert = make_alert(summary="GET /healthz returned 503 <script>alert(1)</script>")
    delivery = await r.send(make_notification(alert, extra={"new": [alert.dedup_key]}))
    assert delivery.outcome == Outcome.SENT, delivery.detail
    assert "queued as 4711" in delivery.detail
    [mail] = tls_server.received
    assert mail.tls and mail.login == "agent"
    assert sorted(mail.rcpt_tos) == ["oncall@example.com", "sre@example.com"]
    msg = mail.message
    assert msg["Subject"] == "[prod] CRITICAL api-health: GET /healthz returned 503 <script>alert(1)</script>"
    assert msg["From"] == "sre-agent <alerts@example.com>" and msg["Auto-Submitted"] == "auto-generated"
    assert msg.get_content_type() == "multipart/alternative"
    plain, page = mail.part("plain"), mail.part("html")
    for text in (plain, page):  # what Slack shows: severity, status, observations, labels, links, time firing
        assert "CRITICAL: api-health" in text and "latency" in text and "2.3s" in text and "503" in text
        assert "service" in text and "https://runbooks.example.com/http-endpoint-down.md" in text
        assert "Firing for 12m" in text
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert PASSWORD not in mail.data.decode("utf-8", "replace")


async def test_an_incident_threads_first_mail_repeat_and_resolve(tls_server: SmtpServer, pki: tuple[Issued, Issued],
                                                                 tmp_path: Path) -> None:
    r = receiver(tls_server.port, pki[0], tmp_path)
    firing = make_alert()
    first = make_notification(firing, idempotency_key="n1", extra={"new": [firing.dedup_key]})
    again = make_notification(firing, idempotency_key="n1", extra={"new": [firing.dedup_key]})  # an outbox retry
    repeat = make_notification(firing, idempotency_key="n2", extra={"repeat": True, "new": []})
    resolved = make_notification(make_alert(state=AlertState.RESOLVED), idempotency_key="n3", extra={"new": []})
    for n in (first, again, repeat, resolved):
        assert (await r.send(n)).outcome == Outcome.SENT
    m1, m2, m3, m4 = ({k: str(v).strip() for k, v in m.message.items()} for m in tls_server.received)
    root = thread_root(firing, "oncall", "example.com")
    assert root == f"<api-health-down.{int(firing.starts_at)}.oncall@example.com>"
    assert m1["Message-ID"] == root and "In-Reply-To" not in m1
    assert m2["Message-ID"] == root  # the same message: a client shows it once
    assert m3["In-Reply-To"] == root and m3["Message-ID"] != root
    assert m4["In-Reply-To"] == root and m4["References"] == root
    assert m4["Subject"].startswith("[prod] RESOLVED api-health:")
    resolve_text = tls_server.received[3].part("plain")
    assert "Resolved: api-health" in resolve_text and "Lasted:" in resolve_text
    assert len({m1["Message-ID"], m3["Message-ID"], m4["Message-ID"]}) == 3


async def test_an_escalation_tells_the_old_receiver_where_the_alert_went(tls_server: SmtpServer,
                                                                       pki: tuple[Issued, Issued],
                                                                       tmp_path: Path) -> None:
    from agent.core import Handoff

    moved = make_alert(state=AlertState.MOVED, severity=Severity.CRITICAL,
                       moved_to=Handoff("escalated", Severity.CRITICAL, Severity.WARNING, ("pagerduty",)))
    n = make_notification(moved, kind="moved", extra={"new": []})
    r = receiver(tls_server.port, pki[0], tmp_path)
    assert r.accepts(n) and (await r.send(n)).outcome == Outcome.SENT
    mail = tls_server.received[0]
    assert mail.message["Subject"].startswith("[prod] ESCALATED api-health:")
    assert str(mail.message["In-Reply-To"]).strip() == thread_root(moved, "oncall", "example.com")
    plain = mail.part("plain")
    assert "Escalated to CRITICAL: api-health" in plain and "Now with:" in plain and "pagerduty" in plain
    assert "(was warning)" in plain


async def test_a_group_is_one_mail_referencing_each_incident(tls_server: SmtpServer, pki: tuple[Issued, Issued],
                                                             tmp_path: Path) -> None:
    r = receiver(tls_server.port, pki[0], tmp_path)
    a, b = make_alert("api-a"), make_alert("api-b", severity=Severity.WARNING)
    assert (await r.send(make_notification(a, b))).outcome == Outcome.SENT
    msg = tls_server.received[0].message
    assert msg["Subject"] == "[prod] [FIRING:2] service=api"
    assert msg["References"].split() == [thread_root(a, "oncall", "example.com"), thread_root(b, "oncall", "example.com")]
    plain = tls_server.received[0].part("plain")
    assert plain.index("CRITICAL: api-a") < plain.index("WARNING: api-b")


@pytest.mark.parametrize(("where", "reply", "outcome"), [
    ("data", "451 4.3.0 local error, try again later", Outcome.RETRY),
    ("data", "452 4.3.1 insufficient system storage", Outcome.RETRY),
    ("data", "554 5.7.1 message refused as spam", Outcome.FAILED),
    ("rcpt", "450 4.2.1 mailbox busy", Outcome.RETRY),
    ("rcpt", "550 5.1.1 no such user", Outcome.FAILED),
])
async def test_4xx_is_retried_and_5xx_is_permanent(tls_server: SmtpServer, pki: tuple[Issued, Issued], tmp_path: Path,
                                                   where: str, reply: str, outcome: Outcome) -> None:
    replies = tls_server.handler.data_replies if where == "data" else tls_server.handler.rcpt_replies
    replies.extend([reply] * 2)  # both recipients, at RCPT
    delivery = await receiver(tls_server.port, pki[0], tmp_path).send(make_notification())
    assert delivery.outcome == outcome, delivery.detail
    assert reply.split()[0] in delivery.detail and reply.split()[-1] in delivery.detail
    assert PASSWORD not in delivery.detail


async def test_one_refused_recipient_of_two_is_sent_and_said(tls_server: SmtpServer, pki: tuple[Issued, Issued],
                                                             tmp_path: Path) -> None:
    tls_server.handler.rcpt_replies.append("550 5.1.1 no such user")
    delivery = await receiver(tls_server.port, pki[0], tmp_path).send(make_notification())
    assert delivery.outcome == Outcome.SENT
    assert "refused for oncall@example.com (550" in delivery.detail
    assert tls_server.received[0].rcpt_tos == ["sre@example.com"]


async def test_wrong_password_is_permanent_and_not_echoed(tls_server: SmtpServer, pki: tuple[Issued, Issued],
                                                          tmp_path: Path) -> None:
    r = receiver(tls_server.port, pki[0], tmp_path)
    r.config = r.config.model_copy(update={"smtp": r.config.smtp.model_copy(update={"username": "intruder"})})
    delivery = await r.send(make_notification())
    assert delivery.outcome == Outcome.FAILED and "535" in delivery.detail
    assert PASSWORD not in delivery.detail and not tls_server.received


async def test_an_untrusted_certificate_is_refused_for_good(tls_server: SmtpServer, tmp_path: Path) -> None:
    delivery = await receiver(tls_server.port, None, tmp_path).send(make_notification())
    assert delivery.outcome == Outcome.FAILED
    assert "not trusted" in delivery.detail and not tls_server.received


async def test_a_server_without_starttls_is_not_silently_downgraded(tmp_path: Path) -> None:
    with SmtpServer(None) as plain:
        delivery = await receiver(plain.port, None, tmp_path).send(make_notification())
        assert delivery.outcome == Outcome.FAILED and "STARTTLS" in delivery.detail
        assert not plain.received


async def test_plain_smtp_to_a_local_relay(tmp_path: Path) -> None:
    with SmtpServer(None) as relay:
        r = build("email", "relay", {"to": ["a@example.com"], "from": "b@example.com",
                                     "smtp": {"host": "127.0.0.1", "port": relay.port, "starttls": False}})
        assert (await r.send(make_notification())).outcome == Outcome.SENT
        assert not relay.received[0].tls and relay.received[0].mail_from == "b@example.com"


async def test_no_banner_within_the_timeout_is_retried() -> None:
    async with SilentServer() as silent:
        r = build("email", "slow", {"to": ["a@example.com"], "from": "b@example.com", "timeout": "300ms",
                                    "smtp": {"host": "127.0.0.1", "port": silent.port}})
        delivery = await r.send(make_notification())
    assert delivery.outcome == Outcome.RETRY
    assert delivery.detail == f"email slow: no answer from 127.0.0.1:{silent.port} within 0.3s"


async def test_connection_refused_is_retried() -> None:
    r = build("email", "down", {"to": ["a@example.com"], "from": "b@example.com",
                                "smtp": {"host": "127.0.0.1", "port": free_port()}})
    delivery = await r.send(make_notification())
    assert delivery.outcome == Outcome.RETRY and "email down:" in delivery.detail


async def test_send_resolved_false_sends_nothing_for_a_resolve(tmp_path: Path) -> None:
    r = build("email", "x", {"to": ["a@example.com"], "from": "b@example.com", "send_resolved": False,
                             "smtp": {"host": "127.0.0.1", "port": free_port()}})
    n = make_notification(make_alert(state=AlertState.RESOLVED))
    assert not r.accepts(n)
    assert (await r.send(n)).detail == "nothing to send"


@pytest.mark.parametrize(("email", "message"), [
    ({"to": [], "from": "a@example.com", "smtp": {"host": "h"}}, "to: List should have at least 1 item"),
    ({"to": ["not-an-address"], "from": "a@example.com", "smtp": {"host": "h"}},
     "to: Value error, to[0]: 'not-an-address' is not an email address"),
    ({"to": ["a@example.com"], "from": "x@example.com\nBcc: evil@example.com", "smtp": {"host": "h"}},
     "from: an address cannot contain a line break"),
    ({"to": ["a@example.com"], "from": "b@example.com", "smtp": {"host": "h", "tls": True}},
     "set tls: true (SMTPS) or starttls: true, not both"),
    ({"to": ["a@example.com"], "from": "b@example.com", "smtp": {"host": "h", "starttls": False, "username": "u",
                                                                 "password": "p4ssword"}},
     "a password would travel unencrypted"),
    ({"to": ["a@example.com"], "from": "b@example.com", "smtp": {"host": "h", "username": "u"}},
     "username and password (or password_file) go together"),
    ({"to": ["a@example.com"], "from": "b@example.com", "smtp": {"host": "h", "password_file": "/nonexistent/pw"}},
     "secret file '/nonexistent/pw' does not exist"),
    ({"to": ["a@example.com"], "form": "b@example.com", "smtp": {"host": "h"}}, "unknown key 'form'; did you mean 'from'?"),
])
def test_config_errors_name_the_field(tmp_path: Path, email: dict[str, Any], message: str) -> None:
    import yaml

    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump({"alerting": {"route": {"receiver": "mail"},
                                              "receivers": [{"name": "mail", "email": email}]}}))
    with pytest.raises(ConfigError) as exc:
        load_config(p)
    assert "alerting.receivers[0].email" in str(exc.value)
    assert message.removeprefix("to: Value error, ") in str(exc.value)


def test_settings_defaults_and_port() -> None:
    s = EmailSettings.model_validate({"to": ["a@example.com"], "from": "b@example.com", "smtp": {"host": "mx"}})
    assert s.smtp.starttls and s.smtp.effective_port == 587 and s.subject_prefix == "[sre-agent]"
    tls = s.smtp.model_validate({"host": "mx", "tls": True, "starttls": False})
    assert tls.effective_port == 465


def test_an_agent_pages_by_email_through_the_outbox(tmp_path: Path, pki: tuple[Issued, Issued]) -> None:
    """The daemon end to end: a failing check fires, the outbox hands the alert to the SMTP server."""
    secret = tmp_path / "pw"
    secret.write_text(PASSWORD)
    port = free_port()
    with SmtpServer(server_context(pki[1]), logins={"agent": PASSWORD}) as smtp:
        config = tmp_path / "agent.yaml"
        config.write_text(f"""
agent: {{listen: 127.0.0.1:{port}, state_dir: {tmp_path / 'state'}}}
defaults: {{interval: 200ms, timeout: 2s}}
checks:
  - {{name: broken, type: command, command: ["sh", "-c", "echo disk full; exit 2"], alert: {{after: 1}}}}
alerting:
  route: {{receiver: email-sre, group_by: [check], group_wait: 0s}}
  receivers:
    - name: email-sre
      email:
        to: [oncall@example.com]
        from: alerts@example.com
        subject_prefix: "[test]"
        smtp: {{host: 127.0.0.1, port: {smtp.port}, starttls: true, username: agent, password_file: {secret},
               ca_file: {pki[0].cert_file}}}
""")
        agent = AgentProcess(config, port).start()
        try:
            deadline = time.monotonic() + 20
            while not smtp.received and time.monotonic() < deadline:
                time.sleep(0.1)
        finally:
            agent.stop()
        assert smtp.received, agent.output()
        msg = smtp.received[0].message
        assert msg["Subject"] == "[test] CRITICAL broken: disk full"
        assert str(msg["Message-ID"]).strip().startswith("<") and msg["In-Reply-To"] is None
        assert msg["X-SRE-Agent-Notification"]
        assert PASSWORD not in agent.output()
