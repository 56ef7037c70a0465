"""Progress for the scripts: tqdm's bar on a terminal, whole lines anywhere else.

A bar redraws itself in place with carriage returns; captured in a pipe, a file or a CI log those
redraws run together into one long line. Off a terminal, the scripts print whole lines instead,
one each time another tenth of the work is done (and one at the end).
"""

from typing import TextIO


def on_terminal(stream: TextIO) -> bool:
    """Whether `stream` is a terminal (a replaced stream without `isatty` is not)."""
    isatty = getattr(stream, "isatty", None)
    return bool(isatty is not None and isatty())


class ProgressLines:
    """Whole progress lines on `stream`: per label, the first step, each tenth, and the last."""

    def __init__(self, stream: TextIO, steps: int = 10) -> None:
        self._stream = stream
        self._steps = steps
        self._shown: dict[str, int] = {}

    def report(self, label: str, done: int, total: int, detail: str = "") -> None:
        step = done * self._steps // max(total, 1)
        if self._shown.get(label) == step:
            return
        self._shown[label] = step
        percent = 100 * done // max(total, 1)
        tail = f"  {detail}" if detail else ""
        print(f"{label} {done}/{total} ({percent}%){tail}", file=self._stream, flush=True)
