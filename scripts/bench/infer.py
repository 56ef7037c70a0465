"""In-process inference speed: Artifact.predict_proba vs scikit-learn's MLPClassifier.

    python -m scripts.bench.infer [--model PATH] [--rounds R] [--quick] [--json PATH]

Single-row latency: one call with one row, timed call by call (median and p99), for the served
artifact (`model.artifact.load_artifact`, which scales the raw scores, then runs the network):
`predict_one` on a tuple of ints, the service's /predict path, and `predict_proba` given the row
as a one-row list of tuples and as a (1, 9) NumPy array; and for a
scikit-learn MLPClassifier of the same shape fitted on the same rows, given the already scaled
(1, 9) array. Batch throughput: rows per second for 1,000 and 10,000 rows, from a NumPy array and
(ours) from a list of tuples, and `ServedModel.score` (model/scoring/batch.py's scorer) on 10,000
rows.
Explanation latency: `Artifact.explain` (exact Shapley values, 512 coalitions x the
background's distinct rows) on rows of the data set, timed call by call (median and p99),
beside `predict_one` on the same rows. The Open Inference Protocol (V2) in process, 10,000
rows as a JSON and as a binary INT64 tensor: rows per second through `decode_request`,
`ServedModel.score` and `encode_response`, and the fastest time of each step, which says
where an infer request's time goes outside HTTP. Candidates alternate in interleaved
rounds; ratios are within a run.
"""

import argparse
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from app.core.dataplane import ServedModel
from app.monitoring.decision import decide
from app.v2.codec import decode_request, encode_response
from model.artifact import DEFAULT_ARTIFACT_PATH, Artifact, load_artifact
from model.data import load_dataset
from scripts.bench.common import machine_info, median, percentile, print_machine, write_json
from scripts.bench.v2_bodies import HEADER_LENGTH, V2Body, binary_body, json_body
from scripts.bench.v2_bodies import rows as v2_rows
from scripts.cli import OneLineParser, positive_int

Call = Callable[[], object]
Calls = dict[str, Call]


OURS = "Artifact.predict_one, tuple row"
SKLEARN = "sklearn predict_proba, scaled (1, 9) array"
CHECK = "typicality check + decision, tuple row"


def sklearn_model(artifact: Artifact, X_raw: np.ndarray, y: np.ndarray) -> Any:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    clf = MLPClassifier(hidden_layer_sizes=(artifact.network.hidden,), max_iter=50, random_state=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(artifact.scaler.transform(X_raw), y)
    return clf


def latencies_us(call: Call, n: int) -> list[float]:
    clock = time.perf_counter_ns
    out = []
    for _ in range(n):
        start = clock()
        call()
        out.append((clock() - start) / 1000)
    return out


def rows_per_second(call: Call, rows: int, min_seconds: float) -> float:
    """Best of repeated calls over at least min_seconds (rows / seconds per call)."""
    best = float("inf")
    deadline = time.perf_counter() + min_seconds
    repeats = 0
    while repeats < 3 or time.perf_counter() < deadline:
        start = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - start)
        repeats += 1
    return rows / best


def run_steps(steps: dict[str, Call]) -> list[object]:
    return [step() for step in steps.values()]


def v2_steps(model: ServedModel, body: V2Body) -> dict[str, Call]:
    """The three steps of a V2 infer request in process, each callable on its own."""
    header = body.headers.get(HEADER_LENGTH)
    version = model.version

    def decode() -> Any:
        return decode_request(
            body.body, header, model_name="m", model_version=version, max_rows=100_000
        )

    request = decode()
    scored = model.score(request.rows, request.threshold)
    return {
        "decode_request": decode,
        "ServedModel.score": lambda: model.score(request.rows, request.threshold),
        "encode_response": lambda: encode_response(
            scored, request, model_name="m", model_version=version
        ),
    }


def best_us(call: Call, min_seconds: float) -> float:
    return 1e6 / rows_per_second(call, 1, min_seconds)


def parse_args() -> argparse.Namespace:
    p = OneLineParser(prog="scripts.bench.infer", description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, default=DEFAULT_ARTIFACT_PATH, help="artifact to load")
    p.add_argument("--rounds", type=positive_int, default=5, help="interleaved rounds")
    p.add_argument("--calls", type=positive_int, default=20000, help="single-row calls per round")
    p.add_argument("--explanations", type=positive_int, default=200, help="explanations per round")
    p.add_argument("--quick", action="store_true", help="3 rounds of 3,000 calls, 50 explanations")
    p.add_argument("--json", type=Path, help="also write the results here")
    args = p.parse_args()
    if args.quick:
        args.rounds, args.calls, args.explanations = 3, 3000, 50
    return args


@dataclass
class Timings:
    """What the interleaved rounds measured, by candidate."""

    single_us: dict[str, list[float]]  # one call at a time
    rows_per_s: dict[str, list[float]]  # one figure a round
    explain_us: list[float]  # one call at a time
    v2_step_us: dict[str, dict[str, list[float]]]  # by body, then step: the fastest, a round


def single_row_calls(artifact: Artifact, clf: Any, served: ServedModel, X: np.ndarray) -> Calls:
    """The single-row candidates, on the first row of the data set."""
    row = tuple(int(v) for v in X[0])
    row_array = np.asarray([row], dtype=np.float64)
    scaled_row = artifact.scaler.transform(row_array)
    return {
        OURS: lambda: artifact.predict_one(row),
        "Artifact.predict_proba, tuple row": lambda: artifact.predict_proba((row,)),
        "Artifact.predict_proba, (1, 9) array": lambda: artifact.predict_proba(row_array),
        SKLEARN: lambda: clf.predict_proba(scaled_row),
        # What every answer adds to the scoring (issue 24's goal: under 5% of a /predict).
        CHECK: lambda: decide(1, served.typicality.is_atypical(row)),
    }


def batch_calls(artifact: Artifact, clf: Any, X: np.ndarray) -> dict[str, tuple[int, Call]]:
    """The batch candidates of both models, each with its rows: random rows of the data set."""
    rng = np.random.default_rng(0)
    batches: dict[str, tuple[int, Call]] = {}
    for n in (1000, 10000):
        X_raw = X[rng.integers(0, len(X), n)].astype(np.float64)
        X_list = [tuple(int(v) for v in r) for r in X_raw]
        X_scaled = artifact.scaler.transform(X_raw)
        batches[f"Artifact.predict_proba, {n:,} rows array"] = (
            n,
            partial(artifact.predict_proba, X_raw),
        )
        batches[f"Artifact.predict_proba, {n:,} rows list of tuples"] = (
            n,
            partial(artifact.predict_proba, X_list),
        )
        batches[f"sklearn predict_proba, {n:,} rows scaled array"] = (
            n,
            partial(clf.predict_proba, X_scaled),
        )
    return batches


def served_batches(
    served: ServedModel, X_v2: np.ndarray, v2: dict[str, Calls]
) -> dict[str, tuple[int, Call]]:
    """The service's batch candidates: ServedModel.score, and each V2 body's steps run one
    after the other."""
    batches: dict[str, tuple[int, Call]] = {
        "ServedModel.score, 10,000 rows array": (10_000, partial(served.score, X_v2, None))
    }
    for name, steps in v2.items():
        batches[f"{name}, 10,000 rows, decode + score + encode"] = (
            10_000,
            partial(run_steps, steps),
        )
    return batches


def measure(
    args: argparse.Namespace,
    single: Calls,
    batches: dict[str, tuple[int, Call]],
    v2: dict[str, Calls],
    explain: Callable[[tuple[int, ...]], object],
    explain_rows: list[tuple[int, ...]],
) -> Timings:
    """args.rounds interleaved rounds of every candidate, after a warm-up."""
    for call in single.values():
        latencies_us(call, 200)  # warm-up
    explain(explain_rows[0])  # warm-up
    timings = Timings(
        single_us={name: [] for name in single},
        rows_per_s={name: [] for name in batches},
        explain_us=[],
        v2_step_us={name: {step: [] for step in steps} for name, steps in v2.items()},
    )
    for r in range(args.rounds):
        order = list(single) if r % 2 == 0 else list(single)[::-1]
        for name in order:
            timings.single_us[name].extend(latencies_us(single[name], args.calls))
        for name, (n, call) in batches.items():
            timings.rows_per_s[name].append(rows_per_second(call, n, 0.2 if args.quick else 0.5))
        for i in range(args.explanations):
            x = explain_rows[(r * args.explanations + i) % len(explain_rows)]
            timings.explain_us.extend(latencies_us(partial(explain, x), 1))
        for name, steps in v2.items():
            for step, call in steps.items():
                timings.v2_step_us[name][step].append(best_us(call, 0.1 if args.quick else 0.3))
    return timings


def print_timings(timings: Timings, background_rows: int) -> None:
    lat = timings.single_us
    print(f"\n{'single row':44}{'median us':>11}{'p99 us':>9}{'sklearn / this':>16}")
    for name, values in lat.items():
        print(
            f"{name:44}{median(values):>11.1f}{percentile(values, 99):>9.1f}"
            f"{median(lat[SKLEARN]) / median(values):>16.1f}"
        )
    check_share = median(lat[CHECK]) / median(lat[OURS])
    print(f"{'check + decision / predict_one (medians)':44}{check_share:>11.2f}")
    explain_lat = timings.explain_us
    e_median, e_p99 = median(explain_lat), percentile(explain_lat, 99)
    print(
        f"\nexplanation ({background_rows} distinct background rows x 512 coalitions, "
        f"{len(explain_lat)} calls)"
    )
    print(f"{'Artifact.explain, tuple row':44}{e_median:>11.1f}{e_p99:>9.1f}")
    print(f"{'explain / predict_one (medians)':44}{e_median / median(lat[OURS]):>11.0f}")
    print(f"\n{'batch':60}{'rows/s':>14}")
    for name, values in timings.rows_per_s.items():
        print(f"{name:60}{median(values):>14,.0f}")
    step_us = timings.v2_step_us
    print(f"\n{'V2 step, 10,000 rows (fastest, us)':44}" + "".join(f"{n:>20}" for n in step_us))
    for step in next(iter(step_us.values())):
        print(f"{step:44}" + "".join(f"{median(step_us[n][step]):>20,.0f}" for n in step_us))


def summary(timings: Timings, info: dict[str, Any], model_version: str) -> dict[str, Any]:
    """The figures for --json."""
    lat, explain_lat = timings.single_us, timings.explain_us
    e_median = median(explain_lat)
    return {
        "benchmark": "infer",
        "machine": info,
        "model_version": model_version,
        "single_row_us": {
            name: {"median": median(v), "p99": percentile(v, 99)} for name, v in lat.items()
        },
        "sklearn_over_ours_single_row": median(lat[SKLEARN]) / median(lat[OURS]),
        "explain_us": {
            "median": e_median,
            "p99": percentile(explain_lat, 99),
            "calls": len(explain_lat),
        },
        "explain_over_predict_one": e_median / median(lat[OURS]),
        "batch_rows_per_second": {name: median(v) for name, v in timings.rows_per_s.items()},
        "v2_step_us": {
            name: {step: median(v) for step, v in steps.items()}
            for name, steps in timings.v2_step_us.items()
        },
    }


def main() -> int:
    args = parse_args()
    artifact = load_artifact(args.model)
    data = load_dataset()
    clf = sklearn_model(artifact, data.X, data.y)
    info = machine_info()
    print_machine(info)
    print(f"model {artifact.model_version} from {args.model}; {args.rounds} rounds")

    served = ServedModel.load(args.model)
    single = single_row_calls(artifact, clf, served, data.X)
    batches = batch_calls(artifact, clf, data.X)
    X_v2 = v2_rows(10_000)
    v2 = {
        "V2 JSON tensor": v2_steps(served, json_body(X_v2)),
        "V2 binary tensor": v2_steps(served, binary_body(X_v2)),
    }
    batches |= served_batches(served, X_v2, v2)
    explain_rows = [tuple(int(v) for v in r) for r in data.X]
    timings = measure(args, single, batches, v2, artifact.explain, explain_rows)
    print_timings(timings, len(artifact.background_rows))
    write_json(args.json, summary(timings, info, artifact.model_version))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
