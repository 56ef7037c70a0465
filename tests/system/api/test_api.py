"""The service over HTTP, against a real uvicorn server: predictions, metrics, card, docs, keys.

Expected values come from the model package and the artifact file at test time, never from
numbers copied out of today's artifact, so these tests hold after a retrain.
"""

import asyncio
import json
import math
import re
from collections.abc import Iterator
from dataclasses import asdict
from html.parser import HTMLParser
from typing import Any

import httpx
import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    brier_score_loss,
    confusion_matrix,
    f1_score,
    log_loss,
    precision_score,
    recall_score,
    roc_auc_score,
)

from app.core.config import Settings
from app.main import create_app
from app.monitoring.typicality import Typicality
from app.openapi.examples import (
    BENIGN,
    BENIGN_SAMPLE_ID,
    BORDERLINE,
    BORDERLINE_SAMPLE_ID,
    MALIGNANT,
    MALIGNANT_SAMPLE_ID,
)
from model.artifact import Artifact
from model.conformal import DEFAULT_CONFIDENCE
from model.data import Dataset
from model.features import CLASS_NAMES, FEATURE_NAMES, SCORE_MAX, SCORE_MIN
from tests.live_server import LiveServer, start_server

API_KEY = "test-key-\u00e9-not-secret"  # a non-ASCII character checks the byte comparison
API_KEY_BYTES = API_KEY.encode()  # as an operator's UTF-8 environment holds it
PROTECTED = [
    ("POST", "/predict", BENIGN),
    ("POST", "/predict/batch", {"instances": [BENIGN, MALIGNANT]}),
    ("POST", "/explain", BENIGN),
    ("GET", "/metrics", None),
]
OPEN = ["/health", "/model", "/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect"]


def strict_json(response: httpx.Response) -> Any:
    """Parse a response body, failing on NaN or Infinity: every float must be finite JSON."""

    def reject(token: str) -> None:
        raise AssertionError(f"non-finite number {token} in {response.url}")

    return json.loads(response.content, parse_constant=reject)


@pytest.fixture(scope="module")
def keyed_server() -> Iterator[LiveServer]:
    with start_server({"API_KEY": API_KEY}) as live:
        yield live


@pytest.fixture(scope="module")
def keyed_client(keyed_server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=keyed_server.url, timeout=10.0) as http:
        yield http


def rows(dataset: Dataset) -> list[dict[str, int]]:
    return [dict(zip(FEATURE_NAMES, map(int, x), strict=True)) for x in dataset.X]


# -- health and predictions -------------------------------------------------------------------
def test_health(client: httpx.Client, artifact: Artifact) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    assert strict_json(response) == {"status": "ok", "model_version": artifact.model_version}


def test_every_row_is_predicted_as_the_model_package_predicts_it(
    client: httpx.Client, artifact: Artifact, dataset: Dataset
) -> None:
    assert len(dataset.X) == 683
    t = artifact.default_threshold
    conformal = artifact.conformal.classifier()
    typicality = Typicality.from_artifact(artifact)
    refer = 0
    for row, x in zip(rows(dataset), dataset.X, strict=True):
        response = client.post("/predict", json=row)
        assert response.status_code == 200, response.text
        answer = strict_json(response)
        expected = float(artifact.predict_proba(x[np.newaxis, :])[0])
        # /predict scores one row in plain floats (model/scoring/single_row.py), the batch path with
        # BLAS: the same formula, summed in another order.
        assert answer["probability"] == pytest.approx(expected, rel=1e-12, abs=1e-15)
        members = conformal.predict_set([expected], DEFAULT_CONFIDENCE)[0]
        prediction_set = [name for name, m in zip(CLASS_NAMES, members, strict=True) if m]
        atypical = typicality.is_atypical([int(v) for v in x])
        reasons = {0: ["no_class"], 2: ["both_classes"]}.get(len(prediction_set), [])
        reasons += ["atypical_input"] if atypical else []
        assert answer == {
            "probability": answer["probability"],
            "class": "malignant" if expected > t else "benign",
            "prediction_set": prediction_set,
            "decision": "refer" if reasons else prediction_set[0],
            "reasons": reasons,
            "atypical": atypical,
            "threshold": t,
            "confidence": DEFAULT_CONFIDENCE,
            "model_version": artifact.model_version,
        }
        refer += bool(reasons)
    assert 0 < refer < len(dataset.X) // 10  # some cases are referred, most are not


def test_batch_equals_the_model_and_the_single_endpoint_row_by_row(
    client: httpx.Client, artifact: Artifact, dataset: Dataset
) -> None:
    instances = rows(dataset)
    response = client.post("/predict/batch", json={"instances": instances})
    assert response.status_code == 200, response.text
    answer = strict_json(response)
    assert answer["model_version"] == artifact.model_version
    assert answer["threshold"] == artifact.default_threshold
    expected = artifact.predict_proba(dataset.X)
    predictions = answer["predictions"]
    # the batch path folds the scaler into the first layer and takes 1 / (1 + e^-z),
    # predict_proba scales first and takes exp(-logaddexp(0, -z)) (model/scoring/batch.py): the last
    # bits
    probabilities = [p["probability"] for p in predictions]
    np.testing.assert_allclose(probabilities, expected, rtol=1e-12, atol=1e-15)
    t = artifact.default_threshold
    assert [p["class"] for p in predictions] == [CLASS_NAMES[int(q > t)] for q in expected]
    for instance, prediction in zip(instances[::25], predictions[::25], strict=True):
        single = strict_json(client.post("/predict", json=instance))
        # BLAS may round a (1, 9) product and a (683, 9) one differently in the last bit
        assert prediction["probability"] == pytest.approx(single["probability"], abs=1e-12)
        assert prediction["class"] == single["class"]
        assert prediction["prediction_set"] == single["prediction_set"]


@pytest.mark.parametrize("threshold", [0.0, 0.3, 0.7, 1.0])
def test_batch_threshold_applies_to_every_instance(
    client: httpx.Client, artifact: Artifact, dataset: Dataset, threshold: float
) -> None:
    response = client.post(
        "/predict/batch", json={"instances": rows(dataset)[:50], "threshold": threshold}
    )
    answer = strict_json(response)
    assert answer["threshold"] == threshold
    expected = artifact.predict_proba(dataset.X[:50])
    assert [p["class"] for p in answer["predictions"]] == [
        CLASS_NAMES[int(p > threshold)] for p in expected
    ]


@pytest.mark.parametrize("threshold", [0, 0.0, 0.25, 0.5, 0.9, 1, 1.0])
def test_threshold_decides_the_class(
    client: httpx.Client, artifact: Artifact, threshold: float
) -> None:
    for case in (BENIGN, MALIGNANT):
        answer = strict_json(client.post("/predict", json={**case, "threshold": threshold}))
        assert answer["threshold"] == threshold
        assert answer["class"] == ("malignant" if answer["probability"] > threshold else "benign")


def test_integral_floats_are_the_same_integers(client: httpx.Client) -> None:
    # JSON (and JSON Schema's "integer") does not tell 5.0 from 5; 5.5 is refused elsewhere.
    as_floats = {name: float(value) for name, value in MALIGNANT.items()}
    assert strict_json(client.post("/predict", json=as_floats)) == strict_json(
        client.post("/predict", json=MALIGNANT)
    )


def test_class_rule_is_strictly_greater_than(client: httpx.Client) -> None:
    probability = strict_json(client.post("/predict", json=MALIGNANT))["probability"]
    at = strict_json(client.post("/predict", json={**MALIGNANT, "threshold": probability}))
    assert at["class"] == "benign"  # probability == threshold is not "greater than"


@pytest.mark.parametrize("payload", [{}, {"threshold": None}], ids=["omitted", "null"])
def test_default_threshold(
    client: httpx.Client, artifact: Artifact, payload: dict[str, Any]
) -> None:
    answer = strict_json(client.post("/predict", json={**BENIGN, **payload}))
    assert answer["threshold"] == artifact.default_threshold


def test_examples_are_real_rows_with_the_stated_class(dataset: Dataset) -> None:
    for sample_id, example, label in [
        (BENIGN_SAMPLE_ID, BENIGN, 0),
        (MALIGNANT_SAMPLE_ID, MALIGNANT, 1),
        (BORDERLINE_SAMPLE_ID, BORDERLINE, 1),
    ]:
        matches = np.flatnonzero(dataset.sample_ids == sample_id)
        assert any(
            dataset.X[i].tolist() == [example[name] for name in FEATURE_NAMES]
            and dataset.y[i] == label
            for i in matches
        ), f"sample {sample_id} is not in the data with these scores and class {label}"


# -- metrics ----------------------------------------------------------------------------------
def ten_bin_ece(y: np.ndarray, proba: np.ndarray) -> float:
    """ECE over [0, 0.1), ..., [0.9, 1.0], written out as a loop over the bins."""
    total = 0.0
    for b in range(10):
        lo, hi = b / 10, (b + 1) / 10
        inside = (proba >= lo) & ((proba < hi) if b < 9 else (proba <= hi))
        if inside.any():
            total += inside.sum() * abs(proba[inside].mean() - y[inside].mean())
    return total / len(y)


def independent_metrics(y: np.ndarray, proba: np.ndarray, threshold: float) -> dict[str, Any]:
    """scikit-learn's numbers; undefined ratios (NaN) become None, as the API promises."""
    pred = (proba > threshold).astype(int)

    def defined(value: float) -> float | None:
        return None if math.isnan(value) else float(value)

    tn, fp, fn, tp = (int(v) for v in confusion_matrix(y, pred, labels=[0, 1]).ravel())
    return {
        "threshold": threshold,
        "n_validation": len(y),
        "accuracy": float(accuracy_score(y, pred)),
        "sensitivity": defined(recall_score(y, pred, zero_division=np.nan)),
        "specificity": defined(recall_score(y, pred, pos_label=0, zero_division=np.nan)),
        "precision": defined(precision_score(y, pred, zero_division=np.nan)),
        "f1": defined(f1_score(y, pred, zero_division=np.nan)),
        "roc_auc": float(roc_auc_score(y, proba)),
        "brier_score": float(brier_score_loss(y, proba)),
        "log_loss": float(log_loss(y, proba)),
        "ece": ten_bin_ece(y, proba),
        "confusion": {"tn": tn, "fp": fp, "fn": fn, "tp": tp},
        "confusion_matrix": confusion_matrix(y, pred, labels=[0, 1]).tolist(),
    }


def assert_same_metrics(answer: dict[str, Any], expected: dict[str, Any]) -> None:
    assert set(answer) == set(expected)
    exact = ("confusion", "confusion_matrix", "n_validation", "threshold")
    for name in exact:
        assert answer[name] == expected[name], name
    for name, value in expected.items():
        if name in exact:
            continue
        if value is None:
            assert answer[name] is None, name
        else:
            assert answer[name] == pytest.approx(value, rel=1e-12, abs=1e-12), name


@pytest.mark.parametrize("threshold", [0.0, 0.1, 0.5, 0.7, 0.8, 0.9, 0.99, 1.0])
def test_metrics_equal_scikit_learn(
    client: httpx.Client, artifact: Artifact, threshold: float
) -> None:
    response = client.get("/metrics", params={"threshold": threshold})
    assert response.status_code == 200, response.text
    answer = strict_json(response)
    expected = independent_metrics(artifact.valid_y, artifact.valid_proba, threshold)
    assert answer.pop("model_version") == artifact.model_version
    assert_same_metrics(answer, expected)


def test_metrics_at_a_tie_with_a_stored_probability(
    client: httpx.Client, artifact: Artifact
) -> None:
    threshold = float(np.median(artifact.valid_proba))
    answer = strict_json(client.get("/metrics", params={"threshold": repr(threshold)}))
    answer.pop("model_version")
    assert_same_metrics(
        answer, independent_metrics(artifact.valid_y, artifact.valid_proba, threshold)
    )


def test_undefined_ratios_are_null_at_threshold_one(client: httpx.Client) -> None:
    answer = strict_json(client.get("/metrics", params={"threshold": 1}))
    assert answer["confusion"]["tp"] == answer["confusion"]["fp"] == 0
    assert answer["precision"] is None


def test_metrics_without_threshold_equal_what_training_reported(
    client: httpx.Client, artifact: Artifact
) -> None:
    answer = strict_json(client.get("/metrics"))
    stored = artifact.valid_metrics[f"{artifact.default_threshold:g}"]
    assert answer["threshold"] == artifact.default_threshold
    assert answer["confusion"] == stored["confusion"]
    for name in ("accuracy", "sensitivity", "specificity", "precision", "f1", "roc_auc"):
        assert answer[name] == stored[name], name
    assert answer["n_validation"] == stored["n"] == len(artifact.valid_y)


# -- model card -------------------------------------------------------------------------------
def test_model_card(client: httpx.Client, artifact: Artifact, dataset: Dataset) -> None:
    response = client.get("/model")
    assert response.status_code == 200
    card = strict_json(response)
    assert card["model_version"] == artifact.model_version
    assert card["content_sha256"] == artifact.content_sha256
    assert card["architecture"]["layers"] == [len(FEATURE_NAMES), artifact.training.hidden, 1]
    assert card["architecture"]["hidden_activation"] == "relu"
    assert card["architecture"]["output_activation"] == "sigmoid"
    assert card["training"] == {
        **asdict(artifact.training),
        "n_train": artifact.n_train,
        "n_validation": len(artifact.valid_y),
    }
    assert card["data"]["sha256"] == artifact.data_sha256 == dataset.sha256
    assert "Mangasarian" in card["data"]["citation"]
    assert [(f["name"], f["min"], f["max"]) for f in card["features"]] == [
        (name, SCORE_MIN, SCORE_MAX) for name in FEATURE_NAMES
    ]
    assert card["default_threshold"] == artifact.default_threshold
    assert card["headline_metrics"] == strict_json(client.get("/metrics"))
    stored_thresholds = sorted(float(t) for t in artifact.valid_metrics)
    assert [row["threshold"] for row in card["accuracy_by_threshold"]] == stored_thresholds
    for row in card["accuracy_by_threshold"]:
        key = f"{row['threshold']:g}"
        assert row["train_accuracy"] == artifact.train_metrics[key]["accuracy"]
        assert row["validation_accuracy"] == artifact.valid_metrics[key]["accuracy"]
    # every number the reporting section states is what /metrics computes
    reporting = card["reporting"]
    served = strict_json(
        client.get("/metrics", params={"threshold": str(card["default_threshold"])})
    )
    numbers = [
        float(n) for n in re.findall(r"\d+(?:\.\d+)?(?:e-?\d+)?", reporting["threshold_rationale"])
    ]
    assert numbers == [
        card["default_threshold"],
        served["sensitivity"],
        served["specificity"],
        0.5,
        0.9,
    ]
    assert reporting["population"].startswith(f"{artifact.n_train + len(artifact.valid_y)} ")
    assert len(dataset.X) == artifact.n_train + len(artifact.valid_y)
    assert "no demographic field" in reporting["subgroups"]
    assert reporting["record"] is True
    use = card["intended_use"].lower()
    assert "not a medical device" in use
    assert "1992" in use
    assert "research" in use
    assert "teaching" in use


# -- docs -------------------------------------------------------------------------------------
class _AssetLinks(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.urls += [value for name, value in attrs if name in ("src", "href") and value]


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_use_only_local_assets(client: httpx.Client, page: str) -> None:
    response = client.get(page)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    html = response.text
    assert not re.search(r"(?i)(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", html), "external URL in page"
    links = _AssetLinks()
    links.feed(html)
    assert links.urls, "the page references no assets"
    for url in links.urls:
        assert url.startswith("/"), url
        assert not url.startswith("//"), url
        asset = client.get(url)
        assert asset.status_code == 200, url
        assert len(asset.content) > 0


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_keep_images_on_this_server(client: httpx.Client, page: str) -> None:
    assert client.get(page).headers["content-security-policy"] == "img-src 'self' data:"


def test_redoc_bundle_loads_nothing_from_redocs_cdn(client: httpx.Client) -> None:
    links = _AssetLinks()
    links.feed(client.get("/redoc").text)
    (script,) = [url for url in links.urls if url.endswith(".js")]
    bundle = client.get(script)
    assert bundle.status_code == 200
    assert b"Redoc" in bundle.content
    assert b"cdn.redoc.ly" not in bundle.content


def test_swagger_ui_has_no_online_validator(client: httpx.Client) -> None:
    assert '"validatorUrl": null' in client.get("/docs").text


def test_openapi_schema(client: httpx.Client) -> None:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    spec = strict_json(response)
    assert "://" not in response.text, "the schema references an external URL"
    paths = spec["paths"]
    assert {"/predict", "/predict/batch", "/explain", "/metrics", "/health", "/model"} <= set(paths)
    prediction = spec["components"]["schemas"]["Prediction"]
    assert "class" in prediction["properties"]
    assert "class" in prediction["required"]
    assert "predicted_class" not in json.dumps(spec)
    scores = spec["components"]["schemas"]["Scores"]
    assert scores["additionalProperties"] is False
    assert list(scores["properties"]) == list(FEATURE_NAMES)
    assert "securitySchemes" not in spec.get("components", {})  # no API key configured


@pytest.mark.parametrize(
    ("path", "expected"),
    [(path, {"benign", "malignant"}) for path in ("/predict", "/predict/batch", "/explain")],
)
def test_request_examples_work_and_show_both_classes(
    client: httpx.Client, path: str, expected: set[str]
) -> None:
    spec = strict_json(client.get("/openapi.json"))
    examples = spec["paths"][path]["post"]["requestBody"]["content"]["application/json"]["examples"]
    assert len(examples) >= 2
    classes: set[str] = set()
    for example in examples.values():
        response = client.post(path, json=example["value"])
        assert response.status_code == 200, response.text
        answer = strict_json(response)
        for prediction in answer.get("predictions", [answer]):
            classes.add(prediction["class"])
    assert classes == expected


# -- API key ----------------------------------------------------------------------------------
@pytest.mark.parametrize(("method", "path", "payload"), PROTECTED)
@pytest.mark.parametrize(
    "key",
    [None, b"wrong", b"", API_KEY_BYTES + b"x", API_KEY_BYTES[:-1], API_KEY.encode("latin-1")],
    ids=["missing", "wrong", "empty", "longer", "shorter", "latin-1 encoded"],
)
def test_protected_routes_refuse_a_missing_or_wrong_key(
    keyed_client: httpx.Client, method: str, path: str, payload: Any, key: bytes | None
) -> None:
    headers = {} if key is None else {b"X-API-Key": key}
    response = keyed_client.request(method, path, json=payload, headers=headers)
    assert response.status_code == 401, response.text
    assert "X-API-Key" in strict_json(response)["message"]
    assert "WWW-Authenticate" in response.headers


@pytest.mark.parametrize(("method", "path", "payload"), PROTECTED)
def test_protected_routes_accept_the_key(
    keyed_client: httpx.Client, method: str, path: str, payload: Any
) -> None:
    response = keyed_client.request(
        method, path, json=payload, headers={b"X-API-Key": API_KEY_BYTES}
    )
    assert response.status_code == 200, response.text


def test_key_is_checked_before_the_body(keyed_client: httpx.Client) -> None:
    response = keyed_client.post("/predict", json={"bare_nucleoli": 1})
    assert response.status_code == 401


@pytest.mark.parametrize("path", OPEN)
def test_open_routes_need_no_key(keyed_client: httpx.Client, path: str) -> None:
    assert keyed_client.get(path).status_code == 200


def test_keyed_schema_declares_the_key(keyed_client: httpx.Client) -> None:
    spec = strict_json(keyed_client.get("/openapi.json"))
    scheme = spec["components"]["securitySchemes"]["ApiKey"]
    assert scheme == {**scheme, "type": "apiKey", "in": "header", "name": "X-API-Key"}
    for method, path, _ in PROTECTED:
        operation = spec["paths"][path][method.lower()]
        assert operation["security"] == [{"ApiKey": []}]
        assert "401" in operation["responses"]
    for path in ("/health", "/model"):
        assert "security" not in spec["paths"][path]["get"]


def test_unkeyed_server_ignores_the_header(client: httpx.Client) -> None:
    response = client.post("/predict", json=BENIGN, headers={"X-API-Key": "anything"})
    assert response.status_code == 200


# -- logs -------------------------------------------------------------------------------------
def test_one_access_log_line_per_request_without_bodies(
    server: LiveServer, client: httpx.Client
) -> None:
    marker = "marker_field_that_must_not_be_logged"
    before = server.stderr().count("GET /model ")
    for _ in range(3):
        client.get("/model")
    client.post("/predict", json={**BENIGN, marker: 1})
    client.post("/predict", json=BENIGN)
    log = server.stderr()
    assert log.count("GET /model ") - before == 3
    assert re.search(r"app\.access: POST /predict 422 \d+\.\d\dms", log)
    assert re.search(r"app\.access: POST /predict 200 \d+\.\d\dms", log)
    assert marker not in log
    assert 'HTTP/1.1" 200' not in log, "uvicorn's own access log is on too"


# -- unexpected errors ----------------------------------------------------------------------
def test_an_unexpected_error_is_a_json_500_that_reveals_nothing() -> None:
    app = create_app(Settings(log_level="warning", api_key=None))

    async def broken() -> None:
        raise RuntimeError("internal detail that must not leak")

    app.add_api_route("/broken", broken)

    async def go() -> httpx.Response:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                return await client.get("/broken")

    response = asyncio.run(go())
    assert response.status_code == 500
    assert strict_json(response) == {
        "message": "server: Internal server error",
        "detail": [{"loc": ["server"], "msg": "Internal server error", "type": "internal_error"}],
    }
    assert "must not leak" not in response.text
