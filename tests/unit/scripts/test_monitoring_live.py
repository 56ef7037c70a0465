"""scripts/monitoring_live.py's parts that need no server: reading the alarms from
/monitoring's JSON as the rules read the gauges, and writing its tables into the docs."""

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from app.monitoring.alarms import firing as alarms_firing
from app.monitoring.figures import Cases, compute_figures
from scripts import monitoring_live as live


@pytest.mark.parametrize("flip", [0.0, 0.3, 0.6])
def test_alarms_from_json_are_the_alarms_of_the_figures(flip: float) -> None:
    rng = np.random.default_rng(int(flip * 10))
    p = rng.uniform(0, 1, 200)
    y = (rng.random(200) < p) | (rng.random(200) < flip)
    codes = rng.choice([1, 2, 3], 200, p=[0.45, 0.45, 0.1])
    figures = compute_figures(Cases.of(p, y.astype(np.int8), codes, 0.2))
    as_json = json.loads(json.dumps(dataclasses.asdict(figures)))
    assert live.firing(as_json) == [a.alert for a in alarms_firing(figures)]


def test_the_tables_go_between_the_markers_and_nowhere_else(tmp_path: Path) -> None:
    page = tmp_path / "monitoring.md"
    shutil.copy(live.DOCS, page)
    original = page.read_text(encoding="utf-8")
    current = original.split(live.BEGIN, 1)[1].split(live.END, 1)[0].strip("\n")
    live.write_docs(current, page)
    assert page.read_text(encoding="utf-8") == original  # what the page holds, it keeps
    live.write_docs("| new | table |", page)
    text = page.read_text(encoding="utf-8")
    assert f"{live.BEGIN}\n| new | table |\n{live.END}" in text
    assert text.split(live.BEGIN)[0] == original.split(live.BEGIN)[0]
    assert text.split(live.END)[1] == original.split(live.END)[1]
