"""Which asyncio event loop the agent runs on: uvloop where installed, else the standard one.

uvloop (libuv under asyncio's API) makes the transport and callback work of
each probe cheaper; `agent.event_loop` picks it (`auto`: uvloop when it can be
imported, `uvloop`: required, `asyncio`: the standard loop). Standard library
only, so `sre-agent check` can use it without importing the daemon.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Callable
from typing import Literal

EventLoopChoice = Literal["auto", "asyncio", "uvloop"]


def loop_factory(choice: EventLoopChoice) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """A factory for `asyncio.Runner(loop_factory=...)`; None means the standard loop.

    Raises RuntimeError when `uvloop` is required but cannot be imported.
    """
    if choice == "asyncio":
        return None
    try:
        uvloop = importlib.import_module("uvloop")
    except ImportError:
        if choice == "uvloop":
            raise RuntimeError("agent.event_loop is 'uvloop' but uvloop is not installed "
                               "(pip install uvloop, or set agent.event_loop: auto or asyncio)") from None
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def loop_name(loop: asyncio.AbstractEventLoop) -> str:
    """`uvloop` or `asyncio`: what a loop is, for the log line at start-up."""
    return "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"
