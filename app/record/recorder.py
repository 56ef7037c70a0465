"""The request side of the record: `Recorder.commit` returns once its record is durably stored.

Each worker has one Recorder, and the Recorder one writer process (app/record/writer.py,
started as `python -m app.server.record_writer`) at the other end of a socket pair. A request's
task sends its record down the socket (its fields as the chain hashes them:
app/record/wire.py) and awaits a future; the writer commits whatever has arrived as one group
and acknowledges it; the event loop reads the acknowledgements as it reads any socket, and
resolves the futures of that group in the order their records were sent. The event loop never
touches the disk, and no thread of the worker holds the interpreter lock for the record: the
writer's Python runs in its own process, on another core when there is one.

Backpressure: when `max_queue` records are waiting for their commit, `commit` raises
RecordUnavailable("queue_full") at once rather than waiting: a full queue means the store is far
behind, and a fast 503 with Retry-After tells clients and load balancers to back off.

Fail closed, recover by itself: a failed commit fails its group with the writer's reason
(disk_full, read_only, unreachable, store_error), and `health()` says so until a commit or the
writer's idle probe succeeds. A commit not acknowledged within `timeout` fails ("timeout"; its
record may still be committed later: a record may exist for an answer that was not given, never
the reverse). One watchdog timer serves every waiter: they wait in the order they were sent, so
the timer is set for the oldest one's deadline and, when it fires, fails those past theirs and
is set again for the next. A writer process that ends (killed, out of memory) fails what was
waiting for it ("writer_lost") and is started again, with a new chain, by the first commit or
readiness probe `retry_seconds` later; one that cannot be started (no process or memory left)
is the same "writer_lost", tried again a retry later.
"""

import asyncio
import collections
import contextlib
import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from app.record import gauges, metrics, wire
from app.record.chain import new_writer_id
from app.record.checkpoint import DEFAULT_MAX_WAL_PAGES
from app.record.config import RecordConfig
from app.record.writer import DEFAULT_MAX_GROUP, DEFAULT_RETRY_SECONDS

logger = logging.getLogger("app.record")

WRITER_MODULE: Final = "app.server.record_writer"
DEFAULT_MAX_QUEUE: Final = 10_000
DEFAULT_TIMEOUT: Final = 10.0
SOCKET_BUFFER: Final = 4 << 20  # a few big batches in flight without a partial send
RECV_BYTES: Final = 1 << 16

# A record waiting for its commit: its waiter's future, its rows, when it was sent
# (time.monotonic).
_Waiting = tuple["asyncio.Future[None]", int, float]


class RecordUnavailable(Exception):  # noqa: N818 - the name the issue and the lead use
    """The record could not be committed, so the prediction must not be answered (503).
    `reason` is one of app.record.metrics.FAILURE_REASONS."""

    def __init__(self, reason: str, detail: str | None = None) -> None:
        super().__init__(f"record unavailable: {reason}" + (f" ({detail})" if detail else ""))
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class RecorderStats:
    commits: int  # transactions that committed records
    records: int
    rows: int
    failed_commits: int


class Recorder:
    """`Recorder.from_config(RecordConfig.from_env())` in each worker process, then `start()`,
    `await commit(record)` per answered request, `close()` at shutdown."""

    def __init__(
        self,
        config: RecordConfig,
        *,
        max_queue: int = DEFAULT_MAX_QUEUE,
        max_group: int = DEFAULT_MAX_GROUP,
        timeout: float = DEFAULT_TIMEOUT,
        retry_seconds: float = DEFAULT_RETRY_SECONDS,
        max_wal_pages: int = DEFAULT_MAX_WAL_PAGES,
        log_level: str = "info",
        log_format: str = "text",
    ) -> None:
        if min(max_queue, max_group, max_wal_pages) < 1 or min(timeout, retry_seconds) <= 0:
            raise ValueError("the recorder's limits, timeout and retry must be positive")
        self.config = config
        self.writer_id = ""
        self._options = (max_group, retry_seconds, max_wal_pages, log_level, log_format)
        self._max_queue = max_queue
        self._timeout = timeout
        self._retry = retry_seconds
        self._process: subprocess.Popen[bytes] | None = None
        self._sock: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None  # the loop that reads the acks
        self._waiting: collections.deque[_Waiting] = collections.deque()
        self._timed_out = 0  # how many of the oldest waiters the watchdog has failed
        self._watchdog: asyncio.TimerHandle | None = None
        self._inbox = bytearray()
        self._outbox = bytearray()
        self._writable_watched = False  # whether the loop calls _flush when it can send
        self._lost_at: float | None = None
        self._stopping = False
        self._accepting = False
        self._health: tuple[bool, str | None] = (False, "closed")
        self._commits = self._records = self._rows = self._failed = 0

    @classmethod
    def from_config(cls, config: RecordConfig, **options: object) -> "Recorder":
        """The recorder of the store `config` names (options as for the constructor)."""
        return cls(config, **options)  # type: ignore[arg-type]

    # -- lifecycle --------------------------------------------------------------------------
    def start(self, wait: float = 10.0) -> tuple[bool, str | None]:
        """Start the writer process and wait up to `wait` seconds for its first connection
        (which migrates the schema); the health after it. A store that cannot be reached does
        not stop the start: commits fail closed until it can."""
        if self._process is not None:
            raise RuntimeError("the recorder is already started")
        self._accepting = True
        if not self._start_writer():
            return self.health()
        deadline = time.monotonic() + wait
        while self._health == (False, "starting") and self._sock is not None:
            if not self._read_for(deadline - time.monotonic()):
                break
        return self.health()

    def close(self, timeout: float = 30.0) -> None:
        """Stop taking records; the writer commits those sent and exits; close the socket."""
        self._accepting = False
        if self._sock is None:
            self._reap(timeout)
            self._set_health((False, "closed"))
            return
        self._stopping = True
        deadline = time.monotonic() + timeout
        if self._loop_elsewhere():  # that loop reads the acks: ask it to send the stop
            loop = self._loop
            assert loop is not None
            loop.call_soon_threadsafe(self._send, wire.stop_frame())
            while self._sock is not None and time.monotonic() < deadline:
                time.sleep(0.01)
        else:
            self._unbind()
            self._flush_blocking(self._outbox + wire.stop_frame(), deadline)
            while self._sock is not None and self._read_for(deadline - time.monotonic()):
                pass
        self._end("closed")
        self._reap(max(0.0, deadline - time.monotonic()))
        self._set_health((False, "closed"))

    def health(self) -> tuple[bool, str | None]:
        """(True, None) when the last attempt to write committed, else (False, reason). A
        writer lost more than `retry_seconds` ago is started again here too: readiness must
        not wait for a request, which its own 503 turns away."""
        if self._loop_elsewhere():
            return self._health  # that loop reads the socket
        if self._sock is None and self._accepting:
            self._start_writer()
        if self._sock is not None:
            self._pump()  # acks the loop has not read yet (an idle probe's, say)
        return self._health

    def stats(self) -> RecorderStats:
        return RecorderStats(self._commits, self._records, self._rows, self._failed)

    # -- the request side (event loop) ------------------------------------------------------
    async def commit(self, payload: bytes, rows: int) -> None:
        """Return once the record whose bytes are `payload` (app/record/chain.py:
        `record_bytes`, unchecked: the writer checks them), of `rows` rows, is durably
        committed; RecordUnavailable(reason) if it is not."""
        if not self._accepting:
            raise _refused("closed")
        if self._sock is None and not self._start_writer():
            raise _refused("writer_lost")
        if len(self._waiting) >= self._max_queue:
            raise _refused("queue_full")
        frame = wire.record_frame(payload)  # before it waits: each ack answers the next waiters
        loop = asyncio.get_running_loop()
        self._bind(loop)
        future: asyncio.Future[None] = loop.create_future()
        self._waiting.append((future, rows, time.monotonic()))
        self._send(frame)
        # One watchdog for all waiters, rather than asyncio.wait_for or a timer each: wait_for
        # wraps the future in another task-like waiter (a third of the record's cost on the
        # event loop), and a timer each costs a heap push, a cancel and the heap's cleanup.
        if self._watchdog is None:
            self._watchdog = loop.call_at(self._waiting[0][2] + self._timeout, self._watch)
        try:
            await future
        except _ExpiredError:
            self._set_health((False, "timeout"))  # not ready until a commit says otherwise
            raise _refused("timeout") from None

    def _watch(self) -> None:
        """Fail the waiters past their deadline; set the watchdog for the next one's."""
        self._watchdog = None
        loop = self._loop
        if loop is None:
            return
        oldest_allowed = time.monotonic() - self._timeout
        waiting = self._waiting
        while self._timed_out < len(waiting):
            future, _, sent = waiting[self._timed_out]
            if sent > oldest_allowed:
                self._watchdog = loop.call_at(sent + self._timeout, self._watch)
                return
            if not future.done():
                _expire_in_its_loop(future, loop)
            self._timed_out += 1

    def _start_writer(self) -> bool:
        """Start the writer process, or a new one for one that ended, at most once every
        `retry_seconds`; False when it is too early or the process could not be started (no
        process or memory left: it is tried again a retry later)."""
        if self._lost_at is not None and time.monotonic() - self._lost_at < self._retry:
            return False
        self._reap(1.0)
        try:
            self._spawn()
        except OSError as exc:
            logger.error(
                "the record's writer process could not be started (%s): predictions are "
                "refused until it can be",
                exc,
            )
            self._lost_at = time.monotonic()
            self._set_health((False, "writer_lost"))
            return False
        return True

    def _send(self, frame: bytes) -> None:
        """Queue `frame`; the frames queued in one pass of the event loop go in one write, so
        that the requests it served wake the writer once and share a group."""
        if self._sock is None:
            return  # the writer is gone: its waiters have been failed
        if not self._outbox and self._loop is not None:
            self._loop.call_soon(self._flush)
        self._outbox += frame  # in order behind what waits: the order is the acks' key

    def _flush(self) -> None:
        sock = self._sock
        if sock is None or not self._outbox:
            return
        try:
            sent = sock.send(self._outbox)
        except BlockingIOError:
            sent = 0
        except OSError:
            self._lost()
            return
        del self._outbox[:sent]
        if self._loop is None:
            return
        if self._outbox:
            self._watch_writable(self._loop, sock, True)
        elif self._writable_watched:  # asyncio's remove_writer: 14,000 instructions a flush
            self._watch_writable(self._loop, sock, False)

    def _watch_writable(
        self, loop: asyncio.AbstractEventLoop, sock: socket.socket, on: bool
    ) -> None:
        """Have `loop` call `_flush` when `sock` can take more (`on`), or stop doing so."""
        if on:
            loop.add_writer(sock.fileno(), self._flush)
        else:
            loop.remove_writer(sock.fileno())
        self._writable_watched = on

    def _on_readable(self) -> None:
        self._pump()

    def _pump(self) -> None:
        """Read and apply whatever acks have arrived, without waiting."""
        sock = self._sock
        if sock is None:
            return
        ended = False
        try:
            while data := sock.recv(RECV_BYTES):
                self._inbox += data
                if len(data) < RECV_BYTES:
                    break  # all there was: no second call only to hear EAGAIN
            else:
                ended = True
        except BlockingIOError:
            pass
        except OSError:
            ended = True
        self._apply_acks()  # the last acks come just before the end: apply them first
        if ended and self._sock is not None:
            self._ended()

    def _apply_acks(self) -> None:
        try:
            for ack in wire.read_acks(self._inbox):
                if ack.kind == wire.HEALTH:
                    self._set_health((ack.reason is None, ack.reason))
                elif ack.count > len(self._waiting) or ack.count < 1:
                    raise wire.WireError("an ack for records that were never sent")
                else:
                    self._settle_group(ack)
        except wire.WireError as exc:
            logger.error("the record's writer broke its protocol: %s", exc)
            self._lost()
            return
        gauges.QUEUE_DEPTH.set(len(self._waiting))

    def _settle_group(self, ack: wire.Ack) -> None:
        group = [self._waiting.popleft() for _ in range(ack.count)]
        self._timed_out = max(0, self._timed_out - ack.count)
        if ack.kind == wire.COMMITTED:
            self._commits += 1
            self._records += ack.count
            self._rows += sum(rows for _, rows, _ in group)
            # the group's first record waited longest: one observation a commit
            metrics.WAIT_SECONDS.observe(time.monotonic() - group[0][2])
            self._set_health((True, None))
            error = None
        else:
            self._failed += 1
            reason = ack.reason or "store_error"
            self._set_health((False, reason))
            error = reason
            _count_refused(reason, group)
        for future, _, _ in group:
            _settle(future, error)

    # -- the writer process -----------------------------------------------------------------
    def _spawn(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        for end in (ours, theirs):
            with contextlib.suppress(OSError):  # the kernel may cap it: a smaller buffer works
                end.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SOCKET_BUFFER)
                end.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SOCKET_BUFFER)
        self.writer_id = new_writer_id()
        max_group, retry, wal_pages, log_level, log_format = self._options
        command = [sys.executable, "-m", WRITER_MODULE, "--fd", str(theirs.fileno())]
        command += ["--writer-id", self.writer_id, "--max-group", str(max_group)]
        command += ["--retry-seconds", str(retry), "--max-wal-pages", str(wal_pages)]
        command += ["--log-level", log_level, "--log-format", log_format]
        try:
            self._process = subprocess.Popen(
                command,
                pass_fds=(theirs.fileno(),),
                env=_writer_env(self.config),
                stdin=subprocess.DEVNULL,
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        ours.setblocking(False)
        self._sock, self._inbox, self._outbox = ours, bytearray(), bytearray()
        self._lost_at, self._stopping = None, False
        self._set_health((False, "starting"))

    def _read_for(self, seconds: float) -> bool:
        """Wait up to `seconds` for acks and apply them; False when none came or it ended."""
        sock = self._sock
        if sock is None or seconds <= 0:
            return False
        if not wire.wait_ready(sock, seconds):
            return False
        self._pump()
        return self._sock is not None

    def _flush_blocking(self, data: bytes | bytearray, deadline: float) -> None:
        sock = self._sock
        self._outbox = bytearray()
        view = memoryview(bytes(data))
        while sock is not None and view and time.monotonic() < deadline:
            if not wire.wait_ready(sock, deadline - time.monotonic(), write=True):
                continue
            try:
                view = view[sock.send(view) :]
            except BlockingIOError:
                continue
            except OSError:
                return

    def _ended(self) -> None:
        """The writer closed its end: the normal end after a stop, else it was lost."""
        if self._stopping:
            self._end("closed")
        else:
            self._lost()

    def _lost(self) -> None:
        code = None if self._process is None else self._process.poll()
        logger.error(
            "the record's writer process ended (exit status %s): predictions are refused "
            "until it is started again",
            code,
        )
        self._end("writer_lost")
        self._lost_at = time.monotonic()
        self._set_health((False, "writer_lost"))

    def _end(self, reason: str) -> None:
        """Close our end; whatever still waits is failed with `reason`."""
        self._unbind()
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        waiting, self._waiting = self._waiting, collections.deque()
        self._timed_out = 0
        _count_refused(reason, waiting)
        for future, _, _ in waiting:
            _settle(future, reason)

    def _reap(self, timeout: float) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()  # a writer stuck past the stop's deadline: its records were failed
            process.wait()

    # -- which event loop reads the acks ----------------------------------------------------
    def _bind(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._loop is loop or self._sock is None:
            return
        self._unbind()
        self._loop = loop
        loop.add_reader(self._sock.fileno(), self._on_readable)
        if self._outbox:
            self._watch_writable(loop, self._sock, True)

    def _unbind(self) -> None:
        loop, self._loop = self._loop, None
        self._writable_watched = False
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        if loop is None or self._sock is None or loop.is_closed():
            return
        loop.remove_reader(self._sock.fileno())
        loop.remove_writer(self._sock.fileno())

    def _loop_elsewhere(self) -> bool:
        """True when the bound loop runs in another thread (then only it reads the socket)."""
        loop = self._loop
        if loop is None or loop.is_closed() or not loop.is_running():
            return False
        try:
            return asyncio.get_running_loop() is not loop
        except RuntimeError:
            return True

    def _set_health(self, health: tuple[bool, str | None]) -> None:
        if health[0] != self._health[0]:
            gauges.AVAILABLE.set(1 if health[0] else 0)  # each set writes to a shared file
        self._health = health


def _writer_env(config: RecordConfig) -> dict[str, str]:
    """The service's environment with the store's settings as `config` says (the URL in the
    environment, never on the command line)."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "RECORD_DIR")}
    env["RECORD_DIR"] = str(config.record_dir)
    if config.database_url:
        env["DATABASE_URL"] = config.database_url
    return env


def _count_refused(reason: str, waiting: Iterable[_Waiting]) -> None:
    """Count the answers `waiting` refuses for `reason`: a waiter that timed out, or whose
    request went away, was refused (and counted) already or never will be."""
    refused = sum(1 for future, _, _ in waiting if not future.done())
    if refused:
        metrics.count_failure(reason, refused)


def _refused(reason: str) -> RecordUnavailable:
    metrics.count_failure(reason)
    return RecordUnavailable(reason)


class _ExpiredError(Exception):
    """A commit's future outlived the recorder's timeout."""


def _expire_in_its_loop(future: "asyncio.Future[None]", loop: asyncio.AbstractEventLoop) -> None:
    """Fail `future` with _ExpiredError in its own loop's thread: a commit made on another
    loop (the recorder moved to this one since) still waits there; an ended loop waits no
    more."""
    owner = future.get_loop()
    if owner is loop:
        future.set_exception(_ExpiredError())
        return
    with contextlib.suppress(RuntimeError):  # it closed since: nobody waits there any more
        owner.call_soon_threadsafe(_expire, future)


def _expire(future: "asyncio.Future[None]") -> None:
    if not future.done():
        future.set_exception(_ExpiredError())


def _settle(future: "asyncio.Future[None]", reason: str | None) -> None:
    """Resolve `future` in its own loop's thread (close may run in another)."""
    loop = future.get_loop()
    if loop.is_closed():
        return  # nobody waits any more
    try:
        here = asyncio.get_running_loop() is loop
    except RuntimeError:
        here = not loop.is_running()
    if here:
        _resolve(future, reason)
    else:
        loop.call_soon_threadsafe(_resolve, future, reason)


def _resolve(future: "asyncio.Future[None]", reason: str | None) -> None:
    if future.done():  # its waiter timed out or was cancelled
        return
    if reason is None:
        future.set_result(None)
    else:
        future.set_exception(RecordUnavailable(reason))
