"""Request examples for the docs page: real rows of data/breast-cancer-wisconsin.csv.

A test checks that each row is in the data file with the class named here.
"""

from typing import Any, Final

# sample id 1000025, line 1 of the file, class 2 (benign)
BENIGN_SAMPLE_ID: Final = 1000025
BENIGN: Final[dict[str, int]] = {
    "clump_thickness": 5,
    "uniformity_of_cell_size": 1,
    "uniformity_of_cell_shape": 1,
    "marginal_adhesion": 1,
    "single_epithelial_cell_size": 2,
    "bare_nuclei": 1,
    "bland_chromatin": 3,
    "normal_nucleoli": 1,
    "mitoses": 1,
}

# sample id 1017122, line 6 of the file, class 4 (malignant)
MALIGNANT_SAMPLE_ID: Final = 1017122
MALIGNANT: Final[dict[str, int]] = {
    "clump_thickness": 8,
    "uniformity_of_cell_size": 10,
    "uniformity_of_cell_shape": 10,
    "marginal_adhesion": 8,
    "single_epithelial_cell_size": 7,
    "bare_nuclei": 10,
    "bland_chromatin": 9,
    "normal_nucleoli": 7,
    "mitoses": 1,
}

# sample id 1041801, line 13 of the file, class 4 (malignant), with a probability between the
# classes: its prediction set is empty at 0.95 and holds both classes at 0.99 (refer, either way)
BORDERLINE_SAMPLE_ID: Final = 1041801
BORDERLINE: Final[dict[str, int]] = {
    "clump_thickness": 5,
    "uniformity_of_cell_size": 3,
    "uniformity_of_cell_shape": 3,
    "marginal_adhesion": 3,
    "single_epithelial_cell_size": 2,
    "bare_nuclei": 3,
    "bland_chromatin": 4,
    "normal_nucleoli": 4,
    "mitoses": 1,
}

PREDICT_EXAMPLES: Final[dict[str, dict[str, Any]]] = {
    "benign": {
        "summary": f"Benign biopsy (data set sample {BENIGN_SAMPLE_ID})",
        "value": BENIGN,
    },
    "malignant": {
        "summary": f"Malignant biopsy (data set sample {MALIGNANT_SAMPLE_ID})",
        "value": MALIGNANT,
    },
    "malignant_with_threshold": {
        "summary": "The malignant biopsy with a stricter threshold of 0.9",
        "value": {**MALIGNANT, "threshold": 0.9},
    },
    "borderline": {
        "summary": f"A borderline biopsy (sample {BORDERLINE_SAMPLE_ID}): refer",
        "description": (
            "Its probability lies between the classes. At the default confidence (0.95) its "
            'prediction_set is [] (no class fits), at 0.99 it is ["benign", "malignant"] '
            "(the model cannot tell): either way, refer it to a person."
        ),
        "value": BORDERLINE,
    },
    "borderline_at_0.99": {
        "summary": "The borderline biopsy at confidence 0.99: both classes, refer",
        "value": {**BORDERLINE, "confidence": 0.99},
    },
}

BATCH_EXAMPLES: Final[dict[str, dict[str, Any]]] = {
    "benign_and_malignant": {
        "summary": f"Samples {BENIGN_SAMPLE_ID} (benign) and {MALIGNANT_SAMPLE_ID} (malignant)",
        "value": {"instances": [BENIGN, MALIGNANT]},
    },
    "with_threshold": {
        "summary": "The same two biopsies with threshold 0.8",
        "value": {"instances": [BENIGN, MALIGNANT], "threshold": 0.8},
    },
    "with_confidence": {
        "summary": "Benign, malignant and borderline biopsies at confidence 0.99",
        "value": {"instances": [BENIGN, MALIGNANT, BORDERLINE], "confidence": 0.99},
    },
}

EXPLAIN_EXAMPLES: Final[dict[str, dict[str, Any]]] = {
    name: PREDICT_EXAMPLES[name] for name in ("malignant", "benign")
}
