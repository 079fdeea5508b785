"""Receiver kinds: names, classes, settings contract."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from agent.notify.base import Receiver, ReceiverSettings
from agent.notify.registry import build, receiver_class, receiver_kinds


def test_every_kind_maps_to_its_receiver():
    kinds = receiver_kinds()
    assert sorted(kinds) == ["alertmanager", "email", "log", "pagerduty", "slack", "webhook"]
    for kind, cls in kinds.items():
        assert issubclass(cls, Receiver) and cls.kind == kind
        assert issubclass(cls.Settings, ReceiverSettings)
        assert {"send_resolved", "timeout"} <= set(cls.Settings.model_fields)


def test_unknown_kind_lists_the_known_ones():
    with pytest.raises(KeyError, match="known: alertmanager, email, log, pagerduty, slack, webhook"):
        receiver_class("sms")


@pytest.mark.parametrize(("kind", "settings"), [
    ("slack", {"webhook_url": "https://hooks.slack.com/services/T/B/abcd", "timeout": "5s"}),
    ("pagerduty", {"routing_key": "e93facc04764012d7bfb002500d5d1a6", "send_resolved": False}),
    ("alertmanager", {}),
    ("webhook", {"url": "https://hooks.example.com/a", "headers": {"X-Key": "v4lue"}}),
    ("log", {}),
    ("email", {"to": ["sre@example.com"], "from": "alerts@example.com", "smtp": {"host": "127.0.0.1"}}),
])
async def test_build_from_config_mapping(kind, settings):
    receiver = build(kind, f"my-{kind}", settings)
    try:
        assert receiver.name == f"my-{kind}" and receiver.kind == kind
        assert receiver.settings.timeout.total_seconds() == (5 if "timeout" in settings else 10)
    finally:
        await receiver.close()


def test_unknown_keys_are_errors():
    with pytest.raises(ValidationError, match="extra"):
        build("log", "l", {"levle": "info"})
