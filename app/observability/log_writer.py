"""A worker's stderr that never makes it wait: lines are queued, and a thread writes them.

Log lines are written where the request is answered, on the event loop's thread. Written
straight to stderr, a pipe whose reader stops reading (a stalled log collector, a container
runtime's full buffer) blocks that write, and with it every request of the worker: measured,
1 worker stopped answering after 588 predictions, when the 64 KiB pipe filled. Here a line that
cannot be written without waiting is queued instead, and a daemon thread writes the queue to
file descriptor 2. If the queue holds
more than MAX_QUEUED_BYTES (its writes are blocked, or failing; with the batch being written,
at most twice that is held), further lines are dropped and
counted in `predictor_log_lines_lost_total`, as are lines a write fails for (a closed pipe,
a full disk). Lines keep their order. When the server stops, the queue is written for up to
DRAIN_SECONDS, so a normal stop loses nothing.

`background_stderr()` puts it in place of sys.stderr, and as the stream of every logging
handler writing to sys.stderr, for the life of a server (app/server/serve.py).
"""

import contextlib
import io
import logging
import os
import select
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any, Final

from app.observability.logs import lost_log_line

MAX_QUEUED_BYTES: Final = 4 * 1024 * 1024
DRAIN_SECONDS: Final = 1.0


class BackgroundStderr(io.TextIOBase):
    """A text stream that never blocks its caller (see above).

    A line is written at once, by the caller, when nothing is queued and `poll` says the file
    takes it without waiting (a pipe with room, a file, a terminal): the usual case, in the order
    and at the moment it was logged. Otherwise it is queued, and a daemon thread writes the
    queue, blocking if it must; until the queue is empty every line goes through it, so that the
    order is kept.
    """

    def __init__(
        self,
        fd: int = 2,
        max_queued: int = MAX_QUEUED_BYTES,
        on_lost: Callable[[], None] = lost_log_line,
    ) -> None:
        super().__init__()
        self.fd = fd
        self.on_lost = on_lost
        self.max_queued = max_queued
        self.lock = threading.Lock()  # over the fields below, and the caller's own writes
        self.pending: deque[bytes] = deque()
        self.queued = 0
        self.busy = False  # the thread has lines to write: every line goes to the queue
        self.poll = select.poll()
        self.poll.register(fd, select.POLLOUT)
        self.wake = threading.Event()
        self.thread = threading.Thread(target=self.run, name="stderr-writer", daemon=True)
        self.thread.start()

    def write(self, text: str) -> int:
        data = text.encode("utf-8", "backslashreplace")
        with self.lock:
            if not self.busy and len(data) <= select.PIPE_BUF and self.poll.poll(0):
                try:
                    os.write(self.fd, data)  # a pipe takes PIPE_BUF bytes whole, or none
                except OSError:  # a closed pipe, a full disk
                    self.lost(data)
                return len(text)
            if self.queued + len(data) > self.max_queued:
                self.lost(data)
                return len(text)
            self.pending.append(data)
            self.queued += len(data)
            self.busy = True
        self.wake.set()
        return len(text)

    def run(self) -> None:
        while True:
            self.wake.wait()
            self.wake.clear()
            while True:
                with self.lock:
                    if not self.pending:
                        self.busy = False
                        break
                    batch = b"".join(self.pending)
                    self.pending.clear()
                    self.queued -= len(batch)
                self.write_out(batch)  # outside the lock: this is the write that may wait

    def write_out(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                written = os.write(self.fd, view)
            except InterruptedError:
                continue
            except OSError:  # a closed pipe, a full disk: these lines are lost
                self.lost(bytes(view))
                return
            view = view[written:]

    def lost(self, data: bytes) -> None:
        for _ in range(max(1, data.count(b"\n"))):
            self.on_lost()

    def drain(self, timeout: float = DRAIN_SECONDS) -> bool:
        """Wait up to `timeout` s for the queue to be written; True if it was."""
        deadline = time.monotonic() + timeout
        while self.busy:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.005)
        return True

    def flush(self) -> None:
        """Nothing to do: a line is written or queued as it comes."""

    def fileno(self) -> int:
        return self.fd

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return os.isatty(self.fd)

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return "utf-8"


def _retarget(old: object, new: Any) -> list[logging.StreamHandler]:  # type: ignore[type-arg]
    """Point every logging handler that writes to `old` at `new`; the handlers changed."""
    loggers = [logging.getLogger(), *map(logging.getLogger, logging.root.manager.loggerDict)]
    changed = []
    for logger in loggers:
        for handler in logger.handlers:
            if isinstance(handler, logging.StreamHandler) and handler.stream is old:
                handler.setStream(new)
                changed.append(handler)
    return changed


@contextlib.contextmanager
def background_stderr() -> Iterator[BackgroundStderr]:
    """sys.stderr and the logging handlers on it write through a BackgroundStderr meanwhile."""
    original = sys.stderr
    if hasattr(original, "flush"):
        with contextlib.suppress(OSError, ValueError):
            original.flush()
    writer = BackgroundStderr()
    sys.stderr = writer
    handlers = _retarget(original, writer)
    try:
        yield writer
    finally:
        writer.drain()
        sys.stderr = original
        for handler in handlers:
            handler.setStream(original)
