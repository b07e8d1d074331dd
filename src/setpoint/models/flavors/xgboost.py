"""XGBoost boosters, saved as XGBoost's own JSON model.

Prediction calls ``Booster.inplace_predict`` on a float matrix (no DMatrix, no
DataFrame, no sklearn wrapper). Categorical features arrive as category indices;
a booster fitted with ``enable_categorical`` keeps its ``feature_types`` ('c') in the
JSON model, so a loaded model splits on categories exactly as the fitted one did.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Self

import numpy as np
from sklearn.exceptions import NotFittedError

from setpoint.data.kinds import Kind
from setpoint.errors import ArtifactCorruptedError, UsageError
from setpoint.models.flavors._trees import (
    FloatArray,
    TreePredictor,
    check_feature_count,
    optional_import,
    resolve_categories,
    resolve_task,
)
from setpoint.models.predictor import Task

# Objectives whose inplace_predict output is already what predict/predict_proba need;
# the margin objectives get their link applied here.
_PROBABILITY_OBJECTIVES = frozenset({"binary:logistic", "multi:softprob"})
_MARGIN_OBJECTIVES = frozenset({"binary:logitraw", "multi:softmax"})


def import_xgboost() -> Any:
    """The xgboost module, imported only when an XGBoost model is used."""
    return optional_import("xgboost", package="xgboost-cpu", extra="xgboost")


class XGBoostPredictor(TreePredictor):
    """An XGBoost ``Booster`` (from ``xgb.train`` or an ``XGBModel``'s ``get_booster()``)."""

    flavor = "xgboost"
    libraries = ("xgboost", "numpy")

    def __init__(self, booster: Any, **fields: Any) -> None:
        super().__init__(booster, **fields)
        learner = json.loads(booster.save_config())["learner"]
        self.objective: str = learner["objective"]["name"]

    @classmethod
    def wrap(
        cls,
        obj: Any,
        *,
        features: Sequence[str],
        task: Task | None,
        kinds: Mapping[str, Kind] | None,
        categories: Mapping[str, Sequence[str]] | None,
    ) -> Self:
        xgb = import_xgboost()
        classes = None
        if isinstance(obj, xgb.XGBModel):
            try:
                booster = obj.get_booster()
            except NotFittedError as exc:
                raise UsageError(
                    f"the {type(obj).__name__} is not fitted; call fit before registering it"
                ) from exc
            classes = getattr(obj, "classes_", None)
        elif isinstance(obj, xgb.Booster):
            booster = obj
        else:
            raise UsageError(f"a {type(obj).__name__} is not an XGBoost Booster or XGBModel")
        best = booster.attr("best_iteration")
        if best is not None:  # keep what early stopping chose, as XGBModel.predict does
            booster = booster[: int(best) + 1]
        # A copy through the JSON model: exactly what a load will see, and independent
        # of later training of the caller's booster.
        booster = _from_json(xgb, bytes(booster.save_raw("json")))
        check_feature_count(cls.flavor, booster.num_features(), features)
        learner = json.loads(booster.save_config())["learner"]
        objective = learner["objective"]["name"]
        if objective.startswith(("binary:", "multi:")) and not (
            objective in _PROBABILITY_OBJECTIVES or objective in _MARGIN_OBJECTIVES
        ):
            raise UsageError(
                f"the XGBoost objective {objective!r} gives no class probabilities; fit with "
                "binary:logistic or multi:softprob"
            )
        task, classes = resolve_task(
            cls.flavor,
            objective,
            classifier=objective.startswith(("binary:", "multi:")),
            outputs=max(1, int(learner["learner_model_param"]["num_class"])),
            task=task,
            classes=classes,
        )
        kinds = kinds or {}
        return cls(
            booster,
            features=features,
            task=task,
            kinds=kinds,
            classes=classes,
            categories=resolve_categories(
                cls.flavor, features, kinds, categories, _stored_categories(booster)
            ),
        )

    @classmethod
    def load(cls, files: Mapping[str, bytes], metadata: Mapping[str, Any]) -> Self:
        return cls(_from_json(import_xgboost(), cls.file(files)), **cls.common_fields(metadata))

    def scores(self, matrix: FloatArray) -> FloatArray:
        if self.objective in _MARGIN_OBJECTIVES:
            margin = np.asarray(
                self.booster.inplace_predict(matrix, predict_type="margin"), dtype=np.float64
            )
            if margin.ndim == 1:
                probability: FloatArray = 1.0 / (1.0 + np.exp(-margin))
                return probability
            shifted = np.exp(margin - margin.max(axis=1, keepdims=True))
            softmax: FloatArray = shifted / shifted.sum(axis=1, keepdims=True)
            return softmax
        return np.asarray(self.booster.inplace_predict(matrix), dtype=np.float64)

    def contributions(self, matrix: FloatArray) -> tuple[FloatArray, FloatArray]:
        xgb = import_xgboost()
        types = self.booster.feature_types
        categorical = bool(types) and "c" in types
        data = xgb.DMatrix(
            matrix,
            missing=np.nan,
            feature_names=self.booster.feature_names,
            feature_types=types,
            enable_categorical=categorical,
        )
        blocks = np.asarray(self.booster.predict(data, pred_contribs=True), dtype=np.float64)
        raw = np.asarray(self.booster.predict(data, output_margin=True), dtype=np.float64)
        return blocks, raw.reshape(matrix.shape[0], -1)

    def save(self) -> dict[str, bytes]:
        return {"model": bytes(self.booster.save_raw("json"))}


def _from_json(xgb: Any, raw: bytes) -> Any:
    booster = xgb.Booster()
    try:
        booster.load_model(bytearray(raw))
    except xgb.core.XGBoostError as exc:
        raise ArtifactCorruptedError(
            f"the XGBoost model file cannot be read ({str(exc).splitlines()[0]}); it is "
            "damaged or was not written by the xgboost flavor"
        ) from exc
    return booster


def _stored_categories(booster: Any) -> list[list[Any]] | None:
    """The categories XGBoost (3.1+) keeps when fitted on a DataFrame with category
    columns, in feature order; None when it kept none."""
    try:
        stored = booster.get_categories(export_to_arrow=True).to_arrow()
    except (AttributeError, TypeError, ValueError):  # older XGBoost, or nothing stored
        return None
    if not stored:
        return None
    found = [values.to_pylist() for _, values in stored if values is not None]
    return found or None
