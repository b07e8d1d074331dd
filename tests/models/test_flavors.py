"""One conformance suite for every model flavor.

Each check runs on every name in ``FLAVORS`` (a new flavor needs a factory in
``FACTORIES`` or ``test_every_flavor_has_a_factory`` fails) and on binary,
three-class and regression models fitted on the same generated data, which has a
categorical feature with missing values.
"""

from __future__ import annotations

import functools
import json
import pickle
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import lightgbm as lgb
import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pytest
import xgboost as xgb
from sklearn.compose import make_column_transformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder

from setpoint.data.kinds import Kind
from setpoint.errors import (
    ArtifactCorruptedError,
    DependencyMissingError,
    ModelInputError,
    UsageError,
)
from setpoint.models import flavors
from setpoint.models.flavors import FLAVORS
from setpoint.models.flavors.compiled import CompiledPredictor
from setpoint.models.flavors.onnx import OnnxPipelinePredictor, OnnxPredictor
from setpoint.models.inputs import encode_categories, to_frame, to_matrix
from setpoint.models.predictor import Predictor

FEATURES = ["x0", "x1", "color"]
KINDS: dict[str, Kind] = {"x0": "numeric", "x1": "integer", "color": "categorical"}
VARIANTS = ["binary", "multiclass", "regression"]
LABELS = {"binary": ["no", "yes"], "multiclass": ["ant", "bee", "cat"]}


def make_data(seed: int, n: int = 240) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    colors = np.array(["red", "green", "blue", None], dtype=object)
    return pd.DataFrame(
        {
            "x0": rng.normal(size=n),
            "x1": rng.integers(0, 10, size=n).astype(float),
            "color": pd.Series(rng.choice(colors, size=n, p=[0.3, 0.3, 0.3, 0.1]), dtype=object),
            "unused": rng.normal(size=n),
        }
    )


def make_target(frame: pd.DataFrame, variant: str) -> npt.NDArray[Any]:
    """Labels (or values) that depend on every feature, the categorical one included."""
    signal = frame["x0"] + 0.2 * frame["x1"] - 1.0 + np.where(frame["color"] == "red", 1.5, 0.0)
    if variant == "regression":
        return np.asarray(signal, dtype=np.float64)
    if variant == "binary":
        return np.asarray(np.where(signal > 0, 1, 0))
    return np.asarray(np.digitize(signal, [-0.5, 0.5]))


@dataclass
class Fitted:
    model: Any
    categories: dict[str, list[str]] | None = None


def _matrix_and_categories(frame: pd.DataFrame) -> tuple[Any, dict[str, list[str]]]:
    categories = encode_categories(frame, FEATURES, KINDS)
    return to_matrix(frame, FEATURES, KINDS, categories), categories


def fit_sklearn(variant: str, seed: int) -> Fitted:
    frame = to_frame(make_data(seed), FEATURES, KINDS)
    prepare = make_column_transformer(
        (SimpleImputer(), ["x0", "x1"]),
        (OneHotEncoder(handle_unknown="ignore"), ["color"]),
    )
    y = make_target(frame, variant)
    if variant == "regression":
        return Fitted(make_pipeline(prepare, Ridge()).fit(frame, y))
    labels = np.asarray(LABELS[variant])[y]  # string labels: predict must return them
    return Fitted(make_pipeline(prepare, LogisticRegression()).fit(frame, labels))


def fit_lightgbm(variant: str, seed: int) -> Fitted:
    frame = make_data(seed)
    matrix, categories = _matrix_and_categories(frame)
    y = make_target(frame, variant)
    params: dict[str, Any] = {
        "n_estimators": 15,
        "num_leaves": 7,
        "min_child_samples": 5,
        "random_state": seed,
        "deterministic": True,
        "verbose": -1,
    }
    fit: dict[str, Any] = {"categorical_feature": [FEATURES.index("color")]}
    if variant == "regression":
        return Fitted(lgb.LGBMRegressor(**params).fit(matrix, y, **fit), categories)
    labels = np.asarray(LABELS[variant])[y]
    return Fitted(lgb.LGBMClassifier(**params).fit(matrix, labels, **fit), categories)


def fit_xgboost(variant: str, seed: int) -> Fitted:
    frame = make_data(seed)
    matrix, categories = _matrix_and_categories(frame)
    y = make_target(frame, variant)
    params: dict[str, Any] = {
        "n_estimators": 15,
        "max_depth": 3,
        "random_state": seed,
        "tree_method": "hist",
        "enable_categorical": True,
        "feature_types": ["q", "q", "c"],
        "max_cat_to_onehot": 1,
        "n_jobs": 1,
    }
    model = xgb.XGBRegressor(**params) if variant == "regression" else xgb.XGBClassifier(**params)
    return Fitted(model.fit(matrix, y), categories)


class CentroidClassifier:
    """User code with predict/predict_proba: nearest centroid on the numeric features."""

    def fit(self, frame: pd.DataFrame, y: npt.NDArray[Any]) -> CentroidClassifier:
        x = frame[["x0", "x1"]].to_numpy()
        self.classes_ = np.unique(y)
        self.centroids_ = np.stack([x[y == label].mean(axis=0) for label in self.classes_])
        return self

    def predict_proba(self, frame: pd.DataFrame) -> npt.NDArray[np.float64]:
        x = np.nan_to_num(frame[["x0", "x1"]].to_numpy())
        distance = ((x[:, None, :] - self.centroids_[None, :, :]) ** 2).sum(axis=2)
        weight = np.exp(-(distance - distance.min(axis=1, keepdims=True)))
        proba: npt.NDArray[np.float64] = weight / weight.sum(axis=1, keepdims=True)
        return proba

    def predict(self, frame: pd.DataFrame) -> npt.NDArray[Any]:
        return np.asarray(self.classes_[np.argmax(self.predict_proba(frame), axis=1)])


class LinearRegressor:
    """User code with predict only: least squares on the numeric features."""

    def fit(self, frame: pd.DataFrame, y: npt.NDArray[Any]) -> LinearRegressor:
        x = np.column_stack([np.nan_to_num(frame[["x0", "x1"]].to_numpy()), np.ones(len(frame))])
        self.coef_ = np.linalg.lstsq(x, y, rcond=None)[0]
        return self

    def predict(self, frame: pd.DataFrame) -> npt.NDArray[np.float64]:
        x = np.nan_to_num(frame[["x0", "x1"]].to_numpy())
        out: npt.NDArray[np.float64] = x @ self.coef_[:2] + self.coef_[2]
        return out


def fit_pyfunc(variant: str, seed: int) -> Fitted:
    frame = to_frame(make_data(seed), FEATURES, KINDS)
    y = make_target(frame, variant)
    if variant == "regression":
        return Fitted(LinearRegressor().fit(frame, y))
    return Fitted(CentroidClassifier().fit(frame, np.asarray(LABELS[variant])[y]))


FACTORIES: dict[str, Callable[[str, int], Fitted]] = {
    "sklearn": fit_sklearn,
    "lightgbm": fit_lightgbm,
    "xgboost": fit_xgboost,
    "pyfunc": fit_pyfunc,
}


@functools.cache
def _derived(flavor: str, variant: str, seed: int) -> Predictor:
    """A compiled or ONNX model made from the LightGBM (or scikit-learn) one, as
    ``setpoint optimize`` makes it (compiled once per variant: each build runs the C compiler)."""
    if flavor == "onnx-pipeline":
        sklearn: Any = wrap("sklearn", variant, seed)
        return OnnxPipelinePredictor.from_sklearn(sklearn, sklearn.model)
    original: Any = wrap("lightgbm", variant, seed)
    if flavor == "compiled":
        return CompiledPredictor.compile(original, original.booster)
    return OnnxPredictor.from_lightgbm(original, original.booster)


# Flavors made from another flavor's model, not from a fitted object.
DERIVED = {"compiled", "onnx", "onnx-pipeline"}


def wrap(flavor: str, variant: str, seed: int = 0) -> Predictor:
    if flavor in DERIVED:
        return _derived(flavor, variant, seed)
    fitted = FACTORIES[flavor](variant, seed)
    predictor = flavors.from_object(
        fitted.model, features=FEATURES, kinds=KINDS, categories=fitted.categories
    )
    assert predictor.flavor == flavor
    return predictor


def reload(predictor: Predictor) -> Predictor:
    """What the registry does: bytes and JSON in, a predictor out."""
    metadata = json.loads(json.dumps(predictor.metadata()))
    return flavors.load(predictor.flavor, predictor.save(), metadata)


@pytest.fixture(params=sorted(FLAVORS))
def flavor(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture(params=VARIANTS)
def variant(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
def predictor(flavor: str, variant: str) -> Predictor:
    return wrap(flavor, variant)


@pytest.fixture
def batch() -> pd.DataFrame:
    return make_data(seed=99, n=50)


def outputs(predictor: Predictor, data: Any) -> tuple[Any, Any]:
    return predictor.predict(data), predictor.predict_proba(data)


def assert_same(a: tuple[Any, Any], b: tuple[Any, Any], context: str = "") -> None:
    np.testing.assert_array_equal(a[0], b[0], err_msg=context)
    if a[1] is None:
        assert b[1] is None, context
    else:
        np.testing.assert_array_equal(a[1], b[1], err_msg=context)


# -- the conformance checks ----------------------------------------------------------


def test_every_flavor_has_a_factory() -> None:
    assert set(FACTORIES) | DERIVED == set(FLAVORS)


def test_predictions_have_the_task_shape(
    predictor: Predictor, variant: str, batch: pd.DataFrame
) -> None:
    predicted, proba = outputs(predictor, batch)
    assert isinstance(predicted, np.ndarray)
    assert predicted.shape == (len(batch),)
    if variant == "regression":
        assert predictor.task == "regression"
        assert predictor.classes is None
        assert proba is None
        assert predicted.dtype.kind == "f"
        return
    assert predictor.task == "classification"
    classes = predictor.classes
    assert classes is not None
    assert len(classes) == len(LABELS[variant])
    assert set(predicted.tolist()) <= set(classes)
    assert isinstance(proba, np.ndarray)
    assert proba.shape == (len(batch), len(classes))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)
    np.testing.assert_array_equal(predicted, np.asarray(classes)[proba.argmax(axis=1)])


def test_save_then_load_predicts_the_same(predictor: Predictor, batch: pd.DataFrame) -> None:
    loaded = reload(predictor)
    assert_same(outputs(loaded, batch), outputs(predictor, batch))
    assert loaded.features == predictor.features
    assert loaded.kinds == predictor.kinds
    assert loaded.classes == predictor.classes
    assert loaded.task == predictor.task
    assert loaded.metadata() == predictor.metadata()


def test_pickles(predictor: Predictor, batch: pd.DataFrame) -> None:
    assert_same(outputs(pickle.loads(pickle.dumps(predictor)), batch), outputs(predictor, batch))


def test_fitting_twice_with_one_seed_predicts_the_same(
    flavor: str, variant: str, batch: pd.DataFrame
) -> None:
    assert_same(outputs(wrap(flavor, variant), batch), outputs(wrap(flavor, variant), batch))


def test_every_input_format_predicts_the_same(predictor: Predictor, batch: pd.DataFrame) -> None:
    expected = outputs(predictor, batch)
    records = batch.to_dict(orient="records")
    table = pa.Table.from_pandas(batch, preserve_index=False)
    formats = {
        "arrow table": table,
        "record batch": table.to_batches()[0],
        "dict of lists": {name: batch[name].tolist() for name in batch.columns},
        "dict of arrays": {name: batch[name].to_numpy() for name in batch.columns},
        "records": records,
        "records without nulls": [{k: v for k, v in r.items() if v is not None} for r in records],
        "reordered frame": batch[list(reversed(batch.columns))],
    }
    for name, data in formats.items():
        assert_same(outputs(predictor, data), expected, name)
    one = outputs(predictor, records[3])
    np.testing.assert_array_equal(one[0], expected[0][3:4])


def test_unseen_and_missing_categories_predict(predictor: Predictor) -> None:
    rows = [
        {"x0": 0.5, "x1": 3, "color": "purple"},
        {"x0": 0.5, "x1": 3, "color": None},
        {"x0": None, "x1": None, "color": "red"},
    ]
    assert predictor.predict(rows).shape == (3,)


BAD_INPUTS: dict[str, Any] = {
    "missing column": [{"x0": 1.0, "color": "red"}],
    "text in a number column": [{"x0": "1.5kg", "x1": 2, "color": "red"}],
    "infinity": [{"x0": float("inf"), "x1": 2, "color": "red"}],
    "empty records": [],
    "empty frame": pd.DataFrame({"x0": [], "x1": [], "color": []}),
    "nested value": [{"x0": [1.0], "x1": 2, "color": "red"}],
    "not a table": "x0=1",
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_is_a_model_input_error(predictor: Predictor, case: str) -> None:
    with pytest.raises(ModelInputError):
        predictor.predict(BAD_INPUTS[case])
    if predictor.task == "classification":
        with pytest.raises(ModelInputError):
            predictor.predict_proba(BAD_INPUTS[case])


def test_the_error_names_every_problem(predictor: Predictor) -> None:
    rows = [{"x0": "heavy", "x1": float("-inf"), "color": "red"}]
    with pytest.raises(ModelInputError) as caught:
        predictor.predict(rows)
    assert [d["column"] for d in caught.value.details] == ["x0", "x1"]
    assert "'heavy'" in caught.value.message


def test_metadata_and_schemas_are_json(predictor: Predictor) -> None:
    metadata = json.loads(json.dumps(predictor.metadata()))
    assert metadata["features"] == FEATURES
    assert metadata["kinds"] == KINDS
    assert metadata["task"] == predictor.task
    assert metadata["flavor"] == predictor.flavor
    assert all(metadata["libraries"].values())
    assert predictor.input_schema() == [{"name": n, "kind": KINDS[n]} for n in FEATURES]
    assert json.loads(json.dumps(predictor.output_schema()))["task"] == predictor.task


def test_damaged_files_are_artifact_corrupted(predictor: Predictor) -> None:
    metadata = predictor.metadata()
    with pytest.raises(ArtifactCorruptedError):
        flavors.load(predictor.flavor, {"model": b"\x00not a model"}, metadata)
    with pytest.raises(ArtifactCorruptedError):
        flavors.load(predictor.flavor, {}, metadata)


# -- choosing and wrapping -----------------------------------------------------------


def test_the_flavor_follows_the_type() -> None:
    frame = make_data(0)
    matrix, _ = _matrix_and_categories(frame)
    y = make_target(frame, "binary")
    booster = lgb.train({"objective": "binary", "verbose": -1}, lgb.Dataset(matrix, y), 3)
    dmatrix = xgb.DMatrix(matrix, label=y)
    assert flavors.flavor_of(booster) == "lightgbm"
    assert flavors.flavor_of(xgb.train({}, dmatrix, 2)) == "xgboost"
    assert flavors.flavor_of(xgb.XGBRegressor()) == "xgboost"
    assert flavors.flavor_of(Ridge()) == "sklearn"
    assert flavors.flavor_of(LinearRegressor()) == "pyfunc"
    with pytest.raises(UsageError, match="predict"):
        flavors.flavor_of(object())


def test_boosters_alone_predict_class_indices() -> None:
    frame = make_data(0)
    matrix, categories = _matrix_and_categories(frame)
    y = make_target(frame, "multiclass")
    lgb_booster = lgb.train(
        {"objective": "multiclass", "num_class": 3, "verbose": -1}, lgb.Dataset(matrix, y), 3
    )
    xgb_booster = xgb.train(
        {"objective": "multi:softmax", "num_class": 3}, xgb.DMatrix(matrix, label=y), 3
    )
    for booster in (lgb_booster, xgb_booster):
        predictor = flavors.from_object(
            booster, features=FEATURES, kinds=KINDS, categories=categories
        )
        assert predictor.task == "classification"
        assert predictor.classes == [0, 1, 2]
        proba = predictor.predict_proba(frame)
        assert proba is not None
        np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)


def test_tree_flavors_match_their_libraries(batch: pd.DataFrame) -> None:
    for flavor in ("lightgbm", "xgboost"):
        fitted = FACTORIES[flavor]("multiclass", 0)
        predictor = wrap(flavor, "multiclass")
        matrix = to_matrix(batch, FEATURES, KINDS, fitted.categories or {})
        proba = predictor.predict_proba(batch)
        assert proba is not None
        np.testing.assert_allclose(proba, fitted.model.predict_proba(matrix), rtol=1e-6)
        np.testing.assert_array_equal(predictor.predict(batch), fitted.model.predict(matrix))


def test_xgboost_keeps_categorical_feature_types() -> None:
    loaded = reload(wrap("xgboost", "binary"))
    assert loaded.booster.feature_types == ["q", "q", "c"]  # type: ignore[attr-defined]


def test_categories_stored_by_the_library_are_used(batch: pd.DataFrame) -> None:
    frame = make_data(0)
    typed = frame[FEATURES].assign(color=frame["color"].astype("category"))
    y = make_target(frame, "binary")
    lgb_model = lgb.LGBMClassifier(n_estimators=5, verbose=-1).fit(typed, y)
    xgb_model = xgb.XGBClassifier(n_estimators=5, enable_categorical=True).fit(typed, y)
    batch_typed = batch[FEATURES].assign(
        color=pd.Categorical(batch["color"], categories=typed["color"].cat.categories)
    )
    for model in (lgb_model, xgb_model):
        predictor = flavors.from_object(model, features=FEATURES, kinds=KINDS)
        proba = predictor.predict_proba(batch)
        assert proba is not None
        np.testing.assert_allclose(proba, model.predict_proba(batch_typed), rtol=1e-6)


def test_wrapping_refuses_what_cannot_work() -> None:
    fitted = fit_lightgbm("binary", 0)
    with pytest.raises(UsageError, match="categories"):
        flavors.from_object(fitted.model, features=FEATURES, kinds=KINDS)
    with pytest.raises(UsageError, match="3 features"):
        flavors.from_object(
            fitted.model, features=["x0", "x1"], kinds=KINDS, categories=fitted.categories
        )
    with pytest.raises(UsageError, match="objective"):
        flavors.from_object(
            fitted.model,
            features=FEATURES,
            kinds=KINDS,
            categories=fitted.categories,
            task="regression",
        )
    with pytest.raises(UsageError, match="not fitted"):
        flavors.from_object(Ridge(), features=FEATURES)
    with pytest.raises(UsageError, match="fitted on columns"):
        flavors.from_object(fit_sklearn("binary", 0).model, features=["x1", "x0", "color"])


def test_an_unknown_flavor_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="unknown model flavor 'mleap'"):
        flavors.load("mleap", {}, {})


def test_kinds_default_to_numeric_and_categorical_for_categories() -> None:
    fitted = fit_lightgbm("regression", 0)
    predictor = flavors.from_object(fitted.model, features=FEATURES, categories=fitted.categories)
    assert predictor.kinds == {"x0": "numeric", "x1": "numeric", "color": "categorical"}


def test_a_numpy_array_feeds_an_all_numeric_model() -> None:
    frame = make_data(0)
    x = frame[["x0", "x1"]].to_numpy()
    model = Ridge().fit(x, make_target(frame, "regression"))
    predictor = flavors.from_object(model, features=["x0", "x1"])
    assert predictor.task == "regression"
    np.testing.assert_array_equal(predictor.predict(x), model.predict(x))
    np.testing.assert_array_equal(predictor.predict(frame), model.predict(x))


@pytest.mark.parametrize(
    ("module", "flavor", "extra"),
    [
        ("lightgbm", "lightgbm", "lightgbm"),
        ("xgboost", "xgboost", "xgboost"),
        ("tl2cgen", "compiled", "optimize"),
        ("onnxruntime", "onnx", "optimize"),
        ("onnxruntime", "onnx-pipeline", "optimize"),
    ],
)
def test_a_missing_library_is_a_dependency_error(
    monkeypatch: pytest.MonkeyPatch, module: str, flavor: str, extra: str
) -> None:
    saved = wrap(flavor, "binary")
    files, metadata = saved.save(), saved.metadata()
    monkeypatch.setitem(sys.modules, module, None)  # what an uninstalled package looks like
    with pytest.raises(DependencyMissingError, match=r"pip install 'setpoint\[") as caught:
        flavors.load(flavor, files, metadata)
    assert caught.value.details["extra"] == extra
