"""Slack receiver: an incident-shaped Block Kit message, never rejected for size.

Slack refuses a whole message (`invalid_blocks`, HTTP 400) when one text is
one character too long or there are 51 blocks, and a refused page is a lost
page. So every text here is cut to Slack's documented limit (header 150,
section 3000, 10 fields of 2000, 50 blocks, button text 75, URL 3000) before
sending, and a big group is summarised ("and 153 more") rather than split.
Incoming webhooks and bot tokens (chat.postMessage) share one renderer.
slack-sdk is imported by the first delivery, not with the settings model.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field, SecretStr, field_validator, model_validator

from agent.core import Alert, AlertState
from agent.secrets import Secret

from . import digest, render
from .base import Delivery, Notification, Outcome, ReceiverSettings
from .http import AiohttpReceiver, parse_retry_after, scrub, transport_errors

if TYPE_CHECKING:
    from slack_sdk.errors import SlackApiError

HEADER_MAX = 150
SECTION_MAX = 3000
FIELD_MAX = 2000
FIELDS_MAX = 10
BLOCKS_MAX = 50
BUTTON_TEXT_MAX = 75
URL_MAX = 3000
TEXT_MAX = 3000          # top-level fallback (Slack allows 40k; notifications show far less)
GROUP_ALERT_MAX = 700    # per alert in a group, so 47 of them stay a readable, modest payload
TRANSIENT_ERRORS = frozenset({"ratelimited", "internal_error", "fatal_error", "service_unavailable",
                              "request_timeout"})

# slack-sdk logs full request bodies and URLs at DEBUG when its logger's own level allows;
# a dedicated logger pinned at INFO keeps webhook URLs out of debug logs.
_SDK_LOGGER = logging.getLogger("sre_agent.notify.slack_sdk")
_SDK_LOGGER.setLevel(logging.INFO)


class SlackSettings(ReceiverSettings):
    webhook_url: Secret | None = Field(None, description="incoming webhook URL (or webhook_url_file)")
    token: Secret | None = Field(None, description="bot token for chat.postMessage (or token_file)")
    channel: str | None = Field(None, description="channel for the bot token, e.g. #ops")
    base_url: str | None = Field(None, description="Slack Web API base URL; default https://slack.com/api/")
    example: ClassVar[str] = "{webhook_url: ${SLACK_WEBHOOK_URL}}"

    @model_validator(mode="after")
    def _one_way(self) -> SlackSettings:
        if (self.webhook_url is None) == (self.token is None):
            raise ValueError("set exactly one of webhook_url (incoming webhook) or token (bot token + channel)")
        if self.token is not None and not self.channel:
            raise ValueError("token needs a channel, e.g. channel: '#ops'")
        if self.webhook_url is not None and self.channel:
            raise ValueError("channel only applies with token: an incoming webhook posts to its own channel")
        return self

    @field_validator("webhook_url")
    @classmethod
    def _webhook_url(cls, v: SecretStr | None) -> SecretStr | None:
        # the URL is a secret: say what is wrong without repeating it
        if v is not None and not v.get_secret_value().startswith(("https://", "http://")):
            raise ValueError("webhook_url must start with https:// (or http://), "
                             "e.g. https://hooks.slack.com/services/T.../B.../...")
        return v

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("https://", "http://")):
            raise ValueError(f"base_url must start with https:// (or http://), got {v!r}")
        return v


def escape(text: str) -> str:
    """Slack mrkdwn needs only &, < and > escaped."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def md(text: str, limit: int) -> str:
    """Escaped mrkdwn of at most `limit` characters, never cutting an `&amp;` in half."""
    out = escape(text)
    if len(out) <= limit:
        return out
    cut = out[: max(0, limit - len(render.ELLIPSIS))]
    amp = cut.rfind("&")
    if amp != -1 and ";" not in cut[amp:]:
        cut = cut[:amp]
    return cut.rstrip() + render.ELLIPSIS


def link(url: str | None, label: str) -> str:
    if not url or len(url) > URL_MAX:
        return ""
    safe = url.replace(" ", "%20").replace("|", "%7C").replace("<", "%3C").replace(">", "%3E")
    return f"<{safe}|{escape(label)}>"


def _plain(text: str, limit: int) -> dict[str, Any]:
    return {"type": "plain_text", "text": render.truncate(text, limit) or "-", "emoji": True}


def _mrkdwn(text: str) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": text or " "}


def _field(label: str, value: str) -> dict[str, Any]:
    head = f"*{md(label, 100)}*\n"
    return _mrkdwn(head + md(value, FIELD_MAX - len(head)))


def _facts(alert: Alert, now: float) -> list[tuple[str, str]]:
    return render.head_facts(alert, now)


def _buttons(alert: Alert) -> dict[str, Any] | None:
    elements = []
    for action_id, label, url in (("runbook", "📖 Runbook", alert.runbook_url), ("check", "🔎 Check", alert.generator_url)):
        if url and len(url) <= URL_MAX:
            elements.append({"type": "button", "action_id": action_id, "url": url,
                             "text": _plain(label, BUTTON_TEXT_MAX)})
    return {"type": "actions", "elements": elements} if elements else None


def _context(alert: Alert, now: float) -> dict[str, Any]:
    parts = [render.elapsed(alert, now).capitalize(), f"check `{md(alert.check, 200)}` ({md(alert.type, 50)})"]
    if alert.starts_at > 0:
        iso = render.iso8601(alert.starts_at)
        parts.append(f"since <!date^{int(alert.starts_at)}^{{date_short_pretty}} {{time}}|{iso}>")
    elements = [_mrkdwn(md(p, SECTION_MAX) if i == 0 else p) for i, p in enumerate(parts) if p]
    return {"type": "context", "elements": elements[:10]}


def _single(alert: Alert, now: float) -> list[dict[str, Any]]:
    text = alert.summary or "(no summary)"
    if handoff := render.handoff_line(alert):
        text = f"{handoff.capitalize()}\n{text}"
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": _plain(render.heading(alert), HEADER_MAX)},
        {"type": "section", "text": _mrkdwn(md(text, SECTION_MAX))},
    ]
    items = _facts(alert, now)
    items += render.observation_pairs(alert.observations)
    items += [(k, v) for k, v in sorted(alert.labels.items())]
    if len(items) > FIELDS_MAX:
        items = items[: FIELDS_MAX - 1] + [("More", f"+{len(items) - FIELDS_MAX + 1} not shown")]
    blocks.append({"type": "section", "fields": [_field(k, v) for k, v in items]})
    actions = _buttons(alert)
    if actions:
        blocks.append(actions)
    blocks.append(_context(alert, now))
    return blocks


def _group_section(alert: Alert, now: float) -> dict[str, Any]:
    head = f"*{md(render.heading(alert), 200)}*"
    when = render.elapsed(alert, now)
    if when:
        head += f" · _{md(when, 60)}_"
    obs = "; ".join(x for x in (render.handoff_line(alert), render.observations_line(alert.observations, 200)) if x)
    links = " · ".join(x for x in (link(alert.runbook_url, "Runbook"), link(alert.generator_url, "Check")) if x)
    tail = "".join(f"\n{x}" for x in (md(obs, 250) if obs else "", links) if x)
    budget = max(40, GROUP_ALERT_MAX - len(head) - len(tail) - 1)
    text = f"{head}\n{md(alert.summary or '(no summary)', budget)}{tail}"
    if len(text) > SECTION_MAX:  # only when links are huge: drop them rather than cut one
        text = f"{head}\n{md(alert.summary or '(no summary)', budget)}"
    return {"type": "section", "text": _mrkdwn(text)}


def _order(alerts: list[Alert]) -> list[Alert]:
    """Firing first, then those handed to other receivers, then resolved; worst first within each."""
    rank = {AlertState.FIRING: 0, AlertState.MOVED: 1, AlertState.RESOLVED: 2}
    return sorted(alerts, key=lambda a: (rank.get(a.state, 0), -a.severity.rank, a.check))


def build_message(notification: Notification, alerts: list[Alert], now: float) -> dict[str, Any]:
    """`{"text": fallback, "blocks": [...]}` within every Block Kit limit."""
    alerts = _order(alerts)
    if len(alerts) == 1:
        alert = alerts[0]
        text = f"{render.emoji(alert)} {render.one_line(alert, now, TEXT_MAX - 2)}"
        return {"text": render.truncate(text, TEXT_MAX), "blocks": _single(alert, now)}
    title = render.group_title(notification, alerts)
    firing = [a for a in alerts if a.state == AlertState.FIRING]
    moved = [a for a in alerts if a.state == AlertState.MOVED]
    icon = render.SEVERITY_EMOJI[render.worst_severity(firing)] if firing \
        else render.emoji(moved[0]) if moved else render.RESOLVED_EMOJI
    blocks: list[dict[str, Any]] = [{"type": "header", "text": _plain(f"{icon} {title}", HEADER_MAX)}]
    room = BLOCKS_MAX - 2  # header + closing context
    shown = alerts if len(alerts) <= room else alerts[: room - 1]
    blocks += [_group_section(a, now) for a in shown]
    hidden = alerts[len(shown):]
    if hidden:
        names = ", ".join(a.check for a in hidden[:20])
        blocks.append({"type": "section", "text": _mrkdwn(md(f"…and {len(hidden)} more: {names}", SECTION_MAX))})
    blocks.append({"type": "context", "elements": [_mrkdwn(md(f"{len(alerts)} alerts · {notification.receiver}", 300))]})
    lines = [f"{icon} {title}"] + [render.one_line(a, now, 300) for a in alerts[:20]]
    if len(alerts) > 20:
        lines.append(f"…and {len(alerts) - 20} more")
    return {"text": render.truncate("\n".join(lines), TEXT_MAX), "blocks": blocks}


def digest_message(d: digest.Digest) -> dict[str, Any]:
    """The digest as Block Kit: a header, the headline, one section per part of the checklist."""
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": _plain(f"📋 {d.title} {d.day}", HEADER_MAX)},
        {"type": "context", "elements": [_mrkdwn(md(f"{d.headline()} · {d.timezone}", SECTION_MAX))]},
    ]
    for section in d.sections()[: BLOCKS_MAX - 3]:
        icon = "✅" if section.tone == "ok" else "⚠️"
        head = f"{icon} *{md(section.title, 200)}*\n"
        body = "\n".join(f"• {md(line, 400)}" for line in section.lines)
        blocks.append({"type": "section", "text": _mrkdwn(head + render.truncate(body, SECTION_MAX - len(head)))})
    if d.agent_url:
        linked = link(d.agent_url, "Open the agent")
        if linked:
            blocks.append({"type": "context", "elements": [_mrkdwn(linked)]})
    return {"text": render.truncate(f"📋 {d.subject}", TEXT_MAX), "blocks": blocks}


class SlackReceiver(AiohttpReceiver[SlackSettings]):
    """Posts to an incoming webhook, or with a bot token via chat.postMessage."""

    kind = "slack"
    Settings = SlackSettings
    takes_digest = True

    def secret_values(self) -> list[str]:
        return [s.get_secret_value() for s in (self.config.webhook_url, self.config.token) if s is not None]

    async def send(self, notification: Notification) -> Delivery:
        alerts = render.visible_alerts(notification, self.config.send_resolved)
        if not alerts:
            return Delivery(Outcome.SENT, "nothing to send")
        return await self._deliver_message(build_message(notification, alerts, self.clock()))

    async def send_digest(self, notification: Notification) -> Delivery:
        return await self._deliver_message(digest_message(digest.of(notification)))

    async def _deliver_message(self, message: dict[str, Any]) -> Delivery:
        # here, not at module level: a config that never sends to Slack never loads slack-sdk
        from slack_sdk.errors import SlackApiError, SlackClientError

        what = f"slack {self.name}"
        try:
            if self.config.webhook_url is not None:
                return await self._webhook(self.config.webhook_url.get_secret_value(), message, what)
            return await self._post_message(message, what)
        except SlackApiError as exc:
            return self._api_error(exc, what)
        except transport_errors() as exc:
            return self.no_answer(exc, what=what)
        except SlackClientError as exc:
            return Delivery(Outcome.FAILED, scrub(f"{what}: {type(exc).__name__}: {exc}", self.secrets))

    async def _webhook(self, url: str, message: dict[str, Any], what: str) -> Delivery:
        from slack_sdk.webhook.async_client import AsyncWebhookClient

        client = AsyncWebhookClient(url, timeout=int(max(1, self.timeout_seconds)), session=self.session(),
                                    retry_handlers=[], logger=_SDK_LOGGER)
        response = await client.send(text=message["text"], blocks=message["blocks"], unfurl_links=False)
        return self.answer(response.status_code, response.headers or {}, response.body or "", what=what)

    async def _post_message(self, message: dict[str, Any], what: str) -> Delivery:
        from slack_sdk.web.async_client import AsyncWebClient

        assert self.config.token is not None and self.config.channel is not None
        client = AsyncWebClient(token=self.config.token.get_secret_value(),
                                base_url=self.config.base_url or AsyncWebClient.BASE_URL,
                                timeout=int(max(1, self.timeout_seconds)), session=self.session(),
                                retry_handlers=[], logger=_SDK_LOGGER)
        response = await client.chat_postMessage(channel=self.config.channel, text=message["text"],
                                                 blocks=message["blocks"], unfurl_links=False)
        return Delivery(Outcome.SENT, f"{what}: posted to {self.config.channel} (ts {response.get('ts')})")

    def _api_error(self, exc: SlackApiError, what: str) -> Delivery:
        response = exc.response
        data = response.data if isinstance(response.data, dict) else {}
        error = str(data.get("error") or "")
        status = int(response.status_code)
        detail = scrub(f"{what}: chat.postMessage HTTP {status}" + (f": {error}" if error else ""), self.secrets)
        if status == 429 or error == "ratelimited":
            headers = response.headers or {}
            value = headers.get("Retry-After") or headers.get("retry-after")
            return Delivery(Outcome.RETRY, detail, parse_retry_after(value, self.clock))
        if status >= 500 or error in TRANSIENT_ERRORS:
            return Delivery(Outcome.RETRY, detail)
        return Delivery(Outcome.FAILED, detail)
