"""app/observability/log_writer.py on real pipes: a write never waits, order is kept, drops are
counted."""

import contextlib
import os
import time
from collections.abc import Iterator

import pytest

from app.observability import log_writer


@pytest.fixture
def lost() -> list[int]:
    return []


@pytest.fixture
def pipe() -> Iterator[tuple[int, int]]:
    read_end, write_end = os.pipe()
    yield read_end, write_end
    for fd in (read_end, write_end):
        with contextlib.suppress(OSError):  # closed by the test already
            os.close(fd)


def test_lines_reach_the_pipe_in_order(pipe: tuple[int, int], lost: list[int]) -> None:
    read_end, write_end = pipe
    writer = log_writer.BackgroundStderr(write_end, on_lost=lambda: lost.append(1))
    lines = [f"line {n}\n" for n in range(2000)]
    for line in lines:
        writer.write(line)
    assert writer.drain(5.0)
    os.close(write_end)
    received = b""
    while chunk := os.read(read_end, 65536):
        received += chunk
    assert received.decode() == "".join(lines)
    assert lost == []


def test_a_pipe_nobody_reads_costs_lines_not_time(pipe: tuple[int, int], lost: list[int]) -> None:
    _, write_end = pipe
    writer = log_writer.BackgroundStderr(
        write_end, max_queued=100_000, on_lost=lambda: lost.append(1)
    )
    line = "x" * 99 + "\n"
    started = time.monotonic()
    for _ in range(5000):  # 500 KB: the pipe (64 KiB) and the queue (100 KB) fill
        writer.write(line)
    assert time.monotonic() - started < 1.0
    # Kept: what fits in the pipe (64 KiB), the queue, and the batch the writer holds (at most
    # a queue's worth).
    assert 5000 - (65536 + 2 * 100_000) // 100 <= len(lost) < 5000
    assert not writer.drain(0.1)  # the queue cannot go: the pipe is full


def test_a_closed_pipe_counts_what_it_could_not_write(
    pipe: tuple[int, int], lost: list[int]
) -> None:
    read_end, write_end = pipe
    os.close(read_end)
    writer = log_writer.BackgroundStderr(write_end, on_lost=lambda: lost.append(1))
    for _ in range(10):
        writer.write("a line\n")
    assert writer.drain(5.0)
    assert len(lost) == 10
