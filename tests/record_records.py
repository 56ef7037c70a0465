"""Prediction records for the record's tests: made by the real model, as the service answers.

`Answers` scores rows with `app.core.dataplane.ServedModel` (the service's own code), so that a
record built here holds what the service would have answered and replay can be checked
against it.
"""

import time
from collections.abc import Sequence
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from app.core.dataplane import ServedModel
from app.record import wire
from app.record.chain import record_bytes
from app.record.entry import SET_BENIGN, SET_MALIGNANT, PredictionRecord
from app.record.recorder import Recorder
from model.artifact import DEFAULT_ARTIFACT_PATH
from model.features import N_FEATURES

CONFIDENCE: Final = 0.9
SERVICE_VERSION: Final = "0.1.0"


async def commit(recorder: Recorder, record: PredictionRecord) -> None:
    """Commit `record` as the request path does: its bytes, unchecked until the writer."""
    await recorder.commit(record_bytes(record), record.n_rows)


def frame(record: PredictionRecord) -> bytes:
    """The frame that carries `record` to the writer."""
    return wire.record_frame(record_bytes(record))


def set_code(names: Sequence[str]) -> int:
    return SET_BENIGN * ("benign" in names) + SET_MALIGNANT * ("malignant" in names)


class Answers:
    def __init__(self, seed: int = 23, prefix: str = "req") -> None:
        self.prefix = prefix
        self.model = ServedModel.load(DEFAULT_ARTIFACT_PATH)
        self.version = self.model.artifact.content_sha256
        self.rng = np.random.default_rng(seed)
        self.count = 0

    def rows(self, n: int) -> NDArray[np.int64]:
        return self.rng.integers(1, 11, size=(n, N_FEATURES))

    def single(self, answered_ns: int | None = None, **extra: object) -> PredictionRecord:
        row = self.rows(1)[0].tolist()
        answers = self.model.predict(row, None, CONFIDENCE)
        p = answers.rows[0]
        return self._record(
            [row],
            [p.probability],
            [p.predicted_class == "malignant"],
            [p.prediction_set],
            "single",
            answers.threshold,
            answered_ns,
            **extra,
        )

    def batch(self, n: int, answered_ns: int | None = None, **extra: object) -> PredictionRecord:
        rows = self.rows(n)
        b = self.model.predict_batch(rows.tolist(), None, CONFIDENCE)
        return self._record(
            rows,
            [x.probability for x in b.rows],
            [x.predicted_class == "malignant" for x in b.rows],
            [x.prediction_set for x in b.rows],
            "single" if n == 1 else "batch",
            b.threshold,
            answered_ns,
            **extra,
        )

    def explained(self) -> PredictionRecord:
        row = self.rows(1)[0].tolist()
        e = self.model.explain(row, None, CONFIDENCE)
        p = e.answers.rows[0]
        return self._record(
            [row],
            [p.probability],
            [p.predicted_class == "malignant"],
            [p.prediction_set],
            "single",
            e.answers.threshold,
            None,
            route="/explain",
            explanation=(e.base_value, e.contributions),
        )

    def _record(
        self,
        rows: object,
        probabilities: Sequence[float],
        classes: Sequence[bool],
        sets: Sequence[Sequence[str]],
        scorer: str,
        threshold: float,
        answered_ns: int | None,
        **extra: object,
    ) -> PredictionRecord:
        self.count += 1
        answered = answered_ns if answered_ns is not None else time.time_ns()
        fields: dict[str, Any] = {
            "request_id": f"{self.prefix}-{self.count}",
            "received": answered - 1_000_000,
            "answered": answered,
            "route": "/predict" if scorer == "single" else "/predict/batch",
            "protocol": "native",
            "encoding": "json",
            "caller": "clinic-a",
            "case_ref": f"case:{self.count}",
            "model_version": self.version,
            "service_version": SERVICE_VERSION,
            "scorer": scorer,
            "threshold": threshold,
            "confidence": CONFIDENCE,
            "scores": np.asarray(rows),
            "probabilities": probabilities,
            "classes": classes,
            "sets": [set_code(s) for s in sets],
            "latency_s": 0.001,
            **extra,
        }
        return PredictionRecord.of(**fields)
