"""The server's allocator tuning (jobyard/memory.py): when it trims, and that glibc takes it."""

from __future__ import annotations

import platform

import pytest

from jobyard import memory


def test_trims_after_a_burst_of_connections_or_once_a_minute() -> None:
    now, connected = [0.0], [0]
    trimmer = memory.Trimmer(lambda: connected[0], clock=lambda: now[0])
    connected[0] = memory.TRIM_AFTER_CONNECTIONS - 1
    now[0] = 5.0
    assert not trimmer.tick()  # a few connections: nothing to give back yet
    connected[0] = memory.TRIM_AFTER_CONNECTIONS
    assert trimmer.tick()  # a burst came
    now[0] = 10.0
    assert not trimmer.tick()  # nothing changed since
    connected[0] = 0
    assert trimmer.tick()  # a burst went
    now[0] += memory.TRIM_EVERY
    assert trimmer.tick()  # a minute later, whatever happened
    assert trimmer.trims == 3


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's allocator only")
def test_glibc_takes_the_settings() -> None:
    assert memory.limit_arenas()
    big = [bytearray(64 * 1024) for _ in range(2000)]  # 128 MiB, then freed
    del big
    memory.trim()  # returns whether pages were given back; either way it must not fail
