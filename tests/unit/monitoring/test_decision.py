"""The refer decision: every prediction set and typicality, against the rules as stated."""

import numpy as np
import pytest

from app.monitoring.decision import (
    DECISIONS,
    REASONS,
    SET_BENIGN,
    SET_BOTH,
    SET_CODES,
    SET_MALIGNANT,
    SET_NONE,
    decide,
    decide_many,
    decision_indices,
    set_code,
)


@pytest.mark.parametrize("code", SET_CODES)
@pytest.mark.parametrize("atypical", [False, True])
def test_decision_follows_the_rules(code: int, atypical: bool) -> None:
    decision, reasons = decide(code, atypical)
    single = {SET_BENIGN: "benign", SET_MALIGNANT: "malignant"}
    expected_reasons = [
        reason
        for reason, applies in (
            ("both_classes", code == SET_BOTH),
            ("no_class", code == SET_NONE),
            ("atypical_input", atypical),
        )
        if applies
    ]
    assert list(reasons) == expected_reasons
    assert decision == ("refer" if expected_reasons else single[code])
    assert decision in DECISIONS
    assert set(reasons) <= set(REASONS)


@pytest.mark.parametrize(
    ("benign", "malignant", "code"),
    [
        (False, False, SET_NONE),
        (True, False, SET_BENIGN),
        (False, True, SET_MALIGNANT),
        (True, True, SET_BOTH),
    ],
)
def test_set_code_of_memberships(benign: bool, malignant: bool, code: int) -> None:
    assert set_code(benign, malignant) == code


@pytest.mark.parametrize("code", [-1, 4, 100])
def test_other_codes_are_refused(code: int) -> None:
    with pytest.raises(ValueError, match=r"not 0\.\.3"):
        decide(code, False)


def test_decide_many_is_decide_per_row() -> None:
    codes = [c for c in SET_CODES for _ in (0, 1)]
    flags = [bool(i % 2) for i in range(len(codes))]
    assert decide_many(codes, flags) == [decide(c, a) for c, a in zip(codes, flags, strict=True)]


@pytest.mark.parametrize(("codes", "flags"), [([1, 2], [False]), ([1, 5], [False, False])])
def test_decide_many_refuses_bad_input(codes: list[int], flags: list[bool]) -> None:
    with pytest.raises(ValueError, match=r"one atypical|0\.\.3"):
        decide_many(codes, flags)


def test_decision_indices_are_decides_decisions() -> None:
    codes = np.array([c for c in SET_CODES for _ in (False, True)], dtype=np.uint8)
    atypical = np.array([a for _ in SET_CODES for a in (False, True)])
    expected = [DECISIONS.index(decide(c, a)[0]) for c, a in zip(codes, atypical, strict=True)]
    assert decision_indices(codes, atypical).tolist() == expected


@pytest.mark.parametrize("code", [-1, 4])
def test_decision_indices_refuse_a_bad_code(code: int) -> None:
    with pytest.raises(ValueError, match=r"0\.\.3"):
        decision_indices(np.array([1, code]), np.array([False, False]))
