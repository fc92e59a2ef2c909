"""Keep freed memory in the heap while the search evaluates its chunks (glibc only; elsewhere a no-op).

Each chunk of the search allocates and frees the same few hundred numpy temporaries of a few MB. glibc's
adaptive defaults hand much of that back to the kernel (blocks above the mmap threshold are unmapped on free,
and the top of the heap is trimmed whenever more than twice that threshold lies free there), so the next chunk
faults the same pages in again: on a DeepSeek-V3 search, 4.6 million page faults and half the wall time in
the kernel. While a search runs,
blocks up to 32 MiB (glibc's largest mmap threshold) come from the heap and the heap is not trimmed; when the
last search ends, the trim threshold comes back down to TRIM_AFTER and the free top of the heap is released.
Setting either threshold turns off glibc's adaptive thresholds for the rest of the process, so both are set
(one alone sends every block past 128 KiB to mmap). benchmarks/plan_search.py measures the effect.
"""

from __future__ import annotations

import ctypes
import threading
from contextlib import contextmanager
from collections.abc import Iterator

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt parameters (malloc.h)
MMAP_THRESHOLD = 32 << 20  # the largest mmap threshold glibc accepts on 64-bit hosts (DEFAULT_MMAP_THRESHOLD_MAX)
TRIM_DURING = 2**31 - 1  # mallopt takes a C int: at most 2 GiB of free heap top while a search runs
TRIM_AFTER = 64 << 20  # afterwards, keep at most this much free memory at the top of the heap

_lock = threading.Lock()
_active = 0


def _glibc():
    """glibc's handle, or None (musl, macOS, Windows: their allocators have no such knobs)."""
    try:
        lib = ctypes.CDLL("libc.so.6")
        lib.gnu_get_libc_version  # present in glibc only
        return lib
    except (OSError, AttributeError):
        return None


_LIBC = _glibc()


@contextmanager
def kept_heap() -> Iterator[None]:
    """Within the block (re-entrant, thread-safe by count), freed blocks stay in the heap for reuse."""
    global _active
    if _LIBC is None:
        yield
        return
    with _lock:
        if _active == 0:
            _LIBC.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)
            _LIBC.mallopt(M_TRIM_THRESHOLD, TRIM_DURING)
        _active += 1
    try:
        yield
    finally:
        with _lock:
            _active -= 1
            if _active == 0:
                _LIBC.mallopt(M_TRIM_THRESHOLD, TRIM_AFTER)
                _LIBC.malloc_trim(0)
