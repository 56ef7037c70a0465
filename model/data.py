"""Load and validate the Wisconsin breast cancer CSV in the original UCI format."""

import csv
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from model.features import (
    BENIGN_CODE,
    FEATURE_NAMES,
    MALIGNANT_CODE,
    N_FEATURES,
    SCORE_MAX,
    SCORE_MIN,
)

DEFAULT_DATA_PATH = Path(__file__).resolve().parent.parent / "data" / "breast-cancer-wisconsin.csv"
N_COLUMNS = 1 + N_FEATURES + 1  # sample id, the nine scores, class
MISSING = "?"
COLUMN_NAMES = ("sample_id", *FEATURE_NAMES, "class")


class DataError(ValueError):
    """The data file is missing or malformed; the message names the file, line and column."""


@dataclass(frozen=True)
class Dataset:
    """Complete rows of the data file, in file order."""

    sample_ids: NDArray[np.int64]
    X: NDArray[np.int64]  # (n, 9) scores 1..10
    y: NDArray[np.int64]  # (n,) 1 malignant, 0 benign
    n_rows_read: int
    n_dropped_missing: int
    sha256: str
    # (n,) 1-based line of each row in the file: the file's order is the order of collection
    line_numbers: NDArray[np.int64]


def _parse_int(text: str, where: str, low: int, high: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise DataError(f"{where}: expected an integer, got {text!r}") from None
    if not low <= value <= high:
        raise DataError(f"{where}: {value} is outside {low}..{high}")
    return value


def _parse_row(fields: list[str], where: str) -> tuple[int, list[int], int] | None:
    """One CSV record, or None when a score is missing (`?`)."""
    if len(fields) != N_COLUMNS:
        raise DataError(f"{where}: expected {N_COLUMNS} columns, got {len(fields)}")
    sample_id = _parse_int(fields[0], f"{where}, column 1 (sample_id)", 0, 2**62)
    scores: list[int] = []
    missing = False
    for col, (name, text) in enumerate(zip(FEATURE_NAMES, fields[1:-1], strict=True), start=2):
        if text.strip() == MISSING:
            missing = True
            continue
        scores.append(_parse_int(text, f"{where}, column {col} ({name})", SCORE_MIN, SCORE_MAX))
    code = _parse_int(fields[-1], f"{where}, column {N_COLUMNS} (class)", 0, 9)
    if code not in (BENIGN_CODE, MALIGNANT_CODE):
        raise DataError(
            f"{where}, column {N_COLUMNS} (class): {code} is not {BENIGN_CODE} or {MALIGNANT_CODE}"
        )
    return None if missing else (sample_id, scores, int(code == MALIGNANT_CODE))


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_dataset(path: Path = DEFAULT_DATA_PATH) -> Dataset:
    """Read every row, reject malformed ones, and drop the rows with a missing score."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read data file: {exc.strerror or exc}") from None
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not an ASCII text file (byte {exc.start})") from None

    ids: list[int] = []
    lines: list[int] = []
    rows: list[list[int]] = []
    labels: list[int] = []
    n_read = 0
    for line_no, fields in enumerate(csv.reader(text.splitlines()), start=1):
        if not fields:
            raise DataError(f"{path}:{line_no}: empty line")
        n_read += 1
        parsed = _parse_row(fields, f"{path}:{line_no}")
        if parsed is not None:
            ids.append(parsed[0])
            lines.append(line_no)
            rows.append(parsed[1])
            labels.append(parsed[2])
    if not rows:
        raise DataError(f"{path}: no complete rows")
    if len(set(labels)) < 2:
        raise DataError(f"{path}: only one class present; need both benign and malignant rows")
    return Dataset(
        sample_ids=np.asarray(ids, dtype=np.int64),
        X=np.asarray(rows, dtype=np.int64).reshape(-1, N_FEATURES),
        y=np.asarray(labels, dtype=np.int64),
        n_rows_read=n_read,
        n_dropped_missing=n_read - len(rows),
        sha256=hashlib.sha256(raw).hexdigest(),
        line_numbers=np.asarray(lines, dtype=np.int64),
    )
