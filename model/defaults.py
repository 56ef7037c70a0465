"""The configuration the committed artifact is trained with, chosen by cross-validation: the one
place the training defaults are written (`TwoLayerNet`'s and `TrainingSettings`' defaults are
these). How they were chosen: docs/model-card.md and `scripts/evaluate/`.
"""

from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True)
class ServedConfig:
    split: str
    lr: float
    iterations: int
    hidden: int
    seed: int
    threshold: float


SERVED: Final = ServedConfig(
    split="stratified", lr=0.01, iterations=15000, hidden=15, seed=1, threshold=0.2
)
