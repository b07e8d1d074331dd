"""What the native tree flavors (LightGBM, XGBoost) share.

Both predict through the library's own booster on a float matrix from
:class:`~setpoint.models.inputs.MatrixEncoder`, which skips pandas and the sklearn
wrappers: on the serving hot path that is most of the cost of a one-row prediction.
Categorical features reach the booster as the index of the value in the categories
seen in training, so those categories are part of the model's metadata.
"""

from __future__ import annotations

import importlib
from abc import abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from setpoint.data.kinds import TEXT_KINDS, Kind
from setpoint.errors import DependencyMissingError, UsageError
from setpoint.models.explain import LOG_ODDS, RAW, Explanation, split_contributions
from setpoint.models.inputs import MatrixEncoder
from setpoint.models.predictor import BasePredictor, Task

FloatArray = npt.NDArray[np.float64]


def optional_import(module: str, *, package: str, extra: str) -> Any:
    """A model library, imported only when one of its models is used; a missing one is
    a DependencyMissingError saying which extra installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise DependencyMissingError.for_extra(package, extra) from exc


class MatrixPredictor(BasePredictor):
    """A model that maps the float matrix of the features (``MatrixEncoder``) to values
    or class probabilities: the native tree flavors and the optimised ones."""

    def __init__(self, **fields: Any) -> None:
        super().__init__(**fields)
        self.encoder = MatrixEncoder(self.features, self.kinds, self.categories)

    @abstractmethod
    def scores(self, matrix: FloatArray) -> FloatArray:
        """Regression values, or class probabilities (rows by classes, or P(class 1))."""

    def predict(self, data: Any) -> npt.NDArray[Any]:
        scores = self.scores(self.encoder(data))
        if self.task == "regression":
            return scores
        return self.labels(np.argmax(proba_columns(scores), axis=1))

    def predict_proba(self, data: Any) -> FloatArray | None:
        if self.task == "regression":
            return None
        return proba_columns(self.scores(self.encoder(data)))


class TreePredictor(MatrixPredictor):
    """A booster that maps a float matrix to values or class probabilities."""

    def __init__(self, booster: Any, **fields: Any) -> None:
        super().__init__(**fields)
        self.booster = booster

    @abstractmethod
    def contributions(self, matrix: FloatArray) -> tuple[FloatArray, FloatArray]:
        """The library's exact TreeSHAP: (rows x outputs x features contributions,
        rows x outputs raw outputs); the last feature slot of each block is the base."""

    def explain(self, data: Any) -> Explanation:
        """Each feature's additive contribution to each row's raw output
        (``models/explain.py``), by the library's own TreeSHAP."""
        matrix = self.encoder(data)
        blocks, raw = self.contributions(matrix)
        outputs = raw.shape[1]
        contributions, base = split_contributions(
            blocks, matrix.shape[0], outputs, len(self.features)
        )
        if self.task == "regression":
            names, space = ["value"], RAW
        elif outputs == 1:  # binary: the positive (second) class's log-odds
            names, space = [str(self.classes[-1]) if self.classes else "1"], LOG_ODDS
        else:
            names, space = [str(c) for c in self.classes or range(outputs)], RAW
        return Explanation(list(self.features), names, space, base, contributions, raw)


def proba_columns(scores: FloatArray) -> FloatArray:
    if scores.ndim == 1:  # binary: the booster gives P(class 1)
        return np.column_stack([1.0 - scores, scores])
    return scores


def resolve_task(
    flavor: str,
    objective: str,
    *,
    classifier: bool,
    outputs: int,
    task: Task | None,
    classes: Sequence[Any] | None,
) -> tuple[Task, list[Any] | None]:
    """The task and classes, from the booster's objective and what the caller said.

    A booster alone does not know its labels: classes default to 0..k-1, which is
    what the libraries' own classifiers predict when fitted on integer labels.
    """
    implied: Task = "classification" if classifier else "regression"
    if task is not None and task != implied:
        raise UsageError(
            f"task is {task!r}, but the {flavor} model's objective {objective!r} is for "
            f"{implied}; pass task={implied!r} or a model fitted for {task}"
        )
    if implied == "regression":
        return implied, None
    count = 2 if outputs == 1 else outputs
    if classes is None:
        return implied, list(range(count))
    if len(classes) != count:
        raise UsageError(
            f"the {flavor} model predicts {count} classes but {len(classes)} class labels "
            f"were given ({list(classes)})"
        )
    return implied, list(classes)


def resolve_categories(
    flavor: str,
    features: Sequence[str],
    kinds: Mapping[str, Kind],
    categories: Mapping[str, Sequence[Any]] | None,
    stored: Sequence[Sequence[Any]] | None,
) -> dict[str, list[str]]:
    """The categories of each text feature: given, or stored in the model by the
    library when it was fitted on a DataFrame with category columns (in the order of
    those columns)."""
    text = [name for name in features if kinds.get(name) in TEXT_KINDS]
    if categories is not None:
        absent = [name for name in text if name not in categories]
        if not absent:
            return {name: [str(v) for v in categories[name]] for name in text}
    elif stored is not None and len(stored) == len(text):
        return {name: [str(v) for v in values] for name, values in zip(text, stored, strict=True)}
    else:
        absent = text
    if not absent:
        return {}
    raise UsageError(
        f"the {flavor} model has categorical feature(s) {', '.join(absent)} but no categories "
        "for them; pass categories={column: [values in the order the model encodes them]} "
        "(training computes them with setpoint.models.inputs.encode_categories)"
    )


def check_feature_count(flavor: str, expected: int, features: Sequence[str]) -> None:
    if expected != len(features):
        raise UsageError(
            f"the {flavor} model was fitted on {expected} features but {len(features)} were "
            f"given ({', '.join(features)}); pass the features in the order it was fitted with"
        )
