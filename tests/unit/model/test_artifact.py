"""The JSON artifact: round trip, determinism, reproduction of the committed file, corruption."""

import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from model.artifact import (
    FORMAT_VERSION,
    Artifact,
    ArtifactError,
    TrainingSettings,
    content_hash,
    load_artifact,
)
from model.data import Dataset
from model.defaults import SERVED
from model.training import train

QUICK = TrainingSettings(split="stratified", lr=0.05, iterations=300, hidden=15, seed=1)


@pytest.fixture(scope="module")
def quick_artifact(dataset: Dataset) -> Artifact:
    return train(dataset, QUICK).artifact


@pytest.fixture
def saved(tmp_path: Path, quick_artifact: Artifact) -> Path:
    path = tmp_path / "weights.json"
    quick_artifact.save(path)
    return path


def test_round_trip_is_exact(saved: Path, quick_artifact: Artifact, dataset: Dataset) -> None:
    loaded = load_artifact(saved)
    for name in ("W1_", "b1_", "W2_", "b2_"):
        assert (
            getattr(loaded.network, name).tobytes()
            == getattr(quick_artifact.network, name).tobytes()
        )
    np.testing.assert_array_equal(
        loaded.predict_proba(dataset.X), quick_artifact.predict_proba(dataset.X)
    )
    np.testing.assert_array_equal(loaded.valid_proba, quick_artifact.valid_proba)
    assert loaded.training == QUICK
    assert loaded.model_version == quick_artifact.model_version
    assert len(loaded.model_version) == 12
    assert loaded.validation_metrics() == quick_artifact.validation_metrics()
    for name in ("benign", "malignant"):
        stored = getattr(loaded.conformal, name)
        assert stored.tobytes() == getattr(quick_artifact.conformal, name).tobytes()
    assert loaded.calibration_metrics() == quick_artifact.calibration_metrics()


def test_file_holds_everything_the_service_and_a_reader_need(saved: Path) -> None:
    payload = json.loads(saved.read_text())
    assert payload["format_version"] == FORMAT_VERSION
    assert payload["architecture"]["layers"] == [9, 15, 1]
    assert [f["name"] for f in payload["features"]][:2] == [
        "clump_thickness",
        "uniformity_of_cell_size",
    ]
    assert {(f["min"], f["max"]) for f in payload["features"]} == {(1, 10)}
    assert set(payload["training"]) >= {
        "split",
        "lr",
        "iterations",
        "hidden",
        "seed",
        "data_sha256",
    }
    assert set(payload["metrics"]["validation"]) >= {"0.5", "0.7", "0.8", "0.9"}
    assert len(payload["validation"]["proba"]) == len(payload["validation"]["y_true"]) == 137
    conformal = payload["conformal"]
    assert (conformal["method"], conformal["folds"], conformal["mondrian"]) == (
        "cross-conformal",
        10,
        True,
    )
    # one out-of-fold score per training row: 444 - 89 benign, 239 - 48 malignant
    assert [len(conformal["scores"][c]) for c in ("benign", "malignant")] == [355, 191]
    assert payload["content_sha256"] == content_hash(payload)
    assert "time" not in saved.read_text().lower()


@pytest.mark.slow
def test_training_twice_gives_a_byte_identical_file(tmp_path: Path, dataset: Dataset) -> None:
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    train(dataset, QUICK).artifact.save(a)
    train(dataset, QUICK).artifact.save(b)
    assert a.read_bytes() == b.read_bytes()


@pytest.mark.slow
def test_default_training_reproduces_the_committed_artifact(
    artifact: Artifact, dataset: Dataset
) -> None:
    settings = TrainingSettings(
        split=SERVED.split,
        lr=SERVED.lr,
        iterations=SERVED.iterations,
        hidden=SERVED.hidden,
        seed=SERVED.seed,
    )
    assert artifact.training == settings, (
        "model/weights.json was not trained with model.defaults.SERVED"
    )
    assert artifact.default_threshold == SERVED.threshold
    assert artifact.data_sha256 == dataset.sha256
    fresh = train(dataset, settings, default_threshold=SERVED.threshold).artifact
    # identical metrics and classes; weights to a tight tolerance (BLAS may differ in last bits)
    assert fresh.valid_metrics == artifact.valid_metrics
    assert fresh.train_metrics == artifact.train_metrics
    t = artifact.default_threshold
    np.testing.assert_array_equal(
        fresh.predict_proba(dataset.X) > t, artifact.predict_proba(dataset.X) > t
    )
    for name in ("W1_", "b1_", "W2_", "b2_"):
        np.testing.assert_allclose(
            getattr(fresh.network, name), getattr(artifact.network, name), rtol=1e-9, atol=1e-12
        )
    for name in ("benign", "malignant"):
        np.testing.assert_allclose(
            getattr(fresh.conformal, name), getattr(artifact.conformal, name), atol=1e-12
        )
    assert (fresh.conformal.folds, fresh.conformal.fold_seed) == (10, SERVED.seed)


def test_save_is_atomic_when_interrupted(
    tmp_path: Path, quick_artifact: Artifact, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "weights.json"
    path.write_text("previous artifact")

    def interrupted(*_: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        quick_artifact.save(path)
    assert path.read_text() == "previous artifact"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["weights.json"]


# -- corrupt files ----------------------------------------------------------------------------
def rehashed(edit: Callable[[dict[str, Any]], object]) -> Callable[[str], str]:
    """An edit that keeps the content hash valid, so the later checks are reached."""

    def apply(text: str) -> str:
        payload = json.loads(text)
        edit(payload)
        payload["content_sha256"] = content_hash(payload)
        return json.dumps(payload)

    return apply


def tampered(edit: Callable[[dict[str, Any]], object]) -> Callable[[str], str]:
    """An edit made after writing, leaving the stored hash stale."""

    def apply(text: str) -> str:
        payload = json.loads(text)
        edit(payload)
        return json.dumps(payload)

    return apply


def _set(path: str, value: object) -> Callable[[dict[str, Any]], None]:
    def edit(payload: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = payload
        for key in parents:
            node = node[key]
        node[last] = value

    return edit


def _del(key: str) -> Callable[[dict[str, Any]], None]:
    return lambda payload: payload.pop(key)


def _scores(name: str, edit: Callable[[list[Any]], object]) -> Callable[[dict[str, Any]], None]:
    """Edit one class's scores in the JSON payload, where they may be made anything at all."""

    def apply(payload: dict[str, Any]) -> None:
        edit(payload["conformal"]["scores"][name])

    return apply


CONFORMAL_CORRUPTIONS: list[tuple[str, Callable[[str], str], str]] = [
    (
        "tampered calibration score",
        tampered(_scores("malignant", lambda s: s.__setitem__(-1, 0.0))),
        "content hash mismatch",
    ),
    ("no conformal", rehashed(_del("conformal")), "missing field 'conformal'"),
    (
        "unknown conformal method",
        rehashed(_set("conformal.method", "jackknife")),
        "conformal method must be one of cross-conformal",
    ),
    ("marginal", rehashed(_set("conformal.mondrian", False)), "must be class-conditional"),
    ("other score", rehashed(_set("conformal.score", "APS")), "must be class-conditional"),
    ("one fold", rehashed(_set("conformal.folds", 1)), "folds or fold_seed are out of range"),
    ("negative fold seed", rehashed(_set("conformal.fold_seed", -1)), "out of range"),
    ("bool folds", rehashed(_set("conformal.folds", True)), "field 'folds' has the wrong type"),
    (
        "unsorted scores",
        rehashed(_scores("benign", lambda s: s.reverse())),
        "benign scores must be sorted ascending",
    ),
    (
        "score above 1",
        rehashed(_scores("malignant", lambda s: s.__setitem__(-1, 1.5))),
        "malignant scores must be finite and within [0, 1]",
    ),
    (
        "negative score",
        rehashed(_scores("benign", lambda s: s.__setitem__(0, -0.5))),
        "benign scores must be finite and within [0, 1]",
    ),
    (
        "string score",
        rehashed(_scores("benign", lambda s: s.__setitem__(0, "0.1"))),
        "conformal benign scores is not a numeric array",
    ),
    (
        "nested scores",
        rehashed(_scores("benign", lambda s: s.__setitem__(0, [0.1]))),
        "conformal benign scores is not a numeric array",
    ),
    (
        "dropped score",
        rehashed(_scores("malignant", lambda s: s.pop())),
        "one per training row",
    ),
    (
        "scores as object",
        rehashed(_set("conformal.scores.benign", {"0": 0.1})),
        "field 'benign' has the wrong type",
    ),
    (
        "third class",
        rehashed(_set("conformal.scores.unsure", [])),
        "conformal scores must name exactly benign, malignant",
    ),
    (
        "no benign scores",
        rehashed(lambda p: p["conformal"]["scores"].pop("benign")),
        "conformal scores must name exactly benign, malignant",
    ),
]


CORRUPTIONS: list[tuple[str, Callable[[str], str], str]] = [
    ("truncated", lambda t: t[: len(t) // 2], "not valid JSON"),
    ("empty", lambda t: "", "not valid JSON"),
    ("not json", lambda t: "W1 = [[1, 2]]", "not valid JSON"),
    ("array", lambda t: "[1, 2]", "top level is not a JSON object"),
    ("tampered weight", tampered(_set("parameters.b2", [0.25])), "content hash mismatch"),
    ("tampered threshold", tampered(_set("default_threshold", 0.01)), "content hash mismatch"),
    (
        "nan token",
        lambda t: t.replace('"b2": [\n   ', '"b2": [\n   NaN, ', 1),
        "non-finite number NaN",
    ),
    (
        "other format",
        rehashed(_set("format", "something-else")),
        "not a malignancy-predictor/artifact file",
    ),
    (
        "future version",
        rehashed(_set("format_version", FORMAT_VERSION + 1)),
        f"format_version {FORMAT_VERSION + 1} is not supported",
    ),
    (
        "previous version",
        rehashed(_set("format_version", 1)),
        f"format_version 1 is not supported (expected {FORMAT_VERSION})",
    ),
    ("no background", rehashed(_del("background")), "missing field 'background'"),
    ("empty background", rehashed(_set("background.rows", [])), "background is empty"),
    (
        "background score 11",
        rehashed(lambda p: p["background"]["rows"][0].__setitem__(3, 11)),
        "background rows must be integer scores 1..10",
    ),
    (
        "background score 2.5",
        rehashed(lambda p: p["background"]["rows"][0].__setitem__(3, 2.5)),
        "background rows must be integer scores 1..10",
    ),
    (
        "background row of 8",
        rehashed(lambda p: p["background"]["rows"][0].pop()),
        "background rows is not a numeric array",
    ),
    (
        "background count 0",
        rehashed(lambda p: p["background"]["counts"].__setitem__(0, 0)),
        "background counts must be positive integers",
    ),
    (
        "background counts short",
        rehashed(lambda p: p["background"]["counts"].pop()),
        "background counts has shape",
    ),
    (
        "background counts off",
        rehashed(
            lambda p: p["background"]["counts"].__setitem__(0, p["background"]["counts"][0] + 1)
        ),
        "background counts do not add up to n_train",
    ),
    (
        "background rows repeated",
        rehashed(lambda p: p["background"]["rows"].__setitem__(1, p["background"]["rows"][0])),
        "background rows must be distinct and in lexicographic order",
    ),
    (
        "background rows unsorted",
        rehashed(lambda p: p["background"]["rows"].reverse()),
        "background rows must be distinct and in lexicographic order",
    ),
    ("no hash", tampered(_del("content_sha256")), "missing field 'content_sha256'"),
    (
        "wrong W1 shape",
        rehashed(_set("parameters.W1", [[0.0] * 9] * 3)),
        "W1 has shape (3, 9), expected (15, 9)",
    ),
    ("ragged W1", rehashed(_set("parameters.W1", [[0.0] * 9, [0.0]])), "W1 is not a numeric array"),
    ("string weight", rehashed(_set("parameters.b2", ["x"])), "b2 is not a numeric array"),
    (
        "overflowing literal",
        lambda t: t.replace('"b2": [', '"b2": [1e400, ', 1),
        "non-finite number",
    ),
    ("missing scaler", rehashed(_del("scaler")), "missing field 'scaler'"),
    ("scaler min > max", rehashed(_set("scaler.min", [11.0] * 9)), "scaler min exceeds max"),
    (
        "proba above 1",
        rehashed(lambda p: p["validation"]["proba"].__setitem__(0, 1.5)),
        "probabilities must lie in [0, 1]",
    ),
    (
        "label 2",
        rehashed(lambda p: p["validation"]["y_true"].__setitem__(0, 2)),
        "labels must be 0 or 1",
    ),
    (
        "length mismatch",
        rehashed(lambda p: p["validation"]["proba"].pop()),
        "validation proba has shape",
    ),
    ("threshold 2", rehashed(_set("default_threshold", 2)), "default_threshold must lie in [0, 1]"),
    (
        "threshold string",
        rehashed(_set("default_threshold", "0.5")),
        "field 'default_threshold' has the wrong type",
    ),
    (
        "renamed feature",
        rehashed(lambda p: p["features"][5].__setitem__("name", "bare_nucleoli")),
        "feature names differ",
    ),
    ("bad split", rehashed(_set("training.split", "random")), "training settings are out of range"),
    (
        "bool iterations",
        rehashed(_set("training.iterations", True)),
        "field 'iterations' has the wrong type",
    ),
    *CONFORMAL_CORRUPTIONS,
]


@pytest.mark.parametrize(
    ("case", "corrupt", "problem"), CORRUPTIONS, ids=[c[0] for c in CORRUPTIONS]
)
def test_corrupt_artifact_fails_with_one_line_naming_file_and_problem(
    saved: Path, case: str, corrupt: Callable[[str], str], problem: str
) -> None:
    text = saved.read_text()
    saved.write_text(corrupt(text))
    assert saved.read_text() != text, f"the {case} corruption did not change the file"
    with pytest.raises(ArtifactError) as err:
        load_artifact(saved)
    message = str(err.value)
    assert message.startswith(f"{saved}: ")
    assert problem in message
    assert "\n" not in message


@pytest.mark.parametrize("kind", ["missing", "directory", "binary"])
def test_unreadable_artifact_is_named(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "weights.json"
    if kind == "directory":
        path.mkdir()
    elif kind == "binary":
        path.write_bytes(b"\x80\x81\x00pickle")
    with pytest.raises(ArtifactError, match=f"^{path}: "):
        load_artifact(path)


def test_oversized_artifact_is_refused_without_parsing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import model.artifact as module

    monkeypatch.setattr(module, "MAX_ARTIFACT_BYTES", 100)
    path = tmp_path / "weights.json"
    path.write_text(" " * 101)
    with pytest.raises(ArtifactError, match="larger than 100 bytes"):
        load_artifact(path)


def test_model_package_never_unpickles(repo_root: Path) -> None:
    pattern = re.compile(r"import pickle|pickle\.loads?|joblib|allow_pickle|np\.load\(")
    for source in [*(repo_root / "model").glob("*.py"), *(repo_root / "app").glob("*.py")]:
        assert not pattern.search(source.read_text()), source


def test_predict_one_agrees_with_the_batch_path(artifact: Artifact, dataset: Dataset) -> None:
    extremes = [[1] * 9, [10] * 9, [1] * 8 + [10], [10] * 8 + [1]]
    rows = dataset.X.astype(int).tolist() + extremes
    batch = artifact.predict_proba(rows)
    one_by_one = [artifact.predict_one(row) for row in rows]
    assert all(isinstance(p, float) for p in one_by_one)
    np.testing.assert_allclose(one_by_one, batch, rtol=1e-12, atol=1e-15)
