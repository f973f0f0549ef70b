"""Give freed memory back to the OS after large requests (glibc only; a no-op elsewhere).

glibc keeps what a request freed in its malloc arenas instead of returning it, so after a burst the service's
RSS stays near the burst's peak. Two measures, each measured with bench/memory_burst.py:
  - at most MALLOC_ARENA_MAX (2) arenas, set with mallopt when the app is created (unless the environment sets
    MALLOC_ARENA_MAX itself): glibc's default is 8 per core, one per worker thread that allocates, each holding
    its own freed memory;
  - `malloc_trim(0)` after large work: it returns the free pages of every arena. The limiter calls
    `released(cost)` as each request ends; small ones (under SMALL_BYTES: their freed chunks are reused by the next
    request, and a trim every 64 digits cost more CPU than it returned memory) are not counted; once the requests
    ended since the last trim add up to
    TRIM_AFTER_BYTES of estimated working memory, or when QUIET_SECONDS pass without another ending after at
    least QUIET_MIN_BYTES did (the tail of a burst), one trim runs in a worker thread (never on the event loop,
    never two at once).
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import logging
import os
import platform
import threading
import time
from collections.abc import Callable

log = logging.getLogger("deepserve.memory")

TRIM_AFTER_BYTES = 64 * 2**20
SMALL_BYTES = 2 * 2**20  # a request charged less (a 28x28 digit: ~1 MB) leaves nothing worth a trim
QUIET_SECONDS = 1.0
QUIET_MIN_BYTES = 4 * 2**20
MALLOC_ARENA_MAX = 2
M_ARENA_MAX = -8  # glibc's mallopt parameter number


def _glibc() -> ctypes.CDLL | None:
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


class MemoryTrimmer:
    def __init__(self, after_bytes: int = TRIM_AFTER_BYTES, small_bytes: int = SMALL_BYTES) -> None:
        libc = _glibc()
        self.trim: Callable[[int], int] | None = getattr(libc, "malloc_trim", None)
        if libc is not None and "MALLOC_ARENA_MAX" not in os.environ:
            libc.mallopt(M_ARENA_MAX, MALLOC_ARENA_MAX)
        self.after_bytes, self.small_bytes = after_bytes, small_bytes
        self.pending = 0  # estimated bytes released since the last trim started
        self.running = threading.Lock()
        self.trims = 0
        self.quiet: asyncio.TimerHandle | None = None  # armed while pending >= QUIET_MIN_BYTES
        self.quiet_loop: asyncio.AbstractEventLoop | None = None  # its loop (an app can be started again)
        self.last_end = 0.0  # loop time of the last release

    @property
    def available(self) -> bool:
        return self.trim is not None

    def released(self, cost: int) -> None:
        """A request that was charged `cost` bytes ended (called on the event loop thread). Cheap on the hot path:
        one timer stays armed and, when it fires, waits on while requests keep ending (no re-arming per request)."""
        if self.trim is None or cost < self.small_bytes:  # glibc reuses what small requests freed
            return
        self.pending += cost
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self.last_end = loop.time()
        if self.pending >= self.after_bytes:
            self._start(loop)
        elif self.pending >= QUIET_MIN_BYTES and (self.quiet is None or self.quiet_loop is not loop):
            self.quiet, self.quiet_loop = loop.call_at(self.last_end + QUIET_SECONDS, self._when_quiet, loop), loop

    def _when_quiet(self, loop: asyncio.AbstractEventLoop) -> None:
        quiet_from = self.last_end + QUIET_SECONDS
        if loop.time() < quiet_from:  # requests ended since the timer was armed: wait for the real quiet
            self.quiet = loop.call_at(quiet_from, self._when_quiet, loop)
        else:
            self._start(loop)

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        if self.quiet is not None:
            self.quiet.cancel()
            self.quiet = None
        if self.running.locked():
            return
        self.pending = 0
        loop.run_in_executor(None, self._run)

    def _run(self) -> None:
        if not self.running.acquire(blocking=False):
            return
        try:
            started = time.perf_counter()
            assert self.trim is not None
            self.trim(0)
            self.trims += 1
            ms = round((time.perf_counter() - started) * 1000, 2)
            log.debug("malloc_trim", extra={"fields": {"event": "malloc_trim", "ms": ms}})
        finally:
            self.running.release()
