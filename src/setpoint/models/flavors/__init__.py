"""Model flavors: how each library's fitted objects are wrapped, saved and loaded.

:func:`from_object` picks the flavor by the object's type, :func:`load` rebuilds a
predictor from what the registry stored. The flavor is chosen by where the object's
class comes from, so LightGBM and XGBoost are imported only when one of their models
is actually used, and a missing library is a clear error, not an ImportError.
The ``compiled``, ``onnx`` and ``onnx-pipeline`` flavors wrap no user object:
``setpoint optimize`` makes them from a LightGBM or scikit-learn model
(``models/optimize.py``), and ``load`` rebuilds them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sklearn.base import BaseEstimator

from setpoint.data.kinds import Kind
from setpoint.errors import UsageError
from setpoint.models.flavors.compiled import CompiledPredictor
from setpoint.models.flavors.lightgbm import LightGBMPredictor
from setpoint.models.flavors.onnx import OnnxPipelinePredictor, OnnxPredictor
from setpoint.models.flavors.pyfunc import PyfuncPredictor
from setpoint.models.flavors.sklearn import SklearnPredictor
from setpoint.models.flavors.xgboost import XGBoostPredictor
from setpoint.models.predictor import BasePredictor, Predictor, Task

__all__ = ["FLAVORS", "flavor_of", "from_object", "load"]

FLAVORS: dict[str, type[BasePredictor]] = {
    cls.flavor: cls
    for cls in (
        SklearnPredictor,
        LightGBMPredictor,
        XGBoostPredictor,
        PyfuncPredictor,
        CompiledPredictor,
        OnnxPredictor,
        OnnxPipelinePredictor,
    )
}


def flavor_of(obj: Any) -> str:
    """The flavor that wraps ``obj``: its library's native flavor, else ``pyfunc``."""
    packages = {cls.__module__.partition(".")[0] for cls in type(obj).__mro__}
    # Before sklearn: LGBMModel and XGBModel are scikit-learn estimators too.
    if "lightgbm" in packages:
        return "lightgbm"
    if "xgboost" in packages:
        return "xgboost"
    if isinstance(obj, BaseEstimator):
        return "sklearn"
    if callable(getattr(obj, "predict", None)):
        return "pyfunc"
    raise UsageError(
        f"cannot use a {type(obj).__name__} as a model; pass a fitted scikit-learn estimator "
        "or pipeline, a LightGBM Booster/LGBMModel, an XGBoost Booster/XGBModel, or any "
        "object with a predict(DataFrame) method"
    )


def from_object(
    obj: Any,
    *,
    features: Sequence[str],
    task: Task | None = None,
    kinds: Mapping[str, Kind] | None = None,
    categories: Mapping[str, Sequence[str]] | None = None,
    classes: Sequence[Any] | None = None,
) -> Predictor:
    """The predictor of a fitted model ``obj`` taking ``features`` in this order.

    ``task`` is inferred when None (classification when the model has classes or
    probabilities). ``classes`` names the classes of a classifier fitted on codes
    0..k-1 (the model's own labels otherwise). ``kinds`` defaults to numeric for
    every feature, except that a feature with ``categories`` defaults to categorical.
    """
    kinds = {
        name: (kinds or {}).get(name, "categorical" if name in (categories or {}) else "numeric")
        for name in features
    }
    predictor = FLAVORS[flavor_of(obj)].wrap(
        obj, features=list(features), task=task, kinds=kinds, categories=categories
    )
    if classes is not None:
        predictor.relabel(classes)
    return predictor


def load(flavor: str, files: Mapping[str, bytes], metadata: Mapping[str, Any]) -> Predictor:
    """The predictor a flavor's ``save()`` and ``metadata()`` describe."""
    if flavor not in FLAVORS:
        raise UsageError(
            f"unknown model flavor {flavor!r}; this setpoint knows {', '.join(sorted(FLAVORS))}. "
            "Upgrade setpoint if the model was registered by a newer version."
        )
    return FLAVORS[flavor].load(files, metadata)
