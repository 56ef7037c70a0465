"""The decision every answer carries: `benign`, `malignant` or `refer`, and why it refers.

A prediction set holding exactly one class is a decision for that class, unless the input is
atypical (app/monitoring/typicality.py). Everything else is a referral, with its reasons from a
fixed set, in a fixed order:

- `both_classes`: the set holds both classes: the model cannot tell them apart at the confidence;
- `no_class`: the set is empty: neither class fits the calibration rows at the confidence;
- `atypical_input`: the score vector is unlike the training rows, so no figure measured on them
  describes this answer.

The class at the threshold is left as it is (callers that use it keep it); the decision is added
beside it. The eight possible answers are built once and looked up: `decide` is on the hot path.
"""

from collections.abc import Sequence
from typing import Final, Literal

import numpy as np
from numpy.typing import NDArray

Decision = Literal["benign", "malignant", "refer"]
Reason = Literal["both_classes", "no_class", "atypical_input"]

DECISIONS: Final[tuple[Decision, ...]] = ("benign", "malignant", "refer")
REASONS: Final[tuple[Reason, ...]] = ("both_classes", "no_class", "atypical_input")

# Prediction-set codes: bit 0 benign in the set, bit 1 malignant in the set.
SET_NONE: Final = 0
SET_BENIGN: Final = 1
SET_MALIGNANT: Final = 2
SET_BOTH: Final = 3
SET_CODES: Final = (SET_NONE, SET_BENIGN, SET_MALIGNANT, SET_BOTH)


def set_code(benign_in_set: bool, malignant_in_set: bool) -> int:
    """The code of a prediction set from its two memberships (0 none .. 3 both)."""
    return int(benign_in_set) | (int(malignant_in_set) << 1)


def _build(code: int, atypical: bool) -> tuple[Decision, tuple[Reason, ...]]:
    reasons: list[Reason] = []
    if code == SET_BOTH:
        reasons.append("both_classes")
    elif code == SET_NONE:
        reasons.append("no_class")
    if atypical:
        reasons.append("atypical_input")
    if reasons:
        return "refer", tuple(reasons)
    return ("benign" if code == SET_BENIGN else "malignant"), ()


# Indexed by 2 * code + atypical.
_TABLE: Final = tuple(_build(code, atypical) for code in SET_CODES for atypical in (False, True))


def decide(prediction_set_code: int, atypical: bool) -> tuple[Decision, tuple[Reason, ...]]:
    """The decision and the reasons for a referral (empty unless the decision is `refer`).

    `prediction_set_code` is 0..3 (none, benign, malignant, both); any other raises ValueError.
    """
    if not 0 <= prediction_set_code <= SET_BOTH:
        raise ValueError(f"prediction set code {prediction_set_code!r} is not 0..3")
    return _TABLE[2 * prediction_set_code + atypical]


# The index in DECISIONS of each _TABLE entry, for `decision_indices`.
_DECISION_INDEX: Final = np.array([DECISIONS.index(d) for d, _ in _TABLE], dtype=np.uint8)


def decision_indices(
    prediction_set_codes: NDArray[np.integer], atypical: NDArray[np.bool_]
) -> NDArray[np.uint8]:
    """`decide`'s decision for each row of a batch, as its index in DECISIONS (the reasons are
    not built: V2's `decision` output carries the decision alone)."""
    if (
        prediction_set_codes.size
        and not 0 <= prediction_set_codes.min() <= prediction_set_codes.max() <= SET_BOTH
    ):
        raise ValueError("prediction set codes must be 0..3")
    return _DECISION_INDEX[2 * prediction_set_codes.astype(np.intp) + atypical]


def decide_many(
    prediction_set_codes: Sequence[int], atypical: Sequence[bool]
) -> list[tuple[Decision, tuple[Reason, ...]]]:
    """`decide` for each row of a batch (codes and flags as lists, e.g. from `.tolist()`)."""
    if len(prediction_set_codes) != len(atypical):
        raise ValueError("one atypical flag per prediction set code")
    if any(not 0 <= code <= SET_BOTH for code in prediction_set_codes):
        raise ValueError("prediction set codes must be 0..3")
    return [_TABLE[2 * c + a] for c, a in zip(prediction_set_codes, atypical, strict=True)]
