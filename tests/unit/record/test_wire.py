"""The socket between a worker and its writer process: records cross as their canonical field
bytes and come back equal; anything else is refused, never guessed at."""

import struct

import pytest

from app.record import wire
from app.record.chain import _str, canonical_bytes, record_bytes
from app.record.entry import PredictionRecord, RecordError
from tests.record_records import Answers, frame


@pytest.fixture(scope="module")
def answers() -> Answers:
    return Answers(seed=5)


def payload_of(frame: bytes) -> bytes:
    buffer = bytearray(frame)
    ((kind, payload),) = list(wire.read_frames(buffer))
    assert kind == wire.RECORD
    assert not buffer
    return payload


@pytest.mark.parametrize(
    "make",
    [
        lambda a: a.single(),
        lambda a: a.single(caller="clinic-a", case_ref="urn:case:42"),
        lambda a: a.batch(500),
        lambda a: a.explained(),
    ],
    ids=["single", "caller-and-case", "batch", "explained"],
)
def test_a_record_crosses_and_comes_back_equal(answers: Answers, make: "object") -> None:
    record: PredictionRecord = make(answers)  # type: ignore[operator]
    decoded = wire.decode_record(payload_of(frame(record)))
    assert decoded == record
    # the bytes that cross are the tail of what the chain hashes
    assert canonical_bytes("w", 7, record).endswith(record_bytes(record))


def test_frames_cut_anywhere_are_read_whole_once_complete(answers: Answers) -> None:
    frames = frame(answers.single()) + frame(answers.batch(3))
    stream = frames + wire.stop_frame()
    buffer, seen = bytearray(), []
    for byte in stream:  # one byte at a time: the worst a socket can do
        buffer.append(byte)
        seen += [kind for kind, _ in wire.read_frames(buffer)]
    assert seen == [wire.RECORD, wire.RECORD, wire.STOP]
    assert not buffer


@pytest.mark.parametrize(
    "header",
    [b"X\x00\x00\x00\x01", wire.HEADER.pack(wire.RECORD, wire.MAX_FRAME + 1)],
    ids=["unknown-kind", "longer-than-any-record"],
)
def test_a_frame_that_is_not_ours_breaks_the_stream(header: bytes) -> None:
    with pytest.raises(wire.WireError):
        list(wire.read_frames(bytearray(header)))


def _mutations(record: PredictionRecord) -> dict[str, bytes]:
    payload = record_bytes(record)
    caller_flag = len(
        b"".join(
            (
                _str(record.request_id),
                bytes(16),  # received and answered
                _str(record.route),
                _str(record.protocol),
                _str(record.encoding),
            )
        )
    )
    scores = struct.pack(">I", len(record.scores)) + record.scores
    return {
        "cut-short": payload[:-3],
        "trailing-bytes": payload + b"\x00",
        "presence-byte-2": payload[:caller_flag] + b"\x02" + payload[caller_flag + 1 :],
        "field-longer-than-record": b"\xff\xff\xff\xff" + payload[4:],
        "score-out-of-range": payload.replace(scores, scores[:4] + b"\x0b" + scores[5:]),
        "not-utf8": payload[:4] + b"\xff" + payload[5:],
    }


@pytest.mark.parametrize(
    "mutation",
    [
        "cut-short",
        "trailing-bytes",
        "presence-byte-2",
        "field-longer-than-record",
        "score-out-of-range",
        "not-utf8",
    ],
)
def test_a_malformed_record_is_refused(answers: Answers, mutation: str) -> None:
    with pytest.raises(RecordError):
        wire.decode_record(_mutations(answers.single())[mutation])


def test_acks_carry_kind_count_and_reason() -> None:
    stream = bytearray(
        wire.ack(wire.HEALTH, 0)
        + wire.ack(wire.COMMITTED, 8)
        + wire.ack(wire.FAILED, 3, "disk_full")
        + wire.ack(wire.FAILED, 1, "something new")[:4]  # half an ack: waits for the rest
    )
    acks = list(wire.read_acks(stream))
    assert [(a.kind, a.count, a.reason) for a in acks] == [
        (wire.HEALTH, 0, None),
        (wire.COMMITTED, 8, None),
        (wire.FAILED, 3, "disk_full"),
    ]
    assert len(stream) == 4
    stream += wire.ack(wire.FAILED, 1, "something new")[4:]
    (last,) = wire.read_acks(stream)
    assert last.reason == "store_error"  # an unknown reason is a store error, as counted


@pytest.mark.parametrize(
    "raw", [b"Z\xff\x00\x00\x00\x01", b"K\x63\x00\x00\x00\x01"], ids=["kind", "reason"]
)
def test_an_ack_that_is_not_the_writers_breaks_the_stream(raw: bytes) -> None:
    with pytest.raises(wire.WireError):
        list(wire.read_acks(bytearray(raw)))
