"""Any object with a ``predict`` method: the flavor of last resort.

The object is saved with joblib, which is a pickle: loading it runs code named in
the file, so load only artifacts you trust. The registry checks every artifact
against its content hash before it reaches :meth:`PyfuncPredictor.load`, so a file
changed after registration is refused upstream; a file that was malicious when
registered is not.
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Self

import joblib
import numpy as np
import numpy.typing as npt
import pandas as pd

from setpoint.data.kinds import Kind
from setpoint.errors import ArtifactCorruptedError, DependencyMissingError, UsageError
from setpoint.models.explain import DECISION, PROBABILITY, RAW, Explanation, explain_function
from setpoint.models.inputs import to_frame
from setpoint.models.predictor import BasePredictor, Task


class PyfuncPredictor(BasePredictor):
    """Wraps ``obj.predict`` (and ``obj.predict_proba`` when it has one).

    The model gets a DataFrame of exactly the features, typed by kind (see
    :func:`~setpoint.models.inputs.to_frame`).
    """

    flavor = "pyfunc"
    libraries: ClassVar[tuple[str, ...]] = ("joblib", "numpy", "pandas")

    def __init__(self, model: Any, **fields: Any) -> None:
        super().__init__(**fields)
        self.model = model

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
        if not callable(getattr(obj, "predict", None)):
            raise UsageError(
                f"a {type(obj).__name__} has no predict method, so it cannot be used as a model"
            )
        cls.check(obj, features)
        task = task or cls.infer_task(obj)
        classes = getattr(obj, "classes_", None) if task == "classification" else None
        return cls(
            obj, features=features, task=task, kinds=kinds, classes=classes, categories=categories
        )

    @classmethod
    def check(cls, obj: Any, features: Sequence[str]) -> None:
        """Refuse ``obj`` early when it cannot work with ``features``."""

    @staticmethod
    def infer_task(obj: Any) -> Task:
        """Classification when the object speaks of classes or probabilities."""
        if callable(getattr(obj, "predict_proba", None)) or hasattr(obj, "classes_"):
            return "classification"
        return "regression"

    @classmethod
    def load(cls, files: Mapping[str, bytes], metadata: Mapping[str, Any]) -> Self:
        return cls(_unpickle(cls.file(files), cls.flavor), **cls.common_fields(metadata))

    def model_input(self, data: Any) -> Any:
        """What the wrapped object's ``predict`` is given."""
        return to_frame(data, self.features, self.kinds)

    def predict(self, data: Any) -> npt.NDArray[Any]:
        return np.asarray(self.model.predict(self.model_input(data)))

    def predict_proba(self, data: Any) -> npt.NDArray[np.float64] | None:
        if self.task == "regression" or not callable(getattr(self.model, "predict_proba", None)):
            return None
        return np.asarray(self.model.predict_proba(self.model_input(data)), dtype=np.float64)

    def explain(
        self, data: Any, background: Any, *, permutations: int | None = None
    ) -> Explanation:
        """Each feature's additive contribution to each row's raw output, against
        ``background`` rows of the training data (``explain_function``; ``permutations``
        trades the split's precision for time, the sums stay exact)."""
        features = list(self.features)
        given = to_frame(data, features, self.kinds)[features]
        reference = to_frame(background, features, self.kinds)[features]
        # shap's masker works on numbers: a text column goes as codes of its values.
        both = pd.concat([given, reference], ignore_index=True)
        codes = {
            name: pd.Categorical(both[name].dropna().unique())
            for name in features
            if not pd.api.types.is_numeric_dtype(both[name])
        }

        def encoded(frame: pd.DataFrame) -> npt.NDArray[np.float64]:
            columns = [
                pd.Categorical(frame[n], categories=codes[n].categories).codes.astype(float)
                if n in codes
                else frame[n].to_numpy(dtype=float)
                for n in features
            ]
            return np.column_stack(columns)

        def decoded(values: npt.NDArray[np.float64]) -> pd.DataFrame:
            frame = pd.DataFrame(values, columns=features)
            for name, categorical in codes.items():
                index = frame[name].to_numpy().astype(int)
                found = pd.Series(categorical.categories.to_numpy()[np.maximum(index, 0)])
                frame[name] = found.where(index >= 0, None)  # code -1: a missing value
            return frame

        rows, reference_rows = encoded(given), encoded(reference)
        decision = getattr(self.model, "decision_function", None)
        if self.task == "regression":
            function, names, space = self.model.predict, ["value"], RAW
        elif callable(decision):
            function, space = decision, DECISION
            classes = [str(c) for c in self.classes or []]
            names = classes[-1:] if len(classes) == 2 else classes
        elif callable(getattr(self.model, "predict_proba", None)):
            function = self.model.predict_proba
            names, space = [str(c) for c in self.classes or []], PROBABILITY
        else:
            raise UsageError(
                f"a {type(self.model).__name__} gives classes without scores (no "
                "decision_function or predict_proba), so there is nothing to split into "
                "contributions; give the model one of them"
            )

        def output(values: Any) -> Any:
            return function(self.model_input(decoded(values)))

        return explain_function(
            output,
            rows,
            reference_rows,
            features=features,
            outputs=names,
            space=space,
            permutations=permutations,
        )

    def save(self) -> dict[str, bytes]:
        buffer = io.BytesIO()
        joblib.dump(self.model, buffer)
        return {"model": buffer.getvalue()}


def _unpickle(data: bytes, flavor: str) -> Any:
    try:
        return joblib.load(io.BytesIO(data))
    except ModuleNotFoundError as exc:
        raise DependencyMissingError(
            f"the {flavor} model needs the module {exc.name!r}, which is not installed here; "
            "install the package that provides it (the model metadata lists library versions)",
            details={"package": exc.name},
        ) from exc
    except (pickle.UnpicklingError, EOFError, ValueError, KeyError, TypeError, IndexError) as exc:
        raise ArtifactCorruptedError(
            f"the {flavor} model file cannot be read ({type(exc).__name__}: {exc}); "
            "it is damaged or was not written by this flavor"
        ) from exc
