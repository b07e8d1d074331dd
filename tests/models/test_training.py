from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from sklearn.datasets import load_breast_cancer

from setpoint.errors import InvalidSpecError, SetpointError, UsageError
from setpoint.models.spec import TrainSpec
from setpoint.models.training import fit, git_revision


@pytest.fixture(scope="module")
def cancer() -> pa.Table:
    """The breast cancer data that ships with scikit-learn, with a categorical column,
    string labels, missing values and a time column added."""
    frame = load_breast_cancer(as_frame=True).frame
    frame.columns = [c.replace(" ", "_") for c in frame.columns]
    rng = np.random.default_rng(0)
    frame["clinic"] = rng.choice(["north", "south", "east"], len(frame))
    frame.loc[rng.random(len(frame)) < 0.05, "mean_texture"] = np.nan
    frame["diagnosis"] = np.where(frame.pop("target") == 1, "benign", "malignant")
    frame["seen_at"] = np.arange(len(frame)) * 3600
    return pa.Table.from_pandas(frame, preserve_index=False)


def spec(**changes: Any) -> TrainSpec:
    base: dict[str, Any] = {
        "model": "cancer",
        "dataset": "cancer@1",
        "target": "diagnosis",
        "exclude": ["seen_at"],
        "segments": ["clinic"],
        "seed": 5,
    }
    return TrainSpec.from_dict(base | changes)


ESTIMATORS = {
    "default": None,
    "lightgbm": {"class": "lightgbm.LGBMClassifier", "params": {"n_estimators": 40}},
    "xgboost": {"class": "xgboost.XGBClassifier", "params": {"n_estimators": 40}},
    "logistic": {"class": "sklearn.linear_model.LogisticRegression", "params": {"max_iter": 2000}},
}


@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_each_estimator_fits_evaluates_and_predicts_labels(cancer: pa.Table, name: str) -> None:
    changes = {"estimator": ESTIMATORS[name]} if ESTIMATORS[name] else {}
    result = fit(spec(**changes), cancer)
    assert result.task == "classification"
    assert result.classes == ["benign", "malignant"]
    assert "clinic" in result.features
    assert "seen_at" not in result.features
    assert result.categories.get("clinic") == ["east", "north", "south"] or name in (
        "default",
        "logistic",
    )
    assert result.metrics["validation"]["roc_auc"] > 0.95
    assert result.n_train + result.n_validation == cancer.num_rows
    assert set(result.segments["clinic"]) == {"east", "north", "south"}
    assert result.gap is not None
    assert result.gap["metric"] == "roc_auc"
    predictions = result.predictor.predict(cancer.slice(0, 5))
    assert set(predictions) <= {"benign", "malignant"}
    expected_flavor = {"lightgbm": "lightgbm", "xgboost": "xgboost"}.get(name, "sklearn")
    assert result.predictor.flavor == expected_flavor
    assert result.cpu_seconds > 0
    assert result.packages["scikit-learn"]


@pytest.mark.parametrize("name", ["default", "lightgbm", "xgboost"])
def test_the_same_seed_gives_the_same_model(cancer: pa.Table, name: str) -> None:
    changes = {"estimator": ESTIMATORS[name]} if ESTIMATORS[name] else {}
    first = fit(spec(**changes), cancer).predictor.predict_proba(cancer)
    again = fit(spec(**changes), cancer).predictor.predict_proba(cancer)
    np.testing.assert_array_equal(first, again)


def test_a_time_split_holds_out_the_latest_rows(cancer: pa.Table) -> None:
    shuffled = cancer.take(np.random.default_rng(1).permutation(cancer.num_rows))
    result = fit(
        spec(exclude=[], split={"method": "time", "time_column": "seen_at", "test_size": 0.25}),
        shuffled,
    )
    assert "seen_at" not in result.features
    assert result.n_validation == round(cancer.num_rows * 0.25)


def test_progress_moves_forward_and_ends_at_one(cancer: pa.Table) -> None:
    seen: list[tuple[str, float]] = []
    fit(spec(), cancer, progress=lambda step, fraction: seen.append((step, fraction)))
    fractions = [f for _, f in seen]
    assert fractions == sorted(fractions)
    assert seen[-1] == ("done", 1.0)
    assert {"fitting", "evaluating"} <= {s for s, _ in seen}


def test_rows_without_a_target_are_left_out_and_counted(cancer: pa.Table) -> None:
    target = cancer.column("diagnosis").to_pylist()
    target[:7] = [None] * 7
    table = cancer.set_column(
        cancer.schema.get_field_index("diagnosis"), "diagnosis", pa.array(target)
    )
    result = fit(spec(), table)
    assert result.dropped_rows == 7
    assert any("7 row(s)" in note for note in result.notes)


def test_regression_is_inferred_from_a_float_target() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(400, 3))
    table = pa.table(
        {
            "a": x[:, 0],
            "b": x[:, 1],
            "c": x[:, 2],
            "y": x @ [2.0, -1.0, 0.5] + rng.normal(0, 0.1, 400),
        }
    )
    result = fit(
        TrainSpec.from_dict({"model": "r", "dataset": "d", "target": "y", "seed": 1}), table
    )
    assert result.task == "regression"
    assert result.classes is None
    assert result.metrics["validation"]["r2"] > 0.9
    assert result.gap is not None
    assert result.gap["metric"] == "rmse"


@pytest.mark.parametrize(
    ("changes", "error", "message"),
    [
        ({"target": "nope"}, InvalidSpecError, "nope"),
        ({"segments": ["ward"]}, InvalidSpecError, "ward"),
        (
            {"estimator": {"class": "sklearn.ensemble.NoSuchForest"}},
            InvalidSpecError,
            "NoSuchForest",
        ),
        ({"estimator": {"class": "notalib.Model"}}, InvalidSpecError, "cannot import module"),
        (
            {
                "estimator": {
                    "class": "sklearn.linear_model.LogisticRegression",
                    "params": {"depth": 3},
                }
            },
            InvalidSpecError,
            "no parameter.*depth",
        ),
        (
            {
                "estimator": {
                    "class": "sklearn.linear_model.LogisticRegression",
                    "params": {"C": -1},
                }
            },
            SetpointError,
            "C",
        ),
        ({"task": "regression"}, UsageError, "not numeric"),
    ],
)
def test_mistakes_are_named(
    cancer: pa.Table, changes: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        fit(spec(**changes), cancer)


def test_git_revision_outside_a_repository_is_none(tmp_path: Any) -> None:
    assert git_revision(str(tmp_path)) is None
