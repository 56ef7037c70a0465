"""The fast cross-validation run that several tests read."""

import numpy as np
import pandas as pd
import pytest
from numpy.typing import NDArray

from model.data import Dataset
from scripts.evaluate.common import Split
from scripts.evaluate.cv import stratified_splits, validate
from scripts.evaluate.tables import frame
from tests.system.scripts.evaluate import FAST


@pytest.fixture(scope="package")
def cv3(dataset: Dataset) -> tuple[list[Split], "pd.DataFrame", list[NDArray[np.float64]]]:
    """One fast 3-fold run of every model, our network at 0.5 and 0.3, shared by the tests."""
    splits = stratified_splits(dataset.y, 3, 1, 0)
    records, net_proba = validate("cv", dataset, splits, FAST, [0.5, 0.3])
    return splits, frame(records), net_proba
