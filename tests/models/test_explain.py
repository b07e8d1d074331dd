"""Explanations of the tree flavors: contributions plus the base give the model's raw
output, and equal shap's TreeExplainer's (models/explain.py)."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
import pytest

from setpoint.models.explain import LOG_ODDS, RAW
from setpoint.models.flavors import from_object

FEATURES = ["income", "debt", "age", "lines"]


def frame(n: int = 600, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    data = pd.DataFrame({name: rng.normal(size=n) for name in FEATURES})
    data.loc[data.index[::17], "debt"] = np.nan  # missing values take a branch too
    return data


def targets(data: pd.DataFrame, task: str) -> Any:
    score = data["income"] - 0.5 * data["debt"].fillna(0) + 0.3 * data["age"] * data["lines"]
    if task == "regression":
        return score
    if task == "binary":
        return (score > 0).astype(int)
    return np.digitize(score, [-0.5, 0.5])  # three classes


def fitted(library: str, task: str) -> Any:
    data = frame()
    y = targets(data, task)
    if library == "lightgbm":
        import lightgbm as lgb

        model = lgb.LGBMRegressor if task == "regression" else lgb.LGBMClassifier
        return model(n_estimators=30, num_leaves=8, verbose=-1).fit(data, y)
    import xgboost as xgb

    model = xgb.XGBRegressor if task == "regression" else xgb.XGBClassifier
    return model(n_estimators=30, max_depth=3).fit(data, y)


CASES = [
    (lib, task) for lib in ("lightgbm", "xgboost") for task in ("binary", "multi", "regression")
]


@pytest.mark.parametrize(("library", "task"), CASES)
def test_contributions_and_base_add_up_to_the_raw_output(library: str, task: str) -> None:
    predictor = from_object(fitted(library, task), features=FEATURES)
    rows = frame(50, seed=1)
    explained = predictor.explain(rows)  # type: ignore[attr-defined]
    outputs = 3 if task == "multi" else 1
    assert explained.contributions.shape == (50, outputs, len(FEATURES))
    total = explained.base + explained.contributions.sum(axis=2)
    # XGBoost adds up in float32: its margins of about 4 are off by a few units in
    # the 7th digit, so 1e-6 of the output's size (LightGBM: float64, 1e-6 flat).
    rtol = 1e-6 if library == "xgboost" else 0.0
    np.testing.assert_allclose(total, explained.raw, rtol=rtol, atol=1e-6)
    assert explained.space == (LOG_ODDS if task == "binary" else RAW)
    if task == "binary":  # the raw output is the positive class's log-odds
        proba = predictor.predict_proba(rows)
        assert proba is not None
        np.testing.assert_allclose(1 / (1 + np.exp(-explained.raw[:, 0])), proba[:, 1], atol=1e-6)
    if task == "regression":
        np.testing.assert_allclose(explained.raw[:, 0], predictor.predict(rows), atol=1e-6)


@pytest.mark.parametrize(("library", "task"), CASES)
def test_tree_contributions_equal_shaps_tree_explainer(library: str, task: str) -> None:
    model = fitted(library, task)
    predictor = from_object(model, features=FEATURES)
    rows = frame(40, seed=2)
    explained = predictor.explain(rows)  # type: ignore[attr-defined]
    booster = model.booster_ if library == "lightgbm" else model.get_booster()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # shap's (and matplotlib's) deprecations, not ours
        import shap  # the explain extra, in the dev install

        theirs = np.asarray(shap.TreeExplainer(booster).shap_values(rows.to_numpy()))
    if theirs.ndim == 2:  # one output: rows x features
        theirs = theirs[:, None, :]
    elif theirs.shape[0] != 40:  # a list per class: classes x rows x features
        theirs = np.transpose(theirs, (1, 0, 2))
    else:  # rows x features x classes
        theirs = np.transpose(theirs, (0, 2, 1))
    np.testing.assert_allclose(explained.contributions, theirs, rtol=0, atol=1e-6)


def test_an_explanation_lists_the_top_features_as_json() -> None:
    predictor = from_object(fitted("lightgbm", "binary"), features=FEATURES)
    explained = predictor.explain(frame(3, seed=3))  # type: ignore[attr-defined]
    [first, *_] = explained.to_dicts(k=2)
    assert first["space"] == "log-odds"
    [output] = first["outputs"]
    assert output["output"] == "1"
    assert len(output["contributions"]) == 2
    sizes = [abs(v) for v in output["contributions"].values()]
    assert sizes == sorted(sizes, reverse=True)
    assert output["base"] + sum(explained.contributions[0, 0]) == pytest.approx(output["raw"])


def _sklearn(kind: str) -> tuple[Any, pd.DataFrame]:
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LinearRegression, LogisticRegression

    data = frame().fillna(0.0)
    if kind == "logistic":
        return LogisticRegression().fit(data, targets(data, "binary")), data
    if kind == "forest":
        model = RandomForestClassifier(n_estimators=20, max_depth=4, random_state=0)
        return model.fit(data, targets(data, "multi")), data
    return LinearRegression().fit(data, targets(data, "regression")), data


@pytest.mark.parametrize("kind", ["logistic", "forest", "linear"])
def test_a_scikit_learn_model_is_explained_additively_against_a_background(kind: str) -> None:
    model, training = _sklearn(kind)
    predictor = from_object(model, features=FEATURES)
    rows = frame(20, seed=5).fillna(0.0)
    explained = predictor.explain(rows, background=training.sample(50, random_state=0))  # type: ignore[attr-defined]
    total = explained.base + explained.contributions.sum(axis=2)
    np.testing.assert_allclose(total, explained.raw, rtol=0, atol=1e-6)
    if kind == "logistic":  # the decision function: log-odds of the positive class
        assert explained.space == "decision function"
        assert explained.outputs == ["1"]
        np.testing.assert_allclose(explained.raw[:, 0], model.decision_function(rows), atol=1e-9)
    if kind == "forest":
        assert (explained.space, len(explained.outputs)) == ("probability", 3)


def test_a_linear_models_contributions_are_its_weights_times_the_distance_to_the_mean() -> None:
    """For a model without interactions the Shapley values are known exactly."""
    model, training = _sklearn("linear")
    background = training.sample(50, random_state=0)
    rows = frame(10, seed=6).fillna(0.0)
    predictor = from_object(model, features=FEATURES)
    explained = predictor.explain(rows, background=background)  # type: ignore[attr-defined]
    expected = model.coef_ * (rows.to_numpy() - background.to_numpy().mean(axis=0))
    np.testing.assert_allclose(explained.contributions[:, 0, :], expected, atol=1e-9)


def test_a_pipeline_with_a_text_column_is_explained_per_input_column() -> None:
    """A categorical column is one feature of the explanation, whatever the pipeline
    turns it into (here one-hot columns)."""
    from sklearn.compose import make_column_transformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    data = frame().fillna(0.0)
    data["grade"] = np.where(data["income"] > 0.5, "A", np.where(data["income"] > -0.5, "B", "C"))
    encode = make_column_transformer(
        (OneHotEncoder(handle_unknown="ignore"), ["grade"]), remainder="passthrough"
    )
    model = make_pipeline(encode, LogisticRegression()).fit(data, targets(data, "binary"))
    features = [*FEATURES, "grade"]
    predictor = from_object(model, features=features, kinds={"grade": "categorical"})
    rows = data.sample(15, random_state=1)
    explained = predictor.explain(rows, background=data.sample(40, random_state=2))  # type: ignore[attr-defined]
    assert explained.features == features
    total = explained.base + explained.contributions.sum(axis=2)
    np.testing.assert_allclose(total, explained.raw, rtol=0, atol=1e-6)
    np.testing.assert_allclose(explained.raw[:, 0], model.decision_function(rows), atol=1e-9)
    assert np.abs(explained.contributions[:, 0, features.index("grade")]).max() > 0


def test_a_classifier_without_scores_cannot_be_explained_and_says_why() -> None:
    from setpoint.errors import UsageError

    class Labels:
        classes_ = np.array([0, 1])

        def predict(self, rows: Any) -> Any:
            return np.zeros(len(rows), dtype=int)

    predictor = from_object(Labels(), features=FEATURES, task="classification")
    with pytest.raises(UsageError, match="no decision_function or predict_proba"):
        predictor.explain(frame(3), background=frame(5))  # type: ignore[attr-defined]
