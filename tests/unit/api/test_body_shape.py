"""Bodies with more JSON structure than any valid request are refused before they are parsed;
the largest valid bodies, and small invalid ones, are answered as before."""

import json
from collections.abc import Iterator

import pytest
from pydantic import BaseModel

from app.api.body_shape import SLACK, Shape, largest_shape
from app.api.feedback import FeedbackBatchRequest, FeedbackRequest
from app.api.schemas import PredictRequest, limited_batch_request
from app.core.config import Settings
from app.core.errors import ApiError
from app.core.request_id import MAX_LENGTH as REQUEST_ID_MAX
from app.main import create_app
from app.openapi.examples import BENIGN
from model.artifact import DEFAULT_ARTIFACT_PATH
from tests.in_process import InProcess, in_process

MIB = 1 << 20
ROUTES = ["/predict", "/explain", "/predict/batch", "/feedback", "/feedback/batch"]


@pytest.fixture(scope="module")
def client() -> Iterator[InProcess]:
    settings = Settings.model_validate({"model_path": DEFAULT_ARTIFACT_PATH, "record": False})
    with in_process(create_app(settings)) as app:
        yield app


def _fill(head: bytes, part: bytes, tail: bytes, size: int) -> bytes:
    return head + part * ((size - len(head) - len(tail)) // len(part)) + tail


COSTLY = {
    "empty arrays": _fill(b'{"x":[', b"[],", b"[]]}", MIB),
    "empty objects": _fill(b'{"x":[', b"{},", b"{}]}", MIB),
    "distinct keys": b"{" + b",".join(b'"k%06d":1' % i for i in range(MIB // 12)) + b"}",
    "repeated key": _fill(b'{"a":1', b',"a":1', b"}", MIB),
    "strings": _fill(b'{"x":[', b'"a",', b'"a"]}', MIB),
    "numbers": _fill(b'{"x":[', b"1,", b"1]}", MIB),
}


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("body", COSTLY.values(), ids=COSTLY.keys())
def test_costly_bodies_are_refused_before_parsing(
    client: InProcess, route: str, body: bytes
) -> None:
    answer = client.post(route, content=body, headers={"Content-Type": "application/json"})
    assert answer.status_code == 422
    (error,) = answer.json()["detail"]
    assert error["type"] == "body_too_complex"
    assert error["loc"] == ["body"]


def _largest_feedback() -> dict[str, object]:
    # Every string as long as allowed, made of the one counted character its pattern allows.
    return {
        "request_id": ":" * REQUEST_ID_MAX,
        "row": 0,
        "outcome": "malignant",
        "source": ":" * 64,
    }


@pytest.mark.parametrize(
    ("model", "body"),
    [
        (PredictRequest, {**BENIGN, "threshold": 0.5, "confidence": 0.9}),
        (
            limited_batch_request(1000),
            {"instances": [BENIGN] * 1000, "threshold": 0.5, "confidence": 0.9},
        ),
        (FeedbackRequest, _largest_feedback()),
        (FeedbackBatchRequest, {"outcomes": [_largest_feedback()] * 1000}),
    ],
    ids=["predict", "batch", "feedback", "feedback batch"],
)
def test_the_largest_valid_bodies_pass(model: type[BaseModel], body: dict[str, object]) -> None:
    model.model_validate(body)  # valid, as the route would read it
    shape = largest_shape(model)
    assert shape is not None
    shape.refuse_larger(json.dumps(body).encode())
    shape.refuse_larger(json.dumps(body, indent=4).encode())


def test_one_structure_more_than_allowed_is_refused() -> None:
    shape = Shape(objects=1, keys=2)
    shape.refuse_larger(b"{" * (1 + SLACK))
    with pytest.raises(ApiError) as refused:
        shape.refuse_larger(b"{" * (2 + SLACK))
    assert refused.value.status_code == 422


def test_a_small_invalid_body_gets_the_models_own_words(client: InProcess) -> None:
    answer = client.post("/predict", json={**BENIGN, "mitoses": [5]})
    assert answer.status_code == 422
    assert answer.json()["detail"][0]["loc"] == ["body", "mitoses"]


def test_a_model_with_an_unbounded_field_is_left_unchecked() -> None:
    from pydantic import BaseModel

    class Open(BaseModel):
        note: str

    assert largest_shape(Open) is None


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [(r"^[A-Za-z0-9._:/+=@-]+$", (0, 0, 7, 0)), (None, (7, 7, 7, 7)), (r"^x|\{$", (7, 7, 7, 7))],
)
def test_a_patterns_class_says_which_counted_characters_a_string_holds(
    pattern: str | None, expected: tuple[int, int, int, int]
) -> None:
    from pydantic import BaseModel, Field

    class Text(BaseModel):
        value: str = Field(max_length=7, pattern=pattern)

    shape = largest_shape(Text)
    assert shape is not None
    counted = (shape.text_braces, shape.text_brackets, shape.text_colons, shape.text_commas)
    assert counted == expected
