"""Examples for the docs page: two real rows of data/breast-cancer-wisconsin.csv, and the
explanation the service gives for one of them.

A test checks that both rows are in the data file with the class named here.
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
}

EXPLAIN_EXAMPLES: Final[dict[str, dict[str, Any]]] = {
    name: PREDICT_EXAMPLES[name] for name in ("malignant", "benign")
}

# What /explain answers for MALIGNANT with the committed artifact (tests/api/test_explain.py
# checks it against the live service, so a retrain that changes it fails until it is updated).
EXPLANATION_EXAMPLE: Final[dict[str, Any]] = {
    "probability": 0.9996704851839089,
    "class": "malignant",
    "threshold": 0.2,
    "model_version": "d8976b0bdcdb",
    "base_value": 0.3514820560026106,
    "contributions": {
        "clump_thickness": 0.0856784234082153,
        "uniformity_of_cell_size": 0.08416190535755996,
        "uniformity_of_cell_shape": 0.13299186831844137,
        "marginal_adhesion": 0.07583092723795572,
        "single_epithelial_cell_size": 0.012504179260958863,
        "bare_nuclei": 0.15359764797974623,
        "bland_chromatin": 0.04326441659257312,
        "normal_nucleoli": 0.06164481490666557,
        "mitoses": -0.0014857538808142642,
    },
    "log_odds": {
        "log_odds": 8.017559670539274,
        "base_value": -1.3999742622285165,
        "contributions": {
            "clump_thickness": 1.3005608241137931,
            "uniformity_of_cell_size": 1.2366550797963556,
            "uniformity_of_cell_shape": 1.8780785536317375,
            "marginal_adhesion": 1.1863392928451986,
            "single_epithelial_cell_size": 0.2821574105200999,
            "bare_nuclei": 1.8839388768032406,
            "bland_chromatin": 0.8821137635453344,
            "normal_nucleoli": 0.9192260168417845,
            "mitoses": -0.15153588532973566,
        },
    },
    "background_rows": 546,
}
