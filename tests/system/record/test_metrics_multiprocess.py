"""The record's metrics from worker processes, read as the metrics server reads them."""

import os
import subprocess
import sys
from pathlib import Path

from prometheus_client import CollectorRegistry, multiprocess

WORKER = """
import asyncio, sys
from pathlib import Path
from app.record.config import RecordConfig
from app.record.recorder import Recorder
from tests.record_records import Answers, commit

answers = Answers(seed=int(sys.argv[2]))
recorder = Recorder.from_config(RecordConfig(record_dir=Path(sys.argv[1])))
recorder.start()
async def main():
    await asyncio.gather(*(commit(recorder, answers.batch(3)) for _ in range(20)))
asyncio.run(main())
recorder.close()
"""


def test_two_workers_metrics_add_up(tmp_path: Path) -> None:
    metrics_dir = tmp_path / "prom"
    metrics_dir.mkdir()
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
    repo = Path(__file__).resolve().parents[3]
    for seed in (1, 2):  # two workers, one after the other, on one SQLite record
        subprocess.run(
            [sys.executable, "-c", WORKER, str(tmp_path / "record"), str(seed)],
            env=env,
            cwd=repo,
            check=True,
            timeout=120,
        )
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=str(metrics_dir))  # type: ignore[no-untyped-call]

    def value(name: str) -> float | None:
        return registry.get_sample_value(name)

    assert value("predictor_record_records_written_total") == 40
    assert value("predictor_record_rows_written_total") == 120
    assert value("predictor_record_commit_group_size_sum") == 40
    commits = value("predictor_record_commit_seconds_count")
    assert commits is not None
    assert 2 <= commits < 40  # groups were shared in each worker
    assert value("predictor_record_commit_group_size_count") == commits
    # one wait per commit (its longest), each at least its commit, together at most a minute
    assert value("predictor_record_wait_seconds_count") == commits
    waited = value("predictor_record_wait_seconds_sum")
    committing = value("predictor_record_commit_seconds_sum")
    assert waited is not None
    assert committing is not None
    assert committing <= waited < 60
