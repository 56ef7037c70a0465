"""The confirmed cases seen so far, and their figures, overall and per caller.

`Monitor.add` takes one confirmed case (an answer whose outcome came back), checks it and appends
it to columns; nothing is computed then. `snapshot` computes the figures (app/monitoring/
figures.py) over every case and over the last `window` ones, overall and for each caller, and
keeps them until another case arrives: it belongs on a schedule or a monitoring request, never on
the prediction path. At startup the record store's confirmed cases are replayed with `rebuild`,
so a restart loses nothing.

Callers are a bounded set given at construction (the configured API keys' names): any other
caller, or none, is counted under OTHER_CALLER, so the figures per caller stay bounded whatever
the requests say. The monitor is thread-safe: `add` and `snapshot` may run in different threads.
"""

import math
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from app.monitoring.figures import Cases, Figures, compute_figures

OTHER_CALLER: Final = "other"
DEFAULT_WINDOW: Final = 200  # the recent window: the last N confirmed cases
_INITIAL_CAPACITY: Final = 1024


@dataclass(frozen=True, slots=True)
class Case:
    """One confirmed case: the answer given and the outcome (1 malignant, 0 benign)."""

    probability: float
    outcome: int
    set_code: int  # 0 none, 1 benign, 2 malignant, 3 both
    threshold: float
    atypical: bool = False
    caller: str | None = None


@dataclass(frozen=True)
class WindowFigures:
    cumulative: Figures
    recent: Figures


@dataclass(frozen=True)
class Snapshot:
    window: int
    overall: WindowFigures
    callers: dict[str, WindowFigures]  # each configured caller and OTHER_CALLER, if they have cases
    validated: Figures | None
    cases: int
    computed_at: float  # time.time() when computed
    compute_seconds: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Columns:
    """Growable columns of the cases, appended to in place (doubling their capacity)."""

    def __init__(self) -> None:
        self.n = 0
        self.probability = np.empty(_INITIAL_CAPACITY, dtype=np.float64)
        self.outcome = np.empty(_INITIAL_CAPACITY, dtype=np.int8)
        self.set_code = np.empty(_INITIAL_CAPACITY, dtype=np.int8)
        self.threshold = np.empty(_INITIAL_CAPACITY, dtype=np.float64)
        self.atypical = np.empty(_INITIAL_CAPACITY, dtype=np.bool_)
        self.caller = np.empty(_INITIAL_CAPACITY, dtype=np.int16)

    _NAMES: Final = ("probability", "outcome", "set_code", "threshold", "atypical", "caller")

    def _reserve(self, more: int) -> None:
        """Room for `more` cases past the prefix (the capacity doubled until they fit)."""
        capacity = len(self.probability)
        if self.n + more <= capacity:
            return
        while capacity < self.n + more:
            capacity *= 2
        for name in self._NAMES:
            old = getattr(self, name)
            grown = np.empty(capacity, dtype=old.dtype)
            grown[: self.n] = old[: self.n]
            setattr(self, name, grown)

    def append(self, case: Case, caller: int) -> None:
        self._reserve(1)
        i = self.n
        self.probability[i] = case.probability
        self.outcome[i] = case.outcome
        self.set_code[i] = case.set_code
        self.threshold[i] = case.threshold
        self.atypical[i] = case.atypical
        self.caller[i] = caller
        self.n = i + 1

    def extend(self, cases: Cases, callers: NDArray[np.int16]) -> None:
        n, k = self.n, len(cases)
        self._reserve(k)
        for name in self._NAMES[:-1]:
            getattr(self, name)[n : n + k] = getattr(cases, name)
        self.caller[n : n + k] = callers
        self.n = n + k

    def view(self) -> tuple[Cases, NDArray[np.int16]]:
        """The cases so far: views of the filled prefix, which appends never change (growing
        copies into new arrays, and writes only past the prefix)."""
        n = self.n
        return (
            Cases(
                self.probability[:n],
                self.outcome[:n],
                self.set_code[:n],
                self.threshold[:n],
                self.atypical[:n],
            ),
            self.caller[:n],
        )


class Monitor:
    def __init__(
        self,
        callers: Iterable[str] = (),
        window: int = DEFAULT_WINDOW,
        validated: Figures | None = None,
    ) -> None:
        names = sorted(set(callers) - {OTHER_CALLER})
        if window < 1:
            raise ValueError("window must be at least 1")
        self.callers: tuple[str, ...] = (*names, OTHER_CALLER)
        self._index = {name: i for i, name in enumerate(self.callers)}
        self.window = window
        self.validated = validated
        self._columns = _Columns()
        self._lock = threading.Lock()
        self._cached: Snapshot | None = None

    @classmethod
    def rebuild(
        cls,
        cases: Iterable[Case],
        callers: Iterable[str] = (),
        window: int = DEFAULT_WINDOW,
        validated: Figures | None = None,
    ) -> "Monitor":
        """A monitor holding `cases`, in their order (oldest first): the startup replay."""
        monitor = cls(callers, window, validated)
        for case in cases:
            monitor.add(case)
        return monitor

    def caller_bucket(self, caller: str | None) -> str:
        """The name a caller's cases are counted under."""
        return caller if caller in self._index else OTHER_CALLER

    def add(self, case: Case) -> None:
        """Append one confirmed case; ValueError if a field is out of range."""
        _check(case)
        bucket = self._index.get(case.caller or OTHER_CALLER, self._index[OTHER_CALLER])
        with self._lock:
            self._columns.append(case, bucket)
            self._cached = None

    def extend(self, cases: Cases, callers: Sequence[str | None]) -> None:
        """Append checked columns of cases (`Cases.of` checks them), each with its caller: what
        `add` does for each, in one step."""
        if len(callers) != len(cases):
            raise ValueError("one caller per case")
        other = self._index[OTHER_CALLER]
        buckets = np.fromiter(
            (self._index.get(c or OTHER_CALLER, other) for c in callers), np.int16, len(cases)
        )
        with self._lock:
            self._columns.extend(cases, buckets)
            self._cached = None

    def __len__(self) -> int:
        return self._columns.n

    def snapshot(self) -> Snapshot:
        """The figures over the cases so far (the last snapshot, if no case came since)."""
        with self._lock:
            cached = self._cached
            cases, callers = self._columns.view()
        if cached is not None:
            return cached
        started = time.perf_counter()
        overall = self._windows(cases)
        per_caller = {}
        for i, name in enumerate(self.callers):
            mask = callers == i
            if not mask.any():
                continue
            # one caller sent every case: its figures are the overall ones
            per_caller[name] = overall if mask.all() else self._windows(_select(cases, mask))
        snapshot = Snapshot(
            window=self.window,
            overall=overall,
            callers=per_caller,
            validated=self.validated,
            cases=len(cases),
            computed_at=time.time(),
            compute_seconds=time.perf_counter() - started,
        )
        with self._lock:
            if self._columns.n == len(cases):  # no case arrived while computing
                self._cached = snapshot
        return snapshot

    def _windows(self, cases: Cases) -> WindowFigures:
        return WindowFigures(compute_figures(cases), compute_figures(cases.tail(self.window)))


def _select(cases: Cases, mask: NDArray[np.bool_]) -> Cases:
    return Cases(
        cases.probability[mask],
        cases.outcome[mask],
        cases.set_code[mask],
        cases.threshold[mask],
        cases.atypical[mask],
    )


def _check(case: Case) -> None:
    if not (math.isfinite(case.probability) and 0.0 <= case.probability <= 1.0):
        raise ValueError("probability must lie in [0, 1]")
    if case.outcome not in (0, 1) or case.set_code not in (0, 1, 2, 3):
        raise ValueError("outcome must be 0 or 1 and set_code 0..3")
    if not (math.isfinite(case.threshold) and 0.0 <= case.threshold <= 1.0):
        raise ValueError("threshold must lie in [0, 1]")
