"""scripts/monitoring_cost.py on a small record: its row, and a Watch that, once it has read
the record, reads only the confirmed cases that arrive after."""

from pathlib import Path

import pytest

from app.core.dataplane import ServedModel
from app.core.monitoring import Watch
from app.record.config import RecordConfig
from model.artifact import DEFAULT_ARTIFACT_PATH
from scripts import monitoring_cost as cost


@pytest.fixture(scope="module")
def model() -> ServedModel:
    return ServedModel.load(DEFAULT_ARTIFACT_PATH)


def test_later_refreshes_read_only_the_new_cases(model: ServedModel, tmp_path: Path) -> None:
    config = RecordConfig(tmp_path)
    filler = cost.Filler(config, model)
    filler.add(250)  # batches of 100, 100 and 50
    watch = Watch(model, config, ["lab"], 200, 500, 30.0)
    assert watch.latest()["overall"]["cumulative"]["n"] == 250
    for n in (350, 450):
        filler.add(cost.BATCH)
        answer = watch.latest()
        assert answer["overall"]["cumulative"]["n"] == n
        assert answer["callers"]["lab"] == answer["overall"]
    assert watch.feed.rebuilds == 1
    assert set(watch.last_timings) == {"read", "snapshot", "drift"}


def test_the_row_names_its_size(model: ServedModel) -> None:
    row = cost.measure(model, 300, repeat=1)
    assert row.startswith("| 300 | ")
    assert row.count("|") == 7
