"""SIGKILL a process while it commits: every record whose commit returned is in the store,
whole, and every chain still verifies."""

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

from app.record.audit import verify
from app.record.config import RecordConfig
from app.record.store import open_store

REPO = Path(__file__).resolve().parents[3]
ROUNDS = 4
COMMITTER = """
import asyncio, sys
from app.record.config import RecordConfig
from app.record.recorder import Recorder
from tests.record_records import Answers, commit

answers = Answers(seed=int(sys.argv[1]), prefix=f"run{sys.argv[1]}")
recorder = Recorder.from_config(RecordConfig.from_env())
assert recorder.start()[0]

async def committer(k):
    i = 0
    while True:
        i += 1
        record = answers.batch(1 + (7 * i + k) % 40)
        await commit(recorder, record)
        # printed only once committed: the parent's proof of what was answered
        sys.stdout.write(f"{record.request_id} {record.n_rows}\\n")
        sys.stdout.flush()

async def main():
    await asyncio.gather(*(committer(k) for k in range(8)))

asyncio.run(main())
"""


def run_and_kill(config: RecordConfig, seed: int, delay: float) -> list[tuple[str, int]]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "RECORD_DIR")}
    env["RECORD_DIR"] = str(config.record_dir)
    if config.database_url:
        env["DATABASE_URL"] = config.database_url
    child = subprocess.Popen(
        [sys.executable, "-c", COMMITTER, str(seed)],
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert child.stdout is not None
    first = child.stdout.readline()  # committing has begun
    (writer,) = psutil.Process(child.pid).children()  # its record writer process
    time.sleep(delay)
    child.send_signal(signal.SIGKILL)
    rest, err = child.communicate(timeout=60)
    assert child.returncode == -signal.SIGKILL, err.decode()
    _, alive = psutil.wait_procs([writer], timeout=20)  # it commits what came whole and ends
    assert not alive
    lines = (first + rest).decode().split("\n")
    complete = lines[:-1]  # the last piece was cut mid-line or is empty
    return [(line.split()[0], int(line.split()[1])) for line in complete]


def test_every_committed_record_survives_a_sigkill(config: RecordConfig) -> None:
    rng = random.Random(23)
    answered: list[tuple[str, int]] = []
    for round_ in range(ROUNDS):
        answered += run_and_kill(config, seed=1_000 + round_, delay=rng.uniform(0.2, 1.5))
    with open_store(config) as store:
        assert verify(store) == []
        stored = {link.record().request_id: link.record().n_rows for link in store.links()}
        links = sum(1 for _ in store.links())
        writers = len(store.writers())
    assert writers == ROUNDS  # one chain per process start
    assert len(stored) == links  # no record twice
    assert len(answered) > ROUNDS * 10
    assert [rid for rid, n in answered if stored.get(rid) != n] == []  # all there, whole
