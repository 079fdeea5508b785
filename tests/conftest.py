"""Shared fixtures. Every test gets fresh state; no task or server may outlive it."""

from __future__ import annotations

import asyncio

import pytest

from agent.context import CheckContext


@pytest.fixture
def context() -> CheckContext:
    return CheckContext()


@pytest.fixture(autouse=True)
async def _no_leaked_tasks():
    """Fail a test that leaves an asyncio task running."""
    before = asyncio.all_tasks()
    yield
    await asyncio.sleep(0)
    leaked = [t for t in asyncio.all_tasks() - before if not t.done() and t is not asyncio.current_task()]
    for t in leaked:
        t.cancel()
    assert not leaked, f"test leaked tasks: {leaked}"
