"""The receiver base: every kind is built by one constructor that checks its settings and hides its secrets."""

from __future__ import annotations

import secrets
from typing import Any

import pytest

from agent.notify.base import ConfiguredReceiver
from agent.notify.log import LogSettings
from agent.notify.registry import KINDS, receiver_class
from agent.secrets import REDACTOR


def _settings(kind: str, secret: str) -> dict[str, Any]:
    return {
        "slack": {"webhook_url": f"https://hooks.slack.com/services/T0/B0/{secret}"},
        "pagerduty": {"routing_key": secret},
        "alertmanager": {"url": "http://127.0.0.1:9093", "basic_auth": {"username": "am", "password": secret}},
        "webhook": {"url": "http://127.0.0.1:9/hook", "headers": {"Authorization": f"Bearer {secret}"}},
        "log": {},
        "email": {"to": ["sre@example.com"], "from": "alerts@example.com",
                  "smtp": {"host": "127.0.0.1", "username": "agent", "password": secret}},
    }[kind]


@pytest.mark.parametrize("kind", sorted(KINDS))
async def test_every_kind_uses_the_shared_constructor(kind: str) -> None:
    cls = receiver_class(kind)
    assert issubclass(cls, ConfiguredReceiver)
    assert "__init__" not in vars(cls) or kind == "log"  # log only adds its logger
    secret = secrets.token_hex(16)
    settings = cls.Settings.model_validate(_settings(kind, secret))

    def clock() -> float:
        return 42.0

    receiver = cls("r1", settings, clock=clock)
    try:
        assert receiver.config is settings and receiver.settings is settings
        assert receiver.clock is clock
        assert receiver.timeout_seconds == 10.0
        if kind != "log":
            # the credential is registered: no log line or error detail can carry it
            assert secret in "".join(receiver.secrets)
            for value in receiver.secrets:
                assert secret not in REDACTOR.redact(f"peer said: {value}")
    finally:
        await receiver.close()


@pytest.mark.parametrize("kind", sorted(set(KINDS) - {"log"}))
def test_settings_of_another_kind_are_refused_with_both_names(kind: str) -> None:
    cls = receiver_class(kind)
    with pytest.raises(TypeError, match=rf"{kind} receiver 'r1' takes {cls.Settings.__name__}, not LogSettings"):
        cls("r1", LogSettings())
