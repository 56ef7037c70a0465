"""Property-based fuzzing from the service's own OpenAPI schema (schemathesis 4).

Schemathesis generates valid and invalid requests for every operation and runs its default
checks on each answer: no 5xx, the status code is documented, the body conforms to the
documented schema, valid data is accepted, invalid data is rejected, and (for the keyed server)
the API key is really enforced.

The V2 infer routes are fuzzed like the others, but without the check that every schema-valid
request is accepted: JSON Schema cannot state the protocol's tensor rules (a `data` length equal
to the product of `shape`, values 1..10 in an INT or FP tensor of the right name), so a request
valid by the schema may rightly get a 400. Every other check holds there too: no 5xx, documented
statuses, answers matching their schema, schema-invalid requests refused.

Two runs: in process through ASGI (fast, many examples), and against a real uvicorn server with
an API key (fewer examples; it exercises the HTTP layer and the key).
"""

from collections.abc import Iterator
from typing import Any, Final

import pytest
import schemathesis
from schemathesis.checks import CheckFunction
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import positive_data_acceptance

from app.core.config import Settings
from app.main import create_app
from model.artifact import DEFAULT_ARTIFACT_PATH
from tests.live_server import LiveServer, start_server

IN_PROCESS_EXAMPLES: Final = 60
LIVE_EXAMPLES: Final = 25
API_KEY: Final = "fuzz-key"


def _settings(api_key: str | None = None) -> Settings:
    return Settings(
        model_path=DEFAULT_ARTIFACT_PATH,
        max_batch_size=1000,
        max_body_bytes=1024 * 1024,
        log_level="warning",  # no access log lines for thousands of requests
        api_key=api_key,
    )


in_process = schemathesis.openapi.from_asgi("/openapi.json", create_app(_settings()))
in_process.config.generation.update(max_examples=IN_PROCESS_EXAMPLES)

# The schema a keyed server publishes, built from the same factory; requests go over HTTP.
keyed = schemathesis.openapi.from_dict(create_app(_settings(API_KEY)).openapi())
keyed.config.generation.update(max_examples=LIVE_EXAMPLES)
# Declared as configuration, not added to each call, so schemathesis knows the key is sent: its
# negative cases that leave the key out, and its auth checks, then remove it on purpose.
keyed.config.update(headers={"X-API-Key": API_KEY})


@pytest.fixture(scope="module")
def keyed_server() -> Iterator[LiveServer]:
    with start_server({"API_KEY": API_KEY, "LOG_LEVEL": "warning"}) as live:
        yield live


def _excluded(case: schemathesis.Case[Any]) -> list[CheckFunction]:
    is_v2_infer = case.operation.path.startswith("/v2/") and case.operation.path.endswith("/infer")
    return [positive_data_acceptance] if is_v2_infer else []


@in_process.parametrize()
def test_in_process(case: schemathesis.Case[Any]) -> None:
    case.call_and_validate(excluded_checks=_excluded(case))


@keyed.parametrize()
def test_live_server_with_api_key(case: schemathesis.Case[Any], keyed_server: LiveServer) -> None:
    case.call_and_validate(base_url=keyed_server.url, excluded_checks=_excluded(case))


def test_every_operation_is_fuzzed() -> None:
    operations = set()
    for result in in_process.get_all_operations():
        assert isinstance(result, Ok), f"invalid operation in the schema: {result.err()}"
        operations.add(f"{result.ok().method.upper()} {result.ok().path}")
    assert operations == {
        "POST /predict",
        "POST /predict/batch",
        "POST /explain",
        "GET /metrics",
        "GET /health",
        "GET /health/live",
        "GET /health/ready",
        "GET /model",
        "POST /feedback",
        "POST /feedback/batch",
        "GET /monitoring",
        "GET /v2",
        "GET /v2/health/live",
        "GET /v2/health/ready",
        "GET /v2/models/{model_name}",
        "GET /v2/models/{model_name}/versions/{model_version}",
        "GET /v2/models/{model_name}/ready",
        "GET /v2/models/{model_name}/versions/{model_version}/ready",
        "POST /v2/models/{model_name}/infer",
        "POST /v2/models/{model_name}/versions/{model_version}/infer",
    }
