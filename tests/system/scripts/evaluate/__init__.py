"""Tests of scripts/evaluate/, one module per module; the fast network they share."""

from pathlib import Path

from scripts.evaluate.common import NetConfig

REPO = Path(__file__).resolve().parents[4]

FAST = NetConfig(lr=0.07, iterations=200, hidden=15, seed=1)
MODELS = ("TwoLayerNet", "LogisticRegression", "SVC (RBF)", "RandomForest", "kNN (k = 5)")
SCALED = ("net", "LogisticRegression", "SVC (RBF)", "kNN (k = 5)")
