"""KServe's InferenceRESTClient (protocol v2) against a live server, run in KServe's own venv.

Not a test module: tests/system/v2/test_kserve.py runs it with that venv's Python (KServe pins
pandas < 3, psutil < 6 and python-dateutil < 3, which the dev environment does not allow), as

    python kserve_client.py BASE_URL MODEL_NAME [API_KEY]

with the rows to score, a JSON list of nine-score lists, on standard input. It prints one JSON
object: each call's result (or the HTTP status and message it raised), and the raw body of
every response the client received, recorded by a transport wrapped around httpx's, so that
the test can validate them against its own schemas. Imports nothing from this project.
"""

import asyncio
import json
import sys
from typing import Any

import httpx
import numpy as np
from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig
from kserve.protocol.infer_type import RequestedOutput

HEADER_LENGTH = "inference-header-content-length"


class RecordingTransport(httpx.AsyncBaseTransport):
    """httpx's own transport, keeping each response's JSON (the part before binary tensors)."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.bodies: list[dict[str, Any]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        content = await response.aread()
        length = int(response.headers.get(HEADER_LENGTH, len(content)))
        self.bodies.append(
            {
                "path": request.url.path,
                "request_content_type": request.headers.get("content-type"),
                "status": response.status_code,
                "content_type": response.headers.get("content-type"),
                "json": json.loads(content[:length]) if content else None,
            }
        )
        return httpx.Response(
            response.status_code, headers=response.headers, content=content, request=request
        )

    async def aclose(self) -> None:
        await self.inner.aclose()


def scores(X: np.ndarray, datatype: str, binary: bool) -> InferInput:
    tensor = InferInput("scores", list(X.shape), datatype)
    tensor.set_data_from_numpy(X, binary_data=binary)
    return tensor


def fresh(headers: dict[str, str] | None) -> dict[str, str] | None:
    """A copy for each call: InferenceRESTClient.infer writes the binary request's
    Inference-Header-Content-Length and Content-Type into the dict it is given, and a next
    request with the same dict would declare a JSON length that is not its own (our server then
    answers 400, rightly)."""
    return dict(headers) if headers else None


async def attempt(call: Any) -> dict[str, Any]:
    try:
        return {"ok": await call}
    except httpx.HTTPStatusError as exc:
        return {"status": exc.response.status_code, "message": str(exc)}


def outputs(response: Any) -> dict[str, Any]:
    """An InferResponse as plain JSON: its id and model name, and each output's datatype and
    values (KServe's InferResponse keeps no model_version: the recorded bodies have it)."""
    found: dict[str, Any] = {"id": response.id, "model_name": response.model_name}
    for output in response.outputs:
        values = output.as_numpy()
        if output.datatype == "BYTES":
            values = [v.decode() if isinstance(v, bytes) else v for v in values.tolist()]
        else:
            values = values.tolist()
        found[output.name] = {"datatype": output.datatype, "data": values}
    return found


async def main(base_url: str, model: str, api_key: str | None) -> dict[str, Any]:
    X = np.array(json.load(sys.stdin), dtype=np.int64)
    transport = RecordingTransport()
    headers = {"X-API-Key": api_key} if api_key else None
    results: dict[str, Any] = {}
    async with InferenceRESTClient(RESTConfig(protocol="v2", transport=transport)) as client:
        results["live"] = await attempt(client.is_server_live(base_url))
        results["ready"] = await attempt(client.is_server_ready(base_url))
        results["model_ready"] = await attempt(client.is_model_ready(base_url, model))
        results["other_model_ready"] = await attempt(client.is_model_ready(base_url, "other"))
        for name, datatype, binary in [
            ("json_int64", "INT64", False),
            ("binary_int64", "INT64", True),
            ("json_int32", "INT32", False),
            ("binary_fp64", "FP64", True),
        ]:
            array = X.astype({"INT64": np.int64, "INT32": np.int32, "FP64": np.float64}[datatype])
            request = InferRequest(
                model_name=model,
                infer_inputs=[scores(array, datatype, binary)],
                request_id=f"kserve-{name}",
            )
            answer = await attempt(client.infer(base_url, request, model, headers=fresh(headers)))
            if "ok" in answer:
                answer["ok"] = outputs(answer["ok"])
            results[name] = answer
        binary_out = InferRequest(
            model_name=model,
            infer_inputs=[scores(X, "INT64", True)],
            request_outputs=[RequestedOutput("probability", parameters={"binary_data": True})],
            request_id="kserve-binary-output",
        )
        answer = await attempt(client.infer(base_url, binary_out, model, headers=fresh(headers)))
        results["binary_probability_only"] = (
            {"ok": outputs(answer["ok"])} if "ok" in answer else answer
        )
        bad = np.ones((3, 9), dtype=np.int64)
        bad[2, 8] = 11
        bad_request = InferRequest(model_name=model, infer_inputs=[scores(bad, "INT64", True)])
        results["bad_value"] = await attempt(
            client.infer(base_url, bad_request, model, headers=fresh(headers))
        )
        unknown = InferRequest(model_name="other", infer_inputs=[scores(X[:2], "INT64", False)])
        results["unknown_model"] = await attempt(
            client.infer(base_url, unknown, "other", headers=fresh(headers))
        )
    results["responses"] = transport.bodies
    return results


if __name__ == "__main__":
    url, model_name = sys.argv[1], sys.argv[2]
    key = sys.argv[3] if len(sys.argv) > 3 else None
    print(json.dumps(asyncio.run(main(url, model_name, key))))
