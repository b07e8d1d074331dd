"""What the optimised flavors (``compiled``, ``onnx``) share: a tree ensemble made from a
registered LightGBM model by ``setpoint optimize``, fed the same float matrix.

They take exactly the original's inputs through the same
:class:`~setpoint.models.inputs.MatrixEncoder` (same features, same category codes, NaN
for missing), so a request that the original accepts or refuses is accepted or refused
alike. They have no TreeSHAP of their own, so they are explained like scikit-learn
models, against a background sample (``models/background.py``). Neither can wrap an
object a user fitted: they are only ever built from a predictor by
:mod:`setpoint.models.optimize`, and rebuilt by ``load``.

The runtimes behind them hold native handles (a loaded shared library, an inference
session) that do not pickle, so a predictor pickles as its files and metadata and is
loaded again on the other side.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Self

import numpy as np

from setpoint.data.kinds import Kind
from setpoint.errors import UsageError
from setpoint.models.explain import PROBABILITY, RAW, Explanation, explain_function
from setpoint.models.flavors._trees import FloatArray, MatrixPredictor, proba_columns
from setpoint.models.predictor import Task


class EncodedPredictor(MatrixPredictor):
    """A model that maps the float matrix of the features to values or probabilities."""

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
        raise UsageError(
            f"a {cls.flavor} model is made from a registered LightGBM model by "
            "`setpoint optimize NAME@VERSION`, not from a fitted object"
        )

    def explain(
        self, data: Any, background: Any, *, permutations: int | None = None
    ) -> Explanation:
        """Each feature's contribution to each row's output (a probability, or the value),
        against ``background`` rows: shap's permutation explainer on the encoded matrix,
        where a category is its code, as the trees see it."""
        if self.task == "regression":
            names, space = ["value"], RAW
        else:
            names, space = [str(c) for c in self.classes or []], PROBABILITY

        def output(values: FloatArray) -> FloatArray:
            scores = self.scores(np.asarray(values, dtype=np.float64))
            return scores if self.task == "regression" else proba_columns(scores)

        return explain_function(
            output,
            self.encoder(data),
            self.encoder(background),
            features=list(self.features),
            outputs=names,
            space=space,
            permutations=permutations,
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (_reload, (type(self), self.save(), self.metadata()))


def _reload(cls: type[EncodedPredictor], files: dict[str, bytes], metadata: dict[str, Any]) -> Any:
    return cls.load(files, metadata)
