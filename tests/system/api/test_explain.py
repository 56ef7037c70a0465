"""POST /explain against a real uvicorn server: the model package's values, /predict's errors.

Expected values come from `Artifact.explain` at test time. The API key is checked as on /predict:
tests/system/api/test_api.py holds /explain in its table of protected routes.
"""

import json
from typing import Any

import httpx
import pytest

from app.openapi.examples import BENIGN, MALIGNANT
from model.artifact import Artifact
from model.data import Dataset
from model.features import FEATURE_NAMES
from tests.system.api.test_api_errors import CASES, Case

TOLERANCE = 1e-12


def scores(x: Any) -> dict[str, int]:
    return dict(zip(FEATURE_NAMES, map(int, x), strict=True))


def strict_json(response: httpx.Response) -> Any:
    def reject(token: str) -> None:
        raise AssertionError(f"non-finite number {token}")

    return json.loads(response.content, parse_constant=reject)


@pytest.mark.slow
def test_answers_the_model_packages_values_on_every_validation_row(
    client: httpx.Client, artifact: Artifact, dataset: Dataset
) -> None:
    index = {int(s): i for i, s in enumerate(dataset.sample_ids)}
    rows = sorted({index[int(s)] for s in artifact.valid_sample_ids})
    assert len(rows) > 100
    for i in rows:
        x = dataset.X[i]
        response = client.post("/explain", json=scores(x))
        assert response.status_code == 200, response.text
        answer = strict_json(response)
        e = artifact.explain(x)
        t = artifact.default_threshold
        assert answer["probability"] == e.probability == artifact.predict_one(x.tolist())
        assert answer["class"] == ("malignant" if e.probability > t else "benign")
        assert answer["threshold"] == t
        assert answer["model_version"] == artifact.model_version
        assert answer["base_value"] == e.base_probability
        assert answer["background_rows"] == artifact.n_train
        assert list(answer["contributions"]) == list(FEATURE_NAMES)
        assert list(answer["contributions"].values()) == e.phi_probability.tolist()
        log_odds = answer["log_odds"]
        assert log_odds["log_odds"] == e.log_odds
        assert log_odds["base_value"] == e.base_log_odds
        assert list(log_odds["contributions"].values()) == e.phi_log_odds.tolist()
        total = answer["base_value"] + sum(answer["contributions"].values())
        assert abs(total - answer["probability"]) <= TOLERANCE
        total = log_odds["base_value"] + sum(log_odds["contributions"].values())
        assert abs(total - log_odds["log_odds"]) <= TOLERANCE


def test_answers_what_predict_answers(client: httpx.Client) -> None:
    for body in (BENIGN, MALIGNANT, {**MALIGNANT, "threshold": 0.9995}, {**BENIGN, "threshold": 0}):
        predicted = client.post("/predict", json=body).json()
        explained = client.post("/explain", json=body).json()
        assert {k: explained[k] for k in predicted} == predicted


def test_the_docs_page_shows_an_explanation_of_each_request_example(client: httpx.Client) -> None:
    """tests/system/api/test_openapi.py checks that each example is what the server answers."""
    spec = client.get("/openapi.json").json()
    operation = spec["paths"]["/explain"]["post"]
    ok = operation["responses"]["200"]["content"]["application/json"]
    assert ok["schema"] == {"$ref": "#/components/schemas/Explanation"}
    assert set(ok["examples"]) == {"malignant", "benign"}
    example = ok["examples"]["malignant"]["value"]
    assert list(example["contributions"]) == list(FEATURE_NAMES)
    assert example["class"] == "malignant"
    body = operation["requestBody"]["content"]["application/json"]
    assert body["schema"] == {"$ref": "#/components/schemas/PredictRequest"}
    assert body["examples"]["malignant"]["value"] == MALIGNANT
    schema = spec["components"]["schemas"]["Contributions"]
    assert list(schema["properties"]) == list(FEATURE_NAMES)
    assert set(schema["required"]) == set(FEATURE_NAMES)


# -- bad input: exactly /predict's answers ------------------------------------------------------
PREDICT_CASES = [c for c in CASES if c.path == "/predict"]


@pytest.mark.parametrize("case", PREDICT_CASES, ids=[c.id for c in PREDICT_CASES])
def test_bad_bodies_get_the_answer_predict_gives(client: httpx.Client, case: Case) -> None:
    predicted = case.send(client)
    case.path = "/explain"
    try:
        explained = case.send(client)
    finally:
        case.path = "/predict"
    assert explained.status_code == predicted.status_code == case.expected_status
    assert explained.json() == predicted.json()


def test_other_methods_are_refused(client: httpx.Client) -> None:
    response = client.get("/explain")
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
