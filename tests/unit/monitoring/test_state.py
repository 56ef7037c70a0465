"""The Monitor: its snapshot equals the figures over the same cases computed at once, per caller
and over the recent window; a rebuild equals the incremental state; adds from many threads."""

import json
import threading

import numpy as np
import pytest

from app.monitoring.figures import Cases, compute_figures
from app.monitoring.state import OTHER_CALLER, Case, Monitor


def random_cases(n: int, seed: int, callers: tuple[str | None, ...]) -> list[Case]:
    rng = np.random.default_rng(seed)
    p = rng.uniform(0, 1, n)
    return [
        Case(
            probability=float(p[i]),
            outcome=int(rng.random() < p[i]),
            set_code=int(rng.integers(0, 4)),
            threshold=float(rng.choice([0.2, 0.5])),
            atypical=bool(rng.random() < 0.05),
            caller=callers[int(rng.integers(0, len(callers)))],
        )
        for i in range(n)
    ]


def as_cases(cases: list[Case]) -> Cases:
    return Cases.of(
        [c.probability for c in cases],
        [c.outcome for c in cases],
        [c.set_code for c in cases],
        [c.threshold for c in cases],
        [c.atypical for c in cases],
    )


def test_snapshot_equals_the_figures_of_the_same_cases() -> None:
    cases = random_cases(700, 1, ("alice", "bob", "mallory", None))
    monitor = Monitor(callers=["alice", "bob"], window=150)
    for case in cases:
        monitor.add(case)
    snap = monitor.snapshot()
    assert snap.cases == 700
    assert snap.overall.cumulative == compute_figures(as_cases(cases))
    assert snap.overall.recent == compute_figures(as_cases(cases[-150:]))
    assert set(snap.callers) == {"alice", "bob", OTHER_CALLER}
    for name in ("alice", "bob"):
        mine = [c for c in cases if c.caller == name]
        assert snap.callers[name].cumulative == compute_figures(as_cases(mine))
        assert snap.callers[name].recent == compute_figures(as_cases(mine[-150:]))
    others = [c for c in cases if c.caller not in ("alice", "bob")]
    assert snap.callers[OTHER_CALLER].cumulative == compute_figures(as_cases(others))


def test_rebuild_equals_incremental() -> None:
    cases = random_cases(300, 2, ("alice", None))
    incremental = Monitor(callers=["alice"], window=50)
    for case in cases:
        incremental.add(case)
    rebuilt = Monitor.rebuild(cases, callers=["alice"], window=50)
    a, b = incremental.snapshot(), rebuilt.snapshot()
    assert (a.overall, a.callers) == (b.overall, b.callers)


def test_snapshot_is_kept_until_a_case_arrives() -> None:
    monitor = Monitor(window=10)
    for case in random_cases(30, 3, (None,)):
        monitor.add(case)
    first = monitor.snapshot()
    assert monitor.snapshot() is first
    monitor.add(random_cases(1, 4, (None,))[0])
    assert monitor.snapshot().cases == 31


def test_an_empty_monitor_has_no_figures_and_valid_json() -> None:
    snap = Monitor(callers=["alice"]).snapshot()
    assert snap.cases == 0
    assert snap.callers == {}
    assert snap.overall.cumulative.sensitivity.value is None
    json.dumps(snap.as_dict(), allow_nan=False)


def test_callers_are_bounded() -> None:
    monitor = Monitor(callers=["alice"])
    assert monitor.callers == ("alice", OTHER_CALLER)
    for name in ("eve", "x" * 1000, None, OTHER_CALLER):
        assert monitor.caller_bucket(name) == OTHER_CALLER


@pytest.mark.slow
def test_adds_from_many_threads_are_all_kept() -> None:
    monitor = Monitor(window=100)
    batches = [random_cases(500, seed, (None,)) for seed in range(8)]

    def feed(batch: list[Case]) -> None:
        for case in batch:
            monitor.add(case)
            if len(monitor) % 97 == 0:
                monitor.snapshot()

    threads = [threading.Thread(target=feed, args=(b,)) for b in batches]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    snap = monitor.snapshot()
    assert snap.cases == 4000
    everything = [c for b in batches for c in b]
    assert snap.overall.cumulative.n_malignant == sum(c.outcome for c in everything)


@pytest.mark.parametrize(
    "bad",
    [
        Case(float("nan"), 0, 1, 0.5),
        Case(1.5, 0, 1, 0.5),
        Case(0.5, 2, 1, 0.5),
        Case(0.5, 0, 7, 0.5),
        Case(0.5, 0, 1, -0.1),
    ],
)
def test_bad_cases_are_refused(bad: Case) -> None:
    monitor = Monitor()
    with pytest.raises(ValueError, match="must"):
        monitor.add(bad)
    assert len(monitor) == 0


def test_extend_equals_adding_each_case() -> None:
    cases = random_cases(2500, 4, ("alice", "bob", None))  # past the initial capacity
    one_by_one = Monitor.rebuild(cases, ["alice"], 100)
    at_once = Monitor(["alice"], 100)
    for part in (cases[:10], cases[10:1500], cases[1500:]):
        at_once.extend(as_cases(part), [c.caller for c in part])
    assert len(at_once) == 2500
    mine, theirs = at_once.snapshot(), one_by_one.snapshot()
    assert (mine.overall, mine.callers) == (theirs.overall, theirs.callers)
    with pytest.raises(ValueError, match="one caller per case"):
        at_once.extend(as_cases(cases[:3]), ["alice"])
