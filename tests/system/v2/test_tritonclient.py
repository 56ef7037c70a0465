"""The V2 routes through `tritonclient[http]`, NVIDIA's client, against a live server: health,
metadata, and infer with JSON and binary tensors of several datatypes, for every row of the data
set, with the answers compared to /predict and /predict/batch."""

from collections.abc import Iterator
from typing import Any, Final

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from numpy.typing import NDArray
from tritonclient.utils import InferenceServerException

from model.data import Dataset
from model.features import FEATURE_NAMES
from tests.live_server import LiveServer, start_server
from tests.system.v2.v2_protocol import validate

MODEL: Final = "malignancy-predictor"
API_KEY: Final = "v2-secret"


def _client(server: LiveServer) -> triton.InferenceServerClient:
    return triton.InferenceServerClient(server.url.removeprefix("http://"), network_timeout=30.0)


@pytest.fixture(scope="module")
def triton_client(server: LiveServer) -> Iterator[triton.InferenceServerClient]:
    client = _client(server)
    yield client
    client.close()


@pytest.fixture(scope="module")
def native(client: httpx.Client, dataset: Dataset) -> dict[str, Any]:
    """/predict for each of the 683 rows, and /predict/batch for all of them."""
    rows = [dict(zip(FEATURE_NAMES, row, strict=True)) for row in dataset.X.tolist()]
    single = [client.post("/predict", json=row).raise_for_status().json() for row in rows]
    batch = client.post("/predict/batch", json={"instances": rows}).raise_for_status().json()
    return {
        "probability": np.array([a["probability"] for a in single]),
        "class": np.array([a["class"] for a in single]),
        "batch_probability": np.array([p["probability"] for p in batch["predictions"]]),
        "version": single[0]["model_version"],
    }


def test_health_and_readiness(triton_client: triton.InferenceServerClient, native: Any) -> None:
    assert triton_client.is_server_live()
    assert triton_client.is_server_ready()
    assert triton_client.is_model_ready(MODEL)
    assert triton_client.is_model_ready(MODEL, model_version=native["version"])
    assert not triton_client.is_model_ready("another-model")
    assert not triton_client.is_model_ready(MODEL, model_version="2")


def test_server_metadata(triton_client: triton.InferenceServerClient) -> None:
    metadata = triton_client.get_server_metadata()
    validate("server_metadata", metadata)
    assert metadata["name"] == MODEL
    assert "binary_tensor_data" in metadata["extensions"]


@pytest.mark.parametrize("versioned", [False, True])
def test_model_metadata(
    triton_client: triton.InferenceServerClient, native: Any, versioned: bool
) -> None:
    version = native["version"] if versioned else ""
    metadata = triton_client.get_model_metadata(MODEL, model_version=version)
    validate("model_metadata", metadata)
    assert metadata["name"] == MODEL
    assert metadata["versions"] == [native["version"]]
    assert metadata["inputs"] == [{"name": "scores", "datatype": "INT64", "shape": [-1, 9]}]
    assert metadata["outputs"] == [
        {"name": "probability", "datatype": "FP64", "shape": [-1]},
        {"name": "class", "datatype": "BYTES", "shape": [-1]},
        {"name": "decision", "datatype": "BYTES", "shape": [-1]},
    ]


def test_unknown_model_metadata_is_an_error(triton_client: triton.InferenceServerClient) -> None:
    with pytest.raises(InferenceServerException) as raised:
        triton_client.get_model_metadata("another-model")
    assert raised.value.status() == "404"
    assert MODEL in raised.value.message()


def _names(classes: NDArray[Any]) -> list[str]:
    """tritonclient gives a BYTES output as bytes when it came binary, as str from JSON."""
    return [c.decode() if isinstance(c, bytes) else c for c in classes.tolist()]


def _scores(X: NDArray[Any], datatype: str, binary: bool) -> triton.InferInput:
    tensor = triton.InferInput("scores", list(X.shape), datatype)
    tensor.set_data_from_numpy(X, binary_data=binary)
    return tensor


def _check_answers(result: triton.InferResult, native: dict[str, Any]) -> None:
    validate("inference_response", result.get_response())
    probability = result.as_numpy("probability")
    classes = result.as_numpy("class")
    assert probability.dtype == np.float64
    # /predict/batch scores the same matrix through the same call: equal to the last bit.
    np.testing.assert_array_equal(probability, native["batch_probability"])
    # /predict scores one row in plain floats (model/scoring/single_row.py): last bits may differ.
    np.testing.assert_allclose(probability, native["probability"], rtol=0, atol=1e-15)
    assert _names(classes) == native["class"].tolist()


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
@pytest.mark.parametrize(
    ("datatype", "numpy_type"),
    [("INT32", np.int32), ("INT64", np.int64), ("FP64", np.float64), ("UINT8", np.uint8)],
)
def test_infer_every_row_equals_predict(
    triton_client: triton.InferenceServerClient,
    dataset: Dataset,
    native: dict[str, Any],
    datatype: str,
    numpy_type: type[np.number],
    binary: bool,
) -> None:
    X = dataset.X.astype(numpy_type)
    result = triton_client.infer(MODEL, [_scores(X, datatype, binary)], request_id="row-check")
    assert result.get_response()["id"] == "row-check"
    assert result.get_response()["model_version"] == native["version"]
    _check_answers(result, native)


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_infer_nine_feature_tensors(
    triton_client: triton.InferenceServerClient,
    dataset: Dataset,
    native: dict[str, Any],
    binary: bool,
) -> None:
    columns = []
    for j, name in enumerate(FEATURE_NAMES):
        column = triton.InferInput(name, [len(dataset.X)], "INT64")
        column.set_data_from_numpy(np.ascontiguousarray(dataset.X[:, j]), binary_data=binary)
        columns.append(column)
    _check_answers(triton_client.infer(MODEL, columns[::-1]), native)


@pytest.mark.parametrize(
    ("requested", "binary"),
    [
        (["probability"], True),
        (["class"], False),
        (["class", "probability"], True),
        (["class", "probability"], False),
    ],
)
def test_requested_outputs(
    triton_client: triton.InferenceServerClient,
    dataset: Dataset,
    native: dict[str, Any],
    requested: list[str],
    binary: bool,
) -> None:
    outputs = [triton.InferRequestedOutput(name, binary_data=binary) for name in requested]
    result = triton_client.infer(MODEL, [_scores(dataset.X, "INT64", True)], outputs=outputs)
    answer = result.get_response()
    validate("inference_response", answer)
    assert [o["name"] for o in answer["outputs"]] == requested
    assert all(("data" in o) is not binary for o in answer["outputs"])
    if "class" in requested:
        assert _names(result.as_numpy("class")) == native["class"].tolist()
    if "probability" in requested:
        np.testing.assert_array_equal(result.as_numpy("probability"), native["batch_probability"])


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_decision_output_is_the_native_decision(
    triton_client: triton.InferenceServerClient,
    client: httpx.Client,
    dataset: Dataset,
    binary: bool,
) -> None:
    """Asked for by name, `decision` is /predict/batch's decision for every row: the data set's
    and random score vectors, many of them atypical (refer)."""
    random_rows = np.random.default_rng(7).integers(1, 11, size=(300, len(FEATURE_NAMES)))
    X = np.vstack([dataset.X, random_rows]).astype(np.int64)
    instances = [dict(zip(FEATURE_NAMES, row, strict=True)) for row in X.tolist()]
    batch = client.post("/predict/batch", json={"instances": instances}).raise_for_status().json()
    expected = [p["decision"] for p in batch["predictions"]]
    assert {"benign", "malignant", "refer"} <= set(expected)  # every decision is exercised
    requested = [triton.InferRequestedOutput("decision", binary_data=binary)]
    result = triton_client.infer(MODEL, [_scores(X, "INT64", binary)], outputs=requested)
    validate("inference_response", result.get_response())
    assert _names(result.as_numpy("decision")) == expected


def test_threshold_parameter(triton_client: triton.InferenceServerClient, dataset: Dataset) -> None:
    X = dataset.X[:50]
    default = triton_client.infer(MODEL, [_scores(X, "INT64", True)])
    strict = triton_client.infer(MODEL, [_scores(X, "INT64", True)], parameters={"threshold": 0.99})
    p = default.as_numpy("probability")
    assert default.get_response()["parameters"]["threshold"] == 0.2
    assert strict.get_response()["parameters"]["threshold"] == 0.99
    assert [c == "malignant" for c in _names(strict.as_numpy("class"))] == (p > 0.99).tolist()
    assert [c == "malignant" for c in _names(default.as_numpy("class"))] == (p > 0.2).tolist()


def test_versioned_infer(
    triton_client: triton.InferenceServerClient, dataset: Dataset, native: dict[str, Any]
) -> None:
    result = triton_client.infer(
        MODEL, [_scores(dataset.X.astype(np.int32), "INT32", True)], model_version=native["version"]
    )
    _check_answers(result, native)
    with pytest.raises(InferenceServerException) as raised:
        triton_client.infer(
            MODEL, [_scores(dataset.X.astype(np.int32), "INT32", True)], model_version="7"
        )
    assert raised.value.status() == "404"


def test_bad_value_is_a_400_naming_the_element(triton_client: triton.InferenceServerClient) -> None:
    X = np.ones((3, 9), dtype=np.int64)
    X[2, 8] = 11
    with pytest.raises(InferenceServerException) as raised:
        triton_client.infer(MODEL, [_scores(X, "INT64", True)])
    assert raised.value.status() == "400"
    assert "element 26 (row 2, mitoses)" in raised.value.message()


@pytest.fixture(scope="module")
def keyed_server() -> Iterator[LiveServer]:
    with start_server({"API_KEY": API_KEY}) as live:
        yield live


def test_api_key_as_a_header(keyed_server: LiveServer, dataset: Dataset) -> None:
    client = _client(keyed_server)
    try:
        # Health and metadata stay open; infer needs the key, exactly as /predict does.
        assert client.is_server_ready()
        assert client.get_model_metadata(MODEL)["name"] == MODEL
        inputs = [_scores(dataset.X[:5], "INT64", True)]
        for headers in (None, {"X-API-Key": "wrong"}):
            with pytest.raises(InferenceServerException) as raised:
                client.infer(MODEL, inputs, headers=headers)
            assert raised.value.status() == "401"
            assert "X-API-Key" in raised.value.message()
        result = client.infer(MODEL, inputs, headers={"X-API-Key": API_KEY})
        assert result.as_numpy("probability").shape == (5,)
    finally:
        client.close()
