"""The worker CPU each route spends per byte of the costliest bodies we can craft, against a
valid batch of about the same size: the goal is at most about 3x.

    python -m scripts.bench.body_cost [--runs 5] [--openapi]

Starts `python -m app` with one worker on loopback and sends each body `--runs` times, one at a
time after one more to warm, reading the worker's CPU time (user + system, psutil) around them.
Native routes take bodies of MAX_BODY_BYTES (1 MiB), measured against /predict/batch of 1,000
valid instances (its largest batch, padded with spaces to 1 MiB); V2 infer, bodies of
V2_MAX_BODY_BYTES (8 MiB) against its largest valid JSON tensor (100,000 rows) and its largest
binary one. Prints each body's status, CPU per byte and ratio. `--openapi` adds the CPU of one
/openapi.json answer and, in this process, of one write of the document as FastAPI did per
request.
"""

import argparse
import json
import time
from collections.abc import Callable, Iterator
from typing import Final

import httpx
import psutil
from fastapi.responses import JSONResponse

from model.features import FEATURE_NAMES
from scripts.bench.v2_bodies import binary_body, crafted_json_bodies, json_body, rows
from tests.live_server import start_server

MIB: Final = 2**20
NATIVE_SIZE: Final = MIB - 1024  # within MAX_BODY_BYTES, with room for the JSON around it
V2_SIZE: Final = 8 * MIB - 1024
INFER: Final = "/v2/models/malignancy-predictor/infer"
JSON_TYPE: Final = {"Content-Type": "application/json"}
BINARY_TYPE: Final = {"Content-Type": "application/octet-stream"}
NATIVE_ROUTES: Final = ("/predict", "/predict/batch", "/explain", "/feedback", "/feedback/batch")
ROW: Final = dict(zip(FEATURE_NAMES, [5, 1, 1, 1, 2, 1, 3, 1, 1], strict=True))
LIST_FIELD: Final = {"/predict/batch": "instances", "/feedback/batch": "outcomes"}


def _fill(head: bytes, unit: bytes, tail: bytes, size: int) -> bytes:
    return head + unit * max(0, (size - len(head) - len(tail)) // len(unit)) + tail


def valid_batch(size: int) -> bytes:
    """/predict/batch of 1,000 valid instances, padded with spaces to `size` bytes."""
    text = json.dumps({"instances": [ROW] * 1000}).encode()
    return text[:-1] + b" " * (size - len(text)) + b"}"


def native_bodies(route: str, size: int) -> dict[str, bytes]:
    """Crafted bodies of about `size` bytes for a native route: many keys, many errors, every
    JSON type in bulk, nesting, whitespace, a repeated key."""
    field = LIST_FIELD.get(route)
    bad_row = json.dumps({name: "x" for name in FEATURE_NAMES}).encode()
    bodies = {
        "distinct_keys": b"{" + b",".join(b'"k%07d":1' % i for i in range(size // 13)) + b"}",
        "repeated_key": _fill(b'{"a":1', b',"a":1', b"}", size),
        "empty_arrays": _fill(b'{"x":[', b"[],", b"[]]}", size),
        "empty_objects": _fill(b'{"x":[', b"{},", b"{}]}", size),
        "strings": _fill(b'{"x":[', b'"a",', b'"a"]}', size),
        "floats": _fill(b'{"x":[', b"1.000000000000001,", b"1]}", size),
        "whitespace": _fill(b"{", b" ", b"}", size),
        "deep": b"[" * 10_000 + b"]" * 10_000,
    }
    if field:  # the list the route reads, full of items that each fail every field
        head = b'{"%s":[' % field.encode()
        bodies["bad_items"] = _fill(head, bad_row + b",", bad_row + b"]}", size)
        bodies["empty_items"] = _fill(head, b"{},", b"{}]}", size)
    else:
        bodies["bad_fields"] = bad_row
    return bodies


def cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


def measure(
    process: psutil.Process, send: Callable[[], httpx.Response], runs: int
) -> tuple[int, float]:
    """The status of `send`'s answer and the worker CPU one took, the mean of `runs`: the
    kernel counts CPU time in ticks of 10 ms, so one answer alone would round to 0 or 10."""
    status = send().status_code  # warm: a first answer's allocations are not the burden's
    time.sleep(0.05)
    before = cpu_seconds(process)
    for _ in range(runs):
        status = send().status_code
    time.sleep(0.05)  # the worker's last writes counted too
    return status, (cpu_seconds(process) - before) / runs


def _line(label: str, status: int, per_byte: float, base: float) -> str:
    return f"{label:52s} {status}  {per_byte * 1e9:7.1f} ns/B  {per_byte / base:5.2f}x"


def rows_of_results(client: httpx.Client, process: psutil.Process, runs: int) -> Iterator[str]:
    """One line per body: its label, status, worker CPU per byte and ratio to the valid one."""

    def cost(path: str, body: bytes, headers: dict[str, str] = JSON_TYPE) -> tuple[int, float]:
        send = lambda: client.post(path, content=body, headers=headers)  # noqa: E731
        status, cpu = measure(process, send, runs)
        return status, cpu / len(body)

    status, base = cost("/predict/batch", valid_batch(NATIVE_SIZE))
    yield _line("native: valid /predict/batch, 1,000 rows", status, base, base)
    for route in NATIVE_ROUTES:
        for name, body in native_bodies(route, NATIVE_SIZE).items():
            yield _line(f"{route} {name}", *cost(route, body), base)
    status, base = cost(INFER, json_body(rows(100_000)).body)
    yield _line("v2: valid JSON tensor, 100,000 rows", status, base, base)
    binary = binary_body(rows(100_000))
    yield _line(
        "v2: valid binary tensor, 100,000 rows", *cost(INFER, binary.body, binary.headers), base
    )
    crafted = crafted_json_bodies(V2_SIZE)
    for name, body in crafted.items():
        yield _line(f"v2 {name}", *cost(INFER, body), base)
    # Crafted text as a binary body's JSON header: the same decoder, the same bounds.
    for name in ("empty_arrays", "many_keys", "spaced_true"):
        body = crafted[name]
        headers = {**BINARY_TYPE, "Inference-Header-Content-Length": str(len(body))}
        yield _line(f"v2 binary, header {name}", *cost(INFER, body, headers), base)


def openapi_cost(client: httpx.Client, process: psutil.Process, runs: int) -> Iterator[str]:
    """The worker CPU of one /openapi.json answer, and of one write of the document."""
    client.get("/openapi.json")  # built on first use
    status, cpu = measure(process, lambda: client.get("/openapi.json"), max(runs, 20))
    document = client.get("/openapi.json").json()
    start = time.process_time()
    for _ in range(20):
        JSONResponse(document)
    write = (time.process_time() - start) / 20
    yield f"/openapi.json: {status}, {cpu * 1e3:.2f} ms of worker CPU an answer"
    yield f"one write of the document (FastAPI's per request): {write * 1e3:.2f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--openapi", action="store_true")
    args = parser.parse_args()
    with (
        start_server({"RECORD": "false"}) as server,
        httpx.Client(base_url=server.url, timeout=60) as client,
    ):
        process = psutil.Process(server.process.pid)
        client.post("/predict", json=ROW)  # warm
        for line in rows_of_results(client, process, args.runs):
            print(line, flush=True)
        if args.openapi:
            for line in openapi_cost(client, process, args.runs):
                print(line, flush=True)


if __name__ == "__main__":
    main()
