"""PNG plots of a training run: loss curve, validation confusion matrix, validation ROC curve,
validation reliability diagram."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display on servers or in CI
import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from model.calibration import ECE_BINS, reliability
from model.metrics import roc_curve
from model.training import TrainingResult

# Fixed metadata keeps the PNG bytes identical from run to run.
PNG_METADATA = {"Software": None}


def _save(fig: Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=100, metadata=PNG_METADATA)
    plt.close(fig)
    return path


def loss_curve(result: TrainingResult, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(6, 4))
    steps, losses = zip(*result.loss_curve, strict=True)
    ax.plot(steps, losses)
    ax.set(xlabel="iteration", ylabel="training loss (BCE)", title="Training loss")
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    return _save(fig, path)


def confusion(result: TrainingResult, path: Path) -> Path:
    art = result.artifact
    cm = art.validation_metrics().confusion.as_list()
    fig, ax = plt.subplots(figsize=(4.5, 4))
    ax.imshow(cm, cmap="Blues")
    peak = max(max(row) for row in cm)
    for i, row in enumerate(cm):
        for j, count in enumerate(row):
            color = "white" if count > peak / 2 else "black"
            ax.text(j, i, str(count), ha="center", va="center", color=color, fontsize=14)
    ax.set_xticks([0, 1], ["benign", "malignant"])
    ax.set_yticks([0, 1], ["benign", "malignant"])
    ax.set(xlabel="predicted", ylabel="actual")
    ax.set_title(f"Validation, threshold {art.default_threshold:g}")
    return _save(fig, path)


def roc(result: TrainingResult, path: Path) -> Path:
    art = result.artifact
    fpr, tpr = roc_curve(art.valid_y, art.valid_proba)
    auc = art.validation_metrics().roc_auc
    fig, ax = plt.subplots(figsize=(4.5, 4))
    ax.plot(fpr, tpr, drawstyle="steps-post", label=f"AUC = {auc:.4f}")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="Validation ROC")
    ax.legend(loc="lower right")
    return _save(fig, path)


def reliability_diagram(result: TrainingResult, path: Path) -> Path:
    """Per bin of predicted probability, the observed share of malignant rows against the
    bin's mean prediction; a calibrated model lies on the diagonal. Bars count rows per bin."""
    art = result.artifact
    bins = reliability(art.valid_y, art.valid_proba, ECE_BINS)
    ece = art.calibration_metrics().ece
    filled = bins.count > 0
    fig, (ax, counts) = plt.subplots(
        2, 1, figsize=(4.5, 5), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="perfectly calibrated")
    ax.plot(bins.mean_p[filled], bins.positive_rate[filled], marker="o", label=f"ECE = {ece:.4f}")
    ax.set(ylabel="observed share malignant", title="Validation reliability (10 bins)")
    ax.set_xlim(0, 1)
    ax.set_ylim(-0.02, 1.02)
    ax.legend(loc="upper left")
    width = 1.0 / ECE_BINS
    counts.bar(bins.lower, bins.count, width=width, align="edge", edgecolor="white")
    counts.set(xlabel="predicted P(malignant)", ylabel="rows")
    for lower, count in zip(bins.lower, bins.count, strict=True):
        if count:
            counts.text(lower + width / 2, count, str(count), ha="center", va="bottom", fontsize=8)
    counts.set_ylim(0, bins.count.max() * 1.3)
    return _save(fig, path)


def write_plots(result: TrainingResult, folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    return [
        loss_curve(result, folder / "loss.png"),
        confusion(result, folder / "confusion.png"),
        roc(result, folder / "roc.png"),
        reliability_diagram(result, folder / "reliability.png"),
    ]
