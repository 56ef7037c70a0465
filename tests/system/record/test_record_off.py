"""RECORD=false: predictions are answered without a record, and what reads or writes the record
(outcomes, monitoring) is refused with 503 record_off, as the OpenAPI document shows it."""

from collections.abc import Iterator

import httpx
import pytest

from app.openapi.examples import BENIGN
from tests.live_server import start_server

OUTCOME = {"request_id": "any", "outcome": "benign"}
CALLS = [
    pytest.param("POST", "/feedback", OUTCOME, "post_feedback", id="feedback"),
    pytest.param(
        "POST", "/feedback/batch", {"outcomes": [OUTCOME]}, "post_feedback_batch", id="batch"
    ),
    pytest.param("GET", "/monitoring", None, "get_monitoring", id="monitoring"),
]


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    with start_server({"RECORD": "false"}) as server, httpx.Client(base_url=server.url) as http:
        yield http


@pytest.mark.parametrize(("method", "path", "body", "operation"), CALLS)
def test_what_needs_the_record_is_refused_as_documented(
    client: httpx.Client, method: str, path: str, body: object, operation: str
) -> None:
    assert client.post("/predict", json=BENIGN).status_code == 200  # answered, not recorded
    answer = client.request(method, path, json=body)
    assert answer.status_code == 503, answer.text
    spec = client.get("/openapi.json").json()
    operations = [op for item in spec["paths"].values() for op in item.values()]
    (documented,) = [op for op in operations if op["operationId"] == operation]
    examples = documented["responses"]["503"]["content"]["application/json"]["examples"]
    assert answer.json() == examples["record_off"]["value"]
