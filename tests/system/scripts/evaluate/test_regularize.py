"""scripts/evaluate/regularize.py: the nested choice of weight decay and early stopping."""

from dataclasses import replace

import numpy as np

from model.data import Dataset
from scripts.evaluate.cv import stratified_splits
from scripts.evaluate.regularize import inner_log_loss, regularize
from scripts.evaluate.tables import frame
from tests.system.scripts.evaluate import FAST


def test_nested_choice_scores_the_candidate_its_inner_cv_picked(dataset: Dataset) -> None:
    splits = stratified_splits(dataset.y, 3, 1, 0)
    candidates = [FAST, replace(FAST, weight_decay=0.05), replace(FAST, early_stopping=True)]
    df = frame(regularize(dataset, splits, candidates, 0.2, 2, None))
    chosen = df[df.metric == "chosen"]
    assert len(chosen) == 3  # one pick per outer fold
    auc = df[(df.scope == "fold") & (df.metric == "roc_auc")].set_index(["fold", "variant"])
    for fold, pick in zip(chosen.fold, chosen.variant, strict=True):
        assert auc.loc[(fold, "nested choice"), "value"] == auc.loc[(fold, pick), "value"]
        losses = [inner_log_loss(dataset, splits[fold].train, c, 2, 0) for c in candidates]
        assert pick == candidates[int(np.argmin(losses))].variant
    assert set(df.variant) >= {"none (served)", "weight decay 0.05", "early stopping"}
