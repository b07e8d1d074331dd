"""The fairness table (models/fairness.py) against fairlearn's MetricFrame."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import MetricFrame, false_positive_rate, selection_rate
from sklearn.metrics import mean_absolute_error

from setpoint.errors import UsageError
from setpoint.models.fairness import CLASSIFICATION, fairness_table


def data(n: int = 2_000, seed: int = 0) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    sensitive = pd.DataFrame(
        {
            "sex": rng.choice(["f", "m"], n),
            "region": rng.choice(["north", "south", "east"], n, p=[0.5, 0.49, 0.01]),
        }
    )
    y_true = rng.integers(0, 2, n)
    # The model says "yes" more often to the north, and is wrong more often for "f".
    bias = np.where(sensitive["region"] == "north", 0.2, 0.0)
    noise = np.where(sensitive["sex"] == "f", 0.35, 0.15)
    y_pred = np.where(rng.random(n) < noise, 1 - y_true, y_true)
    y_pred = np.where(rng.random(n) < bias, 1, y_pred)
    return y_true, y_pred, sensitive


def test_each_groups_numbers_are_metricframes() -> None:
    y_true, y_pred, sensitive = data()
    table = fairness_table(y_true, y_pred, sensitive, task="classification")
    theirs = MetricFrame(
        metrics={"selection_rate": selection_rate, "false_positive_rate": false_positive_rate},
        y_true=y_true,
        y_pred=y_pred,
        sensitive_features=sensitive,
    ).by_group
    assert table.metrics == list(CLASSIFICATION)
    assert len(table.groups) == len(theirs) == 6
    for group in table.groups:
        key = (group.values["sex"], group.values["region"])
        for metric in ("selection_rate", "false_positive_rate"):
            assert group.metrics[metric] == pytest.approx(theirs.loc[key, metric], abs=1e-12)
    assert sum(g.rows for g in table.groups) == len(y_true)


def test_a_group_too_small_is_marked_and_left_out_of_the_gaps() -> None:
    y_true, y_pred, sensitive = data()
    table = fairness_table(y_true, y_pred, sensitive[["region"]], task="classification")
    east = next(g for g in table.groups if g.values == {"region": "east"})
    assert east.too_small  # about 20 rows
    assert east.metrics["selection_rate"] is not None  # shown, not hidden
    judged = [g for g in table.groups if not g.too_small]
    rates = [g.metrics["selection_rate"] or 0.0 for g in judged]
    assert table.difference["selection_rate"] == pytest.approx(max(rates) - min(rates))
    assert table.ratio["selection_rate"] == pytest.approx(min(rates) / max(rates))
    extremes = table.extremes("selection_rate")
    assert extremes is not None
    assert extremes[1].values == {"region": "north"}  # the model favours the north


def test_the_error_gap_names_the_group_the_model_fails() -> None:
    y_true, y_pred, sensitive = data()
    table = fairness_table(y_true, y_pred, sensitive[["sex"]], task="classification")
    found = table.extremes("error_rate")
    assert found is not None
    low, high = found
    assert (low.values, high.values) == ({"sex": "m"}, {"sex": "f"})
    assert table.difference["error_rate"] == pytest.approx(0.2, abs=0.05)
    shown = json.loads(json.dumps(table.to_dict()))  # JSON as the registry keeps it
    assert {g["values"]["sex"]: g["rows"] for g in shown["groups"]} == {
        g.values["sex"]: g.rows for g in table.groups
    }


def test_regression_measures_the_mean_error() -> None:
    rng = np.random.default_rng(1)
    groups = pd.DataFrame({"g": rng.choice(["a", "b"], 500)})
    y_true = rng.normal(size=500)
    y_pred = y_true + np.where(groups["g"] == "a", 0.5, 0.1)
    table = fairness_table(y_true, y_pred, groups, task="regression")
    theirs = MetricFrame(
        metrics=mean_absolute_error, y_true=y_true, y_pred=y_pred, sensitive_features=groups
    ).by_group
    for group in table.groups:
        assert group.metrics["mean_error"] == pytest.approx(theirs.loc[group.values["g"]])
    assert table.difference["mean_error"] == pytest.approx(0.4)


def test_missing_sensitive_values_are_a_group_of_their_own() -> None:
    y_true, y_pred, sensitive = data(300)
    sensitive.loc[:9, "sex"] = None
    table = fairness_table(y_true, y_pred, sensitive[["sex"]], task="classification")
    assert {g.values["sex"] for g in table.groups} == {"f", "m", "(missing)"}


def test_mistakes_are_named() -> None:
    y_true, y_pred, sensitive = data(100)
    with pytest.raises(UsageError, match="'auc' is not one of"):
        fairness_table(y_true, y_pred, sensitive, task="classification", metrics=["auc"])
    with pytest.raises(UsageError, match="as many labels"):
        fairness_table(y_true[:50], y_pred, sensitive, task="classification")
    with pytest.raises(UsageError, match="at least one sensitive column"):
        fairness_table(y_true, y_pred, pd.DataFrame(index=range(100)), task="classification")
