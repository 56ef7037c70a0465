"""Raw-socket HTTP for the edge tests: send exactly these bytes, read the whole answer.

The edge (app/server/edge.py) answers before it has read what a hostile client sends, so the
sender runs in a thread and may fail once the server stops reading; the answer is what counts.
"""

import json
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Final

from tests.live_server import LOOPBACK

READ_TIMEOUT: Final = 15.0


@dataclass
class Answer:
    raw: bytes
    elapsed: float  # seconds from connecting to the server closing the connection
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    def json(self) -> Any:
        return json.loads(self.body)


def parse(raw: bytes, elapsed: float) -> Answer:
    answer = Answer(raw, elapsed)
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep:
        return answer
    lines = head.decode("latin-1").split("\r\n")
    answer.status = int(lines[0].split(" ", 2)[1])
    answer.headers = {k.strip().lower(): v.strip() for k, v in (x.split(":", 1) for x in lines[1:])}
    length = int(answer.headers.get("content-length", len(body)))
    answer.body = body[:length]
    return answer


def exchange(port: int, *chunks: bytes, pause: float = 0.0) -> Answer:
    """Send `chunks` (with `pause` seconds between them) and read until the server closes."""
    began = time.monotonic()
    with socket.create_connection((LOOPBACK, port), timeout=READ_TIMEOUT) as sock:

        def send() -> None:
            try:
                for i, chunk in enumerate(chunks):
                    if i and pause:
                        time.sleep(pause)
                    sock.sendall(chunk)
            except OSError:
                pass  # the server answered and stopped reading: expected for hostile input

        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        received = bytearray()
        try:
            while data := sock.recv(65536):
                received += data
        except ConnectionResetError:
            pass
        elapsed = time.monotonic() - began
        sender.join(READ_TIMEOUT)
    return parse(bytes(received), elapsed)
