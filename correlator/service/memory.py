"""The server's memory limit: OTLP requests wait (503) while the process's resident memory is near it.

No setting of the write path bounds what a batch costs in the engine, in protobuf's arenas outside Python's heap,
or in what the allocator keeps after a free, so the limit is held by measuring: the resident size is read from
/proc before each request is admitted, and above the high-water mark (the limit less room for the work already
admitted) new requests are refused until inserts have freed memory. After an insert the writer asks the C
allocator to return its free pages, so that memory freed is memory the kernel sees freed; and `serve` caps
glibc's malloc arenas (one per thread by default, each keeping its own free memory) unless MALLOC_ARENA_MAX says
otherwise. The engine's own allocator, jemalloc inside chDB, is told to return freed pages after 250 ms by the
package itself (correlator/__init__.py), since it reads JE_MALLOC_CONF once, when the engine loads.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import time
from collections.abc import Callable

MIB = 1024 * 1024
# Room kept under the limit for the work already admitted when the resident size crosses the high-water mark:
# the requests being decoded, the queue and the engine's working set for the batch in flight (under overload on
# 2 cores the peak came 260 to 450 MiB above the mark). The mark is the limit less this, or half the limit.
RESERVE_BYTES = 640 * MIB
# glibc's arenas for `serve` (MALLOC_ARENA_MAX overrides): under overload 2 took about 300 MiB off the peak
# against glibc's default of 8 per core (docs/reliability.md).
MALLOC_ARENAS = 2
_M_ARENA_MAX = -8  # mallopt's parameter number, from glibc's malloc.h
# At most this often the writer asks the allocator to give free memory back (a walk over its heaps).
TRIM_INTERVAL_S = 1.0


def _page_size() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return 4096


_PAGE = _page_size()


def resident_bytes() -> int | None:
    """This process's resident set size, None where /proc is not there (the limit is then not enforced)."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return None


def _libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or None)
    except OSError:
        return None


def limit_malloc_arenas(arenas: int = MALLOC_ARENAS) -> bool:
    """Cap glibc's malloc arenas for this process unless MALLOC_ARENA_MAX is set; True if capped here.

    Call it before the process starts its threads: glibc fixes the cap once it has made its ninth arena.
    """
    libc = _libc()
    if "MALLOC_ARENA_MAX" in os.environ or libc is None or not hasattr(libc, "mallopt"):
        return False
    return bool(libc.mallopt(_M_ARENA_MAX, arenas))


def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's malloc_trim, which returns free heap pages of every arena to the kernel; None elsewhere."""
    libc = _libc()
    trim = getattr(libc, "malloc_trim", None)
    if trim is None:
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim  # type: ignore[no-any-return]


class MemoryGuard:
    """Says whether the process has room for more work under `limit_bytes` (0: no limit)."""

    def __init__(self, limit_bytes: int, read: Callable[[], int | None] = resident_bytes) -> None:
        self.limit_bytes = limit_bytes
        self.high_water_bytes = max(limit_bytes // 2, limit_bytes - RESERVE_BYTES)
        self._read = read
        self._trim = _malloc_trim()
        self._last_trim = 0.0

    def over_high_water(self) -> int | None:
        """The resident bytes when they are above the high-water mark, else None."""
        if not self.limit_bytes:
            return None
        resident = self._read()
        return resident if resident is not None and resident > self.high_water_bytes else None

    def refusal(self) -> str | None:
        """Why a request must wait, or None when there is room."""
        resident = self.over_high_water()
        if resident is None:
            return None
        return (
            f"the server holds {resident / MIB:,.0f} MiB, over its high-water mark of"
            f" {self.high_water_bytes / MIB:,.0f} MiB (memory limit {self.limit_bytes / MIB:,.0f} MiB); retry later"
        )

    def release(self) -> None:
        """After a batch is written: hand free heap pages back to the kernel when over the high-water mark."""
        if self._trim is None or self.over_high_water() is None:
            return
        now = time.monotonic()
        if now - self._last_trim < TRIM_INTERVAL_S:
            return
        self._last_trim = now
        self._trim(0)
