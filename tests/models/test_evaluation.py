from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from setpoint.models.evaluation import METRICS, evaluate, overfit_gap, segment_metrics

rng = np.random.default_rng(0)
Y = rng.integers(0, 2, 300)
P1 = np.clip(Y * 0.6 + rng.uniform(0, 0.4, 300), 0, 1)
PROBA = np.column_stack([1 - P1, P1])
PRED = (P1 > 0.5).astype(int)


def test_binary_metrics_agree_with_scikit_learn() -> None:
    got = evaluate(Y, PRED, PROBA, task="classification", classes=[0, 1])
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(Y, PRED))
    assert got["f1"] == pytest.approx(skm.f1_score(Y, PRED))
    assert got["roc_auc"] == pytest.approx(skm.roc_auc_score(Y, P1))
    assert got["log_loss"] == pytest.approx(skm.log_loss(Y, PROBA))
    assert got["brier"] == pytest.approx(skm.brier_score_loss(Y, P1))
    assert set(got) == {m.name for m in METRICS.values() if m.task == "classification"}


def test_string_labels_take_the_last_class_as_positive() -> None:
    labels = np.where(Y == 1, "yes", "no")
    got = evaluate(
        labels,
        np.where(PRED == 1, "yes", "no"),
        PROBA,
        task="classification",
        classes=["no", "yes"],
    )
    assert got["f1"] == pytest.approx(skm.f1_score(Y, PRED))
    assert got["roc_auc"] == pytest.approx(skm.roc_auc_score(Y, P1))


def test_multiclass_metrics() -> None:
    y = rng.integers(0, 3, 200)
    proba = rng.dirichlet([1, 1, 1], 200)
    pred = proba.argmax(axis=1)
    got = evaluate(y, pred, proba, task="classification", classes=[0, 1, 2])
    assert got["roc_auc"] == pytest.approx(skm.roc_auc_score(y, proba, multi_class="ovr"))
    assert got["f1"] == pytest.approx(skm.f1_score(y, pred, average="macro"))
    assert got["brier"] is None


def test_regression_metrics_agree_with_scikit_learn() -> None:
    y = rng.normal(10, 2, 100)
    pred = y + rng.normal(0, 1, 100)
    got = evaluate(y, pred, None, task="regression", classes=None)
    assert got["rmse"] == pytest.approx(np.sqrt(skm.mean_squared_error(y, pred)))
    assert got["mae"] == pytest.approx(skm.mean_absolute_error(y, pred))
    assert got["r2"] == pytest.approx(skm.r2_score(y, pred))


def test_undefined_metrics_are_none_without_warnings() -> None:
    ones = np.ones(10, dtype=int)
    got = evaluate(
        ones,
        ones,
        np.column_stack([np.zeros(10), np.ones(10)]),
        task="classification",
        classes=[0, 1],
    )
    assert got["roc_auc"] is None
    assert got["balanced_accuracy"] is None
    assert evaluate([1.0], [2.0], None, task="regression", classes=None)["r2"] is None
    assert evaluate([0.0, 1.0], [0.5, 1.0], None, task="regression", classes=None)["mape"] is None


def test_segments_report_counts_and_skip_tiny_ones() -> None:
    segment = np.where(np.arange(300) < 290, "big", "tiny")
    got = segment_metrics(
        Y, PRED, PROBA, segment, task="classification", classes=[0, 1], metrics=["accuracy"]
    )
    assert got["big"] == {
        "n": 290,
        "accuracy": pytest.approx(skm.accuracy_score(Y[:290], PRED[:290])),
    }
    assert got["tiny"] == {"n": 10}


def test_the_gap_respects_the_direction_of_the_metric() -> None:
    higher = overfit_gap(
        {"roc_auc": 0.99}, {"roc_auc": 0.80}, task="classification", threshold=0.05
    )
    assert higher is not None
    assert higher["likely_overfit"]
    assert higher["relative_gap"] == pytest.approx(0.19 / 0.99)
    lower = overfit_gap({"rmse": 1.0}, {"rmse": 1.02}, task="regression", threshold=0.05)
    assert lower is not None
    assert not lower["likely_overfit"]
    assert lower["relative_gap"] == pytest.approx(0.02)
    better = overfit_gap({"rmse": 1.0}, {"rmse": 0.9}, task="regression", threshold=0.05)
    assert better is not None
    assert better["relative_gap"] < 0
