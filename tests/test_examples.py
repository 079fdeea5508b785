"""Every shipped example config validates (with its ${ENV} references set)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from agent.config import load_config

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_example_validates(path: Path, tmp_path: Path) -> None:
    names = set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", path.read_text()))
    secret = tmp_path / "secret"
    secret.write_text("example-secret-value\n")
    env = {}
    for n in names:
        if n.endswith("_FILE"):
            env[n] = str(secret)
        elif "URL" in n:
            env[n] = f"https://hooks.example.invalid/{n.lower()}"
        elif "DSN" in n:
            env[n] = f"postgresql://u:p@127.0.0.1:1/db_{n.lower()}"
        elif "ROUTING_KEY" in n:
            env[n] = "0123456789abcdef" * 2  # PagerDuty integration keys have 32 characters
        else:
            env[n] = f"example-{n.lower()}-value"
    config = load_config(path, env=env)
    assert config.all_checks()
