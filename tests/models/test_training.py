from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from sklearn.datasets import load_breast_cancer

from setpoint.errors import DependencyMissingError, InvalidSpecError, UsageError
from setpoint.models import flavors
from setpoint.models._training_data import holdout as holdout_rows
from setpoint.models.spec import TrainSpec
from setpoint.models.training import FitResult, fit, git_revision

ROWS = 569  # the breast cancer data


@pytest.fixture(scope="module")
def cancer() -> pa.Table:
    """scikit-learn's breast cancer data (it ships with the library) with string labels,
    a categorical column with gaps, missing numbers, an identifier, and a time that is
    not the row order; ``quarter`` says which quarter of that time a row falls in."""
    frame = load_breast_cancer(as_frame=True).frame
    rng = np.random.default_rng(0)
    frame["clinic"] = rng.choice(np.array(["north", "south", "east", None], dtype=object), ROWS)
    frame.loc[rng.random(ROWS) < 0.05, "mean texture"] = np.nan
    frame["diagnosis"] = np.where(frame.pop("target") == 1, "benign", "malignant")
    frame["record_id"] = [f"r{i:05d}" for i in rng.permutation(ROWS)]
    order = rng.permutation(ROWS)
    frame["seen_at"] = np.datetime64("2024-01-01T00:00") + order.astype("timedelta64[h]")
    frame["quarter"] = [f"q{1 + rank * 4 // ROWS}" for rank in order]
    return pa.Table.from_pandas(frame, preserve_index=False)


def spec(**changes: Any) -> TrainSpec:
    base: dict[str, Any] = {
        "model": "cancer",
        "dataset": "cancer@1",
        "target": "diagnosis",
        "exclude": ["quarter"],
        "segments": ["clinic"],
        "seed": 5,
    }
    return TrainSpec.from_dict(base | changes)


ESTIMATORS: dict[str, dict[str, Any] | None] = {
    "default": None,
    "lightgbm": {"class": "lightgbm.LGBMClassifier", "params": {"n_estimators": 40}},
    "xgboost": {"class": "xgboost.XGBClassifier", "params": {"n_estimators": 40}},
    "logistic": {"class": "sklearn.linear_model.LogisticRegression", "params": {"max_iter": 5000}},
}
FLAVOR = {"default": "sklearn", "lightgbm": "lightgbm", "xgboost": "xgboost", "logistic": "sklearn"}


def with_estimator(name: str, **changes: Any) -> TrainSpec:
    estimator = ESTIMATORS[name]
    return spec(**changes) if estimator is None else spec(estimator=estimator, **changes)


@pytest.fixture(scope="module")
def fitted(cancer: pa.Table) -> dict[str, FitResult]:
    return {name: fit(with_estimator(name), cancer) for name in ESTIMATORS}


def served(result: FitResult) -> Any:
    """The predictor built from what the registry stores: the fitted estimator."""
    return flavors.from_object(
        result.estimator,
        features=result.features,
        task=result.task,
        kinds=result.kinds,
        categories=result.categories,
        classes=result.classes,
    )


@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_each_estimator_fits_and_evaluates(
    cancer: pa.Table, fitted: dict[str, FitResult], name: str
) -> None:
    result = fitted[name]
    assert (result.task, result.classes) == ("classification", ["benign", "malignant"])
    assert "clinic" in result.features
    assert not {"diagnosis", "record_id", "seen_at", "quarter"} & set(result.features)
    assert result.kinds["clinic"] == "categorical"
    assert result.kinds["mean texture"] == "numeric"
    if FLAVOR[name] != "sklearn":  # native: categories are encoded by setpoint
        assert result.categories == {"clinic": ["east", "north", "south"]}
    assert result.metrics["validation"]["roc_auc"] > 0.95
    assert result.metrics["train"]["accuracy"] > 0.9
    assert (result.n_train, result.n_validation, result.dropped_rows) == (455, 114, 0)
    assert set(result.segments["clinic"]) == {"east", "north", "south", "(missing)"}
    assert sum(s["n"] for s in result.segments["clinic"].values()) == result.n_validation
    assert "accuracy" in result.segments["clinic"]["north"]
    assert result.gap is not None
    assert result.gap["metric"] == "roc_auc"
    assert result.gap["train"] >= result.gap["validation"] - 0.05
    assert any(note.startswith("record_id is not used") for note in result.notes)
    assert any(note.startswith("seen_at is not used") for note in result.notes)
    assert result.predictor.flavor == FLAVOR[name]
    assert result.cpu_seconds > 0
    assert result.train_seconds > 0
    library = {"lightgbm": "lightgbm", "xgboost": "xgboost"}.get(name, "scikit-learn")
    assert {"python", "numpy", "pandas", "pyarrow", "scikit-learn", library} <= set(result.packages)
    assert result.spec == with_estimator(name).to_dict()
    parts = [result.metrics, result.segments, result.gap, result.packages, result.git]
    json.dumps([*parts, result.spec, result.notes, result.importance], allow_nan=False)


@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_training_measures_each_features_importance_on_the_hold_out(
    fitted: dict[str, FitResult], name: str
) -> None:
    importance = fitted[name].importance
    assert importance is not None
    assert set(importance["features"]) == set(fitted[name].features)
    sizes = list(importance["features"].values())
    assert sizes == sorted(sizes, reverse=True)
    assert sizes[0] > 0
    assert importance["rows"] == (114 if FLAVOR[name] != "sklearn" else 10)
    spaces = {"lightgbm": "log-odds", "xgboost": "log-odds", "logistic": "decision function"}
    assert importance["space"] == spaces.get(name, importance["space"] if name == "default" else "")
    assert importance["space"] in ("log-odds", "decision function", "probability")
    # The clinic, drawn at random, ranks below a measurement that decides the diagnosis.
    ranked = list(importance["features"])
    assert ranked.index("clinic") > ranked.index("worst radius")


def test_fairness_is_measured_on_the_hold_out_by_columns_that_are_not_features(
    cancer: pa.Table,
) -> None:
    from setpoint.models.fairness import FairnessTable, fairness_table

    fairness = {"sensitive": "quarter", "metrics": ["selection_rate"], "max_disparity": 0.01}
    result = fit(with_estimator("lightgbm", exclude=[], fairness=fairness), cancer)
    assert "quarter" not in result.features  # measured, not learnt from
    table = result.fairness
    assert table is not None
    json.dumps(table, allow_nan=False)  # as the registry keeps it
    assert (table["positive"], table["max_disparity"]) == ("malignant", 0.01)
    assert {g["values"]["quarter"] for g in table["groups"]} == {"q1", "q2", "q3", "q4"}
    assert sum(g["rows"] for g in table["groups"]) == result.n_validation
    assert table["over"] == ["selection_rate"]  # quarters drawn at random differ by > 0.01
    again = FairnessTable.from_dict(table)
    # The same numbers as the table of the hold-out's own predictions.
    trained = with_estimator("lightgbm", exclude=[], fairness=fairness)
    holdout, truth = holdout_rows(trained, cancer, "classification")
    mine = fairness_table(
        truth,
        result.predictor.predict(holdout),
        {"quarter": holdout["quarter"].to_pylist()},
        task="classification",
        positive="malignant",
        metrics=["selection_rate"],
    )
    assert again.to_dict() == mine.to_dict()
    assert again.gap("selection_rate").startswith("selection rate differs by ")


@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_the_registered_estimator_predicts_what_was_evaluated(
    cancer: pa.Table, fitted: dict[str, FitResult], name: str
) -> None:
    result = fitted[name]
    again = served(result)
    assert again.flavor == FLAVOR[name]
    np.testing.assert_array_equal(again.predict(cancer), result.predictor.predict(cancer))
    np.testing.assert_array_equal(
        again.predict_proba(cancer), result.predictor.predict_proba(cancer)
    )
    assert set(again.predict(cancer.slice(0, 20))) <= {"benign", "malignant"}
    # Unseen and missing categories are predicted on, not refused (and do not warn).
    record = dict.fromkeys(result.features, 1.0) | {"clinic": "west"}
    assert again.predict([record, record | {"clinic": None}]).shape == (2,)


RANDOMISED = {  # estimators whose fit draws random numbers
    "forest": {
        "class": "sklearn.ensemble.RandomForestClassifier",
        "params": {"n_estimators": 15, "max_features": 0.3},
    },
    "lightgbm": {
        "class": "lightgbm.LGBMClassifier",
        "params": {"n_estimators": 30, "subsample": 0.6, "subsample_freq": 1},
    },
    "xgboost": {
        "class": "xgboost.XGBClassifier",
        "params": {"n_estimators": 30, "subsample": 0.6, "colsample_bytree": 0.5},
    },
}


@pytest.mark.parametrize("name", list(RANDOMISED))
def test_the_same_seed_gives_the_same_predictions(cancer: pa.Table, name: str) -> None:
    by_time = {"method": "time", "time_column": "seen_at"}  # the same rows whatever the seed

    def proba(seed: int) -> Any:
        result = fit(spec(estimator=RANDOMISED[name], seed=seed, split=by_time), cancer)
        return served(result).predict_proba(cancer)

    first = proba(1)
    np.testing.assert_array_equal(proba(1), first)
    assert not np.array_equal(proba(2), first)


def test_a_time_split_validates_on_the_latest_rows(cancer: pa.Table) -> None:
    result = fit(
        spec(
            exclude=["quarter"],
            segments=["quarter"],
            split={"method": "time", "time_column": "seen_at", "test_size": 0.25},
        ),
        cancer,
    )
    assert "seen_at" not in result.features
    # The rows are not in time order; validation is exactly the last quarter in time.
    assert result.segments["quarter"].keys() == {"q4"}
    assert (result.n_train, result.n_validation) == (427, 142)


def test_rows_sharing_a_time_stay_on_one_side_and_rows_without_one_are_left_out() -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(size=300)
    times = np.repeat(np.arange(10), 30).astype(float)
    table = pa.table(
        {
            "x": np.append(x, [0.0] * 5),
            "t": pa.array(np.append(times, [np.nan] * 5), from_pandas=True),
            "y": np.append(np.where(x + rng.normal(0, 0.5, 300) > 0, "up", "down"), ["up"] * 5),
        }
    )
    result = fit(
        TrainSpec.from_dict(
            {
                "model": "m",
                "dataset": "d",
                "target": "y",
                "split": {"method": "time", "time_column": "t", "test_size": 0.25},
                "segments": ["t"],
            }
        ),
        table,
    )
    # The cut (row 225) falls inside the rows of time 7: all of them validate.
    assert result.segments["t"].keys() == {"7.0", "8.0", "9.0"}
    assert (result.n_train, result.n_validation, result.dropped_rows) == (210, 90, 5)
    assert any("5 row(s) without a t value" in note for note in result.notes)


@pytest.mark.parametrize("name", ["default", "lightgbm", "xgboost"])
def test_progress_moves_forward_through_the_stages_to_one(cancer: pa.Table, name: str) -> None:
    seen: list[tuple[str, float]] = []
    fit(with_estimator(name), cancer, progress=lambda stage, f: seen.append((stage, f)))
    fractions = [f for _, f in seen]
    assert fractions == sorted(fractions)
    assert seen[0] == ("loading", 0.0)
    assert seen[-1] == ("done", 1.0)
    stages = list(dict.fromkeys(stage for stage, _ in seen))
    assert stages == ["loading", "splitting", "fitting", "evaluating", "done"]
    if name != "default":  # boosting rounds report as they go
        assert sum(stage == "fitting" for stage, _ in seen) > 10


def test_an_identifier_as_segment_is_pooled_beyond_the_largest_values(cancer: pa.Table) -> None:
    result = fit(spec(segments=["record_id"]), cancer)
    assert len(result.segments["record_id"]) == 100
    assert result.segments["record_id"]["(other)"]["n"] == result.n_validation - 99
    assert any(note.startswith("segments: record_id has more than 100") for note in result.notes)


def test_rows_without_a_target_are_left_out_and_counted(cancer: pa.Table) -> None:
    target = cancer.column("diagnosis").to_pylist()
    target[:7] = [None] * 7
    table = cancer.set_column(
        cancer.schema.get_field_index("diagnosis"), "diagnosis", pa.array(target)
    )
    result = fit(spec(), table)
    assert result.dropped_rows == 7
    assert result.n_train + result.n_validation == ROWS - 7
    assert "7 row(s) without a target value were left out" in result.notes


def regression_table(rows: int = 400, seed: int = 3) -> pa.Table:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 3))
    return pa.table(
        {
            "a": x[:, 0],
            "b": x[:, 1],
            "colour": rng.choice(["red", "blue"], rows),
            "y": x[:, :2] @ [2.0, -1.0] + rng.normal(0, 0.1, rows),
        }
    )


@pytest.mark.parametrize(
    "estimator", [None, {"class": "xgboost.XGBRegressor", "params": {"n_estimators": 60}}]
)
def test_regression_is_inferred_from_a_float_target(estimator: dict[str, Any] | None) -> None:
    base = {"model": "r", "dataset": "d", "target": "y", "seed": 1}
    result = fit(
        TrainSpec.from_dict(base | ({"estimator": estimator} if estimator else {})),
        regression_table(),
    )
    assert (result.task, result.classes) == ("regression", None)
    assert result.features == ["a", "b", "colour"]
    assert result.metrics["validation"]["r2"] > 0.9
    assert set(result.metrics["validation"]) == {"mae", "rmse", "r2", "mape"}
    assert result.gap is not None
    assert result.gap["metric"] == "rmse"
    assert any(note.startswith("task inferred as regression") for note in result.notes)
    assert served(result).predict(regression_table(5, seed=9)).dtype == np.float64


@pytest.mark.parametrize(("distinct", "task"), [(3, "classification"), (200, "regression")])
def test_an_integer_target_is_classes_when_it_has_few_values(distinct: int, task: str) -> None:
    rng = np.random.default_rng(4)
    x = rng.normal(size=600)
    y = np.clip(np.round((x + 3) * distinct / 6), 0, distinct - 1).astype(np.int64)
    table = pa.table({"x": x, "y": y})
    result = fit(TrainSpec.from_dict({"model": "m", "dataset": "d", "target": "y"}), table)
    assert result.task == task
    if task == "classification":
        assert result.classes == [0, 1, 2]
        assert result.metrics["validation"]["roc_auc"] is not None  # ovr on three classes


def test_library_warnings_become_notes(cancer: pa.Table) -> None:
    estimator = {"class": "sklearn.linear_model.LogisticRegression", "params": {"max_iter": 2}}
    result = fit(spec(estimator=estimator), cancer)  # warnings are errors under pytest
    assert any(note.startswith("ConvergenceWarning while fitting") for note in result.notes)


def test_an_explicit_pipeline_and_no_preprocessing(cancer: pa.Table) -> None:
    numbers = ["mean radius", "mean texture", "worst area", "worst smoothness"]
    pipeline = {
        "pipeline": [
            {"class": "sklearn.impute.SimpleImputer", "params": {"strategy": "mean"}},
            "sklearn.preprocessing.StandardScaler",
        ]
    }
    logistic = {"class": "sklearn.linear_model.LogisticRegression"}
    result = fit(
        spec(features=numbers, exclude=[], preprocessing=pipeline, estimator=logistic), cancer
    )
    assert [name for name, _ in result.estimator.steps] == ["step0", "step1", "model"]
    assert result.metrics["validation"]["roc_auc"] > 0.9
    bare = fit(spec(features=numbers, exclude=[], preprocessing="none"), cancer)
    assert type(bare.estimator).__name__ == "HistGradientBoostingClassifier"
    assert bare.metrics["validation"]["roc_auc"] > 0.9


def test_a_listed_free_text_column_is_used_as_categories(cancer: pa.Table) -> None:
    result = fit(spec(features=["mean radius", "record_id"], exclude=[]), cancer)
    assert result.features == ["mean radius", "record_id"]
    assert any(note.startswith("record_id has many distinct values") for note in result.notes)


@pytest.mark.parametrize(
    ("changes", "path", "message"),
    [
        ({"target": "outcome"}, "target", "outcome.*its columns are mean radius, mean texture"),
        ({"segments": ["ward"]}, "segments", "ward"),
        ({"features": ["seen_at"], "exclude": []}, "features", "dates or times"),
        ({"metrics": ["rmse"]}, "metrics", "none of rmse apply to classification"),
        ({"fairness": {"sensitive": "sex"}}, "fairness.sensitive", "sex named in the spec"),
        (
            {"fairness": {"sensitive": "clinic", "metrics": "mean_error"}},
            "fairness.metrics",
            "mean_error do not apply to classification",
        ),
        (
            {"estimator": {"class": "sklearn.ensemble.HistGradientBoostingClassifer"}},
            "estimator.class",
            "did you mean sklearn.ensemble.HistGradientBoostingClassifier",
        ),
        ({"estimator": {"class": "notalib.Model"}}, "estimator.class", "cannot import"),
        (
            {"estimator": {"class": "sklearn.ensemble.HistGradientBoostingRegressor"}},
            "estimator.class",
            "is a regressor but the task is classification",
        ),
        (
            {
                "estimator": {
                    "class": "sklearn.linear_model.LogisticRegression",
                    "params": {"max_iters": 3},
                }
            },
            "estimator.params.max_iters",
            "no parameter.*max_iters; did you mean max_iter",
        ),
        (
            {
                "estimator": {
                    "class": "sklearn.linear_model.LogisticRegression",
                    "params": {"C": -1},
                }
            },
            "estimator.params.C",
            "'C' parameter of LogisticRegression",
        ),
        (
            {"estimator": {"class": "lightgbm.LGBMClassifier", "params": {"num_leafs": 8}}},
            "estimator.params.num_leafs",
            "num_leafs",
        ),
        (
            {"estimator": {"class": "xgboost.XGBClassifier", "params": {"max_dept": 3}}},
            "estimator.params.max_dept",
            "does not use max_dept",
        ),
        (
            {
                "preprocessing": {
                    "pipeline": [
                        {"class": "sklearn.impute.SimpleImputer", "params": {"strategy": "mode"}}
                    ]
                }
            },
            "preprocessing.pipeline[0].params.strategy",
            "'strategy' parameter of SimpleImputer",
        ),
    ],
)
def test_spec_mistakes_are_named_by_path(
    cancer: pa.Table, changes: dict[str, Any], path: str, message: str
) -> None:
    with pytest.raises(InvalidSpecError, match=message) as caught:
        fit(spec(**changes), cancer)
    assert any(detail.startswith(f"{path}:") for detail in caught.value.details), (
        caught.value.details
    )


def test_a_missing_library_says_which_extra_to_install(
    cancer: pa.Table, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "lightgbm", None)  # import lightgbm now fails
    with pytest.raises(DependencyMissingError, match=r"pip install 'setpoint\[lightgbm\]'"):
        fit(with_estimator("lightgbm"), cancer)


@pytest.mark.parametrize(
    ("table", "changes", "message"),
    [
        (pa.table({"x": [1.0] * 5, "y": ["a", "b"] * 2 + ["a"]}), {}, "training needs at least 10"),
        (pa.table({"x": [1.0] * 20, "y": ["a"] * 20}), {}, "one class only"),
        (
            pa.table({"x": [1.0] * 20, "y": ["a", "b"] * 10}),
            {"task": "regression"},
            "target 'y' is not numeric",
        ),
    ],
)
def test_data_that_cannot_train(table: pa.Table, changes: dict[str, Any], message: str) -> None:
    base = {"model": "m", "dataset": "d", "target": "y"}
    with pytest.raises(UsageError, match=message):
        fit(TrainSpec.from_dict(base | changes), table)


def test_git_revision_outside_a_repository_is_none(tmp_path: Path) -> None:
    assert git_revision(str(tmp_path)) is None


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_git_revision_names_the_commit_and_whether_tracked_files_changed(tmp_path: Path) -> None:
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
            cwd=tmp_path,
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()

    git("init", "-q")
    (tmp_path / "train.py").write_text("print(1)\n")
    git("add", "train.py")
    git("commit", "-q", "-m", "first")
    (tmp_path / "notes.txt").write_text("untracked files do not count\n")
    assert git_revision(str(tmp_path)) == {"revision": git("rev-parse", "HEAD"), "dirty": False}
    (tmp_path / "train.py").write_text("print(2)\n")
    assert git_revision(str(tmp_path)) == {"revision": git("rev-parse", "HEAD"), "dirty": True}


@pytest.mark.parametrize("seed", range(6))
def test_a_rare_class_always_has_a_training_row(seed: int) -> None:
    rng = np.random.default_rng(seed)
    labels = ["a"] * 50 + ["b"] * 49 + ["c"]
    table = pa.table({"x": rng.normal(size=100), "y": labels})
    result = fit(
        TrainSpec.from_dict({"model": "m", "dataset": "d", "target": "y", "seed": seed}), table
    )
    assert result.classes == ["a", "b", "c"]
    assert result.predictor.classes == ["a", "b", "c"]
