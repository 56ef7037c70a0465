"""Simulate the service in use against the real service, and measure its alarms.

    python -m scripts.monitoring_live            # the long version (make evaluate): the tables
    python -m scripts.monitoring_live --quick    # a few runs (the test's size)
    python -m scripts.monitoring_live --docs     # also write the tables into docs/monitoring.md

Where scripts/monitoring_simulation.py streams cases into a `Monitor` in process, this starts
`python -m app` on loopback (tests/live_server.py) with its default windows (200 confirmed cases,
500 inputs) and streams cases of the data set to it as a client does: POST /predict/batch, then
each row's outcome in one POST /feedback/batch, then GET /monitoring, whose recent window the
alarms of app/monitoring/alarms.py (what the Prometheus rules compute) and whose drift alarms
are read. Every figure the alarms see went through the record, the outcome store and the Watch.

(a) No shift: cases in blocks of 100, the figure alarms checked after every 200 (disjoint
    windows) and drift after every 500 inputs (disjoint drift windows), so the checks are
    independent and each alarm's false-alarm rate is a binomial share with a Wilson interval.
(b) Miscalibration: after a prefix of 300 true cases (which flushes the window of the run
    before), one benign outcome in ten reported malignant, in blocks of CHECK_EVERY, checked
    after each; the delay is the cases from the prefix's end to the first figure alarm.
(c) Covariate shift: after a prefix of 500 unshifted cases (a whole drift window), a share of
    the cases with bare_nuclei raised by 2 (at most 10), checked after each block; the delay is
    the inputs from the prefix's end to the first drift alarm.

Each scenario runs on services of its own, a fresh one (and a fresh record) every RUNS_PER_SERVICE
runs, so that the confirmed cases stay within what one deployment would hold between restarts.
"""

import argparse
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import httpx
import numpy as np
from numpy.typing import NDArray

from app.monitoring.alarms import FIGURE_ALARMS
from app.monitoring.drift import DEFAULT_FALSE_ALARM
from app.monitoring.figures import wilson
from model.data import Dataset, load_dataset
from model.features import FEATURE_NAMES
from scripts.monitoring_simulation import (
    DRIFT_ALARM,
    FIGURE_LEVEL,
    FLIP_SHARE,
    SHIFT_SCORE,
    Tally,
    delay_row,
)
from tests.live_server import REPO_ROOT, start_server

WINDOW: Final = 200  # MONITORING_WINDOW's default
DRIFT_WINDOW: Final = 500  # DRIFT_WINDOW's default
BLOCK: Final = 100
CHECK_EVERY: Final = 10
MISCALIBRATION_PREFIX: Final = 300
MAX_CASES: Final = 1500
RUNS_PER_SERVICE: Final = 25
SHIFT_SHARES: Final = (0.5, 0.2)
Found = tuple[int | None, str]
DOCS: Final = REPO_ROOT / "docs" / "monitoring.md"
BEGIN: Final = "<!-- monitoring-live:begin -->"
END: Final = "<!-- monitoring-live:end -->"


@dataclass(frozen=True)
class Check:
    figures: list[str]  # figure alarms firing on the recent window
    drift: list[str] | None  # drift alarms firing; None before a full drift window


def firing(recent: dict[str, Any]) -> list[str]:
    """The alert rules' conditions (app/monitoring/alarms.py) on /monitoring's recent window."""
    fired = []
    for alarm in FIGURE_ALARMS:
        estimate = recent[alarm.figure]
        value = estimate["lower"] if alarm.bound == "lower" else estimate["upper"]
        if value is not None and (value < alarm.limit if alarm.op == "<" else value > alarm.limit):
            fired.append(alarm.alert)
    return fired


@dataclass
class Stream:
    """A client streaming cases and their outcomes to one live service."""

    client: httpx.Client
    data: Dataset
    rng: np.random.Generator
    shifted: NDArray[np.int64] = field(init=False)
    sent: int = 0

    def __post_init__(self) -> None:
        column = FEATURE_NAMES.index(SHIFT_SCORE)
        self.shifted = self.data.X.copy()
        self.shifted[:, column] = np.minimum(self.shifted[:, column] + 2, 10)

    def send(self, n: int, flip: float = 0.0, shift: float = 0.0) -> None:
        """n cases drawn from the data set: a share `shift` of them with the score raised, a
        share `flip` of the benign ones reported malignant."""
        picked = self.rng.integers(0, len(self.data.y), n)
        moved = self.rng.random(n) < shift
        rows = np.where(moved[:, np.newaxis], self.shifted[picked], self.data.X[picked])
        instances = [dict(zip(FEATURE_NAMES, map(int, row), strict=True)) for row in rows]
        answer = self.client.post("/predict/batch", json={"instances": instances})
        answer.raise_for_status()
        request_id = answer.headers["X-Request-ID"]
        truth = self.data.y[picked] == 1
        malignant = truth | (self.rng.random(n) < flip)
        outcomes = [
            {"request_id": request_id, "row": i, "outcome": ("benign", "malignant")[int(m)]}
            for i, m in enumerate(malignant)
        ]
        stored = self.client.post("/feedback/batch", json={"outcomes": outcomes})
        stored.raise_for_status()
        self.sent += n

    def check(self) -> Check:
        answer = self.client.get("/monitoring")
        answer.raise_for_status()
        body = answer.json()
        drift = body["drift"]
        names = None if drift is None else [k for k, on in drift["alarms"].items() if on]
        return Check(firing(body["overall"]["recent"]), names)


@contextmanager
def service(data: Dataset, seed: int) -> Iterator[Stream]:
    env = {"MONITORING_WINDOW": str(WINDOW), "DRIFT_WINDOW": str(DRIFT_WINDOW)}
    with (
        start_server(env, startup_timeout=60) as server,
        httpx.Client(base_url=server.url, timeout=120) as client,
    ):
        yield Stream(client, data, np.random.default_rng(seed))


def no_shift(data: Dataset, windows: int, seed: int) -> Tally:
    """(a): `windows` disjoint recent windows, and the drift windows among their inputs, each
    checked once."""
    tally = Tally()
    per_service = RUNS_PER_SERVICE * 4  # a window is a tenth of a shifted run's cases
    for first in range(0, windows, per_service):
        with service(data, seed + first) as stream:
            for _ in range(min(per_service, windows - first)):
                for _ in range(WINDOW // BLOCK):
                    stream.send(BLOCK)
                    _tally(tally, stream)
    return tally


def _tally(tally: Tally, stream: Stream) -> None:
    """Count the checks due after the last block: the figures every WINDOW cases, the drift
    every DRIFT_WINDOW inputs (the first after a full window)."""
    figures_due = stream.sent % WINDOW == 0
    drift_due = stream.sent % DRIFT_WINDOW == 0
    if not (figures_due or drift_due):
        return
    check = stream.check()
    if figures_due:
        for alarm in FIGURE_ALARMS:
            tally.checks[alarm.alert] += 1
            tally.fired[alarm.alert] += alarm.alert in check.figures
    if drift_due and check.drift is not None:
        tally.checks[DRIFT_ALARM] += 1
        tally.fired[DRIFT_ALARM] += bool(check.drift)


def miscalibration(data: Dataset, runs: int, seed: int) -> list[Found]:
    """(b): per run, the cases from the prefix's end to the first figure alarm."""
    return _runs(data, runs, seed, _miscalibration_run)


def covariate_shift(data: Dataset, runs: int, seed: int, share: float) -> list[Found]:
    """(c): per run, the inputs from the prefix's end to the first drift alarm."""
    return _runs(data, runs, seed, lambda stream: _covariate_run(stream, share))


def _runs(data: Dataset, runs: int, seed: int, run: Any) -> list[Found]:
    found: list[Found] = []
    for first in range(0, runs, RUNS_PER_SERVICE):
        with service(data, seed + first) as stream:
            found += [run(stream) for _ in range(min(RUNS_PER_SERVICE, runs - first))]
    return found


def _miscalibration_run(stream: Stream) -> Found:
    return _until_fired(stream, MISCALIBRATION_PREFIX, {"flip": FLIP_SHARE}, drift=False)


def _covariate_run(stream: Stream, share: float) -> Found:
    return _until_fired(stream, DRIFT_WINDOW, {"shift": share}, drift=True)


def _until_fired(stream: Stream, prefix: int, shifted: dict[str, float], drift: bool) -> Found:
    """`prefix` true cases, then shifted ones CHECK_EVERY at a time until an alarm of the kind
    fires: (cases shifted until then, the alarms), or (None, "") by MAX_CASES."""
    for _ in range(prefix // BLOCK):
        stream.send(BLOCK)
    for n in range(CHECK_EVERY, MAX_CASES + 1, CHECK_EVERY):
        stream.send(CHECK_EVERY, **shifted)
        check = stream.check()
        fired = check.drift if drift else check.figures
        if fired:
            return n, ",".join(fired)
    return None, ""


# -- the report --------------------------------------------------------------------------------
def level(alert: str) -> float:
    """The alarm's stated false-alarm level per check."""
    return DEFAULT_FALSE_ALARM if alert == DRIFT_ALARM else FIGURE_LEVEL


def false_alarm_rows(tally: Tally) -> Iterator[str]:
    for alert in [*dict.fromkeys(a.alert for a in FIGURE_ALARMS), DRIFT_ALARM]:
        fired, checks = tally.fired[alert], tally.checks[alert]
        rate = wilson(fired, checks)
        yield (
            f"| {alert} | {checks} | {fired} | {fired / checks:.4f} | "
            f"{rate.lower:.4f} to {rate.upper:.4f} | {level(alert):g} |"
        )


def report(data: Dataset, windows: int, shifted: int, seed: int, shares: tuple[float, ...]) -> str:
    """The two tables, in markdown, as docs/monitoring.md shows them."""
    lines = [
        f"(a) No shift, live: false alarms per check, disjoint windows ({WINDOW} confirmed"
        f" cases; {DRIFT_WINDOW} inputs)",
        "",
        "| alarm | checks | fired | rate | 95% interval (Wilson) | stated level |",
        "|---|---|---|---|---|---|",
        *false_alarm_rows(no_shift(data, windows, seed)),
        "",
        "(b), (c), live: cases until detection",
        "",
        "| scenario | detected | p10 | median | p90 | first alarm (most often) |",
        "|---|---|---|---|---|---|",
    ]
    name = f"miscalibration: 1 in 10 benign reported malignant after {MISCALIBRATION_PREFIX} cases"
    lines.append(delay_row(name, miscalibration(data, shifted, seed + 1000)))
    for k, share in enumerate(shares):
        found = covariate_shift(data, shifted, seed + 2000 + 1000 * k, share)
        lines.append(
            delay_row(f"covariate: {SHIFT_SCORE} +2 (at most 10) in {share:.0%} of cases", found)
        )
    return "\n".join(lines)


def write_docs(tables: str, path: Path = DOCS) -> None:
    """Replace what stands between the page's markers with `tables`."""
    text = path.read_text(encoding="utf-8")
    before, rest = text.split(BEGIN, 1)
    _, after = rest.split(END, 1)
    path.write_text(f"{before}{BEGIN}\n{tables}\n{END}{after}", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few runs, as the test")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--docs", action="store_true", help=f"write the tables into {DOCS.name}")
    args = parser.parse_args(argv)
    windows, shifted = (10, 2) if args.quick else (500, 100)
    started = time.perf_counter()
    shares = SHIFT_SHARES[: 1 if args.quick else None]
    tables = report(load_dataset(), windows, shifted, args.seed, shares)
    print(tables)
    print(f"\n{time.perf_counter() - started:.0f} s in all")
    if args.docs:
        write_docs(tables)
    return 0


if __name__ == "__main__":
    sys.exit(main())
