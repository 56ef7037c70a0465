"""An asyncio HTTP/1.1 load generator and answer checker for the load and shutdown tests.

Each connection is one keep-alive TCP stream that sends a request, reads the whole response
(status line, headers, Content-Length body), hands it to a check, and sends the next, until a
deadline or a stop event. Every outcome is recorded with its send and completion times, so a
test can assert on every single response. Bounded in time: each request has a timeout.

A client whose connection the server ends with `Connection: close` stops, or with
`reconnect=True` opens a new one, as a pooled HTTP client would. With `think` seconds, clients
wait that long after each answer, leaving their connection idle, as most real clients do. A
refused connection is told apart from a request lost on an open one: nothing was sent, so the
server accepted nothing.
"""

import asyncio
import contextlib
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from app.monitoring.typicality import Typicality
from model.artifact import DEFAULT_ARTIFACT_PATH, load_artifact
from model.conformal import DEFAULT_CONFIDENCE, set_membership
from model.data import load_dataset
from model.features import CLASS_NAMES, FEATURE_NAMES

REQUEST_TIMEOUT: Final = 15.0
CONNECT: Final = "(connect)"  # the path of an outcome that records a failed connection attempt
BATCH_EVERY: Final = 8  # Expected.plans: every 8th connection posts /predict/batch
BATCH_ROWS: Final = 1000
BATCH_VARIANTS: Final = 8

# (path, body) for the n-th request of a connection.
RequestPlan = Callable[[int], tuple[str, bytes]]
# A 200 answer's body -> None if it is valid, else what is wrong with it.
ResponseCheck = Callable[[str, bytes, bytes], str | None]  # (path, request body, response body)


@dataclass
class Outcome:
    path: str
    sent_at: float  # time.monotonic()
    done_at: float
    status: int | None = None  # None: no (complete) response
    error: str | None = None  # connection error, timeout, or malformed HTTP
    problem: str | None = None  # the check's complaint about a 200 answer
    refused: bool = False  # path "(connect)": the server refused the connection
    closing: bool = False  # the answer said `Connection: close`


@dataclass
class LoadResult:
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def completed(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status is not None]

    def count(self, path: str | None = None) -> int:
        return sum(1 for o in self.completed if path is None or o.path == path)

    @property
    def non_2xx(self) -> list[Outcome]:
        return [o for o in self.completed if not 200 <= o.status < 300]  # type: ignore[operator]

    @property
    def errors(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.error is not None]

    @property
    def refused(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.refused]

    @property
    def lost(self) -> list[Outcome]:
        """Requests sent on an open connection that got no complete answer (reset, EOF, ...)."""
        return [o for o in self.outcomes if o.error is not None and o.path != CONNECT]

    @property
    def invalid(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.problem is not None]


class HttpError(Exception):
    """The server's answer was not well-formed HTTP/1.1 with a Content-Length body."""


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
        raise HttpError(f"bad status line {lines[0]!r}")
    headers = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    if "content-length" not in headers:
        raise HttpError(f"no Content-Length in {headers}")
    body = await reader.readexactly(int(headers["content-length"]))
    return int(parts[1]), headers, body


def _request(host: str, port: int, path: str, body: bytes) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode("latin-1") + body


@dataclass
class _Client:
    """One client of `plan`: its requests go on one keep-alive connection at a time."""

    host: str
    port: int
    plan: RequestPlan
    check: ResponseCheck
    deadline: float
    stop: asyncio.Event
    result: LoadResult
    reconnect: bool
    think: float
    n: int = 0  # the plan's next request

    def running(self) -> bool:
        return time.monotonic() < self.deadline and not self.stop.is_set()

    async def run(self) -> None:
        """Connect and send requests until the deadline, `stop`, or an error; when the server
        ends a connection with `Connection: close`, stop, or open a new one if `reconnect`."""
        while self.running():
            started = time.monotonic()
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(self.host, self.port), REQUEST_TIMEOUT
                )
            except (OSError, TimeoutError) as exc:
                refused = isinstance(exc, ConnectionRefusedError)
                outcome = Outcome(CONNECT, started, time.monotonic(), refused=refused)
                outcome.error = f"connect: {exc!r}"
                self.result.outcomes.append(outcome)
                return
            try:
                closed_by_server = await self._requests(reader, writer)
            finally:
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
            if not (closed_by_server and self.reconnect):
                return

    async def _requests(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Requests on one connection; True if the server ended it with `Connection: close`."""
        while self.running():
            path, body = self.plan(self.n)
            self.n += 1
            outcome = Outcome(path, time.monotonic(), 0.0)
            self.result.outcomes.append(outcome)
            try:
                writer.write(_request(self.host, self.port, path, body))
                await writer.drain()
                status, headers, answer = await asyncio.wait_for(
                    _read_response(reader), REQUEST_TIMEOUT
                )
            except (OSError, TimeoutError, asyncio.IncompleteReadError, HttpError) as exc:
                outcome.done_at = time.monotonic()
                outcome.error = repr(exc)
                return False  # the connection is unusable now
            outcome.done_at = time.monotonic()
            outcome.status = status
            if status == 200:
                outcome.problem = self.check(path, body, answer)
            if headers.get("connection", "").lower() == "close":
                outcome.closing = True
                return True
            if self.think:
                await asyncio.sleep(self.think)
        return False


async def run_load(
    host: str,
    port: int,
    plans: list[RequestPlan],
    check: ResponseCheck,
    seconds: float,
    stop: asyncio.Event | None = None,
    reconnect: bool = False,
    think: float = 0.0,
) -> LoadResult:
    """One client per plan, all at once, for `seconds` (or until `stop` is set); with
    `reconnect`, a client the server closes with `Connection: close` opens a new connection;
    each client waits `think` seconds after each answer."""
    result = LoadResult()
    deadline = time.monotonic() + seconds
    stop = stop or asyncio.Event()
    clients = [
        _Client(host, port, plan, check, deadline, stop, result, reconnect, think) for plan in plans
    ]
    await asyncio.gather(*(client.run() for client in clients))
    return result


TUMOUR: Final = frozenset(
    {"probability", "class", "prediction_set", "decision", "reasons", "atypical"}
)
SETTINGS: Final = frozenset({"threshold", "confidence", "model_version"})  # in every answer


class Expected:
    """Request bodies and the answer each must get, from the model package itself."""

    def __init__(self) -> None:
        artifact = load_artifact(DEFAULT_ARTIFACT_PATH)
        data = load_dataset()
        self.threshold = artifact.default_threshold
        self.confidence = DEFAULT_CONFIDENCE
        self.version = artifact.model_version
        self.bounds = artifact.conformal.classifier().quantiles(self.confidence).tolist()
        rows = [[int(v) for v in row] for row in data.X]
        proba = artifact.predict_proba(data.X).tolist()
        odd = Typicality.from_artifact(artifact).atypical_rows(data.X).tolist()
        dump = {"separators": (",", ":")}
        self.single: list[bytes] = []
        self.single_proba: dict[bytes, float] = {}
        self.single_atypical: dict[bytes, bool] = {}
        for row, p in zip(rows, proba, strict=True):
            body = json.dumps(dict(zip(FEATURE_NAMES, row, strict=True)), **dump).encode()  # type: ignore[arg-type]
            self.single.append(body)
            self.single_proba[body] = p
            self.single_atypical[body] = odd[len(self.single) - 1]
        self.batch: list[bytes] = []
        self.batch_proba: dict[bytes, list[float]] = {}
        self.batch_atypical: dict[bytes, list[bool]] = {}
        for v in range(BATCH_VARIANTS):
            idx = [(v * 97 + i) % len(rows) for i in range(BATCH_ROWS)]
            instances = [dict(zip(FEATURE_NAMES, rows[i], strict=True)) for i in idx]
            body = json.dumps({"instances": instances}, **dump).encode()  # type: ignore[arg-type]
            self.batch.append(body)
            self.batch_proba[body] = [proba[i] for i in idx]
            self.batch_atypical[body] = [odd[i] for i in idx]

    def _tumour(self, item: object, expected: float, atypical: bool) -> str | None:
        if not isinstance(item, dict) or set(item) != TUMOUR:
            return f"not a {sorted(TUMOUR)} object: {item!r}"
        p = item["probability"]
        if not isinstance(p, float) or not 0.0 <= p <= 1.0:
            return f"probability {p!r} is not a number in [0, 1]"
        if not math.isclose(p, expected, rel_tol=1e-12, abs_tol=1e-15):
            return f"probability {p!r}, the model says {expected!r}"
        name = "malignant" if p > self.threshold else "benign"
        if item["class"] != name:
            return f"class {item['class']!r} for probability {p} at {self.threshold}"
        members = set_membership(p, *self.bounds)
        classes = [name for name, member in zip(CLASS_NAMES, members, strict=True) if member]
        if item["prediction_set"] != classes:
            return f"prediction_set {item['prediction_set']!r} for probability {p}"
        reasons = {0: ["no_class"], 2: ["both_classes"]}.get(len(classes), [])
        reasons += ["atypical_input"] if atypical else []
        decision = "refer" if reasons else classes[0]
        if (item["decision"], item["reasons"], item["atypical"]) != (decision, reasons, atypical):
            return f"decision {item['decision']!r} {item['reasons']!r}, expected {decision!r}"
        return None

    def check(self, path: str, request: bytes, response: bytes) -> str | None:
        try:
            answer = json.loads(response)
        except ValueError as exc:
            return f"not JSON: {exc}"
        problem = self._settings(answer)
        if problem is not None:
            return problem
        if path == "/predict":
            return self._single(answer, request)
        return self._batch(answer, request)

    def _settings(self, answer: object) -> str | None:
        """What every answer must say: it is an object with this model's settings."""
        if not isinstance(answer, dict):
            return f"not an object: {answer!r}"
        if answer.get("threshold") != self.threshold:
            return f"threshold {answer.get('threshold')!r}, expected {self.threshold}"
        if answer.get("model_version") != self.version:
            return f"model_version {answer.get('model_version')!r}, expected {self.version}"
        if answer.get("confidence") != self.confidence:
            return f"confidence {answer.get('confidence')!r}, expected {self.confidence}"
        return None

    def _single(self, answer: dict[str, Any], request: bytes) -> str | None:
        if set(answer) != TUMOUR | SETTINGS:
            return f"unexpected fields {sorted(answer)}"
        fields = {name: answer[name] for name in TUMOUR}
        return self._tumour(fields, self.single_proba[request], self.single_atypical[request])

    def _batch(self, answer: dict[str, Any], request: bytes) -> str | None:
        expected = self.batch_proba[request]
        predictions = answer.get("predictions")
        if set(answer) != {"predictions"} | SETTINGS:
            return f"unexpected fields {sorted(answer)}"
        if not isinstance(predictions, list) or len(predictions) != len(expected):
            return f"{len(predictions or [])} predictions for {len(expected)} instances"
        odd = self.batch_atypical[request]
        for i, (item, p, a) in enumerate(zip(predictions, expected, odd, strict=True)):
            problem = self._tumour(item, p, a)
            if problem is not None:
                return f"predictions[{i}]: {problem}"
        return None

    def plans(self, connections: int, batch_every: int = BATCH_EVERY) -> list[RequestPlan]:
        """One plan per connection: every `batch_every`-th posts /predict/batch, the others
        /predict, cycling through the bodies."""

        def plan(c: int) -> RequestPlan:
            if c % batch_every == 0:
                return lambda n: ("/predict/batch", self.batch[(c + n) % len(self.batch)])
            return lambda n: ("/predict", self.single[(c * 131 + n) % len(self.single)])

        return [plan(c) for c in range(connections)]
