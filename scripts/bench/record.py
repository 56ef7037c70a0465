"""What a durable record costs per request: the Recorder's group commit on SQLite and PostgreSQL.

    python -m scripts.bench.record [--committers 1,8,64] [--rows 1] [--seconds 5]
                                   [--database-url URL]

N asyncio tasks on one event loop (as the requests of one worker) each commit records of
`--rows` rows (1 as /predict, 10000 as a big V2 batch) back to back for the given time, through
the real Recorder, to SQLite in a temporary folder on the repository's disk (WAL,
synchronous=FULL: each commit syncs the WAL) and to PostgreSQL: the server DATABASE_URL names,
or else a throwaway local cluster (Debian's postgresql, tests/postgres.py) on loopback, fsync on.
Prints per backend and N: records committed per second, transactions per second, the mean group
size, the commit latency each caller saw (from `commit` called to returned): p50, p99, max, and
the writer process's CPU (user + system) a record. First it measures the disk's flush where the
SQLite record is kept (a 4 KiB append, then fdatasync, 200 times), in time and in this process's
CPU: every recorded request waits for one flush at least, and on a machine with few cores the
flush's CPU is shared with the service.
"""

import asyncio
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final

import numpy as np
import psutil

from app.record.chain import record_bytes
from app.record.config import RecordConfig
from app.record.recorder import Recorder
from scripts.bench.common import REPO_ROOT
from scripts.cli import OneLineParser
from tests.record_records import Answers

DEFAULT_COMMITTERS: Final = (1, 8, 64)


async def _committer(
    recorder: Recorder, make: Callable[[], tuple[bytes, int]], until: float
) -> list[float]:
    latencies = []
    while time.perf_counter() < until:
        payload, rows = make()
        started = time.perf_counter()
        await recorder.commit(payload, rows)
        latencies.append(time.perf_counter() - started)
    return latencies


def measure(
    config: RecordConfig, committers: int, seconds: float, answers: Answers, rows: int
) -> str:
    recorder = Recorder.from_config(config)
    ok, reason = recorder.start()
    if not ok:
        raise SystemExit(f"record store unavailable: {reason}")
    pool = [  # made beforehand, as the request path sends them
        (record_bytes(r), r.n_rows)
        for r in (answers.batch(rows) for _ in range(256 if rows < 100 else 8))
    ]
    count = iter(range(10**9))

    def make() -> tuple[bytes, int]:
        return pool[next(count) % len(pool)]

    async def run() -> list[float]:
        until = time.perf_counter() + seconds
        runs = await asyncio.gather(*(_committer(recorder, make, until) for _ in range(committers)))
        return [x for r in runs for x in r]

    writer = writer_process(recorder)
    cpu_before = _cpu_seconds(writer)  # its start (imports, migration) left out
    started = time.perf_counter()
    latencies = np.array(asyncio.run(run()))
    elapsed = time.perf_counter() - started
    writer_cpu = _cpu_seconds(writer) - cpu_before
    recorder.close()
    stats = recorder.stats()
    p50, p99 = np.percentile(latencies, [50, 99]) * 1e3
    return (
        f"{config.backend:<10} {committers:>4} {stats.records / elapsed:>10,.0f} "
        f"{stats.commits / elapsed:>8,.0f} {stats.records / max(stats.commits, 1):>7.1f} "
        f"{p50:>8.2f} {p99:>8.2f} {latencies.max() * 1e3:>8.2f} "
        f"{writer_cpu / max(stats.records, 1) * 1e6:>10.0f}"
    )


def writer_process(recorder: Recorder) -> psutil.Process:
    """The recorder's writer process, found by its writer id on its command line."""
    for child in psutil.Process().children():
        if recorder.writer_id in child.cmdline():
            return child
    raise SystemExit("the recorder's writer process is not running")


def _cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def disk_flush_ms(folder: Path, count: int = 200) -> tuple[float, float, float]:
    """p50 and p99 of a 4 KiB append followed by fdatasync, in ms, and the CPU (user + system)
    of one append and flush, in us."""
    path = folder / "flush-probe"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    times = []
    cpu_before = time.process_time()  # the kernel's count, not clock ticks: a flush is ~0.1 ms
    try:
        for _ in range(count):
            os.write(fd, b"\0" * 4096)
            started = time.perf_counter()
            os.fdatasync(fd)
            times.append(time.perf_counter() - started)
    finally:
        cpu = time.process_time() - cpu_before
        os.close(fd)
        path.unlink()
    p50, p99 = np.percentile(times, [50, 99]) * 1e3
    return float(p50), float(p99), cpu / count * 1e6


def main() -> None:
    parser = OneLineParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--committers", default=",".join(map(str, DEFAULT_COMMITTERS)))
    parser.add_argument("--rows", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL"))
    args = parser.parse_args()
    counts = [int(n) for n in args.committers.split(",")]
    answers = Answers()
    server = None
    url = args.database_url
    if not url:
        from tests.postgres import PostgresServer

        server = PostgresServer()
        server.start()
        url = server.database("record_bench")
    print(f"records of {args.rows} row(s)")
    print("backend    conc  records/s  commits/s  group  p50 ms   p99 ms   max ms  writer us")
    try:
        with tempfile.TemporaryDirectory(dir=REPO_ROOT, prefix=".bench-record-") as folder:
            p50, p99, cpu = disk_flush_ms(Path(folder))
            print(
                f"disk: 4 KiB append + fdatasync p50 {p50:.2f} ms, p99 {p99:.2f} ms, "
                f"{cpu:.0f} us of CPU each"
            )
            for n in counts:
                sqlite = RecordConfig(record_dir=Path(folder) / f"c{n}")
                print(measure(sqlite, n, args.seconds, answers, args.rows), flush=True)
                postgres = RecordConfig(database_url=url)
                print(measure(postgres, n, args.seconds, answers, args.rows), flush=True)
    finally:
        if server is not None:
            server.remove()


if __name__ == "__main__":
    main()
