"""Prediction sets over HTTP, against a real uvicorn server and the model package's sets.

Expected sets come from `model.conformal` on the artifact's stored calibration scores, and the
probabilities from the artifact, at test time: nothing is copied from today's artifact.
"""

from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest

from app.openapi.examples import BENIGN, BORDERLINE, MALIGNANT, PREDICT_EXAMPLES
from model.artifact import Artifact
from model.conformal import DEFAULT_CONFIDENCE, REPORT_CONFIDENCES
from model.data import Dataset
from model.features import CLASS_NAMES, FEATURE_NAMES
from tests.live_server import start_server


def rows(dataset: Dataset) -> list[dict[str, int]]:
    return [dict(zip(FEATURE_NAMES, map(int, x), strict=True)) for x in dataset.X]


def named(members: np.ndarray) -> list[list[str]]:
    return [[n for n, m in zip(CLASS_NAMES, row, strict=True) if m] for row in members.tolist()]


def package_sets(artifact: Artifact, dataset: Dataset, confidence: float) -> list[list[str]]:
    proba = artifact.predict_proba(dataset.X)
    return named(artifact.conformal.classifier().predict_set(proba, confidence))


def unsupported(artifact: Artifact) -> float:
    """A confidence above what the malignant calibration rows support, below benign's limit."""
    top = artifact.conformal.classifier().max_confidence()
    assert top[1] < top[0], "this test needs fewer malignant than benign calibration rows"
    return float((top[0] + top[1]) / 2)


def test_every_row_gets_the_model_packages_set_from_predict(
    client: httpx.Client, artifact: Artifact, dataset: Dataset
) -> None:
    expected = package_sets(artifact, dataset, DEFAULT_CONFIDENCE)
    for instance, want in zip(rows(dataset), expected, strict=True):
        answer = client.post("/predict", json=instance).json()
        assert answer["prediction_set"] == want, instance
        assert answer["confidence"] == DEFAULT_CONFIDENCE
    kinds = {len(s) for s in expected}
    assert {0, 1} <= kinds, "the rows should show one-class and empty sets at 0.95"


@pytest.mark.parametrize("confidence", [0.5, *REPORT_CONFIDENCES, 0.9999])
def test_every_row_gets_the_model_packages_set_from_batch(
    client: httpx.Client, artifact: Artifact, dataset: Dataset, confidence: float
) -> None:
    response = client.post(
        "/predict/batch", json={"instances": rows(dataset), "confidence": confidence}
    )
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["confidence"] == confidence
    got = [p["prediction_set"] for p in answer["predictions"]]
    assert got == package_sets(artifact, dataset, confidence)


def test_a_confidence_the_calibration_cannot_support_puts_that_class_in_every_set(
    client: httpx.Client, artifact: Artifact, dataset: Dataset
) -> None:
    confidence = unsupported(artifact)
    answer = client.post(
        "/predict/batch", json={"instances": rows(dataset), "confidence": confidence}
    ).json()
    sets = [p["prediction_set"] for p in answer["predictions"]]
    assert all("malignant" in s for s in sets)
    assert any(s == ["malignant"] for s in sets)  # benign is still excluded where it can be
    card = client.get("/model").json()["conformal"]
    limits = {c["class"]: c["max_confidence"] for c in card["classes"]}
    assert limits["malignant"] < confidence < limits["benign"]


def test_sets_are_ordered_benign_first_and_a_row_can_be_referred_both_ways(
    client: httpx.Client, artifact: Artifact, dataset: Dataset
) -> None:
    seen = {
        tuple(s) for confidence in (0.9, 0.99) for s in package_sets(artifact, dataset, confidence)
    }
    assert seen == {(), ("benign",), ("malignant",), ("benign", "malignant")}
    for case, want in ((BENIGN, ["benign"]), (MALIGNANT, ["malignant"])):
        assert client.post("/predict", json=case).json()["prediction_set"] == want


@pytest.mark.parametrize("payload", [{}, {"confidence": None}], ids=["omitted", "null"])
def test_default_confidence(client: httpx.Client, payload: dict[str, Any]) -> None:
    one = client.post("/predict", json={**BENIGN, **payload}).json()
    many = client.post("/predict/batch", json={"instances": [BENIGN], **payload}).json()
    assert one["confidence"] == many["confidence"] == DEFAULT_CONFIDENCE


@pytest.fixture(scope="module")
def strict_client() -> Iterator[httpx.Client]:
    with (
        start_server({"DEFAULT_CONFIDENCE": "0.99"}) as live,
        httpx.Client(base_url=live.url, timeout=10.0) as http,
    ):
        yield http


def test_the_default_confidence_setting_applies_when_a_request_names_none(
    strict_client: httpx.Client, artifact: Artifact, dataset: Dataset
) -> None:
    answer = strict_client.post("/predict/batch", json={"instances": rows(dataset)}).json()
    assert answer["confidence"] == 0.99
    assert [p["prediction_set"] for p in answer["predictions"]] == package_sets(
        artifact, dataset, 0.99
    )
    asked = strict_client.post("/predict", json={**MALIGNANT, "confidence": 0.95}).json()
    assert asked["confidence"] == 0.95
    assert strict_client.get("/model").json()["conformal"]["default_confidence"] == 0.99


def test_model_card_says_how_the_sets_are_calibrated_and_how_they_did(
    client: httpx.Client, artifact: Artifact
) -> None:
    card = client.get("/model").json()["conformal"]
    cal = artifact.conformal
    assert (card["method"], card["folds"], card["fold_seed"]) == (
        cal.method,
        cal.folds,
        cal.fold_seed,
    )
    assert card["score"] == "1 - P(class)"
    assert card["default_confidence"] == DEFAULT_CONFIDENCE
    assert card["classes"] == [
        {
            "class": name,
            "n_calibration": len(scores),
            "max_confidence": len(scores) / (len(scores) + 1),
        }
        for name, scores in (("benign", cal.benign), ("malignant", cal.malignant))
    ]
    assert [row["confidence"] for row in card["validation"]] == list(REPORT_CONFIDENCES)
    for row in card["validation"]:
        sets = artifact.conformal.classifier().predict_set(artifact.valid_proba, row["confidence"])
        y = artifact.valid_y
        assert row["benign_coverage"] == sets[y == 0, 0].mean()
        assert row["malignant_coverage"] == sets[y == 1, 1].mean()
        size = sets.sum(axis=1)
        assert [row["one_class"], row["both"], row["empty"]] == [
            np.mean(size == k) for k in (1, 2, 0)
        ]


def test_the_docs_borderline_example_is_referred_as_its_description_says(
    client: httpx.Client,
) -> None:
    assert "[] (no class fits)" in PREDICT_EXAMPLES["borderline"]["description"]
    default = client.post("/predict", json=BORDERLINE).json()
    strict = client.post("/predict", json=PREDICT_EXAMPLES["borderline_at_0.99"]["value"]).json()
    assert default["prediction_set"] == []
    assert strict["prediction_set"] == ["benign", "malignant"]
