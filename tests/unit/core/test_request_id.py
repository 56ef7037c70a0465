"""Request ids: a client's sane id is kept; a new one is 32 hex digits, never repeated."""

import itertools
import os
import re

import pytest

from app.core import request_id
from app.core.request_id import accepted_or_new, new_request_id

HEX32 = re.compile(r"[0-9a-f]{32}")


@pytest.mark.parametrize("given", [b"abc-123", b"a" * 128, b"tool:case/7+x=y@z.q_r"])
def test_a_sane_id_is_kept(given: bytes) -> None:
    assert accepted_or_new(given) == given.decode()


@pytest.mark.parametrize("given", [None, b"", b"a" * 129, b"two words", b'quo"te', b"\xff"])
def test_anything_else_gets_a_new_id(given: bytes | None) -> None:
    assert HEX32.fullmatch(accepted_or_new(given))


def test_new_ids_do_not_repeat() -> None:
    ids = [new_request_id() for _ in range(10_000)]
    assert len(set(ids)) == len(ids)
    assert all(HEX32.fullmatch(i) for i in ids)


def test_another_process_with_the_same_counter_gets_other_ids(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A forked copy keeps the key and the counter; its pid keeps its ids apart."""

    def issued_as(pid: int) -> str:
        monkeypatch.setattr(request_id, "_issued", itertools.count(5))
        monkeypatch.setattr(os, "getpid", lambda: pid)
        return new_request_id()

    assert issued_as(1) == issued_as(1)  # the same key, pid and count: the same id
    assert issued_as(1) != issued_as(2)
