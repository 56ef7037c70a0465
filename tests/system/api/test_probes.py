"""/health, /health/live and /health/ready on a real server: GET and HEAD, open with API_KEY, and
readiness failing during the SIGTERM drain while the open connections are still served."""

import http.client
import json
import signal
import time
from collections.abc import Iterator
from typing import Final

import httpx
import pytest

from app.openapi.examples import BENIGN
from model.artifact import Artifact
from tests.live_server import LOOPBACK, LiveServer, start_server

KEY: Final = "probe-test-key"
PROBES: Final = ["/health", "/health/live", "/health/ready"]
DRAIN_SECONDS: Final = "20"  # the test closes its connections long before
WAIT_SECONDS: Final = 20.0


@pytest.fixture(scope="module")
def server() -> Iterator[LiveServer]:
    with start_server({"API_KEY": KEY}) as live:
        yield live


def expected_body(path: str, version: str) -> dict[str, str]:
    return {
        "/health": {"status": "ok", "model_version": version},
        "/health/live": {"status": "ok"},
        "/health/ready": {"status": "ready", "model_version": version},
    }[path]


@pytest.mark.parametrize("path", PROBES)
def test_get_answers_without_the_api_key(server: LiveServer, artifact: Artifact, path: str) -> None:
    response = httpx.get(f"{server.url}{path}", timeout=10)
    assert response.status_code == 200
    assert response.json() == expected_body(path, artifact.model_version)
    assert httpx.post(f"{server.url}/predict", json=BENIGN, timeout=10).status_code == 401


@pytest.mark.parametrize("path", PROBES)
def test_head_answers_the_same_headers_without_a_body(server: LiveServer, path: str) -> None:
    get = httpx.get(f"{server.url}{path}", timeout=10)
    head = httpx.head(f"{server.url}{path}", timeout=10)
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["content-type"] == "application/json"
    assert head.headers["content-length"] == get.headers["content-length"]


def test_the_probes_are_documented_once_each(server: LiveServer) -> None:
    paths = httpx.get(f"{server.url}/openapi.json", timeout=10).json()["paths"]
    for path in PROBES:
        assert list(paths[path]) == ["get"], paths[path]
    assert "503" in paths["/health/ready"]["get"]["responses"]


def request(
    connection: http.client.HTTPConnection, method: str, path: str, body: object = None
) -> tuple[int, dict[str, str], bytes]:
    payload = None if body is None else json.dumps(body)
    headers = {"Content-Type": "application/json", "X-API-Key": KEY} if body else {}
    connection.request(method, path, body=payload, headers=headers)
    response = connection.getresponse()
    content = response.read()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, content


def wait_for(server: LiveServer, text: str) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while text not in server.stderr():
        assert time.monotonic() < deadline, f"{text!r} not logged:\n{server.stderr()}"
        time.sleep(0.05)


def test_readiness_fails_during_the_drain_while_connections_are_served() -> None:
    env = {"SHUTDOWN_DRAIN_SECONDS": DRAIN_SECONDS, "API_KEY": KEY}
    with start_server(env) as server:
        spec = httpx.get(f"{server.url}/openapi.json", timeout=10).json()
        responses = spec["paths"]["/health/ready"]["get"]["responses"]
        documented_draining_example = responses["503"]["content"]["application/json"]["examples"][
            "draining"
        ]["value"]
        connections = [
            http.client.HTTPConnection(LOOPBACK, server.port, timeout=10) for _ in range(5)
        ]
        for connection in connections:  # open and in use before the signal
            assert request(connection, "GET", "/health/ready")[0] == 200
        server.process.send_signal(signal.SIGTERM)
        wait_for(server, "Draining 5 connection(s)")

        status, headers, body = request(connections[0], "GET", "/health/ready")
        assert status == 503
        error = json.loads(body)
        assert error == documented_draining_example, "not the answer the OpenAPI document shows"
        assert error["detail"] == [
            {"loc": ["server"], "msg": "The server is shutting down", "type": "draining"}
        ]
        assert error["message"] == "server: The server is shutting down"
        assert headers["connection"] == "close"
        assert headers["x-request-id"]

        status, headers, body = request(connections[1], "HEAD", "/health/ready")
        assert (status, body, headers["connection"]) == (503, b"", "close")
        # The Open Inference Protocol's readiness says the same, in its own error shape.
        status, headers, body = request(connections[4], "GET", "/v2/health/ready")
        assert (status, headers["connection"]) == (503, "close")
        v2_responses = spec["paths"]["/v2/health/ready"]["get"]["responses"]
        v2_documented = v2_responses["503"]["content"]["application/json"]["examples"]
        assert json.loads(body) == v2_documented["draining"]["value"]
        # Still served: liveness, and a prediction sent on an open connection.
        assert request(connections[2], "GET", "/health/live")[0] == 200
        status, _, body = request(connections[3], "POST", "/predict", BENIGN)
        assert status == 200, body
        assert json.loads(body)["class"] == "benign"

        for connection in connections:
            connection.close()
        code = server.process.wait(WAIT_SECONDS)
        assert code in (0, -signal.SIGTERM)
        assert "Traceback" not in server.stderr()
