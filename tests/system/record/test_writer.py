"""The writer's side, run in this process against real stores: what it commits and acknowledges
for each stream a worker can send, and how its store fails and resumes. (The Recorder drives the
same code in a process of its own: tests/system/record/test_recorder.py.)"""

import signal
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.record import wire
from app.record.audit import verify
from app.record.config import RecordConfig
from app.record.store import open_store
from app.record.writer import GroupWriter, serve
from app.server import record_writer
from tests.record_records import Answers, frame
from tests.system.record.conftest import fill


class Worker:
    """The worker's end of a socket pair whose other end a writer serves in a thread."""

    def __init__(self, config: RecordConfig, **options: float) -> None:
        self.sock, theirs = socket.socketpair()
        self.writer = GroupWriter(lambda: open_store(config), "test-writer")
        self.thread = threading.Thread(
            target=self._serve, args=(theirs, options), name="test-writer", daemon=True
        )
        self.thread.start()
        self.inbox = bytearray()

    def _serve(self, theirs: socket.socket, options: dict[str, float]) -> None:
        try:
            serve(theirs, self.writer, **options)  # type: ignore[arg-type]
        finally:
            self.writer.close()
            theirs.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def acks(self, until_records: int = 0, until_health: int = 0) -> list[wire.Ack]:
        """Acks until `until_records` records are answered and `until_health` health acks."""
        got: list[wire.Ack] = []
        self.sock.settimeout(30)
        while (
            sum(a.count for a in got if a.kind != wire.HEALTH) < until_records
            or sum(a.kind == wire.HEALTH for a in got) < until_health
        ):
            data = self.sock.recv(4096)
            assert data, "the writer ended early"
            self.inbox += data
            got += wire.read_acks(self.inbox)
        return got

    def end(self) -> None:
        self.sock.close()
        self.thread.join(30)
        assert not self.thread.is_alive()


@pytest.fixture
def worker(config: RecordConfig) -> Iterator[Worker]:
    w = Worker(config)
    assert w.acks(until_health=1) == [wire.Ack(wire.HEALTH, None, 0)]
    yield w
    w.end()


def test_what_arrives_together_is_one_commit_and_one_ack(
    worker: Worker, config: RecordConfig, answers: Answers
) -> None:
    records = [answers.single() for _ in range(20)]
    worker.send(b"".join(frame(r) for r in records))
    acks = worker.acks(until_records=20)
    assert all(a.kind == wire.COMMITTED for a in acks)
    assert len(acks) < 20  # one write of 20 frames: a few groups at most
    with open_store(config) as store:
        assert [link.record() for link in store.links()] == records
        assert verify(store) == []


def test_a_record_that_cannot_be_decoded_is_failed_alone_in_order(
    worker: Worker, config: RecordConfig, answers: Answers
) -> None:
    good = [answers.single() for _ in range(4)]
    bad = wire.HEADER.pack(wire.RECORD, 3) + b"abc"  # a record cut to three bytes
    worker.send(frame(good[0]) + frame(good[1]) + bad)
    worker.send(frame(good[2]) + frame(good[3]))
    acks = worker.acks(until_records=5)
    answered = [(a.kind, a.reason) for a in acks for _ in range(a.count)]
    assert answered == [
        (wire.COMMITTED, None),
        (wire.COMMITTED, None),
        (wire.FAILED, "store_error"),
        (wire.COMMITTED, None),
        (wire.COMMITTED, None),
    ]
    with open_store(config) as store:
        assert [link.record() for link in store.links()] == good


def test_a_stop_commits_what_came_before_it_and_ends(
    worker: Worker, config: RecordConfig, answers: Answers
) -> None:
    records = [answers.batch(3) for _ in range(5)]
    worker.send(b"".join(frame(r) for r in records) + wire.stop_frame())
    assert sum(a.count for a in worker.acks(until_records=5)) == 5
    worker.thread.join(30)
    assert not worker.thread.is_alive()
    assert worker.sock.recv(10) == b""  # it closed its end
    with open_store(config) as store:
        assert len(list(store.links())) == 5


def test_a_worker_gone_leaves_whole_records_committed_and_half_a_record_out(
    worker: Worker, config: RecordConfig, answers: Answers
) -> None:
    records = [answers.single() for _ in range(3)]
    half = frame(answers.single())[:-7]
    worker.send(b"".join(frame(r) for r in records) + half)
    worker.acks(until_records=3)
    worker.end()  # the worker died mid-frame
    with open_store(config) as store:
        assert [link.record() for link in store.links()] == records
        assert verify(store) == []


def test_a_store_that_comes_back_is_found_by_the_idle_probe(tmp_path: Path) -> None:
    blocker = tmp_path / "blocked"
    blocker.write_text("")  # RECORD_DIR under a file: the store cannot be opened
    w = Worker(RecordConfig(record_dir=blocker / "record"), retry_seconds=0.05)
    try:
        assert w.acks(until_health=1) == [wire.Ack(wire.HEALTH, "store_error", 0)]
        blocker.unlink()
        blocker.mkdir()
        assert w.acks(until_health=1) == [wire.Ack(wire.HEALTH, None, 0)]
    finally:
        w.end()


def test_a_full_disk_fails_the_group_with_its_reason_and_resumes(
    small_tmpfs: Path, answers: Answers
) -> None:
    config = RecordConfig(record_dir=small_tmpfs / "record")
    writer = GroupWriter(lambda: open_store(config), "full-disk")
    try:
        assert writer.commit([answers.batch(100)]) is None
        filler = fill(small_tmpfs)
        reasons = [writer.commit([answers.batch(2_000)]) for _ in range(3)]
        assert "disk_full" in reasons
        assert writer.health == (False, "disk_full")
        filler.unlink()
        assert writer.commit([answers.batch(100)]) is None
        assert writer.health == (True, None)  # type: ignore[comparison-overlap]  # it changed
    finally:
        writer.close()
    with open_store(config) as store:
        assert verify(store) == []


def test_the_process_entry_serves_a_socket_and_ignores_stop_signals(
    tmp_path: Path, answers: Answers, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`python -m app.server.record_writer`'s main, in this process: signals asked to be
    ignored (recorded, not applied: this is pytest's process), a stream served to its stop."""
    asked: dict[int, object] = {}
    monkeypatch.setattr(signal, "signal", lambda sig, how: asked.setdefault(sig, how))
    monkeypatch.setenv("RECORD_DIR", str(tmp_path / "record"))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    ours, theirs = socket.socketpair()
    records = [answers.single() for _ in range(3)]
    ours.sendall(b"".join(frame(r) for r in records) + wire.stop_frame())
    args = ["--fd", str(theirs.detach()), "--writer-id", "entry-test", "--max-group", "2"]
    args += ["--retry-seconds", "1", "--max-wal-pages", "100", "--log-level", "warning"]
    assert record_writer.main(args) == 0
    assert asked == {
        signal.SIGINT: signal.SIG_IGN,
        signal.SIGTERM: signal.SIG_IGN,
    }
    inbox = bytearray()
    with ours:
        while data := ours.recv(4096):
            inbox += data
    acks = list(wire.read_acks(inbox))
    assert [(a.kind, a.count) for a in acks] == [
        (wire.HEALTH, 0),
        (wire.COMMITTED, 2),  # --max-group 2
        (wire.COMMITTED, 1),
    ]
    with open_store(RecordConfig(record_dir=tmp_path / "record")) as store:
        assert [link.record() for link in store.links()] == records
