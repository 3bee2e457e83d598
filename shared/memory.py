"""Keep the process's memory flat while multi-megabyte buffers come and go.

A window streams through pages (~15 MB), parse batches, Arrow row groups and 8 MiB upload blocks,
allocated and freed on several threads. glibc's defaults keep much of that freed memory: its mmap
threshold grows to the largest buffer freed so far, after which such buffers come from the heap
and stay there, fragmented, per thread arena. Pinning the threshold at 64 KiB keeps every buffer
that size or more (pages, batch buffers, Arrow columns of a batch, upload blocks) in its own
mapping, returned to the OS the moment it is freed, and fewer arenas bound the rest. (At 1 MiB,
a batch's Arrow columns of ~70 KB each crept into the heap and peak RSS crept up 10 MB.) No effect (and no error) where the C library is not glibc.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
from functools import lru_cache

log = logging.getLogger(__name__)

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8
_MMAP_THRESHOLD = 64 * 1024
_TRIM_THRESHOLD = 16 * 1024 * 1024
_ARENA_MAX = 2

_done = False


@lru_cache(maxsize=1)
def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        libc = ctypes.CDLL(name)
    except OSError:
        return None
    return libc if hasattr(libc, "mallopt") else None


def tune_allocator() -> bool:
    """Apply the settings once per process. Returns whether glibc took them."""
    global _done
    if _done:
        return True
    libc = _libc()
    if libc is None:
        return False
    # Arrow's buffers from the same tuned malloc, rather than from a second allocator (mimalloc)
    # that keeps its own freed pages.
    import pyarrow as pa

    pa.set_memory_pool(pa.system_memory_pool())
    ok = all(
        libc.mallopt(param, value) == 1
        for param, value in (
            (_M_MMAP_THRESHOLD, _MMAP_THRESHOLD),
            (_M_TRIM_THRESHOLD, _TRIM_THRESHOLD),
            (_M_ARENA_MAX, _ARENA_MAX),
        )
    )
    _done = ok
    return ok


def release_free_memory() -> None:
    """Hand freed heap memory back to the OS (after a file is finished)."""
    libc = _libc()
    if libc is not None and hasattr(libc, "malloc_trim"):
        libc.malloc_trim(0)
