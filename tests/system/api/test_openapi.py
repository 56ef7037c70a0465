"""The OpenAPI document as a product: every response has a description and real examples, each
example is what a live server answers to the request it describes, and operation ids are plain.

Two live servers: one with the defaults and the committed artifact, one with an API key, smaller
limits and another artifact (a quick training run), so examples are seen to follow the served
model and the settings rather than today's files.
"""

import keyword
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Final

import httpx
import pytest

from app.api.feedback import EXAMPLE_REQUEST_ID, UNKNOWN_REQUEST_ID
from app.core.config import Settings
from app.main import create_app
from app.openapi.examples import BENIGN, MALIGNANT
from app.v2.schemas import BAD_INFER_EXAMPLES
from model.artifact import DEFAULT_ARTIFACT_PATH, TrainingSettings, load_artifact
from model.data import Dataset
from model.training import train
from tests.live_server import LiveServer, start_server

API_KEY: Final = "openapi-test-key"
KEYED_LIMITS: Final = {"MAX_BODY_BYTES": "2048", "MAX_BATCH_SIZE": "3", "V2_MAX_BODY_BYTES": "4096"}
QUICK: Final = TrainingSettings(split="stratified", lr=0.05, iterations=300, hidden=15, seed=1)
OPERATION_IDS: Final = {
    ("post", "/predict"): "predict",
    ("post", "/predict/batch"): "predict_batch",
    ("post", "/explain"): "explain",
    ("get", "/metrics"): "get_metrics",
    ("get", "/health"): "get_health",
    ("get", "/model"): "get_model_card",
    ("get", "/health/live"): "get_liveness",
    ("get", "/health/ready"): "get_readiness",
    ("post", "/feedback"): "post_feedback",
    ("post", "/feedback/batch"): "post_feedback_batch",
    ("get", "/monitoring"): "get_monitoring",
}
FASTAPI_DEFAULT_DESCRIPTIONS: Final = {"", "Successful Response", "Validation Error"}

Spec = dict[str, Any]
Request = tuple[str, str, dict[str, Any]]  # method, path, httpx keyword arguments
# (operation id, status, example name) -> the request that example answers, built from the
# operation's schema and the server's settings
RequestFor = Callable[[Spec, dict[str, int]], Request]


def _request_example(spec: Spec, path: str, name: str) -> Any:
    body = spec["paths"][path]["post"]["requestBody"]["content"]["application/json"]
    return body["examples"][name]["value"]


def _post_example(path: str, name: str) -> RequestFor:
    return lambda spec, limits: ("POST", path, {"json": _request_example(spec, path, name)})


def _post(path: str, **kwargs: Any) -> RequestFor:
    return lambda spec, limits: ("POST", path, kwargs)


def _get(path: str, **kwargs: Any) -> RequestFor:
    return lambda spec, limits: ("GET", path, kwargs)


def _oversize(path: str) -> RequestFor:
    def request(spec: Spec, limits: dict[str, int]) -> Request:
        body = b" " * (limits["max_body_bytes"] + 1)
        return "POST", path, {"content": body, "headers": {"Content-Type": "application/json"}}

    return request


def _too_many(spec: Spec, limits: dict[str, int]) -> Request:
    return (
        "POST",
        "/predict/batch",
        {"json": {"instances": [BENIGN] * (limits["max_batch_size"] + 1)}},
    )


TEXT_PLAIN: Final = {"content": b"5,1,1", "headers": {"Content-Type": "text/plain"}}
BAD_CASE: Final = {"X-Case-Reference": "has a space"}
NOT_JSON: Final = {
    "content": b'{"clump_thickness": 5,',
    "headers": {"Content-Type": "application/json"},
}
V2_MODEL: Final = "/v2/models/malignancy-predictor"
V2_INFER: Final = V2_MODEL + "/infer"
V2_VERSION: Final = V2_MODEL + "/versions/{model_version}"


def _version(spec: Spec) -> str:
    """The served model's version, as the model metadata example shows it."""
    examples = spec["paths"][V2_MODEL.replace("malignancy-predictor", "{model_name}")]["get"]
    value = examples["responses"]["200"]["content"]["application/json"]["examples"]
    return str(value["served_model"]["value"]["versions"][0])


def _v2(path: str, method: str = "GET", **kwargs: Any) -> RequestFor:
    """A request to `path`, whose {model_version} is the served version."""
    return lambda spec, limits: (method, path.format(model_version=_version(spec)), kwargs)


def _v2_infer_example(path: str, name: str) -> RequestFor:
    templated = "/v2/models/{model_name}" + path.removeprefix(V2_MODEL)

    def request(spec: Spec, limits: dict[str, int]) -> Request:
        body = _request_example(spec, templated, name)
        return "POST", path.format(model_version=_version(spec)), {"json": body}

    return request


def _v2_oversize(path: str) -> RequestFor:
    def request(spec: Spec, limits: dict[str, int]) -> Request:
        body = b" " * (limits["v2_max_body_bytes"] + 1)
        return "POST", path.format(model_version=_version(spec)), {"content": body}

    return request


def _v2_infer_requests(operation: str, path: str) -> dict[tuple[str, int, str], RequestFor]:
    valid = {"inputs": [{"name": "scores", "shape": [1, 9], "datatype": "INT64", "data": [1] * 9}]}
    wrong = path.replace("malignancy-predictor", "another-model") if operation == "infer" else None
    return {
        **{
            (operation, 200, name): _v2_infer_example(path, name)
            for name in ("scores_tensor", "feature_tensors")
        },
        **{
            (operation, 400, name): _v2(path, "POST", json=example["value"])
            for name, example in BAD_INFER_EXAMPLES.items()
        },
        (operation, 404, "unknown_model" if wrong else "unknown_version"): _v2(
            wrong or V2_MODEL + "/versions/0/infer", "POST", json=valid
        ),
        (operation, 413, "too_large"): _v2_oversize(path),
        (operation, 415, "multipart"): _v2(
            path, "POST", content=b"{}", headers={"Content-Type": "multipart/form-data; b=x"}
        ),
    }


V2_REQUESTS: Final[dict[tuple[str, int, str], RequestFor]] = {
    ("server_metadata", 200, "server"): _get("/v2"),
    ("server_live", 200, "live"): _get("/v2/health/live"),
    ("server_ready", 200, "ready"): _get("/v2/health/ready"),
    ("model_metadata", 200, "served_model"): _get(V2_MODEL),
    ("model_metadata", 404, "unknown_model"): _get("/v2/models/another-model"),
    ("model_version_metadata", 200, "served_model"): _v2(V2_VERSION),
    ("model_version_metadata", 404, "unknown_version"): _get(V2_MODEL + "/versions/0"),
    ("model_ready", 200, "ready"): _get(V2_MODEL + "/ready"),
    ("model_ready", 404, "unknown_model"): _get("/v2/models/another-model/ready"),
    ("model_version_ready", 200, "ready"): _v2(V2_VERSION + "/ready"),
    ("model_version_ready", 404, "unknown_version"): _get(V2_MODEL + "/versions/0/ready"),
    **_v2_infer_requests("infer", V2_INFER),
    **_v2_infer_requests("infer_version", V2_VERSION + "/infer"),
}
SEEN: Final = {"request_id": EXAMPLE_REQUEST_ID, "outcome": "benign"}  # stored by `servers`
UNSEEN: Final = {"request_id": UNKNOWN_REQUEST_ID, "outcome": "benign"}
FEEDBACK_REQUESTS: Final[dict[tuple[str, int, str], RequestFor]] = {
    ("post_feedback", 200, "sent_again"): _post("/feedback", json=SEEN),
    ("post_feedback", 404, "unknown_prediction"): _post("/feedback", json=UNSEEN),
    ("post_feedback", 409, "conflict"): _post("/feedback", json={**SEEN, "outcome": "malignant"}),
    ("post_feedback", 422, "unknown_outcome"): _post(
        "/feedback", json={**SEEN, "outcome": "cancer"}
    ),
    ("post_feedback", 413, "too_large"): _oversize("/feedback"),
    ("post_feedback", 415, "text_plain"): _post("/feedback", **TEXT_PLAIN),
    ("post_feedback_batch", 200, "conflict_and_unknown"): _post(
        "/feedback/batch", json={"outcomes": [{**SEEN, "outcome": "malignant"}, UNSEEN]}
    ),
    ("post_feedback_batch", 422, "unknown_outcome"): _post(
        "/feedback/batch", json={"outcomes": [{**SEEN, "outcome": "cancer"}]}
    ),
    ("post_feedback_batch", 413, "too_large"): _oversize("/feedback/batch"),
    ("post_feedback_batch", 415, "text_plain"): _post("/feedback/batch", **TEXT_PLAIN),
}
REQUESTS: Final[dict[tuple[str, int, str], RequestFor]] = {
    **V2_REQUESTS,
    **{
        ("predict", 200, name): _post_example("/predict", name)
        for name in (
            "benign",
            "malignant",
            "malignant_with_threshold",
            "borderline",
            "borderline_at_0.99",
        )
    },
    ("predict", 422, "score_out_of_range"): _post("/predict", json={**MALIGNANT, "mitoses": 11}),
    ("predict", 422, "not_json"): _post("/predict", **NOT_JSON),
    ("predict", 413, "too_large"): _oversize("/predict"),
    ("predict", 415, "text_plain"): _post("/predict", **TEXT_PLAIN),
    ("predict", 400, "invalid_case_reference"): _post("/predict", json=BENIGN, headers=BAD_CASE),
    **{
        ("predict_batch", 200, name): _post_example("/predict/batch", name)
        for name in ("benign_and_malignant", "with_threshold", "with_confidence")
    },
    ("predict_batch", 422, "score_out_of_range"): _post(
        "/predict/batch", json={"instances": [BENIGN, {**MALIGNANT, "mitoses": 0}]}
    ),
    ("predict_batch", 422, "too_many_instances"): _too_many,
    ("predict_batch", 413, "too_large"): _oversize("/predict/batch"),
    ("predict_batch", 415, "text_plain"): _post("/predict/batch", **TEXT_PLAIN),
    ("predict_batch", 400, "invalid_case_reference"): _post(
        "/predict/batch", json={"instances": [BENIGN]}, headers=BAD_CASE
    ),
    **{("explain", 200, name): _post_example("/explain", name) for name in ("malignant", "benign")},
    ("explain", 422, "score_out_of_range"): _post("/explain", json={**BENIGN, "bare_nuclei": 0}),
    ("explain", 422, "not_json"): _post("/explain", **NOT_JSON),
    ("explain", 413, "too_large"): _oversize("/explain"),
    ("explain", 415, "text_plain"): _post("/explain", **TEXT_PLAIN),
    ("explain", 400, "invalid_case_reference"): _post("/explain", json=BENIGN, headers=BAD_CASE),
    ("get_metrics", 200, "default_threshold"): _get("/metrics"),
    ("get_metrics", 200, "threshold_0.5"): _get("/metrics", params={"threshold": "0.5"}),
    ("get_metrics", 422, "threshold_above_one"): _get("/metrics", params={"threshold": "2"}),
    ("get_health", 200, "serving"): _get("/health"),
    ("get_model_card", 200, "served_model"): _get("/model"),
    ("get_liveness", 200, "live"): _get("/health/live"),
    ("get_readiness", 200, "ready"): _get("/health/ready"),
    **FEEDBACK_REQUESTS,
}
# Examples no single request can produce; each is compared with a real answer elsewhere.
_FULL_DISK: Final = "tests/system/record/test_on_the_request_path.py (a full tmpfs)"
_RECORD_OFF: Final = "tests/system/record/test_record_off.py (RECORD=false)"
_DRAIN: Final = "tests/system/api/test_probes.py (a real SIGTERM drain)"
CHECKED_ELSEWHERE: Final = {
    ("get_readiness", 503, "draining"): _DRAIN,
    ("get_monitoring", 200, "no_outcomes_yet"): "tests/system/monitoring/test_live.py (its shape)",
    **{
        (operation, 503, "record_unavailable"): _FULL_DISK
        for operation in (
            "predict",
            "predict_batch",
            "explain",
            "post_feedback",
            "post_feedback_batch",
            "get_monitoring",
            "server_ready",
            "model_ready",
            "model_version_ready",
        )
    },
    **{
        (operation, 503, "record_off"): _RECORD_OFF
        for operation in ("post_feedback", "post_feedback_batch", "get_monitoring")
    },
    **{
        (operation, 503, "draining"): _DRAIN
        for operation in ("server_ready", "model_ready", "model_version_ready")
    },
}
# With a key configured: the protected operations' 401 examples, each sent as the operation's
# first success example, with these headers instead of the right key.
KEY_ERRORS: Final = {"missing_key": {}, "wrong_key": {"X-API-Key": "wrong"}}
SUCCESS_EXAMPLE: Final = {
    "predict": "benign",
    "predict_batch": "benign_and_malignant",
    "explain": "benign",
    "get_metrics": "default_threshold",
    "infer": "scores_tensor",
    "infer_version": "scores_tensor",
    "post_feedback": "sent_again",
    "post_feedback_batch": "conflict_and_unknown",
}
KEY_REQUESTS: Final = {
    **{
        (operation_id, 401, name): REQUESTS[(operation_id, 200, success)]
        for operation_id, success in SUCCESS_EXAMPLE.items()
        for name in KEY_ERRORS
    },
    **{("get_monitoring", 401, name): _get("/monitoring") for name in KEY_ERRORS},
}
GUARDED: Final = {*SUCCESS_EXAMPLE, "get_monitoring"}


@pytest.fixture(scope="module")
def other_artifact(tmp_path_factory: pytest.TempPathFactory, dataset: Dataset) -> Path:
    path = tmp_path_factory.mktemp("artifact") / "weights.json"
    train(dataset, QUICK).artifact.save(path)
    return path


@pytest.fixture(scope="module")
def servers(other_artifact: Path) -> Iterator[dict[str, LiveServer]]:
    keyed_env = {"API_KEY": API_KEY, "MODEL_PATH": str(other_artifact), **KEYED_LIMITS}
    with start_server() as plain, start_server(keyed_env) as keyed:
        for server, headers in ((plain, {}), (keyed, {"X-API-Key": API_KEY})):
            seed_the_example_outcome(server, headers)
        yield {"plain": plain, "keyed": keyed}


def seed_the_example_outcome(server: LiveServer, headers: dict[str, str]) -> None:
    """A recorded prediction under the feedback examples' request id, confirmed benign."""
    with httpx.Client(base_url=server.url, headers=headers, timeout=10) as client:
        ids = {"X-Request-ID": EXAMPLE_REQUEST_ID}
        assert client.post("/predict", json=BENIGN, headers=ids).status_code == 200
        assert client.post("/feedback", json=SEEN).status_code == 200


@pytest.fixture(scope="module")
def specs(servers: dict[str, LiveServer]) -> dict[str, Spec]:
    return {name: httpx.get(f"{s.url}/openapi.json").json() for name, s in servers.items()}


def operations(spec: Spec) -> Iterator[tuple[str, str, Spec]]:
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            yield method, path, operation


def documented_examples(spec: Spec) -> Iterator[tuple[str, int, str, Any]]:
    """(operation id, status, example name, example value) for every response example."""
    for _, _, operation in operations(spec):
        for status, response in operation["responses"].items():
            for media in response.get("content", {}).values():
                for name, example in media.get("examples", {}).items():
                    yield operation["operationId"], int(status), name, example["value"]


def limits_of(server: str) -> dict[str, int]:
    defaults = Settings.model_fields
    env = KEYED_LIMITS if server == "keyed" else {}
    return {
        name: int(env.get(name.upper(), defaults[name].default))
        for name in ("max_body_bytes", "max_batch_size", "v2_max_body_bytes")
    }


@pytest.mark.parametrize("server", ["plain", "keyed"])
def test_every_response_has_a_description_and_examples(specs: dict[str, Spec], server: str) -> None:
    for method, path, operation in operations(specs[server]):
        for status, response in operation["responses"].items():
            where = f"{method.upper()} {path} {status}"
            assert response["description"] not in FASTAPI_DEFAULT_DESCRIPTIONS, where
            examples = response["content"]["application/json"].get("examples", {})
            assert examples, f"{where} has no example"
            for name, example in examples.items():
                assert example["summary"], f"{where} example {name} has no summary"


@pytest.mark.parametrize("server", ["plain", "keyed"])
def test_every_example_is_what_the_server_answers(
    servers: dict[str, LiveServer], specs: dict[str, Spec], server: str
) -> None:
    spec, live = specs[server], servers[server]
    table = {**REQUESTS, **(KEY_REQUESTS if server == "keyed" else {})}
    key_header = {"X-API-Key": API_KEY} if server == "keyed" else {}
    checked = set()
    with httpx.Client(base_url=live.url, timeout=10) as client:
        for operation_id, status, name, value in documented_examples(spec):
            key = (operation_id, status, name)
            if key in CHECKED_ELSEWHERE:
                continue
            assert key in table, f"no request in this test's table for the example {key}"
            method, path, kwargs = table[key](spec, limits_of(server))
            headers = KEY_ERRORS[name] if status == 401 else key_header
            kwargs = {**kwargs, "headers": {**headers, **kwargs.get("headers", {})}}
            response = client.request(method, path, **kwargs)
            assert response.status_code == status, (key, response.text)
            assert response.json() == value, f"the example {key} is not the server's answer"
            checked.add(key)
    assert checked == set(table), "examples this test expects are missing from the document"


def test_examples_follow_the_served_artifact(specs: dict[str, Spec], other_artifact: Path) -> None:
    served = {
        server: {
            # V2 metadata lists the versions; V2 health answers name none
            value["model_version"] if "model_version" in value else value["versions"][0]
            for _, status, _, value in documented_examples(spec)
            if status == 200 and ("model_version" in value or "versions" in value)
        }
        for server, spec in specs.items()
    }
    assert served["plain"] == {load_artifact(DEFAULT_ARTIFACT_PATH).model_version}
    assert served["keyed"] == {load_artifact(other_artifact).model_version}


def test_key_errors_are_documented_only_with_a_key(specs: dict[str, Spec]) -> None:
    for server, spec in specs.items():
        with_401 = {op["operationId"] for _, _, op in operations(spec) if "401" in op["responses"]}
        assert with_401 == (GUARDED if server == "keyed" else set()), server


@pytest.mark.parametrize("server", ["plain", "keyed"])
def test_operation_ids_are_plain_names(specs: dict[str, Spec], server: str) -> None:
    ids = {(method, path): op["operationId"] for method, path, op in operations(specs[server])}
    assert {k: ids.get(k) for k in OPERATION_IDS} == OPERATION_IDS
    assert len(set(ids.values())) == len(ids), f"duplicate operation ids: {ids}"
    for operation_id in ids.values():
        assert operation_id.isidentifier(), operation_id
        assert not keyword.iskeyword(operation_id), operation_id


def test_schema_before_startup_is_the_one_served(specs: dict[str, Spec]) -> None:
    """A script can export the document without starting a server: it is the same document."""
    app = create_app(Settings(model_path=DEFAULT_ARTIFACT_PATH))
    assert app.openapi() == specs["plain"]
