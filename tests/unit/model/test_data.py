"""Loading and validating the UCI-format CSV."""

import hashlib
from pathlib import Path

import numpy as np
import pytest

from model.data import DataError, Dataset, load_dataset

UCI_SHA256 = "402c585309c399237740f635ef9919dc512cca12cbeb20de5e563a4593f22b64"
GOOD = "1000025,5,1,1,1,2,1,3,1,1,2\n1017122,8,10,10,8,7,10,9,7,1,4\n"


def write(tmp_path: Path, text: str | bytes) -> Path:
    path = tmp_path / "data.csv"
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def test_committed_file_is_the_uci_file(data_path: Path) -> None:
    raw = data_path.read_bytes()
    assert hashlib.sha256(raw).hexdigest() == UCI_SHA256
    assert b"\r" not in raw
    assert raw.count(b"\n") == 699


def test_loads_683_complete_rows_and_reports_the_dropped(dataset: Dataset) -> None:
    assert dataset.n_rows_read == 699
    assert dataset.n_dropped_missing == 16
    assert dataset.X.shape == (683, 9)
    assert dataset.X.min() == 1
    assert dataset.X.max() == 10
    assert (int(dataset.y.sum()), int((dataset.y == 0).sum())) == (239, 444)
    assert dataset.sha256 == UCI_SHA256


def test_first_rows_match_the_article(dataset: Dataset) -> None:
    # the article's df.head(): ids and scores of rows 0 and 5, classes 2 -> 0 and 4 -> 1
    assert dataset.sample_ids[0] == 1000025
    np.testing.assert_array_equal(dataset.X[0], [5, 1, 1, 1, 2, 1, 3, 1, 1])
    np.testing.assert_array_equal(dataset.X[5], [8, 10, 10, 8, 7, 10, 9, 7, 1])
    assert (dataset.y[0], dataset.y[5]) == (0, 1)


def test_question_mark_rows_are_dropped(tmp_path: Path) -> None:
    data = load_dataset(write(tmp_path, GOOD + "1057013,8,4,5,1,2,?,7,3,1,4\n"))
    assert (data.n_rows_read, data.n_dropped_missing, len(data.y)) == (3, 1, 2)
    gap = load_dataset(write(tmp_path, "1057013,8,4,5,1,2,?,7,3,1,4\n" + GOOD))
    assert gap.line_numbers.tolist() == [2, 3]  # rows keep their place in the file


def test_line_numbers_skip_the_16_incomplete_rows(dataset: Dataset) -> None:
    lines = dataset.line_numbers
    assert len(lines) == len(dataset.y) == 683
    assert lines[0] == 1
    assert lines[-1] == 699
    assert np.all(np.diff(lines) > 0)
    assert len(np.setdiff1d(np.arange(1, 700), lines)) == 16


@pytest.mark.parametrize(
    ("line", "where", "problem"),
    [
        ("1,5,1,1,1,2,1,3,1,2", "line 3", "expected 11 columns, got 10"),
        ("1,5,1,1,1,2,1,3,1,1,2,9", "line 3", "expected 11 columns, got 12"),
        ("1,0,1,1,1,2,1,3,1,1,2", "line 3, column 2 (clump_thickness)", "0 is outside 1..10"),
        ("1,5,11,1,1,2,1,3,1,1,2", "line 3, column 3 (uniformity_of_cell_size)", "11 is outside"),
        ("1,5,1,1,1,2,1,3,1,-1,2", "line 3, column 10 (mitoses)", "-1 is outside 1..10"),
        ("1,5,1,5.5,1,2,1,3,1,1,2", "line 3, column 4", "expected an integer, got '5.5'"),
        ("1,5,1,1,x,2,1,3,1,1,2", "line 3, column 5", "expected an integer, got 'x'"),
        ("1,5,1,1,1,2,1,3,1,1,3", "line 3, column 11 (class)", "3 is not 2 or 4"),
        ("1,5,1,1,1,2,1,3,1,1,", "line 3, column 11 (class)", "expected an integer"),
        ("abc,5,1,1,1,2,1,3,1,1,2", "line 3, column 1 (sample_id)", "expected an integer"),
        ("", "line 3", "empty line"),
    ],
)
def test_malformed_row_names_file_line_and_column(
    tmp_path: Path, line: str, where: str, problem: str
) -> None:
    path = write(tmp_path, GOOD + line + "\n")
    with pytest.raises(DataError) as err:
        load_dataset(path)
    message = str(err.value)
    assert message.startswith(f"{path}:3")
    assert where.replace("line 3", "") in message
    assert problem in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("", "no complete rows"),
        ("1,5,1,1,1,?,1,3,1,1,2\n", "no complete rows"),
        ("1000025,5,1,1,1,2,1,3,1,1,2\n", "only one class"),
        ("1000025,5,1,1,1,2,1,3,1,1,2\n\xe9\n".encode("latin-1"), "not an ASCII text file"),
    ],
)
def test_unusable_file_is_refused(tmp_path: Path, content: str | bytes, problem: str) -> None:
    with pytest.raises(DataError, match=problem):
        load_dataset(write(tmp_path, content))


def test_missing_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nope.csv"
    with pytest.raises(DataError, match=f"^{missing}: cannot read data file"):
        load_dataset(missing)
