"""Raw-socket HTTP/1.1 for the edge's system tests: pipelined requests in, every answer out.

`converse` sends exactly the given bytes (optionally in pieces with a pause, optionally
half-closing after them), reads until the server closes the connection, and splits what came
back into answers, in the order they were written. Requests carry `X-Request-ID: edge-<n>`
(`request`), so that each answer names the request it answers and the order can be checked.
"""

import json
import re
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from tests.live_server import LOOPBACK

READ_TIMEOUT: Final = 20.0
OUR_ID: Final = re.compile(r"edge-(\d+)")


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def request_index(self) -> int | None:
        """n for an answer to the request sent with X-Request-ID edge-n; None otherwise."""
        match = OUR_ID.fullmatch(self.headers.get("x-request-id", ""))
        return int(match.group(1)) if match else None


@dataclass
class Conversation:
    replies: list[Reply]
    rest: bytes  # bytes after the last whole answer (none, if the server wrote only answers)
    elapsed: float  # from connecting to the server's close
    closed: bool  # the server closed (not our read timeout)
    raw: bytes = field(repr=False, default=b"")


def request(
    n: int, method: str, target: str, body: bytes = b"", *, headers: Sequence[str] = ()
) -> bytes:
    """A request with Host and X-Request-ID edge-n; Content-Length unless a header sets the
    framing (Transfer-Encoding, or a Content-Length given)."""
    lines = [f"{method} {target} HTTP/1.1", "Host: test", f"X-Request-ID: edge-{n}", *headers]
    framed = any(h.lower().startswith(("transfer-encoding:", "content-length:")) for h in headers)
    if body and not framed:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def small_window_socket() -> socket.socket:
    """A TCP socket whose peer may have few bytes in flight to it (a 4 KiB receive buffer, a
    536-byte segment size): what it does not read fills the sender's buffers at once, as over a
    slow network, not after the megabytes loopback otherwise takes."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, 536)
    return sock


def converse(
    port: int,
    *pieces: bytes,
    pause: float = 0.0,
    half_close: bool = False,
    read_after: float = 0.0,
) -> Conversation:
    """Send `pieces` (`pause` s apart), half-closing after them if asked; read everything, from
    `read_after` s on (before that the socket reads nothing, with a small window)."""
    began = time.monotonic()
    if read_after:
        sock = small_window_socket()
        sock.settimeout(READ_TIMEOUT)
        sock.connect((LOOPBACK, port))
    else:
        sock = socket.create_connection((LOOPBACK, port), timeout=READ_TIMEOUT)
    with sock:

        def send() -> None:
            try:
                for i, piece in enumerate(pieces):
                    if i and pause:
                        time.sleep(pause)
                    sock.sendall(piece)
                if half_close:
                    sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass  # the server answered and stopped reading: expected for hostile input

        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        time.sleep(read_after)
        received = bytearray()
        closed = True
        try:
            while data := sock.recv(65536):
                received += data
        except ConnectionResetError:
            pass
        except TimeoutError:
            closed = False
        elapsed = time.monotonic() - began
        sender.join(READ_TIMEOUT)
    replies, rest = split_answers(bytes(received))
    return Conversation(replies, rest, elapsed, closed, bytes(received))


def split_answers(raw: bytes) -> tuple[list[Reply], bytes]:
    """The whole answers in `raw` (Content-Length or chunked bodies), and what follows them.
    Interim answers (100 Continue) are skipped."""
    replies: list[Reply] = []
    pos = 0
    while True:
        end = raw.find(b"\r\n\r\n", pos)
        if end < 0:
            return replies, raw[pos:]
        lines = raw[pos:end].decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {k.strip().lower(): v.strip() for k, v in (x.split(":", 1) for x in lines[1:])}
        start = end + 4
        if 100 <= status < 200:
            pos = start
            continue
        if headers.get("transfer-encoding", "").lower() == "chunked":
            body, after = _dechunk(raw, start)
            if after < 0:
                return replies, raw[pos:]
        else:
            length = int(headers.get("content-length", "0"))
            body, after = raw[start : start + length], start + length
            if len(body) < length:
                return replies, raw[pos:]
        replies.append(Reply(status, headers, body))
        pos = after


def _dechunk(raw: bytes, pos: int) -> tuple[bytes, int]:
    body = bytearray()
    while True:
        line_end = raw.find(b"\r\n", pos)
        if line_end < 0:
            return bytes(body), -1
        size = int(raw[pos:line_end].split(b";")[0], 16)
        pos = line_end + 2
        if size == 0:
            trailer_end = raw.find(b"\r\n", pos)
            return bytes(body), (trailer_end + 2 if trailer_end >= 0 else -1)
        body += raw[pos : pos + size]
        pos += size + 2
