"""What the service and its writer process say to each other over their socket.

Service to writer, frames of a 5-byte header (a kind byte, then the payload's length as 4 bytes
big-endian) and a payload:
- `R`: one record, its payload the record's canonical field bytes (app/record/chain.py:
  `record_bytes`), so that no value is converted twice and the writer checks every field again
  when it decodes them (`decode_record` builds a PredictionRecord, which validates itself);
- `S`: stop, empty: commit what came before it, answer, exit.

Writer to service, fixed 6-byte acks (a kind byte, a reason byte, a count as 4 bytes
big-endian), which answer the records in the order they were sent:
- `K`: the next `count` records are durably committed;
- `F`: the next `count` records were not committed, for the reason (an index into
  app.record.metrics.FAILURE_REASONS);
- `H`: no record answered; the writer's health changed while it was idle (reason 255: healthy).

Nothing here is pickled: a record crosses as the bytes its hash is made of.
"""

import math
import select
import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

from app.record.chain import record_from_bytes
from app.record.entry import PredictionRecord
from app.record.metrics import FAILURE_REASONS

RECORD: Final = b"R"
STOP: Final = b"S"
COMMITTED: Final = b"K"
FAILED: Final = b"F"
HEALTH: Final = b"H"
HEALTHY: Final = 255  # the reason byte of a healthy `H`

HEADER: Final = struct.Struct(">cI")
ACK: Final = struct.Struct(">cBI")
# A record of a million rows is about 19 MB: a longer frame is a broken stream, not a record.
MAX_FRAME: Final = 64 << 20


class WireError(ValueError):
    """Bytes that are not what the other side sends: the stream cannot be trusted past them."""


def decode_record(payload: bytes) -> PredictionRecord:
    """The record a RECORD frame carries; RecordError if its bytes are not one."""
    return record_from_bytes(payload)


def record_frame(payload: bytes) -> bytes:
    """The frame of a record's bytes (`record_bytes`, or `field_bytes` of its fields)."""
    return HEADER.pack(RECORD, len(payload)) + payload


def stop_frame() -> bytes:
    return HEADER.pack(STOP, 0)


def ack(kind: bytes, count: int, reason: str | None = None) -> bytes:
    return ACK.pack(kind, HEALTHY if reason is None else reason_code(reason), count)


def reason_code(reason: str) -> int:
    return FAILURE_REASONS.index(reason if reason in FAILURE_REASONS else "store_error")


@dataclass(frozen=True, slots=True)
class Ack:
    kind: bytes
    reason: str | None  # None for a commit or a healthy writer
    count: int


def read_acks(buffer: bytearray) -> Iterator[Ack]:
    """The whole acks at the start of `buffer`, removed from it as they are read."""
    whole = len(buffer) - len(buffer) % ACK.size
    for offset in range(0, whole, ACK.size):
        kind, code, count = ACK.unpack_from(buffer, offset)
        if kind not in (COMMITTED, FAILED, HEALTH) or (
            code != HEALTHY and code >= len(FAILURE_REASONS)
        ):
            raise WireError("not an ack of the record's writer")
        yield Ack(kind, None if code == HEALTHY else FAILURE_REASONS[code], count)
    del buffer[:whole]


def read_frames(buffer: bytearray) -> Iterator[tuple[bytes, bytes]]:
    """The whole (kind, payload) frames at the start of `buffer`, removed from it as read."""
    offset = 0
    while len(buffer) - offset >= HEADER.size:
        kind, length = HEADER.unpack_from(buffer, offset)
        if kind not in (RECORD, STOP) or length > MAX_FRAME:
            raise WireError("not a frame of the service")
        end = offset + HEADER.size + length
        if end > len(buffer):
            break
        yield kind, bytes(buffer[offset + HEADER.size : end])
        offset = end
    del buffer[:offset]


def wait_ready(sock: socket.socket, timeout: float | None, *, write: bool = False) -> bool:
    """Whether `sock` became readable (or writable) within `timeout` seconds (None: no limit);
    a closed or failed peer counts as ready, as its next call says. poll, not select: select
    cannot watch a descriptor past 1,024, and the writer keeps the number its worker gave it,
    which is past that in a worker holding many connections."""
    poller = select.poll()
    poller.register(sock, select.POLLOUT if write else select.POLLIN)
    wait = None if timeout is None else max(0, math.ceil(timeout * 1000))
    return bool(poller.poll(wait))
