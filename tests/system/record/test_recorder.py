"""The group-commit Recorder against real stores: it returns only after the commit, shares
transactions under concurrency, fails closed when the store cannot write and resumes alone."""

import asyncio
import errno
import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from app.record import metrics
from app.record import recorder as recorder_module
from app.record.audit import verify
from app.record.chain import FIELD_NAMES, field_bytes
from app.record.config import RecordConfig
from app.record.entry import PredictionRecord
from app.record.recorder import Recorder, RecordUnavailable
from app.record.store import open_store
from tests.postgres import PostgresServer
from tests.record_records import Answers, commit
from tests.system.record.conftest import fill

CONCURRENT = 200


def recorder_for(config: RecordConfig, **options: float) -> Recorder:
    return Recorder.from_config(config, **options)


def visible(config: RecordConfig, request_id: str) -> bool:
    with open_store(config) as other:  # a second connection: what another reader sees
        rows = other.execute("SELECT COUNT(*) FROM records WHERE request_id = ?", (request_id,))
    return rows == [(1,)]


async def commit_and_check(recorder: Recorder, config: RecordConfig, r: PredictionRecord) -> bool:
    await commit(recorder, r)
    return await asyncio.to_thread(visible, config, r.request_id)


def test_concurrent_commits_share_transactions_and_return_after_commit(
    config: RecordConfig, answers: Answers
) -> None:
    records = [answers.single() for _ in range(CONCURRENT)]
    recorder = recorder_for(config)
    assert recorder.start() == (True, None)

    async def main() -> list[bool]:
        return await asyncio.gather(*(commit_and_check(recorder, config, r) for r in records))

    try:
        seen = asyncio.run(main())
    finally:
        recorder.close()
    stats = recorder.stats()
    assert all(seen)
    assert stats.records == CONCURRENT
    assert stats.commits < CONCURRENT  # requests waiting together shared commits
    with open_store(config) as store:
        assert verify(store) == []
        if store.dialect.name == "postgresql":  # the server's own count of transactions
            (count,) = store.execute("SELECT COUNT(DISTINCT xmin::text) FROM records")
            assert count == (stats.commits,)


def test_close_commits_what_is_queued(config: RecordConfig, answers: Answers) -> None:
    recorder = recorder_for(config)
    recorder.start()
    records = [answers.batch(10) for _ in range(50)]

    async def main() -> None:
        tasks = [asyncio.create_task(commit(recorder, r)) for r in records]
        await asyncio.sleep(0)  # every record queued
        await asyncio.to_thread(recorder.close)
        await asyncio.gather(*tasks)

    asyncio.run(main())
    with open_store(config) as store:
        assert len(list(store.links())) == len(records)
    with pytest.raises(RecordUnavailable) as raised:
        asyncio.run(commit(recorder, records[0]))
    assert raised.value.reason == "closed"


def test_a_full_queue_refuses_at_once(config: RecordConfig, answers: Answers) -> None:
    recorder = recorder_for(config, max_queue=1)
    recorder.start()
    records = [answers.single() for _ in range(20)]

    async def main() -> list[object]:
        return await asyncio.gather(*(commit(recorder, r) for r in records), return_exceptions=True)

    try:
        results = asyncio.run(main())
    finally:
        recorder.close()
    refused = [r for r in results if isinstance(r, RecordUnavailable)]
    assert refused
    assert all(r.reason == "queue_full" for r in refused)
    with open_store(config) as store:  # what was accepted was committed, nothing else
        assert len(list(store.links())) == len(results) - len(refused)


# -- fail closed, recover by itself -----------------------------------------------------------
def commit_one(recorder: Recorder, record: PredictionRecord | bytes) -> str | None:
    """Commit a record, or bytes sent as a one-row record's; the failure's reason."""
    sent = (
        commit(recorder, record)
        if isinstance(record, PredictionRecord)
        else recorder.commit(record, 1)
    )
    try:
        asyncio.run(sent)
    except RecordUnavailable as exc:
        return exc.reason
    return None


def unchecked(record: PredictionRecord, **changes: Any) -> bytes:
    """The bytes of `record` with `changes` no record may hold, sent as the request path sends
    its records: unchecked until the writer decodes them."""
    fields = {name: getattr(record, name) for name in FIELD_NAMES}
    return field_bytes(**{**fields, **changes})


def test_a_record_sent_unchecked_is_checked_by_the_writer(
    config: RecordConfig, answers: Answers
) -> None:
    """The event loop sends its records' bytes, unchecked: one with a value no answer could
    have fails its own commit at the writer, nothing of it is stored, the store stays ready (no
    commit is needed to say so: a not-ready worker is sent none), and the next one commits."""
    good = answers.single()
    bad = unchecked(good, request_id="bad-status", status=42)
    recorder = recorder_for(config)
    recorder.start()
    try:
        before = failures("store_error")
        assert commit_one(recorder, bad) == "store_error"
        assert failures("store_error") == before + 1  # the refused answer, counted once
        assert recorder.health() == (True, None)
        assert commit_one(recorder, good) is None
    finally:
        recorder.close()
    with open_store(config) as store:
        assert [link.record() for link in store.links()] == [good]
        assert verify(store) == []


def failures(reason: str) -> float:
    value = metrics.REGISTRY.get_sample_value("predictor_record_failures_total", {"reason": reason})
    return 0.0 if value is None else value


def available_gauge() -> float:
    value = metrics.REGISTRY.get_sample_value("predictor_record_available")
    return -1.0 if value is None else value


def test_sqlite_on_a_full_disk_fails_closed_and_resumes(
    small_tmpfs: Path, answers: Answers
) -> None:
    config = RecordConfig(record_dir=small_tmpfs / "record")
    recorder = recorder_for(config, retry_seconds=0.05)
    assert recorder.start() == (True, None)
    try:
        assert commit_one(recorder, answers.batch(100)) is None
        filler = fill(small_tmpfs)
        failures = [commit_one(recorder, answers.batch(2_000)) for _ in range(3)]
        assert "disk_full" in failures  # the WAL may take a commit or two before it is full
        assert recorder.health() == (False, "disk_full")
        assert available_gauge() == 0.0
        filler.unlink()
        assert commit_one(recorder, answers.batch(100)) is None
        assert recorder.health() == (True, None)
        assert available_gauge() == 1.0
    finally:
        recorder.close()
    with open_store(config) as store:
        assert verify(store) == []
        committed = sum(1 for _ in store.links())
    assert committed == 2 + failures.count(None)


def test_postgres_stopped_fails_closed_and_resumes_when_started(
    stoppable_pg: PostgresServer, answers: Answers
) -> None:
    config = RecordConfig(database_url=stoppable_pg.database("record_restart"))
    recorder = recorder_for(config, retry_seconds=0.05)
    assert recorder.start() == (True, None)
    try:
        assert commit_one(recorder, answers.single()) is None
        stoppable_pg.stop()
        try:
            assert commit_one(recorder, answers.single()) == "unreachable"
            assert recorder.health() == (False, "unreachable")
            assert commit_one(recorder, answers.single()) == "unreachable"  # retried, still down
        finally:
            stoppable_pg.start()
        assert commit_one(recorder, answers.single()) is None
        assert recorder.health() == (True, None)
    finally:
        recorder.close()
    with open_store(config) as store:
        assert verify(store) == []
        assert sum(1 for _ in store.links()) == 2


def test_a_database_restart_between_commits_costs_no_answer(
    stoppable_pg: PostgresServer, answers: Answers
) -> None:
    config = RecordConfig(database_url=stoppable_pg.database("record_bounce"))
    recorder = recorder_for(config, retry_seconds=60.0)
    recorder.start()
    try:
        assert commit_one(recorder, answers.single()) is None
        stoppable_pg.stop()  # the writer's connection breaks while idle
        stoppable_pg.start()
        assert commit_one(recorder, answers.batch(3)) is None  # reconnected, written once
        assert recorder.stats().failed_commits == 0
    finally:
        recorder.close()
    with open_store(config) as store:
        assert verify(store) == []
        assert [link.seq for link in store.links()] == [1, 2]


def test_an_idle_recorder_recovers_its_health_by_probing(
    stoppable_pg: PostgresServer, answers: Answers
) -> None:
    config = RecordConfig(database_url=stoppable_pg.database("record_probe"))
    recorder = recorder_for(config, retry_seconds=0.05)
    recorder.start()
    try:
        stoppable_pg.stop()
        try:
            assert commit_one(recorder, answers.single()) == "unreachable"
        finally:
            stoppable_pg.start()
        for _ in range(200):  # no commit comes: the writer's probe finds the store back
            if recorder.health()[0]:
                break
            asyncio.run(asyncio.sleep(0.05))
        assert recorder.health() == (True, None)
    finally:
        recorder.close()


def test_a_store_unreachable_at_start_does_not_stop_the_start(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")  # RECORD_DIR under a file: the folder cannot be made
    recorder = recorder_for(RecordConfig(record_dir=blocker / "record"), retry_seconds=0.05)
    ok, reason = recorder.start()
    try:
        assert (ok, reason) == (False, "store_error")
        assert os.path.isfile(blocker)
    finally:
        recorder.close()


def test_postgres_read_only_fails_closed_and_resumes(
    pg_server: PostgresServer, answers: Answers
) -> None:
    name = "record_read_only"
    config = RecordConfig(database_url=pg_server.database(name))
    recorder = recorder_for(config, retry_seconds=60.0)  # no probe: the commits reconnect
    recorder.start()
    admin = RecordConfig(database_url=pg_server.url())
    try:
        with open_store(admin) as db:
            db.execute(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
            db.execute(  # the recorder's session ends: its next connection is read-only
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = ?",
                (name,),
            )
        reasons = [commit_one(recorder, answers.single()) for _ in range(3)]
        assert reasons[-1] == "read_only"  # the first may see the ended session first
        assert recorder.health() == (False, "read_only")
        with open_store(admin) as db:
            db.execute(f'ALTER DATABASE "{name}" SET default_transaction_read_only = off')
        assert commit_one(recorder, answers.single()) is None
        assert recorder.health() == (True, None)
    finally:
        recorder.close()
    with open_store(config) as store:
        assert verify(store) == []
        assert sum(1 for _ in store.links()) == 1


def test_a_stalled_database_times_out_and_resumes(
    stoppable_pg: PostgresServer, answers: Answers
) -> None:
    config = RecordConfig(database_url=stoppable_pg.database("record_stall"))
    recorder = recorder_for(config, timeout=1.0, retry_seconds=60.0)
    recorder.start()
    server = psutil.Process(stoppable_pg.pid())
    stalled = [server, *server.children(recursive=True)]
    try:
        for process in stalled:  # the server stops answering, its connections stay open
            process.suspend()
        try:
            assert commit_one(recorder, answers.single()) == "timeout"
            assert recorder.health() == (False, "timeout")
        finally:
            for process in stalled:
                process.resume()
        assert commit_one(recorder, answers.single()) is None
        assert recorder.health() == (True, None)
    finally:
        recorder.close()
    with open_store(config) as store:
        assert verify(store) == []  # the timed-out record may be there too: never the reverse
        assert sum(1 for _ in store.links()) in (1, 2)


def test_commits_make_no_temporary_file(
    tmp_path: Path, answers: Answers, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The writer's SQLite keeps its statement journals in memory (temp_store=MEMORY): else,
    under a steady load, it creates and removes a file in its temporary folder (SQLITE_TMPDIR,
    else /var/tmp) every few commits. A file created or removed in a folder changes the
    folder's modification time."""
    temporary = tmp_path / "sqlite-tmp"
    temporary.mkdir()
    os.utime(temporary, ns=(0, 0))
    monkeypatch.setenv("SQLITE_TMPDIR", str(temporary))  # the writer process inherits it
    recorder = recorder_for(RecordConfig(tmp_path / "record"))
    assert recorder.start() == (True, None)

    async def concurrently() -> None:
        for _ in range(200):
            await asyncio.gather(*(commit(recorder, answers.single()) for _ in range(8)))

    try:
        asyncio.run(concurrently())
    finally:
        recorder.close()
    assert os.stat(temporary).st_mtime_ns == 0


# -- the writer process ------------------------------------------------------------------------
def writer_process(recorder: Recorder) -> psutil.Process:
    """The recorder's writer process, found as an operator would: by its writer id."""
    for child in psutil.Process().children():
        if recorder.writer_id in child.cmdline():
            return child
    raise AssertionError("no writer process")


def test_a_killed_writer_fails_its_waiters_and_is_started_again(
    config: RecordConfig, answers: Answers
) -> None:
    recorder = recorder_for(config, retry_seconds=0.2)
    assert recorder.start() == (True, None)
    first_writer = recorder.writer_id
    try:
        assert commit_one(recorder, answers.single()) is None
        writer = writer_process(recorder)
        writer.suspend()  # so that the next record is surely waiting when it dies

        async def killed_while_waiting() -> str | None:
            task = asyncio.create_task(commit(recorder, answers.single()))
            await asyncio.sleep(0.2)
            writer.kill()
            try:
                await task
            except RecordUnavailable as exc:
                return exc.reason
            return None

        assert asyncio.run(killed_while_waiting()) == "writer_lost"
        assert recorder.health() == (False, "writer_lost")
        assert commit_one(recorder, answers.single()) == "writer_lost"  # within the retry
        deadline = asyncio.run(asyncio.sleep(0.25))  # past it: the next commit starts one
        assert deadline is None
        assert commit_one(recorder, answers.single()) is None
        assert recorder.health() == (True, None)
        assert recorder.writer_id != first_writer  # a new process, a new chain
    finally:
        recorder.close()
    with open_store(config) as store:
        assert verify(store) == []
        assert len(store.writers()) == 2


@pytest.mark.parametrize("then", ["writer_lost", "store_error"])
def test_a_timed_out_answer_is_counted_once(
    config: RecordConfig, answers: Answers, then: str
) -> None:
    """A commit that timed out (its 503 counted as `timeout`) is not counted again when its
    wait ends otherwise: its writer lost, or its record refused by the writer."""
    record: PredictionRecord | bytes = answers.single()
    if then == "store_error":  # a record the writer refuses
        record = unchecked(answers.single(), status=42)
    recorder = recorder_for(config, timeout=0.3, retry_seconds=0.2)
    assert recorder.start() == (True, None)
    try:
        writer = writer_process(recorder)
        writer.suspend()
        before = {reason: failures(reason) for reason in ("timeout", then)}
        assert commit_one(recorder, record) == "timeout"
        if then == "writer_lost":
            kill_writer(recorder)
        else:
            writer.resume()
            assert commit_one(recorder, answers.single()) is None  # after the refusal's ack
        assert failures("timeout") == before["timeout"] + 1
        assert failures(then) == before[then]
    finally:
        recorder.close()


async def timed_commit(recorder: Recorder, record: PredictionRecord) -> tuple[str | None, float]:
    """The commit's failure reason (None: committed) and how long it took."""
    began = time.perf_counter()
    try:
        await commit(recorder, record)
    except RecordUnavailable as exc:
        return exc.reason, time.perf_counter() - began
    return None, time.perf_counter() - began


def test_each_waiter_times_out_at_its_own_deadline(config: RecordConfig, answers: Answers) -> None:
    """Every waiter past the timeout is failed at its own time (plus the loop's delay), those
    that came later too, and one that comes after all the others were failed."""
    timeout = 0.6
    recorder = recorder_for(config, timeout=timeout, retry_seconds=0.2)
    assert recorder.start() == (True, None)
    writer = writer_process(recorder)
    writer.suspend()

    async def timed(delay: float) -> tuple[str | None, float]:
        await asyncio.sleep(delay)
        return await timed_commit(recorder, answers.single())

    async def staggered() -> list[tuple[str | None, float]]:
        first = await asyncio.gather(timed(0.0), timed(0.25), timed(0.4))
        return [*first, await timed(0.2)]  # after all the others were failed

    try:
        waited = asyncio.run(asyncio.wait_for(staggered(), timeout * 10))  # none hangs
    finally:
        writer.resume()
        recorder.close()
    assert [reason for reason, _ in waited] == ["timeout"] * 4
    for _, seconds in waited:
        assert timeout <= seconds < timeout * 1.05 + 0.15, waited


def test_waiters_acknowledged_after_their_timeout_leave_the_next_ones_timed(
    config: RecordConfig, answers: Answers
) -> None:
    """Records that timed out and were then committed (their acks come late) leave the watch
    over later waiters exact: one that waits behind them still gets its commit, and the next
    stall still fails its waiters at their deadline, not earlier nor never."""
    timeout = 0.4
    recorder = recorder_for(config, timeout=timeout, retry_seconds=0.2)
    assert recorder.start() == (True, None)
    writer = writer_process(recorder)

    async def timed() -> tuple[str | None, float]:
        return await timed_commit(recorder, answers.single())

    async def rounds() -> list[list[tuple[str | None, float]]]:
        seen = []
        for _ in range(3):
            writer.suspend()
            stalled = await asyncio.gather(timed(), timed(), timed())
            writer.resume()
            seen += [list(stalled), [await timed()]]  # behind the three late acks
        return seen

    try:
        seen = asyncio.run(asyncio.wait_for(rounds(), timeout * 20))
    finally:
        writer.resume()
        recorder.close()
    stalls, commits = seen[0::2], seen[1::2]
    assert [[reason for reason, _ in stall] for stall in stalls] == [["timeout"] * 3] * 3
    assert [commit[0][0] for commit in commits] == [None] * 3
    for stall in stalls:
        for _, seconds in stall:
            assert timeout <= seconds < timeout * 1.05 + 0.15, seen


def test_a_waiter_on_another_event_loop_still_times_out(
    config: RecordConfig, answers: Answers
) -> None:
    """A commit waiting on one loop while the recorder moves to another (a second thread's
    loop commits) is still failed at its deadline, in its own loop."""
    timeout = 0.5
    recorder = recorder_for(config, timeout=timeout, retry_seconds=0.2)
    assert recorder.start() == (True, None)
    writer = writer_process(recorder)
    writer.suspend()
    waited: dict[str, tuple[str | None, float]] = {}

    def on_its_own_loop(name: str) -> None:
        waited[name] = asyncio.run(
            asyncio.wait_for(timed_commit(recorder, answers.single()), timeout * 6)
        )

    try:
        first = threading.Thread(target=on_its_own_loop, args=("first",))
        first.start()
        time.sleep(0.1)  # the first waits on its loop before the second moves the recorder
        on_its_own_loop("second")
        first.join(timeout * 10)
    finally:
        writer.resume()
        recorder.close()
    assert sorted(waited) == ["first", "second"]
    for reason, seconds in waited.values():
        assert reason == "timeout"
        assert timeout <= seconds < timeout * 1.05 + 0.15, waited


def test_the_writer_ignores_stop_signals_and_ends_with_its_worker(
    tmp_path: Path, answers: Answers
) -> None:
    recorder = recorder_for(RecordConfig(record_dir=tmp_path / "record"))
    recorder.start()
    writer = writer_process(recorder)
    try:
        for stop in (signal.SIGINT, signal.SIGTERM):  # a Ctrl-C or a stop sent to the group
            writer.send_signal(stop)
        assert commit_one(recorder, answers.single()) is None
        assert writer.is_running()
    finally:
        recorder.close()
    assert not writer.is_running()  # closed: it committed what came and exited


def test_records_larger_than_the_sockets_buffer_cross_whole_and_in_order(
    tmp_path: Path, answers: Answers, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 100,000-row V2 batch is a 1.9 MB record: with the socket's buffers at 64 KiB (the
    kernel's default is near that where `wmem_max` is not raised) it goes in pieces as the
    writer reads, small records queued behind it, all acknowledged in the order sent."""
    monkeypatch.setattr(recorder_module, "SOCKET_BUFFER", 1 << 16)
    config = RecordConfig(record_dir=tmp_path / "record")
    records = [answers.batch(100_000), answers.single(), answers.batch(50_000), answers.single()]
    recorder = recorder_for(config)
    assert recorder.start() == (True, None)

    async def main() -> None:
        await asyncio.gather(*(commit(recorder, r) for r in records))
        # all sent: the loop no longer watches the socket for room to send (a writer callback
        # left behind would run on every pass of the loop)
        assert recorder._sock is not None
        assert not asyncio.get_running_loop().remove_writer(recorder._sock.fileno())

    try:
        asyncio.run(main())
    finally:
        recorder.close()
    with open_store(config) as store:
        assert [link.record() for link in store.links()] == records
        assert verify(store) == []


def kill_writer(recorder: Recorder) -> None:
    """SIGKILL the writer, and wait until the recorder has seen it go."""
    writer = writer_process(recorder)
    writer.kill()
    writer.wait(5)
    deadline = time.monotonic() + 5
    while recorder.health()[0] and time.monotonic() < deadline:
        time.sleep(0.01)
    assert recorder.health() == (False, "writer_lost")


def test_readiness_starts_a_lost_writer_again_without_a_request(
    tmp_path: Path, answers: Answers
) -> None:
    """A load balancer sends nothing to a worker that is not ready: the probe itself starts
    the new writer once the retry has passed."""
    recorder = recorder_for(RecordConfig(record_dir=tmp_path / "record"), retry_seconds=0.1)
    assert recorder.start() == (True, None)
    try:
        kill_writer(recorder)
        deadline = time.monotonic() + 5
        while recorder.health() != (True, None) and time.monotonic() < deadline:
            time.sleep(0.02)  # probes, no request
        assert recorder.health() == (True, None)
        assert commit_one(recorder, answers.single()) is None
    finally:
        recorder.close()


def test_a_worker_with_over_1024_descriptors_starts_a_writer_that_works(
    tmp_path: Path, answers: Answers
) -> None:
    """The writer keeps the socket's descriptor number from its worker: in a worker holding
    more than 1,024 connections it is past what select() can watch."""
    recorder = recorder_for(RecordConfig(record_dir=tmp_path / "record"), retry_seconds=0.1)
    assert recorder.start() == (True, None)
    held: list[int] = []
    try:
        kill_writer(recorder)
        held = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]  # as connections
        time.sleep(0.15)  # past the retry
        assert commit_one(recorder, answers.single()) is None
        assert writer_process(recorder).is_running()
    finally:
        try:
            recorder.close()  # on a descriptor past 1,024 too
        finally:
            for fd in held:
                os.close(fd)
    assert recorder.health() == (False, "closed")


def test_a_writer_that_cannot_be_started_fails_closed_and_leaks_nothing(
    tmp_path: Path, answers: Answers, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No process left to start (EAGAIN at a pids limit, ENOMEM): every commit is a 503
    `writer_lost`, the socket pair is closed each time, and a retry later it works again."""
    recorder = recorder_for(RecordConfig(record_dir=tmp_path / "record"), retry_seconds=0.05)
    assert recorder.start() == (True, None)

    def no_process(*args: object, **kwargs: object) -> None:
        raise OSError(errno.EAGAIN, "Resource temporarily unavailable")

    try:
        kill_writer(recorder)
        monkeypatch.setattr(subprocess, "Popen", no_process)  # as the recorder sees it
        descriptors = len(os.listdir("/proc/self/fd"))
        reasons = []
        for _ in range(20):
            time.sleep(0.03)  # some within the retry, some past it
            reasons.append(commit_one(recorder, answers.single()))
        assert set(reasons) == {"writer_lost"}
        assert len(os.listdir("/proc/self/fd")) == descriptors
        assert recorder.health() == (False, "writer_lost")
        monkeypatch.undo()
        time.sleep(0.06)
        assert commit_one(recorder, answers.single()) is None
    finally:
        recorder.close()


def test_a_writer_that_cannot_be_started_does_not_stop_the_start(
    tmp_path: Path, answers: Answers, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_process(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOMEM, "Cannot allocate memory")

    recorder = recorder_for(RecordConfig(record_dir=tmp_path / "record"), retry_seconds=0.05)
    monkeypatch.setattr(subprocess, "Popen", no_process)  # as the recorder sees it
    try:
        assert recorder.start() == (False, "writer_lost")
        monkeypatch.undo()
        time.sleep(0.06)
        deadline = time.monotonic() + 5
        while recorder.health() != (True, None) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert recorder.health() == (True, None)
    finally:
        recorder.close()
