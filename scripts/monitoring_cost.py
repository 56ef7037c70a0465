"""What one refresh of /monitoring costs as the confirmed cases grow.

    python -m scripts.monitoring_cost                     # 1,000, 10,000 and 100,000 cases
    python -m scripts.monitoring_cost --cases 1000 --repeat 1

For each size, a fresh SQLite record (in a temporary folder) is filled with that many rows of
the data set, scored by the served model in batches of BATCH rows as /predict/batch answers
them, every row confirmed with its true outcome; then `Watch` (app/core/monitoring.py) refreshes
as /monitoring does, and the time of each part is printed: reading the store, the snapshot of
the figures (cumulative and recent, overall and per caller), the drift window. Two refreshes are
timed: the first (a process starting: every outcome read) and, the median of --repeat, one after
BATCH more confirmed cases arrived (a service in use: only those read).
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Final

import numpy as np

from app.core.dataplane import ServedModel
from app.core.monitoring import Watch
from app.record.chain import ChainHead
from app.record.config import RecordConfig
from app.record.entry import PredictionRecord
from app.record.store import open_store
from model.artifact import DEFAULT_ARTIFACT_PATH
from model.data import load_dataset

BATCH: Final = 100
SIZES: Final = (1_000, 10_000, 100_000)
WRITER: Final = "cost-writer"


class Filler:
    """Writes confirmed batches into one record: the records through the record's chain and
    store, the outcomes in one transaction per call (POST /feedback writes one per row)."""

    def __init__(self, config: RecordConfig, model: ServedModel, seed: int = 5) -> None:
        self.config, self.model = config, model
        self.data = load_dataset()
        self.rng = np.random.default_rng(seed)
        self.head = ChainHead(WRITER)
        self.batches = 0

    def add(self, n: int) -> None:
        """n more confirmed rows, in batches of BATCH."""
        outcomes = []
        with open_store(self.config) as store:
            store.migrate()
            for start in range(0, n, BATCH):
                record, ys = self._record(min(BATCH, n - start))
                links = self.head.extend([record])
                store.append(self.head, links, 0)
                self.head.advance(links[-1])
                at = record.answered_ns
                outcomes += [
                    (record.request_id, i, ("benign", "malignant")[y], "cost", "lab", at + i)
                    for i, y in enumerate(ys)
                ]
            with store.write() as cur:
                cur.executemany(
                    store.dialect.sql(
                        "INSERT INTO outcomes (request_id, row_index, outcome, source, caller,"
                        " recorded_ns) VALUES (?, ?, ?, ?, ?, ?)"
                    ),
                    outcomes,
                )

    def _record(self, n: int) -> tuple[PredictionRecord, list[int]]:
        picked = self.rng.integers(0, len(self.data.y), n)
        rows = self.data.X[picked]
        answer = self.model.predict_batch(rows.tolist(), None, None)
        self.batches += 1
        now = time.time_ns()
        record = PredictionRecord.of(
            request_id=f"cost-{self.batches}",
            received=now - 1000,
            answered=now,
            route="/predict/batch",
            protocol="native",
            encoding="json",
            caller="lab",
            case_ref=None,
            model_version=self.model.artifact.content_sha256,  # as the service records it
            service_version="cost",
            scorer="batch",
            threshold=answer.threshold,
            confidence=answer.confidence,
            scores=rows,
            probabilities=[a.probability for a in answer.rows],
            classes=[a.predicted_class == "malignant" for a in answer.rows],
            sets=[a.set_code for a in answer.rows],
            latency_s=0.001,
        )
        return record, [int(y) for y in self.data.y[picked]]


def timed(watch: Watch) -> tuple[float, dict[str, float]]:
    started = time.perf_counter()
    watch.latest()
    return time.perf_counter() - started, watch.last_timings


def measure(model: ServedModel, n: int, repeat: int) -> str:
    """One table row: the refresh at startup (every case read) and after BATCH new cases."""
    with tempfile.TemporaryDirectory(prefix="monitoring-cost-") as tmp:
        config = RecordConfig(Path(tmp))
        filler = Filler(config, model)
        filler.add(n)
        watch = Watch(model, config, ["lab"], 200, 500, 30.0)
        watch.drift_detector()  # its thresholds' calibration: once per process, not measured
        first, _ = timed(watch)
        after = []
        for _ in range(repeat):
            filler.add(BATCH)
            after.append(timed(watch))
    median = sorted(after, key=lambda t: t[0])[len(after) // 2]
    parts = median[1]
    return (
        f"| {n:,} | {first:.3f} | {median[0]:.3f} | {parts['read']:.3f} |"
        f" {parts['snapshot']:.3f} | {parts['drift']:.3f} |"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, nargs="*", default=list(SIZES))
    parser.add_argument("--repeat", type=int, default=5, help="refreshes after new cases")
    args = parser.parse_args(argv)
    model = ServedModel.load(DEFAULT_ARTIFACT_PATH)
    print(
        f"| confirmed cases | first refresh s (all read) | refresh s after {BATCH} new (median)"
        " | of which: read | snapshot | drift |"
    )
    print("|---:|---:|---:|---:|---:|---:|")
    for n in args.cases:
        print(measure(model, n, args.repeat), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
