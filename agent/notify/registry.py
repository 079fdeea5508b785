"""Receiver kinds by their config key, imported only when used.

The config loader asks `receiver_kinds()` which keys a receiver entry may
have (`slack:`, `pagerduty:` ...) and which `Settings` model validates each;
the alerting engine builds receivers from the same map. Importing a kind
lazily keeps `sre-agent check` from loading slack-sdk and friends.
"""

from __future__ import annotations

import importlib
from functools import cache

from .base import Receiver, ReceiverSettings

#: config key -> "module:Class" inside agent.notify
KINDS: dict[str, str] = {
    "slack": "slack:SlackReceiver",
    "pagerduty": "pagerduty:PagerDutyReceiver",
    "alertmanager": "alertmanager:AlertmanagerReceiver",
    "webhook": "webhook:WebhookReceiver",
    "log": "log:LogReceiver",
    "email": "email:EmailReceiver",
}


def receiver_class(kind: str) -> type[Receiver]:
    """The class for one kind; only that kind's module is imported."""
    try:
        target = KINDS[kind]
    except KeyError:
        raise KeyError(f"unknown receiver kind {kind!r}; known: {', '.join(sorted(KINDS))}") from None
    module_name, _, class_name = target.partition(":")
    cls = getattr(importlib.import_module(f"{__package__}.{module_name}"), class_name)
    if not (isinstance(cls, type) and issubclass(cls, Receiver)) or cls.kind != kind:
        raise RuntimeError(f"{target} is not the Receiver for kind {kind!r}")
    return cls


@cache
def receiver_kinds() -> dict[str, type[Receiver]]:
    """Every kind -> its Receiver class (imports them all)."""
    return {kind: receiver_class(kind) for kind in KINDS}


def build(kind: str, name: str, settings: ReceiverSettings | dict[str, object]) -> Receiver:
    """A receiver from its kind and settings (a validated model or the raw mapping)."""
    cls = receiver_class(kind)
    if not isinstance(settings, cls.Settings):
        settings = cls.Settings.model_validate(settings)
    return cls(name, settings)
