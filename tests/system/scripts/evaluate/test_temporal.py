"""scripts/evaluate/temporal.py: the UCI collection groups, and the refusal of a file without
them."""

from pathlib import Path

import numpy as np
import pytest

from model.data import Dataset
from scripts.evaluate.cli import main
from scripts.evaluate.temporal import TEMPORAL_GROUPS, collection_groups, temporal_splits


def test_temporal_splits_follow_the_uci_collection_groups(dataset: Dataset) -> None:
    group = collection_groups(dataset)
    counts = np.bincount(group, minlength=8).tolist()
    assert counts == [353, 69, 31, 17, 48, 49, 31, 85]  # the UCI sizes minus '?' rows
    assert sum(TEMPORAL_GROUPS) == dataset.n_rows_read == 699
    splits = temporal_splits(dataset)
    assert [s.fold for s in splits] == list(range(1, 8))
    lines = dataset.line_numbers
    for s in splits:
        assert lines[s.train].max() < lines[s.test].min()  # never train on the future
        np.testing.assert_array_equal(s.train, np.flatnonzero(group < s.fold))
        np.testing.assert_array_equal(s.test, np.flatnonzero(group == s.fold))


def test_temporal_part_refuses_a_file_without_the_uci_rows(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], data_path: Path
) -> None:
    short = tmp_path / "short.csv"
    short.write_text("".join(data_path.read_text().splitlines(keepends=True)[:600]))
    assert main(["--data", str(short), "--parts", "temporal", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err == (
        "scripts.evaluate: error: --parts temporal: the temporal groups need the UCI file's 699 "
        "rows, this file has 600\n"
    )
