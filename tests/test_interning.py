"""Checks written alike share their equal parts after a config load (`agent.interning`)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

from agent import interning
from agent.check import Model
from agent.config import load_config


def test_equal_parts_of_checks_are_one_object(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("checks:\n" + "".join(
        f"  - {{name: web-{i}, type: http, url: 'http://127.0.0.1:9/{i}', latency: {{warning: 1s, critical: 2s}},"
        f" expect: {{status: [200], body_contains: ok}}, labels: {{team: {'a' if i < 2 else 'b'}}}}}\n"
        for i in range(3)))
    a, b, c = load_config(cfg, env={}).checks
    assert a.expect is b.expect is c.expect and a.latency is b.latency and a.tls is c.tls
    assert a.labels is b.labels and a.labels is not c.labels and c.labels == {"team": "b"}
    assert a.__pydantic_fields_set__ is b.__pydantic_fields_set__
    assert a is not b and a.url != b.url


class _Frozen(Model):
    x: list[int] = []


class _Mutable(BaseModel):
    x: int = 0


class _Holder(Model):
    one: _Frozen
    two: _Frozen
    loose: _Mutable
    other: _Mutable


def test_only_frozen_models_are_shared_and_only_inside_sharing() -> None:
    data = {"one": {"x": [1]}, "two": {"x": [1]}, "loose": {"x": 1}, "other": {"x": 1}}
    with interning.sharing():
        inside = _Holder.model_validate(data)
    assert inside.one is inside.two
    assert inside.loose is not inside.other  # a mutable model is never one object for two places
    outside = _Holder.model_validate(data)
    assert outside.one is not outside.two and outside.one == outside.two
