"""app/server/memory.py: glibc's mmap threshold fixed, unless the operator chose one.

That large blocks then return to the system is measured on a live worker by
tests/system/server/test_body_budget.py (resident memory after a burst of 8 MiB bodies).
"""

import platform
import subprocess
import sys
from collections.abc import Mapping

import pytest

from app.server.memory import fix_mmap_threshold

GLIBC = platform.libc_ver()[0] == "glibc"


@pytest.mark.parametrize(
    "environ",
    [
        {"MALLOC_MMAP_THRESHOLD_": "1048576"},
        {"GLIBC_TUNABLES": "glibc.malloc.mmap_threshold=1048576"},
    ],
)
def test_an_operators_choice_is_left_alone(environ: Mapping[str, str]) -> None:
    assert fix_mmap_threshold(environ) is False


@pytest.mark.skipif(not GLIBC, reason="mallopt is glibc's")
def test_the_threshold_is_fixed_under_glibc() -> None:
    # In a child, since mallopt changes the whole process; glibc answers whether it took it.
    code = "from app.server.memory import fix_mmap_threshold; print(fix_mmap_threshold({}))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "True"
