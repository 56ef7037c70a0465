"""Large freed blocks go back to the system at once, so that a worker's memory returns after a
burst of large requests.

glibc's malloc serves a block of 128 KiB or more with a mapping of its own, unmapped when the
block is freed; but each such block freed raises that threshold to its size (up to 32 MiB), so
after the first 8 MiB body every later one comes from the heap, whose freed space glibc keeps
wherever a small block still lives above it. Twenty concurrent 8 MiB V2 bodies, twice, left a
worker at 137 MB after starting from 78 MB; with the threshold fixed, at 79 MB. Setting it
explicitly (mallopt) is what stops its rises; the value is glibc's own default.

An operator's own choice (MALLOC_MMAP_THRESHOLD_, or glibc.malloc.mmap_threshold in
GLIBC_TUNABLES) is left alone, and so is any C library other than glibc.
"""

import ctypes
import os
from collections.abc import Mapping
from typing import Final

M_MMAP_THRESHOLD: Final = -3  # glibc's <malloc.h>
MMAP_THRESHOLD_BYTES: Final = 128 * 1024
_OPERATOR_CHOICE: Final = ("MALLOC_MMAP_THRESHOLD_", "glibc.malloc.mmap_threshold")


def fix_mmap_threshold(environ: Mapping[str, str] = os.environ) -> bool:
    """Fix glibc's mmap threshold at MMAP_THRESHOLD_BYTES, unless the environment chose one;
    whether it was set here."""
    chosen = environ.get("MALLOC_MMAP_THRESHOLD_") is not None or (
        _OPERATOR_CHOICE[1] in environ.get("GLIBC_TUNABLES", "")
    )
    if chosen:
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the process's own C library
    except (OSError, AttributeError):  # not glibc (macOS), or a C library without mallopt
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))
