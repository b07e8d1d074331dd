"""LightGBM boosters, saved as LightGBM's own text model file.

Prediction calls the native ``Booster.predict`` on a float matrix, not the sklearn
wrapper on a DataFrame: it is several times faster for the one-row requests a
service answers. The text model is readable by any LightGBM 4, unlike a pickle.
"""

from __future__ import annotations

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

_CLASSIFIER_OBJECTIVES = frozenset({"binary", "multiclass", "multiclassova"})


def import_lightgbm() -> Any:
    """The lightgbm module, imported only when a LightGBM model is used."""
    return optional_import("lightgbm", package="lightgbm", extra="lightgbm")


class LightGBMPredictor(TreePredictor):
    """A LightGBM ``Booster`` (from ``lgb.train`` or an ``LGBMModel``'s ``booster_``)."""

    flavor = "lightgbm"
    libraries = ("lightgbm", "numpy")

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
        lgb = import_lightgbm()
        classes = None
        if isinstance(obj, lgb.LGBMModel):
            try:
                booster = obj.booster_
            except NotFittedError as exc:
                raise UsageError(
                    f"the {type(obj).__name__} is not fitted; call fit before registering it"
                ) from exc
            classes = getattr(obj, "classes_", None)
        elif isinstance(obj, lgb.Booster):
            booster = obj
        else:
            raise UsageError(f"a {type(obj).__name__} is not a LightGBM Booster or LGBMModel")
        # A copy through the text model: it keeps only the best iteration (when early
        # stopping found one), exactly what a load will see, and later training of the
        # caller's booster cannot change this predictor.
        model = booster.model_to_string()
        booster = lgb.Booster(model_str=model)
        check_feature_count(cls.flavor, booster.num_feature(), features)
        objective = _objective(model)
        task, classes = resolve_task(
            cls.flavor,
            objective,
            classifier=objective in _CLASSIFIER_OBJECTIVES,
            outputs=booster.num_model_per_iteration(),
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
                cls.flavor, features, kinds, categories, booster.pandas_categorical
            ),
        )

    @classmethod
    def load(cls, files: Mapping[str, bytes], metadata: Mapping[str, Any]) -> Self:
        lgb = import_lightgbm()
        try:
            booster = lgb.Booster(model_str=cls.file(files).decode())
        except (lgb.basic.LightGBMError, UnicodeDecodeError, ValueError) as exc:
            raise ArtifactCorruptedError(
                f"the LightGBM model file cannot be read ({exc}); it is damaged or was not "
                "written by the lightgbm flavor"
            ) from exc
        return cls(booster, **cls.common_fields(metadata))

    def scores(self, matrix: FloatArray) -> FloatArray:
        return np.asarray(self.booster.predict(matrix), dtype=np.float64)

    def contributions(self, matrix: FloatArray) -> tuple[FloatArray, FloatArray]:
        blocks = np.asarray(self.booster.predict(matrix, pred_contrib=True), dtype=np.float64)
        raw = np.asarray(self.booster.predict(matrix, raw_score=True), dtype=np.float64)
        return blocks, raw.reshape(matrix.shape[0], -1)

    def save(self) -> dict[str, bytes]:
        return {"model": self.booster.model_to_string().encode()}


def _objective(model: str) -> str:
    """The objective's name from the text model's ``objective=binary sigmoid:1`` line."""
    for line in model.splitlines():
        if line.startswith("objective="):
            return line.removeprefix("objective=").split(" ")[0]
        if line.startswith("Tree="):
            break
    return "custom"
