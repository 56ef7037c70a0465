"""The one-step route (app/api/bodies.py): a valid JSON body skips FastAPI's handler, and every
answer, valid or not, is byte for byte the one FastAPI's own handler gives.

The reference is the same service built with plain `APIRoute`s (FastAPI's handler, `json.loads`
and all), compared in process, request by request: a table of edge cases, then generated bodies.
"""

import json
from collections.abc import Iterator
from typing import Any, Final

import fastapi.routing
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.core.config import Settings
from app.main import create_app
from model.artifact import DEFAULT_ARTIFACT_PATH
from model.features import FEATURE_NAMES
from tests.in_process import InProcess, in_process
from tests.plain_fastapi import plain_fastapi_app

JSON: Final = "application/json"
BENIGN: Final = dict.fromkeys(FEATURE_NAMES, 1)
MALIGNANT: Final = dict.fromkeys(FEATURE_NAMES, 10)
API_KEY: Final = "s3cret-\u00e9"  # not ASCII: the header carries it as UTF-8 bytes


def _settings(api_key: str | None = None) -> Settings:
    return Settings.model_validate(
        {"model_path": DEFAULT_ARTIFACT_PATH, "max_batch_size": 3, "api_key": api_key}
    )


@pytest.fixture(scope="module")
def one_step() -> Iterator[InProcess]:
    with in_process(create_app(_settings())) as client:
        yield client


@pytest.fixture(scope="module")
def reference() -> Iterator[InProcess]:
    with in_process(plain_fastapi_app(_settings())) as client:
        yield client


@pytest.fixture(scope="module")
def keyed_one_step() -> Iterator[InProcess]:
    with in_process(create_app(_settings(API_KEY))) as client:
        yield client


@pytest.fixture(scope="module")
def keyed_reference() -> Iterator[InProcess]:
    with in_process(plain_fastapi_app(_settings(API_KEY))) as client:
        yield client


@pytest.fixture
def handler_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The path of each request that FastAPI's own request handler answers, in apps built by the
    test."""
    calls: list[str] = []
    build = fastapi.routing.get_request_handler

    def counted_build(*args: Any, **kwargs: Any) -> Any:
        handler = build(*args, **kwargs)

        async def counted(request: Any) -> Any:
            calls.append(request.url.path)
            return await handler(request)

        return counted

    monkeypatch.setattr(fastapi.routing, "get_request_handler", counted_build)
    return calls


def post(
    client: InProcess,
    path: str,
    body: bytes,
    content_type: str | None,
    api_key: bytes | None = None,
) -> httpx.Response:
    # One request id for both apps: a generated one would differ between their answers.
    headers: list[tuple[bytes, bytes]] = [(b"X-Request-ID", b"test-bodies")]
    if content_type is not None:
        headers.append((b"Content-Type", content_type.encode()))
    if api_key is not None:
        headers.append((b"X-API-Key", api_key))
    return client.post(path, content=body, headers=headers)


def assert_same_answer(
    one_step: InProcess,
    reference: InProcess,
    path: str,
    body: bytes,
    content_type: str | None,
    api_key: bytes | None = None,
) -> None:
    got = post(one_step, path, body, content_type, api_key)
    want = post(reference, path, body, content_type, api_key)
    assert (got.status_code, got.content) == (want.status_code, want.content)
    assert got.headers.multi_items() == want.headers.multi_items()


def _json(value: object) -> bytes:
    return json.dumps(value).encode()


def _repeating(key_text: str, value: str, into: dict[str, Any]) -> bytes:
    """`into` as JSON with one more `"key_text": value` pair in front (key_text is raw JSON)."""
    return f'{{"{key_text}": {value}, '.encode() + _json(into)[1:]


LONG = "9" * 5000  # over Python's int limit


CASES: Final[list[tuple[str, bytes, str | None]]] = [
    ("/predict", _json(BENIGN), JSON),
    ("/predict", _json(MALIGNANT), JSON),
    ("/predict", _json({**BENIGN, "threshold": 0.9}), JSON),
    ("/predict", _json({**BENIGN, "threshold": None}), JSON),
    ("/predict", _json({**BENIGN, "mitoses": 5.0}), JSON),
    ("/predict", _json(BENIGN), "Application/JSON"),
    ("/predict", _json(BENIGN), "application/json; charset=utf-8"),
    ("/predict", _json(BENIGN), "application/json;charset=UTF-8"),
    ("/predict", _json(BENIGN), "application/problem+json"),
    ("/predict", _json(BENIGN), "text/plain"),
    ("/predict", _json(BENIGN), "application/x-www-form-urlencoded"),
    ("/predict", _json(BENIGN), None),
    ("/predict", _json({**BENIGN, "mitoses": 0}), JSON),
    ("/predict", _json({**BENIGN, "mitoses": 11}), JSON),
    ("/predict", _json({**BENIGN, "mitoses": "5"}), JSON),
    ("/predict", _json({**BENIGN, "mitoses": True}), JSON),
    ("/predict", _json({**BENIGN, "mitoses": 5.5}), JSON),
    ("/predict", _json({**BENIGN, "mitoses": None}), JSON),
    ("/predict", _json({**BENIGN, "threshold": 1.5}), JSON),
    ("/predict", _json({**BENIGN, "threshold": "0.5"}), JSON),
    ("/predict", _json({**BENIGN, "extra": 1}), JSON),
    ("/predict", _json({k: v for k, v in BENIGN.items() if k != "mitoses"}), JSON),
    ("/predict", json.dumps({**BENIGN, "threshold": float("nan")}).encode(), JSON),
    ("/predict", b'{"clump_thickness": 1,', JSON),
    ("/predict", b"", JSON),
    ("/predict", b"[]", JSON),
    ("/predict", b"null", JSON),
    ("/predict", b"\xff\xfe{}", JSON),
    ("/predict", b"[" * 10_000 + b"]" * 10_000, JSON),
    ("/predict", "\ufeff".encode() + _json(BENIGN), JSON),
    ("/predict", _json(BENIGN) + b" \n", JSON),
    ("/predict", _json(BENIGN) + b"{}", JSON),
    ("/predict", _json({**BENIGN, "confidence": 0.99}), JSON),
    ("/predict", _json({**BENIGN, "confidence": None, "threshold": 0.5}), JSON),
    ("/predict", _json({**BENIGN, "confidence": 0}), JSON),
    ("/predict", _json({**BENIGN, "confidence": 1.0}), JSON),
    ("/predict", _json({**BENIGN, "confidence": "0.9"}), JSON),
    ("/predict", json.dumps({**BENIGN, "confidence": float("nan")}).encode(), JSON),
    ("/predict/batch", _json({"instances": [BENIGN, MALIGNANT]}), JSON),
    ("/predict/batch", _json({"instances": [BENIGN, MALIGNANT], "confidence": 0.999}), JSON),
    ("/predict/batch", _json({"instances": [BENIGN], "confidence": -1}), JSON),
    ("/predict/batch", _json({"instances": [BENIGN], "threshold": 0.0}), JSON),
    ("/predict/batch", _json({"instances": [BENIGN] * 4}), JSON),
    ("/predict/batch", _json({"instances": []}), JSON),
    ("/predict/batch", _json({"instances": [BENIGN, {**BENIGN, "mitoses": 0}]}), JSON),
    ("/predict/batch", _json(BENIGN), JSON),
    ("/predict/batch", _json({"instances": [BENIGN]}), "text/plain"),
    # a repeated key, on each path: valid otherwise (the direct path's count finds it), invalid
    # otherwise, escaped, nested in a batch row, under another media type
    ("/predict", _repeating("mitoses", "99", BENIGN), JSON),
    ("/predict", _repeating("mi\\u0074oses", "1", BENIGN), JSON),
    ("/predict", _repeating("threshold", "0.9", {**BENIGN, "threshold": 0.1}), JSON),
    ("/predict", _repeating("mitoses", "1", {"mitoses": 0}), JSON),
    ("/predict", _repeating("x", "1", {**BENIGN, "x": 2}), JSON),
    ("/predict", _repeating("mitoses", "99", BENIGN), "application/problem+json"),
    ("/predict", _repeating("mitoses", "99", BENIGN), "application/json;charset=UTF-8"),
    ("/predict", _repeating("mitoses", "99", BENIGN), "text/plain"),
    ("/predict", b'{"a:b": 1, ' + _json(BENIGN)[1:], JSON),  # more ':' than keys, none repeated
    (
        "/predict/batch",
        b'{"instances": [' + _json(BENIGN) + b", " + _repeating("mitoses", "2", BENIGN) + b"]}",
        JSON,
    ),
    ("/predict/batch", _repeating("threshold", "0.5", {"instances": [BENIGN]}), JSON),
    # integers too long for Python's int, and the batch limit with invalid rows
    ("/predict", _json(BENIGN).replace(b'"mitoses": 1', f'"mitoses": {LONG}'.encode()), JSON),
    ("/predict", _json(BENIGN).replace(b'"mitoses": 1', f'"mitoses": -{LONG}'.encode()), JSON),
    ("/predict/batch", _json({"instances": [{**BENIGN, "mitoses": 0}] * 4}), JSON),
    ("/predict", _json({**BENIGN, "threshold": -0.0}), JSON),
]


@pytest.mark.parametrize(("path", "body", "content_type"), CASES)
def test_same_answer_as_fastapis_handler(
    one_step: InProcess,
    reference: InProcess,
    path: str,
    body: bytes,
    content_type: str | None,
) -> None:
    assert_same_answer(one_step, reference, path, body, content_type)


SCALARS: Final = (
    st.integers(-2, 12)
    | st.floats(allow_nan=False)
    | st.text(max_size=3)
    | st.booleans()
    | st.none()
)
scores = st.fixed_dictionaries(
    {},
    optional={
        **dict.fromkeys(FEATURE_NAMES, st.integers(1, 10) | SCALARS),
        "threshold": st.floats(-0.5, 1.5) | SCALARS,
        "confidence": st.floats(-0.5, 1.5) | SCALARS,
        "extra": SCALARS,
    },
)


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    path=st.sampled_from(["/predict", "/predict/batch"]),
    instance=scores,
    content_type=st.sampled_from([JSON, "application/json; charset=utf-8", "text/plain", None]),
)
@pytest.mark.slow
def test_same_answer_for_generated_bodies(
    one_step: InProcess,
    reference: InProcess,
    path: str,
    instance: dict[str, Any],
    content_type: str | None,
) -> None:
    payload = {"instances": [instance, BENIGN]} if path == "/predict/batch" else instance
    assert_same_answer(one_step, reference, path, _json(payload), content_type)


@pytest.mark.parametrize(
    ("body", "content_type", "direct"),
    [
        (_json(BENIGN), JSON, True),
        (_json(BENIGN), "application/json; charset=utf-8", True),
        (_json(BENIGN), "application/problem+json", False),
        (_json(BENIGN), None, False),
        (_json({**BENIGN, "mitoses": 0}), JSON, False),
        (b"{", JSON, False),
        (_repeating("mitoses", "1", BENIGN), JSON, False),
    ],
)
def test_only_valid_plain_json_skips_fastapis_handler(
    handler_calls: list[str],
    body: bytes,
    content_type: str | None,
    direct: bool,
) -> None:
    with in_process(create_app(_settings())) as service:
        post(service, "/predict", body, content_type)
    assert handler_calls == ([] if direct else ["/predict"])


KEYS: Final = [None, b"", b"wrong", API_KEY.encode(), API_KEY.encode() + b" ", b"\xff\xfe"]


@pytest.mark.parametrize("api_key", KEYS)
@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/predict", _json(BENIGN)),
        ("/predict", _json({**BENIGN, "mitoses": 0})),
        ("/predict", b"{"),
        ("/predict", b""),
        ("/predict", _repeating("mitoses", "1", BENIGN)),
        ("/predict/batch", _json({"instances": [BENIGN, MALIGNANT]})),
        ("/predict/batch", _json({"instances": [BENIGN] * 4})),
    ],
)
def test_with_an_api_key_same_answer_as_fastapis_handler(
    keyed_one_step: InProcess,
    keyed_reference: InProcess,
    path: str,
    body: bytes,
    api_key: bytes | None,
) -> None:
    assert_same_answer(keyed_one_step, keyed_reference, path, body, JSON, api_key)


@pytest.mark.parametrize(
    ("api_key", "status"), [(API_KEY.encode(), 200), (b"wrong", 401), (None, 401)]
)
def test_with_an_api_key_a_valid_body_is_checked_on_the_direct_path(
    handler_calls: list[str], api_key: bytes | None, status: int
) -> None:
    with in_process(create_app(_settings(API_KEY))) as keyed:
        answer = post(keyed, "/predict", _json(BENIGN), JSON, api_key)
    assert answer.status_code == status
    assert handler_calls == []


def test_a_route_with_other_parameters_is_never_called_directly() -> None:
    from app.api.bodies import OneStepJSONBodyRoute
    from app.api.schemas import PredictRequest

    async def endpoint(body: PredictRequest, verbose: bool = False) -> dict[str, bool]:
        return {"verbose": verbose}

    route = OneStepJSONBodyRoute("/x", endpoint, methods=["POST"])
    service = fastapi.FastAPI()
    service.router.routes.append(route)
    with in_process(service) as client:
        answer = client.post("/x?verbose=true", json=BENIGN)
    assert answer.json() == {"verbose": True}
