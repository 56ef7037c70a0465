"""scripts/bench/ab.py's CPU figures: a server's whole process tree, and its writers' share."""

import subprocess
import sys
import time

import psutil

from app.record.recorder import WRITER_MODULE
from scripts.bench.ab import cpu_seconds

BURN = "import time\nend = time.process_time() + {seconds}\nwhile time.process_time() < end: pass\n"


def test_cpu_seconds_counts_the_tree_and_the_writers_share() -> None:
    # A "writer" is any process whose command line names the writer's module, as the service's.
    writer = BURN.format(seconds=0.4) + "time.sleep(60)\n"
    parent = (
        "import subprocess, sys\n"
        f"subprocess.Popen([sys.executable, '-c', {writer!r}, {WRITER_MODULE!r}])\n"
        + BURN.format(seconds=0.2)
        + "time.sleep(60)\n"
    )
    root = subprocess.Popen([sys.executable, "-c", parent])
    try:
        deadline = time.monotonic() + 20
        total, writers = cpu_seconds(root.pid)
        while (writers < 0.4 or total - writers < 0.2) and time.monotonic() < deadline:
            time.sleep(0.05)
            total, writers = cpu_seconds(root.pid)
        assert writers >= 0.4  # the child's burn, counted as the writers'
        assert total - writers >= 0.2  # the parent's own, in the total only
        assert writers < 0.4 + 0.3  # and not the parent's too (its start is all it adds)
    finally:
        for child in psutil.Process(root.pid).children(recursive=True):
            child.kill()
        root.kill()
        root.wait()
