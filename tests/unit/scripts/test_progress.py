"""Progress off a terminal: whole lines, one per tenth of the work, never a carriage return."""

import io
import re

import pytest

from scripts.progress import ProgressLines, on_terminal


@pytest.mark.parametrize("total", [1, 3, 10, 25, 300])
def test_one_line_per_tenth_the_first_and_the_last(total: int) -> None:
    out = io.StringIO()
    lines = ProgressLines(out)
    for done in range(1, total + 1):
        lines.report("step", done, total, "x=1")
    shown = [
        int(m[1]) for m in re.finditer(rf"(?m)^step (\d+)/{total} \(\d+%\)  x=1$", out.getvalue())
    ]
    tenths = {done * 10 // total for done in range(1, total + 1)}
    assert len(shown) == len(tenths) == len(out.getvalue().splitlines())
    assert shown[0] == 1
    assert shown[-1] == total
    assert "\r" not in out.getvalue()


def test_labels_count_apart_and_a_repeat_prints_nothing() -> None:
    out = io.StringIO()
    lines = ProgressLines(out)
    for label in ("cv: fold", "grouped: fold", "cv: fold"):
        lines.report(label, 3, 3)
    assert out.getvalue().splitlines() == ["cv: fold 3/3 (100%)", "grouped: fold 3/3 (100%)"]


def test_a_string_buffer_is_not_a_terminal() -> None:
    assert not on_terminal(io.StringIO())
    assert not on_terminal(object())  # type: ignore[arg-type]  # no isatty at all
