"""app/server/memory.py: glibc's mmap and trim thresholds fixed, unless the operator chose one;
the free space between blocks still in use given back on demand.

That large blocks then return to the system is measured on a live worker by
tests/system/server/test_body_budget.py (resident memory after a burst of 8 MiB bodies); that
reading a socket as asyncio does costs no page fault, here.
"""

import platform
import subprocess
import sys
from collections.abc import Mapping

import pytest

from app.server.memory import fix_malloc_thresholds

GLIBC = platform.libc_ver()[0] == "glibc"


@pytest.mark.parametrize(
    "environ",
    [
        {"MALLOC_MMAP_THRESHOLD_": "1048576"},
        {"MALLOC_TRIM_THRESHOLD_": "1048576"},
        {"GLIBC_TUNABLES": "glibc.malloc.mmap_threshold=1048576"},
        {"GLIBC_TUNABLES": "glibc.malloc.arena_max=2:glibc.malloc.trim_threshold=1048576"},
    ],
)
def test_an_operators_choice_is_left_alone(environ: Mapping[str, str]) -> None:
    assert fix_malloc_thresholds(environ) is False


@pytest.mark.skipif(not GLIBC, reason="mallopt is glibc's")
def test_the_threshold_is_fixed_under_glibc() -> None:
    # In a child, since mallopt changes the whole process; glibc answers whether it took it.
    code = "from app.server.memory import fix_malloc_thresholds; print(fix_malloc_thresholds({}))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "True"


# A child reads READS small messages from a socket with asyncio's read size and prints the
# minor page faults they cost, after fixing the thresholds as the service does ("service") or
# the mmap threshold alone at glibc's default ("default").
_READS_CODE = """
import asyncio.selector_events, ctypes, resource, socket, sys
from app.server.memory import M_MMAP_THRESHOLD, fix_malloc_thresholds
if sys.argv[1] == "service":
    assert fix_malloc_thresholds({})
else:
    assert ctypes.CDLL(None).mallopt(M_MMAP_THRESHOLD, 128 * 1024)
size = asyncio.selector_events._SelectorSocketTransport.max_size
a, b = socket.socketpair()
def reads(n):
    for _ in range(n):
        a.send(b"x" * 400)
        b.recv(size)
reads(100)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
reads(1000)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _child(code: str, mode: str) -> float:
    """What a child running `code` with argument `mode` prints, as a number."""
    done = subprocess.run(
        [sys.executable, "-c", code, mode], capture_output=True, text=True, check=True
    )
    return float(done.stdout)


@pytest.mark.skipif(not GLIBC, reason="mallopt is glibc's")
def test_reading_a_socket_as_asyncio_does_costs_no_page_fault() -> None:
    # glibc's 128 KiB default, fixed, mapped and unmapped asyncio's buffer on every read (the
    # control: a fault a read at least); above asyncio's read size the heap serves it.
    assert _child(_READS_CODE, "default") >= 1000
    assert _child(_READS_CODE, "service") < 50


# A child frees 80 MB of blocks below one still in use, with the service's thresholds, and
# prints how much of it left its resident memory, after release_free_memory ("release") or not.
_FREED_CODE = """
import sys
from app.server.memory import fix_malloc_thresholds, release_free_memory
assert fix_malloc_thresholds({})
def resident_mb():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096 / 2**20
large = [b"x" * 200_000 for _ in range(400)]  # below the mmap threshold: in the heap
pin = b"p" * 300_000  # above them, and too large for any gap below: the heap's top stays
held = resident_mb()
del large
if sys.argv[1] == "release":
    assert release_free_memory()
print(held - resident_mb())
"""


@pytest.mark.skipif(not GLIBC, reason="malloc_trim is glibc's")
def test_free_space_below_a_block_in_use_is_given_back_on_release() -> None:
    assert _child(_FREED_CODE, "keep") < 8  # the control: freeing alone keeps it resident
    assert _child(_FREED_CODE, "release") > 70
