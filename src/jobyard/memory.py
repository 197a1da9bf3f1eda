"""The server process and glibc's allocator: memory that was freed goes back to the system.

- ``limit_arenas()``, before any thread starts: glibc gives each thread that allocates an
  arena of its own, up to 8 per core (every database connection's thread is one), and
  memory freed in one arena serves only that arena; two arenas keep the heap in one piece.
- ``trim()``: ``malloc_trim(0)``, the free pages inside the heap returned to the system.
  After a burst of agent connections (each hello a transaction, each handshake parsed)
  the heap is full of holes that RSS still counts; the server trims after such bursts
  (``trim_loop``) and at most once a minute otherwise.

Elsewhere than glibc (musl, macOS) both do nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import time
from collections.abc import Callable
from typing import Any

M_ARENA_MAX = -8  # mallopt parameter (malloc.h)
ARENAS = 2
# Trim when this many connections came or went since the last trim, else once a minute.
TRIM_AFTER_CONNECTIONS = 100
TRIM_EVERY = 60.0

_libc: Any = None


def _glibc() -> Any:
    global _libc
    if _libc is None:
        name = ctypes.util.find_library("c")
        try:
            libc = ctypes.CDLL(name) if name else None
        except OSError:
            libc = None
        _libc = libc if libc is not None and hasattr(libc, "malloc_trim") else False
    return _libc or None


def limit_arenas(arenas: int = ARENAS) -> bool:
    """At most ``arenas`` malloc arenas from now on; True if the allocator took it."""
    libc = _glibc()
    return bool(libc is not None and libc.mallopt(M_ARENA_MAX, arenas))


def trim() -> bool:
    """Return free heap pages to the system; True if any were."""
    libc = _glibc()
    return bool(libc is not None and libc.malloc_trim(0))


class Trimmer:
    """Decides when to trim, from the number of connections now (``tick`` every few s)."""

    def __init__(self, connections: Callable[[], int], clock: Callable[[], float] = time.monotonic):
        self.connections = connections
        self.clock = clock
        self._at = clock()
        self._seen = connections()
        self.trims = 0

    def tick(self) -> bool:
        now, seen = self.clock(), self.connections()
        if abs(seen - self._seen) < TRIM_AFTER_CONNECTIONS and now - self._at < TRIM_EVERY:
            return False
        self._at, self._seen = now, seen
        self.trims += 1
        trim()
        return True
