"""A reload gives the heap it freed back (issue 14.21): RSS grew ~11 KiB per reload with Python's memory flat.

The growth was glibc keeping freed heap after each reload threw away a whole
config's worth of small objects (malloc_trim(0) after each reload made RSS flat
in `bench/reload_soak.py`). These tests pin the mechanism and its use; the
figures come from the benchmark, not from a timed or sized assertion here.
"""

from __future__ import annotations

import ctypes.util
import os
from pathlib import Path

import psutil
import pytest

from agent import daemon


def _glibc() -> bool:
    return daemon._MALLOC_TRIM is not None and os.uname().sysname == "Linux"


@pytest.mark.skipif(not _glibc(), reason="malloc_trim is glibc's")
def test_release_freed_memory_returns_freed_heap_to_the_system() -> None:
    proc = psutil.Process()
    # Interleave long-lived and freed small buffers, as a reload does with config objects: the freed
    # chunks sit between live ones, so glibc cannot shrink the heap top by itself.
    keep, drop = [], []
    for i in range(20_000):  # 4 KiB: past pymalloc's small objects, below mmap's threshold: glibc's heap
        (keep if i % 50 == 0 else drop).append(ctypes.create_string_buffer(4096))
    del drop
    before = proc.memory_info().rss
    daemon.release_freed_memory()
    after = proc.memory_info().rss
    assert before - after > 20 << 20, f"RSS {before >> 20} -> {after >> 20} MiB"
    assert keep  # still alive: only the freed part went back


async def test_every_reload_releases_freed_memory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    monkeypatch.setattr(daemon, "release_freed_memory", lambda: calls.append(1))
    good = tmp_path / "agent.yaml"
    good.write_text(f"agent: {{listen: '127.0.0.1:0', state_dir: '{tmp_path / 'state'}'}}\n"
                    "checks:\n  - {name: t, type: tcp, host: 127.0.0.1, port: 9, interval: 1h}\n")
    agent = daemon.Agent(good)
    await agent.start()
    at_start = len(calls)  # start-up releases what loading the config freed, too
    try:
        assert (await agent.reload())[0] is True
        good.write_text("checks:\n  - {name: NOT-VALID, type: tcp}\n")
        assert (await agent.reload())[0] is False  # a rejected reload frees its garbage too
    finally:
        await agent.stop()
    assert len(calls) - at_start == 2


def test_malloc_trim_is_found_where_glibc_is() -> None:
    if ctypes.util.find_library("c") is None:
        pytest.skip("no libc found")
    if os.path.exists("/etc/alpine-release"):
        pytest.skip("musl has no malloc_trim")
    assert daemon._MALLOC_TRIM is not None
