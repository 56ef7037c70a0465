"""Training speed: TwoLayerNet.fit vs scikit-learn's MLPClassifier with the same full-batch SGD.

    python -m scripts.bench.train [--iterations N] [--rounds R] [--quick] [--json PATH]

Both fit the article's 500 training rows (min-max scaled) with 15 ReLU units, plain full-batch
gradient descent (batch = all rows, momentum 0, no Nesterov, alpha 0, no shuffling, constant
learning rate, no tolerance or early stopping) for the same number of iterations. Rounds are
interleaved (the order alternates), and the headline ratio is the median of the per-round ratios,
which holds on a shared, noisy machine better than absolute times do. A third column times the
straightforward NumPy loop this project started from, for reference. Finally two fits are
checked to be bit-identical. Exit status 1 if they are not, or scikit-learn stopped early.
"""

import argparse
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from model.data import load_dataset
from model.network import TwoLayerNet
from model.scaler import MinMaxScaler
from model.splits import seed_split
from scripts.bench.common import machine_info, median, print_machine, write_json
from scripts.cli import OneLineParser, positive_float, positive_int

Array = NDArray[np.float64]
GOAL_RATIO = 5.0


def article_rows() -> tuple[Array, Array]:
    data = load_dataset()
    train_idx, _ = seed_split(len(data.y))
    X = MinMaxScaler().fit(data.X[train_idx]).transform(data.X[train_idx])
    return X, data.y[train_idx].astype(np.float64)


def fit_ours(X: Array, y: Array, lr: float, iterations: int) -> TwoLayerNet:
    return TwoLayerNet(hidden=15, lr=lr, iterations=iterations, seed=1).fit(X, y)


def fit_sklearn(X: Array, y: Array, lr: float, iterations: int) -> Any:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    clf = MLPClassifier(
        hidden_layer_sizes=(15,),
        activation="relu",
        solver="sgd",
        batch_size=len(X),
        learning_rate="constant",
        learning_rate_init=lr,
        momentum=0.0,
        nesterovs_momentum=False,
        alpha=0.0,
        shuffle=False,
        max_iter=iterations,
        tol=0.0,
        n_iter_no_change=iterations + 1,
        early_stopping=False,
        random_state=1,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # max_iter reached is the point
        clf.fit(X, y.astype(np.int64))
    if clf.n_iter_ != iterations:
        raise SystemExit(f"scikit-learn stopped after {clf.n_iter_} of {iterations} iterations")
    return clf


def fit_reference(X: Array, y: Array, lr: float, iterations: int) -> None:
    """The straightforward loop: one allocating NumPy expression per equation (the old fit)."""
    rng = np.random.RandomState(1)
    n, d = X.shape
    W1, b1 = rng.randn(15, d) / np.sqrt(d), np.zeros(15)
    W2, b2 = rng.randn(1, 15) / np.sqrt(15), np.zeros(1)
    for _ in range(iterations):
        Z1 = X @ W1.T + b1
        A1 = np.maximum(Z1, 0.0)
        z2 = A1 @ W2[0] + b2[0]
        _ = float(np.mean(np.logaddexp(0.0, z2) - y * z2))
        dz2 = (np.exp(-np.logaddexp(0.0, -z2)) - y) / n
        dZ1 = np.outer(dz2, W2[0]) * (Z1 > 0)
        W1 -= lr * (dZ1.T @ X)
        b1 -= lr * dZ1.sum(axis=0)
        W2 -= lr * (dz2 @ A1)[np.newaxis, :]
        b2 -= lr * np.array([dz2.sum()])


def time_per_iteration(fit: Callable[[], object], iterations: int) -> tuple[float, float]:
    """Wall-clock and process CPU microseconds per iteration of one fit."""
    cpu, wall = time.process_time(), time.perf_counter()
    fit()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return wall / iterations * 1e6, cpu / iterations * 1e6


def bit_identical(X: Array, y: Array, lr: float, iterations: int) -> bool:
    a, b = fit_ours(X, y, lr, iterations), fit_ours(X, y, lr, iterations)
    same = all(
        getattr(a, name).tobytes() == getattr(b, name).tobytes()
        for name in ("W1_", "b1_", "W2_", "b2_")
    )
    return same and a.loss_curve_ == b.loss_curve_


def parse_args() -> argparse.Namespace:
    p = OneLineParser(prog="scripts.bench.train", description=__doc__.splitlines()[0])
    p.add_argument("--iterations", type=positive_int, default=1000, help="iterations per fit")
    p.add_argument("--rounds", type=positive_int, default=15, help="interleaved rounds")
    p.add_argument("--lr", type=positive_float, default=0.01)
    p.add_argument("--quick", action="store_true", help="500 iterations, 5 rounds")
    p.add_argument("--no-reference", action="store_true", help="skip the straightforward loop")
    p.add_argument("--json", type=Path, help="also write the results here")
    args = p.parse_args()
    if args.quick:
        args.iterations, args.rounds = 500, 5
    return args


def main() -> int:
    args = parse_args()
    X, y = article_rows()
    lr, its = args.lr, args.iterations
    candidates: dict[str, Callable[[], object]] = {
        "TwoLayerNet.fit": lambda: fit_ours(X, y, lr, its),
        "sklearn MLPClassifier": lambda: fit_sklearn(X, y, lr, its),
    }
    if not args.no_reference:
        candidates["straightforward loop"] = lambda: fit_reference(X, y, lr, its)
    info = machine_info()
    print_machine(info)
    print(
        f"{len(X)} rows x {X.shape[1]} features, 15 hidden, {its} iterations a fit, "
        f"{args.rounds} rounds"
    )
    for fit in candidates.values():  # warm-up: imports, first-touch allocations
        fit()

    times: dict[str, list[float]] = {name: [] for name in candidates}
    cpu: dict[str, list[float]] = {name: [] for name in candidates}
    names = list(candidates)
    for r in range(args.rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            wall_us, cpu_us = time_per_iteration(candidates[name], its)
            times[name].append(wall_us)
            cpu[name].append(cpu_us)
    ours, sk = times["TwoLayerNet.fit"], times["sklearn MLPClassifier"]
    ratios = [s / o for s, o in zip(sk, ours, strict=True)]
    ratio = median(ratios)
    cpu_ratio = median(cpu["sklearn MLPClassifier"]) / median(cpu["TwoLayerNet.fit"])

    print(
        f"\n{'us per iteration':24}{'median':>9}{'min':>9}{'CPU median':>12}{'sklearn / this':>16}"
    )
    for name, ts in times.items():
        round_ratio = median([s / t for s, t in zip(sk, ts, strict=True)])
        print(
            f"{name:24}{median(ts):>9.1f}{min(ts):>9.1f}{median(cpu[name]):>12.1f}"
            f"{round_ratio:>16.2f}"
        )
    print(
        f"\nspeed-up vs scikit-learn: {ratio:.2f}x wall-clock (median of per-round ratios, "
        f"rounds {min(ratios):.2f}-{max(ratios):.2f}), {cpu_ratio:.2f}x CPU time; "
        f"goal >= {GOAL_RATIO:g}x"
    )
    identical = bit_identical(X, y, lr, min(its, 2000))
    print(f"two fits bit-identical (weights and loss curve): {'yes' if identical else 'NO'}")

    write_json(
        args.json,
        {
            "benchmark": "train",
            "machine": info,
            "settings": {
                "rows": len(X),
                "hidden": 15,
                "iterations": its,
                "rounds": args.rounds,
                "lr": lr,
            },
            "us_per_iteration": {
                name: {
                    "median": median(ts),
                    "min": min(ts),
                    "cpu_median": median(cpu[name]),
                    "all": ts,
                }
                for name, ts in times.items()
            },
            "ratio_vs_sklearn": ratio,
            "cpu_ratio_vs_sklearn": cpu_ratio,
            "ratio_range": [min(ratios), max(ratios)],
            "goal_ratio": GOAL_RATIO,
            "bit_identical": identical,
        },
    )
    return 0 if identical else 1


if __name__ == "__main__":
    raise SystemExit(main())
