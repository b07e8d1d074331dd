"""Explanations: each feature's additive contribution to a prediction.

An :class:`Explanation` holds, for each row and each of the model's outputs, a base
value and one contribution per feature that add up to the model's *raw* output: the
log-odds of the positive class for a binary classifier, the per-class raw scores (the
softmax's inputs) for a multiclass one, the value before the objective's link for a
regression (the prediction itself for squared error). Probabilities are not additive;
the raw space is the one in which "this feature moved the answer by so much" holds
exactly, and which space it is travels with the numbers (``space``).

The tree flavors use their library's own exact TreeSHAP (LightGBM
``pred_contrib=True``, XGBoost ``pred_contribs=True``): microseconds a row, no extra
dependency. The other flavors (scikit-learn, pyfunc) are explained by
:func:`explain_function`: shap's permutation explainer over the model's raw output
function (``decision_function`` where the model has one: log-odds for a logistic
regression; else its probabilities; a regressor's ``predict``), against a
background sample of the training rows (interventional Shapley values: the base is
the mean output on the background). Each permutation's contributions telescope to
the output minus the background's, so they add up exactly whatever the number of
permutations. It needs the ``explain`` extra.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

# What the raw output is, by task and outputs; said with every explanation.
LOG_ODDS = "log-odds"
RAW = "raw score"
DECISION = "decision function"
PROBABILITY = "probability"


@dataclass(frozen=True)
class Explanation:
    """Contributions of ``features`` to each of ``outputs`` for each row.

    ``contributions`` is rows x outputs x features, ``base`` and ``raw`` rows x outputs;
    for every row and output, ``base + contributions.sum(features) == raw`` (to the
    library's floating-point error)."""

    features: list[str]
    outputs: list[str]
    space: str
    base: FloatArray
    contributions: FloatArray
    raw: FloatArray

    @property
    def rows(self) -> int:
        return int(self.contributions.shape[0])

    def top(self, row: int, output: int = 0, k: int | None = None) -> list[tuple[str, float]]:
        """The features of one row and output by the size of their contribution,
        largest first (the first ``k``)."""
        values = self.contributions[row, output]
        order = np.argsort(-np.abs(values), kind="stable")[:k]
        return [(self.features[i], float(values[i])) for i in order]

    def to_dicts(self, k: int | None = None) -> list[dict[str, Any]]:
        """Each row as JSON: per output, the base, the raw output and the (top ``k``)
        contributions, and the space they are in."""
        return [self.row_dict(row, k) for row in range(self.rows)]

    def row_dict(self, row: int, k: int | None = None) -> dict[str, Any]:
        """One row of :meth:`to_dicts`."""
        return {
            "space": self.space,
            "outputs": [
                {
                    "output": name,
                    "base": float(self.base[row, j]),
                    "raw": float(self.raw[row, j]),
                    "contributions": dict(self.top(row, j, k)),
                }
                for j, name in enumerate(self.outputs)
            ],
        }


def split_contributions(
    matrix: FloatArray, rows: int, outputs: int, features: int
) -> tuple[FloatArray, FloatArray]:
    """A tree library's contribution matrix (rows x outputs blocks of features then
    the base, as LightGBM and XGBoost lay it out) as (contributions, base)."""
    blocks = np.asarray(matrix, dtype=np.float64).reshape(rows, outputs, features + 1)
    return blocks[:, :, :features], blocks[:, :, features]


def explain_function(
    output: Callable[[Any], Any],
    rows: Any,
    background: Any,
    *,
    features: Sequence[str],
    outputs: Sequence[str],
    space: str,
    seed: int = 0,
    permutations: int | None = None,
) -> Explanation:
    """Explain ``output`` (rows -> raw outputs, one column per name in ``outputs``)
    on ``rows`` against ``background`` rows, both float arrays of the ``features``
    (text encoded as codes by the caller), by shap's permutation explainer with its
    Independent masker."""
    import warnings

    from setpoint.errors import DependencyMissingError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # shap's imports warn about their own deps
            import shap
    except ImportError as exc:
        raise DependencyMissingError.for_extra("shap", "explain") from exc

    def raw(values: Any) -> FloatArray:
        result = np.asarray(output(values), dtype=np.float64)
        return result.reshape(len(values), -1)

    reference = np.asarray(background, dtype=np.float64)
    masker = shap.maskers.Independent(reference, max_samples=len(reference))
    explainer = shap.explainers.Permutation(raw, masker, seed=seed)
    given = np.asarray(rows, dtype=np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # One permutation costs 2 * features + 1 evaluations (each on every background
        # row); the sums are exact with any number, the split sharpens with more.
        # Without ``permutations``: shap's own default of 500 evaluations a row.
        one = 2 * len(features) + 1
        evals = max(500, one) if permutations is None else permutations * one
        # All of a row's evaluations in one call of the model: a call costs more than rows.
        found = explainer(given, max_evals=evals, batch_size=evals, silent=True)
    values = np.asarray(found.values, dtype=np.float64).reshape(len(given), len(features), -1)
    contributions = np.transpose(values, (0, 2, 1))
    base = np.asarray(found.base_values, dtype=np.float64).reshape(len(given), -1)
    return Explanation(list(features), list(outputs), space, base, contributions, raw(given))


# Global importance: rows explained at training (the tree libraries' TreeSHAP is
# cheap; the permutation explainer costs hundreds of model calls a row).
TREE_ROWS = 2_000
OTHER_ROWS = 10
BACKGROUND_ROWS = 10
PERMUTATIONS = 2


def global_importance(explained: Explanation) -> dict[str, Any]:
    """Each feature's mean |contribution| over the rows (summed over the outputs),
    largest first, with the space and the rows it was measured on."""
    size = np.abs(explained.contributions).sum(axis=1).mean(axis=0)
    order = np.argsort(-size, kind="stable")
    return {
        "space": explained.space,
        "rows": explained.rows,
        "features": {explained.features[i]: float(size[i]) for i in order},
    }


__all__ = [
    "BACKGROUND_ROWS",
    "DECISION",
    "LOG_ODDS",
    "OTHER_ROWS",
    "PERMUTATIONS",
    "PROBABILITY",
    "RAW",
    "TREE_ROWS",
    "Explanation",
    "explain_function",
    "global_importance",
    "split_contributions",
]
