"""Outcome feedback and live monitoring against a live service, checked independently: the
figures /monitoring gives equal a recomputation with pandas and scikit-learn over the exported
record, survive a restart, and drift is flagged for shifted inputs but not for unshifted ones."""

import io
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from numpy.typing import NDArray
from scipy import optimize, stats
from scipy.special import expit, logit
from sklearn.metrics import brier_score_loss, roc_auc_score

from app.monitoring.figures import FIGURE_NAMES
from app.monitoring.typicality import Typicality
from app.record.chain import ChainHead
from app.record.config import RecordConfig
from app.record.store import open_store
from model.artifact import Artifact
from model.calibration import LOG_LOSS_EPS
from model.data import Dataset
from model.features import FEATURE_NAMES
from scripts.monitoring_live import firing
from tests.live_server import REPO_ROOT, LiveServer, server_env, start_server
from tests.record_records import Answers

KEY = "monitoring-test-key"
DRIFT_WINDOW = 200
REFRESH_SECONDS = 1
WINDOW = 100


def instances(rows: np.ndarray) -> list[dict[str, int]]:
    return [dict(zip(FEATURE_NAMES, (int(v) for v in row), strict=True)) for row in rows]


@pytest.fixture(scope="module")
def record_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("record")


def serve_env(env: dict[str, str]) -> Any:
    return start_server(env)


def serve(record_dir: Path) -> Any:
    env = {
        "API_KEYS": f"lab={KEY}",
        "RECORD_DIR": str(record_dir),
        "DRIFT_WINDOW": str(DRIFT_WINDOW),
        "MONITORING_WINDOW": str(WINDOW),
        "MONITORING_REFRESH_SECONDS": str(REFRESH_SECONDS),
    }
    return start_server(env)


@pytest.fixture(scope="module")
def live(record_dir: Path) -> Iterator[LiveServer]:
    with serve(record_dir) as server:
        yield server


@pytest.fixture(scope="module")
def client(live: LiveServer) -> Iterator[httpx.Client]:
    # Idle connections expire before the server's keep-alive (5 s) closes them under us.
    limits = httpx.Limits(keepalive_expiry=2)
    with httpx.Client(
        base_url=live.url, headers={"X-API-Key": KEY}, timeout=60, limits=limits
    ) as http:
        yield http


@pytest.fixture(scope="module")
def confirmed(client: httpx.Client, dataset: Dataset) -> dict[str, Any]:
    """300 cases of the data set scored in three batches, their true outcomes fed back."""
    rng = np.random.default_rng(7)
    picked = rng.choice(len(dataset.X), size=300, replace=False)
    outcomes = []
    for part in np.array_split(picked, 3):
        answer = client.post("/predict/batch", json={"instances": instances(dataset.X[part])})
        assert answer.status_code == 200
        request_id = answer.headers["X-Request-ID"]
        outcomes += [
            {"request_id": request_id, "row": i, "outcome": ("benign", "malignant")[int(y)]}
            for i, y in enumerate(dataset.y[part])
        ]
    stored = client.post("/feedback/batch", json={"outcomes": outcomes})
    assert stored.status_code == 200
    assert {r["status"] for r in stored.json()["results"]} == {"created"}
    monitoring = client.get("/monitoring")
    assert monitoring.status_code == 200
    figures: dict[str, Any] = monitoring.json()
    return figures


def export(record_dir: Path) -> pd.DataFrame:
    done = subprocess.run(
        [sys.executable, "-m", "app", "audit", "export", "--format", "csv"],
        cwd=REPO_ROOT,
        env=server_env({"RECORD_DIR": str(record_dir)}),
        capture_output=True,
        check=True,
    )
    return pd.read_csv(io.BytesIO(done.stdout))


@pytest.mark.parametrize(
    ("body", "status", "kind"),
    [
        ({"request_id": "no-such-request", "outcome": "benign"}, 404, "unknown_prediction"),
        ({"request_id": "x", "outcome": "cancer"}, 422, "literal_error"),
        ({"request_id": "x", "outcome": "benign", "row": -1}, 422, "greater_than_equal"),
        ({"request_id": "x y", "outcome": "benign"}, 422, "string_pattern_mismatch"),
        ({"request_id": "x", "outcome": "benign", "patient": "Jane"}, 422, "extra_forbidden"),
        ({"outcome": "benign"}, 422, "missing"),
    ],
)
def test_bad_feedback_is_refused_with_the_error_contract(
    client: httpx.Client, body: dict[str, Any], status: int, kind: str
) -> None:
    answer = client.post("/feedback", json=body)
    assert answer.status_code == status, answer.text
    assert answer.json()["detail"][0]["type"] == kind


def test_feedback_needs_the_api_key(live: LiveServer) -> None:
    answer = httpx.post(f"{live.url}/feedback", json={"request_id": "x", "outcome": "benign"})
    assert answer.status_code == 401
    assert httpx.get(f"{live.url}/monitoring").status_code == 401


def test_an_outcome_is_idempotent_and_a_change_is_an_explicit_correction(
    client: httpx.Client, dataset: Dataset
) -> None:
    answer = client.post("/predict", json=instances(dataset.X[:1])[0])
    ref = {"request_id": answer.headers["X-Request-ID"], "row": 0}
    first = client.post("/feedback", json={**ref, "outcome": "benign", "source": "histology"})
    again = client.post("/feedback", json={**ref, "outcome": "benign"})
    other = client.post("/feedback", json={**ref, "outcome": "malignant"})
    fixed = client.post("/feedback", json={**ref, "outcome": "malignant", "correction": True})
    no_row = client.post("/feedback", json={**ref, "row": 1, "outcome": "benign"})
    assert [first.status_code, again.status_code, other.status_code, fixed.status_code] == [
        200,
        200,
        409,
        200,
    ]
    assert (first.json()["status"], again.json()["status"]) == ("created", "unchanged")
    assert "benign is stored" in other.json()["message"]
    assert fixed.json() | {} == {
        **ref,
        "outcome": "malignant",
        "status": "corrected",
        "previous": "benign",
    }
    assert no_row.status_code == 404
    # back to what histology said, so that the figures below count the true outcome
    client.post("/feedback", json={**ref, "outcome": "benign", "correction": True})


Triple = tuple[float, float | None, float | None]


def wilson_offline(k: int, n: int) -> Triple:
    ci = stats.binomtest(k, n).proportion_ci(0.95, method="wilson")
    return k / n, ci.low, ci.high


def roc_auc_offline(p: np.ndarray, y: np.ndarray) -> Triple:
    """scikit-learn's AUC; DeLong's interval from the pairwise definition (every malignant
    against every benign case, ties one half), on the logit scale."""
    auc = roc_auc_score(y, p)
    pairs = np.sign(p[y][:, None] - p[~y][None, :]) / 2 + 0.5
    variance = pairs.mean(1).var(ddof=1) / y.sum() + pairs.mean(0).var(ddof=1) / (~y).sum()
    half = stats.norm.ppf(0.975) * np.sqrt(variance) / (auc * (1 - auc))
    centre = np.log(auc / (1 - auc))
    return auc, expit(centre - half), expit(centre + half)


def brier_offline(p: np.ndarray, y: np.ndarray) -> Triple:
    squared = (p - y) ** 2
    low, high = stats.norm.interval(0.95, loc=squared.mean(), scale=stats.sem(squared))
    return brier_score_loss(y, p), max(low, 0.0), min(high, 1.0)  # a Brier score is in [0, 1]


def ece_offline(frame: pd.DataFrame) -> Triple:
    """Ten equal-width bins (p = 1 in the last); its interval is a seeded bootstrap: no exact
    method to recompute it with."""
    binned = frame.assign(bin=np.minimum(np.floor(frame["probability"] * 10), 9))
    groups = binned.groupby("bin").agg(n=("y", "size"), p=("probability", "mean"), y=("y", "mean"))
    return float((groups["n"] * (groups["p"] - groups["y"]).abs()).sum() / len(frame)), None, None


def calibration_offline(p: np.ndarray, y: np.ndarray) -> tuple[Triple, Triple]:
    """The intercept (slope held at 1) and the slope, each the root of its score equations
    (SciPy), with its Wald interval from the information at the root."""
    x = logit(np.clip(p, LOG_LOSS_EPS, 1 - LOG_LOSS_EPS))  # the log-loss clip, as validated
    z = stats.norm.ppf(0.975)

    def mu(a: float, b: float) -> np.ndarray:
        return np.asarray(expit(a + b * x))

    a = optimize.brentq(lambda a: float(np.sum(y - mu(a, 1.0))), -20, 20, xtol=1e-15)
    a_half = z / np.sqrt(np.sum(mu(a, 1.0) * (1 - mu(a, 1.0))))

    def information(beta: np.ndarray) -> np.ndarray:
        w = mu(*beta) * (1 - mu(*beta))
        return np.array([[w.sum(), (w * x).sum()], [(w * x).sum(), (w * x * x).sum()]])

    def score(beta: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        residual = y - mu(*beta)
        return np.array([residual.sum(), (x * residual).sum()]), -information(beta)

    root = optimize.root(score, np.array([0.0, 1.0]), jac=True, options={"xtol": 1e-15})
    b_half = z * np.sqrt(np.linalg.inv(information(root.x))[1, 1])
    slope = float(root.x[1])
    return (a, a - a_half, a + a_half), (slope, slope - b_half, slope + b_half)


def offline_figures(frame: pd.DataFrame, typicality: Typicality) -> dict[str, Triple]:
    """The figures over exported confirmed cases, recomputed with pandas, scikit-learn and
    SciPy; `refer` reads the prediction set and the typicality of the exported scores."""
    y = frame["y"].to_numpy(dtype=bool)
    p = frame["probability"].to_numpy()
    called = p > frame["threshold"].to_numpy()
    sets = frame["prediction_set"].fillna("")
    holds_benign = sets.str.contains("benign").to_numpy()
    holds_malignant = sets.str.contains("malignant").to_numpy()
    atypical = typicality.atypical_rows(frame[list(FEATURE_NAMES)].to_numpy(dtype=np.int64))
    refer = (holds_benign == holds_malignant) | atypical
    tp, fn = int(np.sum(called & y)), int(np.sum(~called & y))
    tn, fp = int(np.sum(~called & ~y)), int(np.sum(called & ~y))
    intercept, slope = calibration_offline(p, y.astype(np.int8))
    return {
        "sensitivity": wilson_offline(tp, tp + fn),
        "specificity": wilson_offline(tn, tn + fp),
        "ppv": wilson_offline(tp, tp + fp),
        "npv": wilson_offline(tn, tn + fn),
        "roc_auc": roc_auc_offline(p, y),
        "brier": brier_offline(p, y),
        "ece": ece_offline(frame),
        "calibration_intercept": intercept,
        "calibration_slope": slope,
        "coverage_benign": wilson_offline(int(np.sum(holds_benign & ~y)), int(np.sum(~y))),
        "coverage_malignant": wilson_offline(int(np.sum(holds_malignant & y)), int(np.sum(y))),
        "refer_rate": wilson_offline(int(refer.sum()), len(y)),
    }


@pytest.mark.parametrize("window", ["cumulative", "recent"])
def test_monitoring_equals_an_offline_recomputation(
    confirmed: dict[str, Any], record_dir: Path, artifact: Artifact, window: str
) -> None:
    """Every figure and every interval with an exact method (all but ECE's bootstrap), to
    1e-12, over the cases confirmed in the order the outcomes arrived."""
    frame = export(record_dir)
    cases = frame[frame["outcome"].notna()].sort_values(["outcome_at_ns", "request_id", "row"])
    cases = cases.assign(y=(cases["outcome"] == "malignant").astype(int))
    if window == "recent":
        cases = cases.tail(WINDOW)
    live = confirmed["overall"][window]
    assert (live["n"], live["n_benign"], live["n_malignant"]) == (
        len(cases),
        int((cases["y"] == 0).sum()),
        int(cases["y"].sum()),
    )
    expected = offline_figures(cases, Typicality.from_artifact(artifact))
    assert set(expected) == set(FIGURE_NAMES)
    for name, triple in expected.items():
        got = live[name]
        for bound, value in zip(("value", "lower", "upper"), triple, strict=True):
            if value is None:  # no exact method: the ECE bootstrap's interval
                continue
            assert got[bound] == pytest.approx(value, abs=1e-12), (name, bound)
    # beside the validated figures
    assert confirmed["validated"]["sensitivity"]["value"] > 0.9


def test_a_second_process_on_the_same_record_agrees(
    confirmed: dict[str, Any], record_dir: Path
) -> None:
    with serve(record_dir) as again:
        answer = httpx.get(f"{again.url}/monitoring", headers={"X-API-Key": KEY}, timeout=60)
    assert answer.json()["overall"] == confirmed["overall"]


def monitoring_now(server: LiveServer) -> dict[str, Any]:
    """/monitoring without the time it was computed at and how long that took."""
    answer = httpx.get(f"{server.url}/monitoring", headers={"X-API-Key": KEY}, timeout=60)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    del body["computed_at"], body["compute_seconds"]
    return body


def confirm(
    server: LiveServer, key: str, dataset: Dataset, rng: np.random.Generator
) -> list[dict[str, Any]]:
    """40 cases scored with `key`'s caller, their true outcomes sent, /monitoring refreshed."""
    picked = rng.choice(len(dataset.X), 40, replace=False)
    with httpx.Client(base_url=server.url, headers={"X-API-Key": key}, timeout=60) as http:
        answer = http.post("/predict/batch", json={"instances": instances(dataset.X[picked])})
        request_id = answer.headers["X-Request-ID"]
        outcomes = [
            {"request_id": request_id, "row": i, "outcome": ("benign", "malignant")[int(y)]}
            for i, y in enumerate(dataset.y[picked])
        ]
        assert http.post("/feedback/batch", json={"outcomes": outcomes}).status_code == 200
    monitoring_now(server)
    return outcomes


def test_a_restart_changes_no_figure(dataset: Dataset, tmp_path: Path) -> None:
    """The service stopped and started again on its record: every figure, interval, caller and
    the drift report are what they were (read incrementally before, rebuilt after), a
    corrected outcome included."""
    env = {
        "API_KEYS": f"lab={KEY},clinic=other-key",
        "RECORD_DIR": str(tmp_path / "record"),
        "DRIFT_WINDOW": "50",
        "MONITORING_WINDOW": "40",
    }
    rng = np.random.default_rng(5)
    with serve_env(env) as first:
        sent = [confirm(first, key, dataset, rng) for key in (KEY, "other-key")]
        first_outcome = sent[0][0]
        flipped = "malignant" if first_outcome["outcome"] == "benign" else "benign"
        fixed = {**first_outcome, "outcome": flipped, "correction": True}
        answer = httpx.post(f"{first.url}/feedback", json=fixed, headers={"X-API-Key": KEY})
        assert answer.status_code == 200
        monitoring_now(first)  # a full read: the correction changed a held case
        confirm(first, KEY, dataset, rng)  # then only the new cases are read
        before = monitoring_now(first)
    assert first.returncode is not None  # stopped
    with serve_env(env) as second:
        after = monitoring_now(second)
    assert before["overall"]["cumulative"]["n"] == 120
    assert set(before["callers"]) == {"lab", "clinic"}
    assert before["drift"] is not None
    assert after == before


def test_the_answers_of_another_model_are_not_counted(dataset: Dataset, tmp_path: Path) -> None:
    """A record kept across a change of model: outcomes of the earlier model's answers are
    stored (and exported), but the figures are the served model's alone."""
    config = RecordConfig(tmp_path / "record")
    earlier = Answers(prefix="earlier").batch(4, model_version="0" * 64)
    with open_store(config) as store:
        store.migrate()
        head = ChainHead("earlier-model")
        store.append(head, head.extend([earlier]), 0)
    env = {"API_KEYS": f"lab={KEY}", "RECORD_DIR": str(config.record_dir)}
    with (
        serve_env(env) as server,
        httpx.Client(base_url=server.url, headers={"X-API-Key": KEY}, timeout=60) as http,
    ):
        served = http.get("/model").json()["model_version"]
        answer = http.post("/predict/batch", json={"instances": instances(dataset.X[:3])})
        ours = answer.headers["X-Request-ID"]
        outcomes = [
            {"request_id": request_id, "row": row, "outcome": "malignant"}
            for request_id, rows in ((ours, 3), (earlier.request_id, 4))
            for row in range(rows)
        ]
        stored = http.post("/feedback/batch", json={"outcomes": outcomes}).json()["results"]
        assert [r["status"] for r in stored] == ["created"] * 7
        figures = http.get("/monitoring").json()
    assert figures["model_version"] == served != earlier.model_version[:12]
    assert figures["overall"]["cumulative"]["n"] == 3


def drift_alarms(client: httpx.Client, rows: np.ndarray) -> dict[str, bool]:
    for part in np.array_split(rows, 2):
        assert client.post("/predict/batch", json={"instances": instances(part)}).status_code == 200
    time.sleep(REFRESH_SECONDS + 0.1)  # the figures may be that old before they are recomputed
    answer = client.get("/monitoring")
    assert answer.status_code == 200, answer.text
    report = answer.json()["drift"]
    assert report is not None
    assert report["window"] == DRIFT_WINDOW
    alarms: dict[str, bool] = report["alarms"]
    return alarms


def test_drift_is_flagged_for_shifted_inputs_only(
    client: httpx.Client, dataset: Dataset, confirmed: dict[str, Any]
) -> None:
    rng = np.random.default_rng(11)
    unshifted = dataset.X[rng.choice(len(dataset.X), DRIFT_WINDOW, replace=False)]
    assert not any(drift_alarms(client, unshifted).values())
    shifted = unshifted.copy()
    column = FEATURE_NAMES.index("bare_nuclei")
    shifted[:, column] = np.minimum(shifted[:, column] + 2, 10)
    alarms = drift_alarms(client, shifted)
    assert alarms["bare_nuclei"]


def shape(value: Any) -> Any:
    """The keys of every object, recursively; lists by their first item."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    return None


def test_the_documented_answer_has_the_live_answers_shape(
    live: LiveServer, client: httpx.Client, confirmed: dict[str, Any]
) -> None:
    spec = httpx.get(f"{live.url}/openapi.json").json()
    content = spec["paths"]["/monitoring"]["get"]["responses"]["200"]["content"]
    example = content["application/json"]["examples"]["no_outcomes_yet"]["value"]
    assert example["overall"]["cumulative"]["n"] == 0
    assert example["validated"] == confirmed["validated"]
    documented, served = shape(example), shape(confirmed)
    for answer in (documented, served):
        answer.pop("drift")  # null until a full window
        answer.pop("callers")  # one entry per caller with confirmed cases
    assert documented == served
    assert shape(confirmed["callers"]["lab"]) == shape(example["overall"])


@pytest.mark.slow
def test_injected_miscalibration_is_detected_against_a_live_service(
    dataset: Dataset, tmp_path: Path
) -> None:
    """Cases of the data set streamed to a live service with their outcomes: no alarm while the
    outcomes are true; after 200 cases, one benign outcome in ten reported malignant, as the
    simulation does in process: an alarm fires within 400 more cases (the in-process
    simulation's p90 is 142; this run's delay is printed)."""
    rng = np.random.default_rng(2024)
    env = {
        "RECORD_DIR": str(tmp_path / "record"),
        "MONITORING_REFRESH_SECONDS": "1",
        "MONITORING_WINDOW": "200",
    }
    with serve_env(env) as server, httpx.Client(base_url=server.url, timeout=60) as client:
        order = rng.permutation(len(dataset.X))
        detected_after = None
        for step, part in enumerate(np.array_split(order[:600], 30)):
            answer = client.post("/predict/batch", json={"instances": instances(dataset.X[part])})
            request_id = answer.headers["X-Request-ID"]
            outcomes = []
            for i, y in enumerate(dataset.y[part]):
                flip = step >= 10 and y == 0 and rng.random() < 0.1
                outcomes.append(
                    {
                        "request_id": request_id,
                        "row": i,
                        "outcome": "malignant" if (y == 1 or flip) else "benign",
                    }
                )
            assert client.post("/feedback/batch", json={"outcomes": outcomes}).status_code == 200
            fired = firing(client.get("/monitoring").json()["overall"]["recent"])
            if step < 10:
                assert fired == [], (step, fired)  # true outcomes: no false alarm
            elif fired and detected_after is None:
                detected_after = (step - 9) * len(part)
    print(f"\nmiscalibration detected after {detected_after} cases")
    assert detected_after is not None
