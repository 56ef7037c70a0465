"""The nine cytology scores the model reads, in the order the network expects them."""

from typing import Final

FEATURE_NAMES: Final[tuple[str, ...]] = (
    "clump_thickness",
    "uniformity_of_cell_size",
    "uniformity_of_cell_shape",
    "marginal_adhesion",
    "single_epithelial_cell_size",
    "bare_nuclei",
    "bland_chromatin",
    "normal_nucleoli",
    "mitoses",
)
N_FEATURES: Final = len(FEATURE_NAMES)
SCORE_MIN: Final = 1
SCORE_MAX: Final = 10

# The UCI file codes the class as 2 (benign) and 4 (malignant); the network predicts 1 for
# malignant.
BENIGN_CODE: Final = 2
MALIGNANT_CODE: Final = 4
CLASS_NAMES: Final[tuple[str, str]] = ("benign", "malignant")
