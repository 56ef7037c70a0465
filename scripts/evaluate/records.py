"""The tidy records every part writes: one row per (key, repeat, fold, metric), per fold and
pooled per repeat."""

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from model.calibration import brier_score, expected_calibration_error, log_loss
from model.metrics import evaluate
from scripts.evaluate.common import METRICS, Indices, Record, Scored, Scores, Split


def fold_metrics(y: NDArray[np.int64], scores: Scores, threshold: float) -> dict[str, float]:
    m = evaluate(y, scores, threshold)
    values = {k: getattr(m, k) for k in METRICS}
    return {k: float("nan") if v is None else float(v) for k, v in values.items()}


def calibration_metrics(y: NDArray[np.int64], proba: Scores) -> dict[str, float]:
    return {
        "brier": brier_score(y, proba),
        "log_loss": log_loss(y, proba),
        "ece": expected_calibration_error(y, proba),
    }


@dataclass(frozen=True)
class Key:
    """Where a value belongs in the tidy frame (all but its metric, value and fold)."""

    part: str
    model: str
    rule: str
    variant: str = ""
    confidence: float = float("nan")


def fold_records(key: Key, split: Split, values: dict[str, float]) -> list[Record]:
    base = {**key.__dict__, "repeat": split.repeat, "fold": split.fold, "scope": "fold"}
    return [{**base, "metric": k, "value": v} for k, v in values.items()]


def pooled_records(
    key: Key, y: NDArray[np.int64], pooled: dict[int, tuple[list[Indices], list[Scored]]]
) -> list[Record]:
    """Per repeat, every metric over all of its held-out rows together."""
    out: list[Record] = []
    for repeat, (rows, answers) in sorted(pooled.items()):
        idx = np.concatenate(rows)
        scored = Scored(
            np.concatenate([a.proba for a in answers]),
            np.concatenate([a.score for a in answers]),
            answers[0].threshold,
        )
        values = fold_metrics(y[idx], scored.score, scored.threshold)
        values |= calibration_metrics(y[idx], scored.proba)
        base = {**key.__dict__, "repeat": repeat, "fold": -1, "scope": "pooled"}
        out += [{**base, "metric": k, "value": v} for k, v in values.items()]
    return out


class Collector:
    """Per-fold answers of each (model, rule), recorded per fold and pooled per repeat."""

    def __init__(self, part: str, y: NDArray[np.int64]) -> None:
        self.part, self.y = part, y
        self.records: list[Record] = []
        self.pooled: dict[Key, dict[int, tuple[list[Indices], list[Scored]]]] = {}

    def add(self, key: Key, split: Split, answer: Scored) -> None:
        y = self.y[split.test]
        values = fold_metrics(y, answer.score, answer.threshold)
        values["brier"] = brier_score(y, answer.proba)
        self.records += fold_records(key, split, values)
        rows, answers = self.pooled.setdefault(key, {}).setdefault(split.repeat, ([], []))
        rows.append(split.test)
        answers.append(answer)

    def finish(self) -> list[Record]:
        out = list(self.records)
        for key, pooled in self.pooled.items():
            out += pooled_records(key, self.y, pooled)
        return out
