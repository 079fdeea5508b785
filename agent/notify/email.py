"""Email receiver: the same incident Slack shows, as HTML and plain text, threaded per alert.

Sent with aiosmtplib over STARTTLS (required by default: a server that does
not offer it is refused, never silently downgraded), implicit TLS, or plain
SMTP to a local relay. Mail clients thread an incident through its headers:
the first mail about an alert has a `Message-ID` derived from the alert's
dedup key and start (stable, so a re-send after a crash is the same message),
and every later mail of that incident (repeats, changes, the resolve) names
it in `In-Reply-To` and `References`.

SMTP says what a failure means: a 4xx reply (421 busy, 450 mailbox busy,
451 local error, 452 out of storage) is worth retrying, a 5xx reply (550
no such user, 535 bad credentials, 554 refused) is permanent; no answer
within `timeout` and a dropped connection are retried. A certificate that
does not verify is a permanent failure: retrying will not fix the config.
aiosmtplib is imported by the first mail sent, not with the settings model.
"""

from __future__ import annotations

import asyncio
import html
import re
import ssl
from email.message import EmailMessage
from email.utils import formatdate, parseaddr
from pathlib import Path
from typing import ClassVar

from pydantic import Field, field_validator, model_validator

from agent import humanize
from agent.check import Model
from agent.core import Alert, AlertState
from agent.secrets import Secret

from . import digest, render
from .base import ConfiguredReceiver, Delivery, Notification, Outcome, ReceiverSettings
from .digest import Digest
from .http import DETAIL_LIMIT, scrub

SUBJECT_MAX = 200
#: References kept for a group mail (RFC 5322 has no limit; some servers cut long header lines)
REFERENCES_MAX = 20
_ADDRESS = re.compile(r"^[^@\s<>()\[\],;:\"]+@[^@\s<>()\[\],;:\"]+\.?[^@\s<>()\[\],;:\"]*$")
_DOMAIN_CHARS = re.compile(r"[^A-Za-z0-9.-]")
#: what may not appear in the left part of a Message-ID (RFC 5322 dot-atom-text, conservatively)
_ID_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")
_SEVERITY_COLOR = {"info": "#1d72b8", "warning": "#d97706", "critical": "#c81e1e", "emergency": "#7e1d1d"}
_RESOLVED_COLOR = "#15803d"
_MOVED_COLOR = "#6b7280"


def check_address(value: str, field: str) -> str:
    """An address as `addr@example.com` or `Name <addr@example.com>`; no header injection."""
    if "\r" in value or "\n" in value:
        raise ValueError(f"{field}: an address cannot contain a line break")
    _, addr = parseaddr(value)
    if not addr or not _ADDRESS.match(addr):
        raise ValueError(f"{field}: {value!r} is not an email address; expected e.g. sre@example.com "
                         "or 'SRE <sre@example.com>'")
    return value


class SmtpSettings(Model):
    """How to reach the mail server."""

    host: str = Field(description="SMTP server host name or IP address")
    port: int | None = Field(None, ge=1, le=65535, description="default 587 with starttls, 465 with tls, else 25")
    starttls: bool = Field(True, description="upgrade the connection with STARTTLS; a server that cannot is refused")
    tls: bool = Field(False, description="TLS from the first byte (SMTPS, port 465) instead of STARTTLS")
    username: str | None = Field(None, description="login (needs starttls or tls: credentials never go in clear)")
    password: Secret | None = Field(None, description="password for username (or password_file)")
    ca_file: Path | None = Field(None, description="PEM bundle of CAs to trust instead of the system store")

    @model_validator(mode="after")
    def _shape(self) -> SmtpSettings:
        if self.tls and self.starttls:
            raise ValueError("set tls: true (SMTPS) or starttls: true, not both; with tls: true set starttls: false")
        if (self.username is None) != (self.password is None):
            raise ValueError("username and password (or password_file) go together")
        if self.username is not None and not (self.tls or self.starttls):
            raise ValueError("a password would travel unencrypted: set starttls: true or tls: true")
        return self

    @field_validator("host")
    @classmethod
    def _host(cls, v: str) -> str:
        if not v.strip() or any(c.isspace() for c in v) or "/" in v:
            raise ValueError(f"host must be a host name or IP address, e.g. smtp.example.com, got {v!r}")
        return v

    @field_validator("ca_file")
    @classmethod
    def _ca(cls, v: Path | None) -> Path | None:
        if v is not None and not v.is_file():
            raise ValueError(f"ca_file {str(v)!r} does not exist")
        return v

    @property
    def effective_port(self) -> int:
        if self.port is not None:
            return self.port
        return 465 if self.tls else 587 if self.starttls else 25


class EmailSettings(ReceiverSettings):
    to: list[str] = Field(min_length=1, description="recipients, e.g. [sre@example.com]")
    from_: str = Field(alias="from", description="sender address, e.g. 'sre-agent <alerts@example.com>'")
    smtp: SmtpSettings
    subject_prefix: str = Field("[sre-agent]", max_length=100, description="put before every subject")
    example: ClassVar[str] = "{to: [sre@example.com], from: alerts@example.com, smtp: {host: smtp.example.com}}"

    @field_validator("to")
    @classmethod
    def _to(cls, v: list[str]) -> list[str]:
        for i, address in enumerate(v):
            check_address(address, f"to[{i}]")
        if len(set(v)) != len(v):
            raise ValueError("a recipient is listed twice")
        return v

    @field_validator("from_")
    @classmethod
    def _from(cls, v: str) -> str:
        return check_address(v, "from")

    @field_validator("subject_prefix")
    @classmethod
    def _prefix(cls, v: str) -> str:
        if "\r" in v or "\n" in v:
            raise ValueError("subject_prefix cannot contain a line break")
        return v

    @property
    def domain(self) -> str:
        """The sender's domain, for Message-IDs."""
        _, addr = parseaddr(self.from_)
        return _DOMAIN_CHARS.sub("", addr.rpartition("@")[2]) or "sre-agent.invalid"


# -- threading ------------------------------------------------------------------------------

def _id_part(text: str) -> str:
    return _ID_UNSAFE.sub("-", text)


def thread_root(alert: Alert, receiver: str, domain: str) -> str:
    """The Message-ID of the first mail this receiver sent about this alert (this incident: its start is in it)."""
    return f"<{_id_part(alert.dedup_key)}.{int(alert.starts_at)}.{_id_part(receiver)}@{domain}>"


def thread_headers(notification: Notification, alerts: list[Alert], domain: str) -> dict[str, str]:
    """Message-ID, and In-Reply-To / References pointing at each incident's first mail."""
    roots = [thread_root(a, notification.receiver, domain) for a in alerts]
    if len(alerts) == 1:
        alert = alerts[0]
        new = notification.extra.get("new") or ()
        if alert.state == AlertState.FIRING and alert.dedup_key in new:
            return {"Message-ID": roots[0]}
        suffix = "resolved" if alert.state == AlertState.RESOLVED else notification.idempotency_key[:12]
        own = roots[0].replace("@", f".{_id_part(suffix)}@", 1)
        return {"Message-ID": own, "In-Reply-To": roots[0], "References": roots[0]}
    return {"Message-ID": f"<{_id_part(notification.idempotency_key)}@{domain}>", "In-Reply-To": roots[0],
            "References": " ".join(roots[:REFERENCES_MAX])}


# -- content (the same parts, in the same order, as the Slack message) ----------------------------

def _order(alerts: list[Alert]) -> list[Alert]:
    """Firing first, then those handed to other receivers, then resolved; worst first within each."""
    rank = {AlertState.FIRING: 0, AlertState.MOVED: 1, AlertState.RESOLVED: 2}
    return sorted(alerts, key=lambda a: (rank.get(a.state, 0), -a.severity.rank, a.check))


def _summary(alert: Alert) -> str:
    text = alert.summary or "(no summary)"
    handoff = render.handoff_line(alert)
    return f"{handoff.capitalize()}. {text}" if handoff else text


def _fields(alert: Alert, now: float) -> list[tuple[str, str]]:
    """What an on-call person looks at first, then observations and labels (as in the Slack message)."""
    return [*render.head_facts(alert, now), *render.observation_pairs(alert.observations),
            *sorted(alert.labels.items())]


def _links(alert: Alert) -> list[tuple[str, str]]:
    return [(label, url) for label, url in (("Runbook", alert.runbook_url), ("Check", alert.generator_url))
            if url and url.startswith(("https://", "http://"))]


def _context(alert: Alert, now: float) -> str:
    parts = [render.elapsed(alert, now).capitalize(), f"check {alert.check} ({alert.type})"]
    if alert.starts_at > 0:
        parts.append(f"since {humanize.when(alert.starts_at)}")
    return " · ".join(p for p in parts if p)


def subject(notification: Notification, alerts: list[Alert], prefix: str) -> str:
    if len(alerts) == 1:
        alert = alerts[0]
        text = f"{render.alert_title(alert)}: {' '.join((alert.summary or '(no summary)').split())}"
    else:
        text = render.group_title(notification, _order(alerts))
    return render.truncate(f"{prefix} {text}".strip(), SUBJECT_MAX)


def plain_body(notification: Notification, alerts: list[Alert], now: float) -> str:
    alerts = _order(alerts)
    lines: list[str] = []
    if len(alerts) > 1:
        lines += [render.group_title(notification, alerts), ""]
    for alert in alerts:
        fields = _fields(alert, now)
        lines += [render.heading(alert), "", _summary(alert), ""]
        width = max(len(k) for k, _ in fields)
        lines += [f"  {k + ':':<{width + 1}} {v}" for k, v in fields]
        links = _links(alert)
        if links:
            lines += [""] + [f"{label}: {url}" for label, url in links]
        lines += ["", _context(alert, now), "", "-" * 60, ""]
    lines.append(f"{len(alerts)} alert{'s' if len(alerts) != 1 else ''} · receiver {notification.receiver} · sre-agent")
    return "\n".join(lines) + "\n"


def _e(text: str) -> str:
    return html.escape(text, quote=True)


def html_body(notification: Notification, alerts: list[Alert], now: float) -> str:
    """Self-contained HTML (inline styles, no images or remote content), every text escaped."""
    alerts = _order(alerts)
    parts = ['<!DOCTYPE html><html><head><meta charset="utf-8"><meta name="color-scheme" content="light dark">'
             f"<title>{_e(subject(notification, alerts, ''))}</title></head>"
             '<body style="font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;font-size:14px;'
             'line-height:1.45;color:#111;margin:0;padding:16px">']
    if len(alerts) > 1:
        parts.append(f'<h1 style="font-size:18px;margin:0 0 12px">{_e(render.group_title(notification, alerts))}</h1>')
    for alert in alerts:
        color = _RESOLVED_COLOR if alert.state == AlertState.RESOLVED else _SEVERITY_COLOR[alert.severity.value]
        if alert.state == AlertState.MOVED:
            color = _MOVED_COLOR
        parts.append(f'<div style="border-left:4px solid {color};padding:4px 12px;margin:0 0 16px">')
        parts.append(f'<h2 style="font-size:16px;margin:4px 0;color:{color}">{_e(render.heading(alert))}</h2>')
        parts.append(f'<p style="margin:4px 0 8px">{_e(_summary(alert))}</p>')
        parts.append('<table role="presentation" style="border-collapse:collapse;margin:0 0 8px">')
        for key, value in _fields(alert, now):
            parts.append(f'<tr><th style="text-align:left;padding:2px 12px 2px 0;color:#555;font-weight:600">'
                         f'{_e(key)}</th><td style="padding:2px 0">{_e(value)}</td></tr>')
        parts.append("</table>")
        links = _links(alert)
        if links:
            parts.append('<p style="margin:4px 0">' + " · ".join(
                f'<a href="{_e(url)}" style="color:#1d4ed8">{_e(label)}</a>' for label, url in links) + "</p>")
        parts.append(f'<p style="margin:4px 0;color:#666;font-size:12px">{_e(_context(alert, now))}</p></div>')
    n = len(alerts)
    parts.append(f'<p style="color:#888;font-size:12px">{n} alert{"s" if n != 1 else ""} · receiver '
                 f"{_e(notification.receiver)} · sre-agent</p></body></html>")
    return "".join(parts)


def build_message(notification: Notification, alerts: list[Alert], settings: EmailSettings, now: float) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = settings.from_
    msg["To"] = ", ".join(settings.to)
    msg["Subject"] = subject(notification, alerts, settings.subject_prefix)
    msg["Date"] = formatdate(now, localtime=False, usegmt=True)
    for name, value in thread_headers(notification, alerts, settings.domain).items():
        msg[name] = value
    msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies to alerts
    msg["X-Auto-Response-Suppress"] = "All"
    msg["X-SRE-Agent-Notification"] = notification.idempotency_key
    msg.set_content(plain_body(notification, alerts, now))
    msg.add_alternative(html_body(notification, alerts, now), subtype="html")
    return msg


def digest_html(d: Digest) -> str:
    parts = ['<!DOCTYPE html><html><head><meta charset="utf-8"><meta name="color-scheme" content="light dark">'
             f"<title>{_e(d.subject)}</title></head>"
             '<body style="font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;font-size:14px;'
             'line-height:1.45;color:#111;margin:0;padding:16px">'
             f'<h1 style="font-size:18px;margin:0 0 4px">{_e(d.title)} {_e(d.day)}</h1>'
             f'<p style="margin:0 0 16px;color:#555">{_e(d.headline())} · {_e(d.timezone)}</p>']
    for section in d.sections():
        color = _RESOLVED_COLOR if section.tone == "ok" else _SEVERITY_COLOR["warning"]
        parts.append(f'<div style="border-left:4px solid {color};padding:2px 12px;margin:0 0 14px">'
                     f'<h2 style="font-size:15px;margin:4px 0">{_e(section.title)}</h2><ul style="margin:4px 0;'
                     'padding-left:18px">' + "".join(f"<li>{_e(line)}</li>" for line in section.lines) + "</ul></div>")
    if d.agent_url.startswith(("https://", "http://")):
        parts.append(f'<p style="color:#888;font-size:12px"><a href="{_e(d.agent_url)}">{_e(d.agent_url)}</a></p>')
    parts.append("</body></html>")
    return "".join(parts)


def digest_message(notification: Notification, settings: EmailSettings) -> EmailMessage:
    """One mail per digest and day; a re-send (an outbox retry) has the same Message-ID."""
    d = digest.of(notification)
    msg = EmailMessage()
    msg["From"] = settings.from_
    msg["To"] = ", ".join(settings.to)
    msg["Subject"] = render.truncate(f"{settings.subject_prefix} {d.subject}".strip(), SUBJECT_MAX)
    msg["Date"] = formatdate(d.generated_at, localtime=False, usegmt=True)
    msg["Message-ID"] = f"<digest.{_id_part(d.day)}.{_id_part(notification.receiver)}@{settings.domain}>"
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-Auto-Response-Suppress"] = "All"
    msg["X-SRE-Agent-Notification"] = notification.idempotency_key
    msg.set_content(d.text())
    msg.add_alternative(digest_html(d), subtype="html")
    return msg


# -- sending ---------------------------------------------------------------------------------------

def classify_reply(code: int, message: str, *, what: str, secrets: list[str]) -> Delivery:
    """4xx: the server asks to try later; 5xx: it refused for good."""
    detail = render.truncate(scrub(f"{what}: SMTP {code} {' '.join(message.split())}".rstrip(), secrets), DETAIL_LIMIT)
    if 400 <= code < 500:
        return Delivery(Outcome.RETRY, detail)
    if code >= 500:
        return Delivery(Outcome.FAILED, detail)
    return Delivery(Outcome.RETRY, detail)  # an answer SMTP does not define at that point: try again later


class EmailReceiver(ConfiguredReceiver[EmailSettings]):
    """Sends each notification as an HTML + plain-text email over SMTP (aiosmtplib)."""

    kind = "email"
    Settings = EmailSettings
    takes_digest = True
    _tls: ssl.SSLContext | None = None

    def secret_values(self) -> list[str]:
        password = self.config.smtp.password
        return [password.get_secret_value()] if password is not None else []

    def _tls_context(self) -> ssl.SSLContext:
        if self._tls is None:
            ca = self.config.smtp.ca_file
            self._tls = ssl.create_default_context(cafile=str(ca) if ca is not None else None)
        return self._tls

    async def send(self, notification: Notification) -> Delivery:
        alerts = render.visible_alerts(notification, self.config.send_resolved)
        if not alerts:
            return Delivery(Outcome.SENT, "nothing to send")
        return await self._submit(build_message(notification, alerts, self.config, self.clock()))

    async def send_digest(self, notification: Notification) -> Delivery:
        return await self._submit(digest_message(notification, self.config))

    async def _submit(self, msg: EmailMessage) -> Delivery:
        """Hand one message to the SMTP server and classify what it said."""
        import aiosmtplib  # here, not at module level: a config without an email receiver never loads it

        smtp_cfg = self.config.smtp
        what = f"email {self.name}"
        client = aiosmtplib.SMTP(
            hostname=smtp_cfg.host, port=smtp_cfg.effective_port, use_tls=smtp_cfg.tls,
            start_tls=smtp_cfg.starttls if not smtp_cfg.tls else False, tls_context=self._tls_context(),
            username=smtp_cfg.username, password=self.secrets[0] if self.secrets else None,
            timeout=self.timeout_seconds)
        try:
            async with asyncio.timeout(self.timeout_seconds * 3):  # connect, TLS, login, each command: bounded as a whole too
                async with client:
                    refused, reply = await client.send_message(msg)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            replies = [classify_reply(r.code, r.message, what=f"{what} <{r.recipient}>", secrets=self.secrets)
                       for r in exc.recipients]
            outcome = Outcome.RETRY if any(d.outcome == Outcome.RETRY for d in replies) else Outcome.FAILED
            return Delivery(outcome, render.truncate("; ".join(d.detail for d in replies), DETAIL_LIMIT))
        except aiosmtplib.SMTPResponseException as exc:
            return classify_reply(exc.code, exc.message, what=what, secrets=self.secrets)
        except (aiosmtplib.SMTPTimeoutError, TimeoutError):
            return Delivery(Outcome.RETRY, f"{what}: no answer from {smtp_cfg.host}:{smtp_cfg.effective_port} "
                                           f"within {self.timeout_seconds:g}s")
        except ssl.SSLCertVerificationError as exc:
            return Delivery(Outcome.FAILED, self._detail(f"{what}: TLS certificate of {smtp_cfg.host} not trusted: "
                                                         f"{exc.verify_message or exc}"))
        except (aiosmtplib.SMTPConnectError, aiosmtplib.SMTPServerDisconnected, OSError) as exc:
            cause = exc.__cause__ or exc.__context__
            if isinstance(cause, ssl.SSLCertVerificationError):
                return Delivery(Outcome.FAILED, self._detail(
                    f"{what}: TLS certificate of {smtp_cfg.host} not trusted: {cause.verify_message or cause}"))
            return Delivery(Outcome.RETRY, self._detail(f"{what}: {type(exc).__name__}: {exc}"))
        except aiosmtplib.SMTPException as exc:  # STARTTLS or AUTH not offered: the config and the server disagree
            return Delivery(Outcome.FAILED, self._detail(f"{what}: {exc}"))
        detail = f"{what}: accepted by {smtp_cfg.host} ({' '.join(str(reply).split())[:200]})"
        if refused:
            lost = ", ".join(f"{rcpt} ({r.code} {r.message})" for rcpt, r in refused.items())
            detail += f"; refused for {lost}"
        return Delivery(Outcome.SENT, self._detail(detail))

    def _detail(self, text: str) -> str:
        return render.truncate(scrub(text, self.secrets), DETAIL_LIMIT)
