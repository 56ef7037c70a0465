"""The article's results, reproduced exactly with its ordered split (`--split seed`)."""

import pytest

from model.artifact import Artifact, TrainingSettings
from model.data import Dataset
from model.training import train


def accuracies(artifact: Artifact, threshold: str) -> tuple[float, float]:
    return (
        round(artifact.train_metrics[threshold]["accuracy"], 4),
        round(artifact.valid_metrics[threshold]["accuracy"], 4),
    )


@pytest.mark.slow
def test_lr_001_15000_iterations_gives_the_articles_threshold_table(dataset: Dataset) -> None:
    result = train(dataset, TrainingSettings(split="seed", lr=0.01, iterations=15000, seed=1))
    art = result.artifact
    assert art.n_train == 500
    assert len(art.valid_y) == 182
    assert result.loss_curve[0][1] == pytest.approx(0.673967, abs=5e-7)  # "Cost after iteration 0"
    assert accuracies(art, "0.5") == (0.962, 1.0)
    assert accuracies(art, "0.7") == (0.95, 1.0)
    assert accuracies(art, "0.8") == (0.942, 0.9945)
    assert accuracies(art, "0.9") == (0.926, 0.989)
    assert (
        art.valid_metrics["0.8"]["confusion"]["tp"] + art.valid_metrics["0.8"]["confusion"]["tn"]
        == 181
    )


@pytest.mark.slow
def test_lr_007_67000_iterations_fits_the_training_rows(dataset: Dataset) -> None:
    result = train(dataset, TrainingSettings(split="seed", lr=0.07, iterations=67000, seed=1))
    assert accuracies(result.artifact, "0.5") == (1.0, 0.9945)
