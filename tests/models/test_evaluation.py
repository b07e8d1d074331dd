from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics as skm

from setpoint.models.evaluation import (
    METRICS,
    PRIMARY,
    evaluate,
    overfit_gap,
    primary_metric,
    segment_metrics,
)

rng = np.random.default_rng(0)
Y = rng.integers(0, 2, 300)
P1 = np.clip(Y * 0.6 + rng.uniform(0, 0.4, 300), 0, 1)
PROBA = np.column_stack([1 - P1, P1])
PRED = (P1 > 0.5).astype(int)


def test_binary_metrics_agree_with_scikit_learn() -> None:
    got = evaluate(Y, PRED, PROBA, task="classification", classes=[0, 1])
    assert got == {
        "accuracy": pytest.approx(skm.accuracy_score(Y, PRED)),
        "balanced_accuracy": pytest.approx(skm.balanced_accuracy_score(Y, PRED)),
        "f1": pytest.approx(skm.f1_score(Y, PRED)),
        "precision": pytest.approx(skm.precision_score(Y, PRED)),
        "recall": pytest.approx(skm.recall_score(Y, PRED)),
        "roc_auc": pytest.approx(skm.roc_auc_score(Y, P1)),
        "log_loss": pytest.approx(skm.log_loss(Y, PROBA)),
        "brier": pytest.approx(skm.brier_score_loss(Y, P1)),
    }


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
    assert got["precision"] == pytest.approx(skm.precision_score(Y, PRED))
    assert got["roc_auc"] == pytest.approx(skm.roc_auc_score(Y, P1))
    assert got["brier"] == pytest.approx(skm.brier_score_loss(Y, P1))


def test_multiclass_metrics_are_macro_averaged() -> None:
    y = rng.integers(0, 3, 200)
    proba = rng.dirichlet([1, 1, 1], 200)
    pred = proba.argmax(axis=1)
    got = evaluate(y, pred, proba, task="classification", classes=[0, 1, 2])
    assert got["roc_auc"] == pytest.approx(skm.roc_auc_score(y, proba, multi_class="ovr"))
    assert got["f1"] == pytest.approx(skm.f1_score(y, pred, average="macro"))
    assert got["recall"] == pytest.approx(skm.recall_score(y, pred, average="macro"))
    assert got["log_loss"] == pytest.approx(skm.log_loss(y, proba))
    assert got["brier"] is None  # binary only


def test_regression_metrics_agree_with_scikit_learn() -> None:
    y = rng.normal(10, 2, 100)
    pred = y + rng.normal(0, 1, 100)
    got = evaluate(y, pred, None, task="regression", classes=None)
    assert got == {
        "mae": pytest.approx(skm.mean_absolute_error(y, pred)),
        "rmse": pytest.approx(np.sqrt(skm.mean_squared_error(y, pred))),
        "r2": pytest.approx(skm.r2_score(y, pred)),
        "mape": pytest.approx(skm.mean_absolute_percentage_error(y, pred)),
    }


def test_named_metrics_only() -> None:
    got = evaluate(Y, PRED, PROBA, task="classification", classes=[0, 1], metrics=["f1"])
    assert list(got) == ["f1"]


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
    assert got["accuracy"] == 1.0
    three = evaluate(
        [0, 1, 0, 1],
        [0, 1, 0, 1],
        np.eye(3)[[0, 1, 0, 1]],
        task="classification",
        classes=[0, 1, 2],
    )
    assert three["roc_auc"] is None  # one-vs-rest needs every class present
    assert evaluate([1.0], [2.0], None, task="regression", classes=None)["r2"] is None
    assert evaluate([3.0, 3.0], [2.0, 3.0], None, task="regression", classes=None)["r2"] is None
    assert evaluate([0.0, 1.0], [0.5, 1.0], None, task="regression", classes=None)["mape"] is None
    assert evaluate([], [], None, task="regression", classes=None) == dict.fromkeys(
        ["mae", "rmse", "r2", "mape"]
    )


def test_probability_metrics_without_probabilities_are_none() -> None:
    got = evaluate(Y, PRED, None, task="classification", classes=[0, 1])
    assert got["roc_auc"] is None
    assert got["log_loss"] is None
    assert got["accuracy"] is not None


def test_probabilities_that_do_not_quite_sum_to_one() -> None:
    # Boosters compute in float32: rows off by ~1e-7, which scikit-learn warns about.
    proba = rng.dirichlet([1, 1, 1], 500) * 1.0000003
    y = rng.integers(0, 3, 500)
    got = evaluate(y, proba.argmax(axis=1), proba, task="classification", classes=[0, 1, 2])
    assert got["log_loss"] == pytest.approx(skm.log_loss(y, proba / proba.sum(axis=1)[:, None]))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["a", "b"]), st.floats(0, 1)), min_size=1, max_size=40))
def test_any_binary_sample_gives_scikit_learns_values_or_none(rows: list[Any]) -> None:
    y = np.array([label for label, _ in rows])
    p = np.array([p for _, p in rows])
    pred = np.where(p > 0.5, "b", "a")
    got = evaluate(y, pred, np.column_stack([1 - p, p]), task="classification", classes=["a", "b"])
    json.dumps(got, allow_nan=False)
    assert all(v is None or isinstance(v, float) for v in got.values())
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert got["f1"] == pytest.approx(skm.f1_score(y, pred, pos_label="b", zero_division=0))
    if len(set(y)) == 2:
        assert got["roc_auc"] == pytest.approx(skm.roc_auc_score(y == "b", p))
    else:
        assert got["roc_auc"] is None


def test_segments_report_counts_and_skip_tiny_ones() -> None:
    segment = np.where(np.arange(300) < 290, "big", "tiny").astype(object)
    segment[:5] = None
    got = segment_metrics(
        Y, PRED, PROBA, segment, task="classification", classes=[0, 1], metrics=["accuracy"]
    )
    assert got == {
        "(missing)": {"n": 5},
        "big": {"n": 285, "accuracy": pytest.approx(skm.accuracy_score(Y[5:290], PRED[5:290]))},
        "tiny": {"n": 10},
    }


def test_segment_values_of_any_type_become_text_keys() -> None:
    values = [1, 2] * 150
    got = segment_metrics(
        Y, PRED, PROBA, values, task="classification", classes=[0, 1], metrics=["accuracy"]
    )
    assert set(got) == {"1", "2"}
    assert got["1"]["accuracy"] == pytest.approx(skm.accuracy_score(Y[::2], PRED[::2]))


def test_many_segment_values_keep_the_largest_and_pool_the_rest() -> None:
    values = np.where(np.arange(300) < 150, "common", np.arange(300).astype(str))
    got = segment_metrics(
        Y, PRED, PROBA, values, task="classification", classes=[0, 1], max_segments=5
    )
    assert len(got) == 5
    assert got["common"]["n"] == 150
    assert got["(other)"]["n"] == 150 - 3
    assert "accuracy" in got["(other)"]


def test_a_higher_is_better_metric_flags_a_drop() -> None:
    gap = overfit_gap({"roc_auc": 0.99}, {"roc_auc": 0.80}, "roc_auc", 0.05)
    assert gap == {
        "metric": "roc_auc",
        "train": 0.99,
        "validation": 0.80,
        "relative_gap": pytest.approx(0.19 / 0.99),
        "threshold": 0.05,
        "likely_overfit": True,
    }


def test_a_lower_is_better_metric_flags_a_rise() -> None:
    worse = overfit_gap({"rmse": 1.0}, {"rmse": 1.5}, "rmse", 0.05)
    assert worse["relative_gap"] == pytest.approx(0.5)
    assert worse["likely_overfit"] is True
    slight = overfit_gap({"rmse": 1.0}, {"rmse": 1.02}, "rmse", 0.05)
    assert slight["relative_gap"] == pytest.approx(0.02)
    assert slight["likely_overfit"] is False
    better = overfit_gap({"rmse": 1.0}, {"rmse": 0.5}, "rmse", 0.05)
    assert better["relative_gap"] == pytest.approx(-0.5)
    assert better["likely_overfit"] is False


def test_a_perfect_training_score_of_zero() -> None:
    gap = overfit_gap({"rmse": 0.0}, {"rmse": 0.3}, "rmse", 0.05)
    assert gap["relative_gap"] is None  # infinitely worse, which JSON cannot say
    assert gap["likely_overfit"] is True
    same = overfit_gap({"rmse": 0.0}, {"rmse": 0.0}, "rmse", 0.05)
    assert (same["relative_gap"], same["likely_overfit"]) == (0.0, False)


def test_a_missing_value_gives_no_verdict() -> None:
    gap = overfit_gap({"roc_auc": 0.9}, {"roc_auc": None}, "roc_auc", 0.05)
    assert (gap["relative_gap"], gap["likely_overfit"]) == (None, None)


def test_the_primary_metric_falls_back_when_undefined() -> None:
    assert PRIMARY == {"classification": "roc_auc", "regression": "rmse"}
    train = {"accuracy": 1.0, "roc_auc": 1.0}
    assert primary_metric("classification", train, {"accuracy": 0.9, "roc_auc": 0.8}) == "roc_auc"
    assert primary_metric("classification", train, {"accuracy": 0.9, "roc_auc": None}) == "accuracy"
    assert primary_metric("regression", {"r2": 0.9}, {"r2": 0.8}) == "r2"
    assert primary_metric("regression", {"r2": None}, {"r2": None}) is None


def test_every_metric_is_registered_once_with_its_direction() -> None:
    lower = {name for name, m in METRICS.items() if not m.higher_is_better}
    assert lower == {"log_loss", "brier", "mae", "rmse", "mape"}
    assert {m.task for m in METRICS.values()} == {"classification", "regression"}
    assert {n for n, m in METRICS.items() if m.needs_proba} == {"roc_auc", "log_loss", "brier"}
