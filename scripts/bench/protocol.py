"""What the edge protocol costs per request, in process: uvicorn's HttpToolsProtocol beside
app/server/edge.py's GuardedHttpToolsProtocol, on one keep-alive connection.

    python -m scripts.bench.protocol [--requests N] [--rounds R]

Each round feeds N copies of the benchmark's /predict request (its headers and JSON body, as
wrk sends them) to each protocol in turn, through a transport that keeps nothing, to an ASGI app
that answers at once, and lets each request's task run. Prints the median CPU time (process
time, as the machine is shared) per request of each and the median of per-round differences:
what the wrapper's deadlines, header counting and limit checks add. Interleaved rounds, the
order alternating, after one warm-up round.
"""

import argparse
import asyncio
import sys
import time
from typing import Any, Final

from starlette.types import Receive, Scope, Send
from uvicorn import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from app.server.edge import EdgeConfig, EdgeLimits, GuardedHttpToolsProtocol
from scripts.bench.common import median
from scripts.bench.http_load import bodies
from scripts.cli import OneLineParser, positive_int

BODY: Final = bodies()["/predict"]
REQUEST: Final = (
    b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1:8000\r\nContent-Type: application/json\r\n"
    b"Content-Length: %d\r\n\r\n" % len(BODY)
) + BODY


async def answer(scope: Scope, receive: Receive, send: Send) -> None:
    await receive()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"2")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"{}"})


class NullTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written = 0

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 50000)}.get(name)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += 1

    def is_closing(self) -> bool:
        return False

    def get_write_buffer_size(self) -> int:
        return 0  # every write went out at once

    def close(self) -> None:
        pass

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def per_request_us(protocol: type[HttpToolsProtocol], config: Config, n: int) -> float:
    proto = protocol(config=config, server_state=ServerState(), app_state={})
    transport = NullTransport()
    proto.connection_made(transport)
    began = time.process_time()
    for _ in range(n):
        proto.data_received(REQUEST)
        await asyncio.sleep(0)  # the request's task runs and answers
    elapsed = time.process_time() - began
    assert transport.written == 2 * n, "not every request was answered"
    proto.connection_lost(None)
    return elapsed / n * 1e6


def parse_args() -> argparse.Namespace:
    p = OneLineParser(prog="scripts.bench.protocol", description=__doc__.splitlines()[0])
    p.add_argument("--requests", type=positive_int, default=20_000, help="requests per round")
    p.add_argument("--rounds", type=positive_int, default=7, help="interleaved rounds")
    return p.parse_args()


async def run(args: argparse.Namespace) -> dict[str, list[float]]:
    configs: dict[str, tuple[type[HttpToolsProtocol], Config]] = {
        "uvicorn HttpToolsProtocol": (HttpToolsProtocol, Config(answer, log_config=None)),
        "GuardedHttpToolsProtocol": (
            GuardedHttpToolsProtocol,
            EdgeConfig(answer, limits=EdgeLimits(), log_config=None),
        ),
    }
    for _, config in configs.values():
        config.load()
    results: dict[str, list[float]] = {name: [] for name in configs}
    for round_ in range(args.rounds + 1):  # the first round warms up
        names = list(configs) if round_ % 2 == 0 else list(reversed(configs))
        for name in names:
            protocol, config = configs[name]
            us = await per_request_us(protocol, config, args.requests)
            if round_:
                results[name].append(us)
    return results


def main() -> int:
    args = parse_args()
    results = asyncio.run(run(args))
    print(f"{args.rounds} rounds of {args.requests:,} requests on one connection, in process\n")
    print("| protocol | median µs/request | rounds |")
    print("| --- | ---: | --- |")
    for name, values in results.items():
        print(f"| {name} | {median(values):.2f} | {', '.join(f'{v:.2f}' for v in values)} |")
    diffs = [g - p for p, g in zip(*results.values(), strict=True)]
    print(
        f"\nthe edge's cost: {median(diffs):.2f} µs per request (median of per-round differences)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
