"""app/main.py: what the factory turns off, seen from outside.

FastAPI's native OpenTelemetry hooks start a span for each request once a global tracer
provider is configured, and check for one on every request; the service turns them off (a
cost per request, and no SDK is installed). Run in a fresh interpreter, since a process may
set its global tracer provider only once.
"""

import json
import subprocess
import sys

SCRIPT = """
import json
from fastapi import FastAPI
from fastapi.testclient import TestClient
from opentelemetry import trace

spans = []

class RecordingTracer(trace.NoOpTracer):
    def start_span(self, name, *args, **kwargs):
        spans.append(name)
        return super().start_span(name, *args, **kwargs)

class Recording(trace.TracerProvider):
    def get_tracer(self, *args, **kwargs):
        return RecordingTracer()

trace.set_tracer_provider(Recording())

from app.openapi.examples import BENIGN
from app.main import create_app
from model.artifact import DEFAULT_ARTIFACT_PATH
from app.core.config import Settings

plain = FastAPI()
plain.get("/")(lambda: {})
with TestClient(plain) as client:
    client.get("/")
plain_spans = len(spans)
service = create_app(Settings.model_validate({"model_path": DEFAULT_ARTIFACT_PATH}))
with TestClient(service) as client:
    status = client.post("/predict", json=BENIGN).status_code
print(json.dumps({"plain": plain_spans, "service": len(spans) - plain_spans, "status": status}))
"""


def test_fastapi_native_telemetry_is_off_even_with_a_tracer_provider() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120, check=True
    )
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["plain"] > 0, "the control: a plain FastAPI app starts a span"
    assert found == {"plain": found["plain"], "service": 0, "status": 200}
