"""scikit-learn estimators and pipelines, saved with joblib.

Like :mod:`~setpoint.models.flavors.pyfunc` this is a pickle (load only trusted
artifacts; the registry checks content hashes upstream). What scikit-learn adds is
known structure: fitted state, the feature names the estimator was fitted with, and
whether it is a classifier, so a mismatch is refused when the model is wrapped
rather than at the first request.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from sklearn.base import is_classifier
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted

from setpoint.errors import UsageError
from setpoint.models.flavors.pyfunc import PyfuncPredictor
from setpoint.models.inputs import to_frame
from setpoint.models.predictor import Task


class SklearnPredictor(PyfuncPredictor):
    """A fitted scikit-learn estimator (any ``BaseEstimator``, pipelines included)."""

    flavor = "sklearn"
    libraries: ClassVar[tuple[str, ...]] = ("sklearn", "joblib", "numpy", "pandas")

    def __init__(self, model: Any, **fields: Any) -> None:
        super().__init__(model, **fields)
        # Fitted on a DataFrame: give it one (with the same names). Fitted on an
        # array: give it an array, or scikit-learn warns about feature names.
        self._wants_frame = getattr(model, "feature_names_in_", None) is not None

    @classmethod
    def check(cls, obj: Any, features: Sequence[str]) -> None:
        try:
            check_is_fitted(obj)
        except NotFittedError as exc:
            raise UsageError(
                f"the {type(obj).__name__} is not fitted; call fit before registering it"
            ) from exc
        names = getattr(obj, "feature_names_in_", None)
        if names is not None and [str(n) for n in names] != list(features):
            raise UsageError(
                f"the {type(obj).__name__} was fitted on columns {list(names)}, but features "
                f"are {list(features)}; pass features in the order the model was fitted with"
            )
        count = getattr(obj, "n_features_in_", None)
        if names is None and count is not None and count != len(features):
            raise UsageError(
                f"the {type(obj).__name__} was fitted on {count} columns, but {len(features)} "
                "features were given"
            )

    @staticmethod
    def infer_task(obj: Any) -> Task:
        if is_classifier(obj) or hasattr(obj, "classes_"):
            return "classification"
        return "regression"

    def model_input(self, data: Any) -> Any:
        frame = to_frame(data, self.features, self.kinds)
        return frame if self._wants_frame else frame.to_numpy()
