"""What the processes of `python -m app` do about each other's death.

- A worker (or the metrics exposition process) stops when the process that started it dies.
  Killed with SIGKILL, uvicorn's supervisor cannot stop its workers: they would go on serving
  the port, unsupervised, and a restart of the service could not bind it ("Address already in
  use"). On Linux the kernel sends the child SIGTERM when its parent dies (prctl's
  PR_SET_PDEATHSIG), so it drains and exits as after a normal stop; elsewhere a daemon thread
  checks the parent once a second and does the same.
- A dead worker's live gauges (in flight, resident memory) are taken out of the exposition:
  prometheus-client's `mark_process_dead`, called by the supervisor once it has joined the
  worker. A worker that stops normally does it itself; one killed (SIGKILL, OOM) cannot, and its
  last values would be added to the live workers' forever.
"""

import contextlib
import ctypes
import ctypes.util
import os
import signal
import sys
import threading
import time
from typing import Final

PR_SET_PDEATHSIG: Final = 1  # <linux/prctl.h>
PR_SET_NAME: Final = 15
PARENT_POLL_SECONDS: Final = 1.0
EXIT_SIGNAL: Final = signal.SIGTERM  # a drain and a normal exit, as a stop asks


def exit_with_parent(parent_pid: int) -> None:
    """Have SIGTERM sent to this process when `parent_pid`, its parent, dies (now, if already)."""
    if not (sys.platform.startswith("linux") and _set_parent_death_signal()):
        threading.Thread(
            target=_watch_parent, args=(parent_pid,), name="parent-watch", daemon=True
        ).start()
    if os.getppid() != parent_pid:  # died before the request above: nobody would send it
        os.kill(os.getpid(), EXIT_SIGNAL)


def _set_parent_death_signal() -> bool:
    return _prctl(PR_SET_PDEATHSIG, int(EXIT_SIGNAL))


def name_process(name: str) -> None:
    """Show `name` (15 bytes at most) as this process's name in ps and top (Linux only)."""
    if sys.platform.startswith("linux"):
        _prctl(PR_SET_NAME, ctypes.c_char_p(name.encode()[:15]))


def _prctl(option: int, value: object) -> bool:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        return bool(libc.prctl(option, value, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


def _watch_parent(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(PARENT_POLL_SECONDS)
    os.kill(os.getpid(), EXIT_SIGNAL)


def forget_process(pid: int) -> None:
    """Remove the live gauges of `pid`, a process that has ended, from PROMETHEUS_MULTIPROC_DIR."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return
    from prometheus_client import multiprocess

    with contextlib.suppress(OSError):  # read-only or vanished: nothing more can be done
        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
