"""Large freed blocks go back to the system at once, so that a worker's memory returns after a
burst of large requests, while the blocks of every request stay in the heap.

glibc's malloc serves a block of the mmap threshold or more (128 KiB by default) with a mapping
of its own, unmapped when the block is freed; but each such block freed raises that threshold to
its size (up to 32 MiB), so after the first 8 MiB body every later one comes from the heap,
whose freed space glibc keeps wherever a small block still lives above it. Twenty concurrent
8 MiB V2 bodies, twice, left a worker at 137 MB after starting from 78 MB; with the threshold
fixed, at 79 MB. Setting it explicitly (mallopt) is what stops its rises.

It is fixed above asyncio's read buffer (`_SelectorSocketTransport.max_size`, 256 KiB): every
read of a socket allocates that much and shrinks it to what came, so at glibc's 128 KiB each
read cost an mmap, an mremap, a munmap and a page fault (three of the eight system calls of a
/predict without the record; 17% less CPU an answer without them, `scripts.bench.ab`). The trim
threshold, fixed too by mallopt, is twice the mmap threshold, as glibc's own rises keep it:
below that, the top of the heap freed after each read would go back and forth with brk.

What a burst of large bodies leaves in the heap, between blocks still in use, is given back when
the burst is over (`release_free_memory`, glibc's malloc_trim): with the threshold above
asyncio's reads, the pieces of each body no longer have mappings of their own, and sixteen
concurrent 8 MiB V2 bodies, twice, left a worker at 92-102 MB from 90-99 (99 from 84 in a loaded
CI run); with the release, at 82-83 from 79-80 (tests/system/server/test_body_budget.py). When
to release is the body budget's call (app/middleware/body_limit.py).

An operator's own choice of either (MALLOC_MMAP_THRESHOLD_ or MALLOC_TRIM_THRESHOLD_, or
glibc.malloc.mmap_threshold or trim_threshold in GLIBC_TUNABLES) leaves both alone, and so does
any C library other than glibc.
"""

import ctypes
import functools
import os
from collections.abc import Callable, Mapping
from typing import Final

M_TRIM_THRESHOLD: Final = -1  # glibc's <malloc.h>
M_MMAP_THRESHOLD: Final = -3
MMAP_THRESHOLD_BYTES: Final = 512 * 1024
TRIM_THRESHOLD_BYTES: Final = 2 * MMAP_THRESHOLD_BYTES
_OPERATOR_VARIABLES: Final = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")
_OPERATOR_TUNABLES: Final = ("glibc.malloc.mmap_threshold", "glibc.malloc.trim_threshold")


def fix_malloc_thresholds(environ: Mapping[str, str] = os.environ) -> bool:
    """Fix glibc's mmap and trim thresholds (see above), unless the environment chose either;
    whether they were set here."""
    tunables = environ.get("GLIBC_TUNABLES", "")
    if any(name in environ for name in _OPERATOR_VARIABLES) or any(
        name in tunables for name in _OPERATOR_TUNABLES
    ):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the process's own C library
    except (OSError, AttributeError):  # not glibc (macOS), or a C library without mallopt
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    chosen = ((M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES), (M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES))
    return all([mallopt(option, value) for option, value in chosen])  # a list: set both


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    try:
        trim: Callable[[int], int] = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None
    return trim


def release_free_memory() -> bool:
    """Give the free space of every malloc arena back to the system (not only the heap's top);
    whether the C library could."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
