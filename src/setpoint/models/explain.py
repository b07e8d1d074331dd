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
dependency. Other flavors come with the ``explain`` extra (``shap``); not built yet.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

# What the raw output is, by task and outputs; said with every explanation.
LOG_ODDS = "log-odds"
RAW = "raw score"


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
        return [
            {
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
            for row in range(self.rows)
        ]


def split_contributions(
    matrix: FloatArray, rows: int, outputs: int, features: int
) -> tuple[FloatArray, FloatArray]:
    """A tree library's contribution matrix (rows x outputs blocks of features then
    the base, as LightGBM and XGBoost lay it out) as (contributions, base)."""
    blocks = np.asarray(matrix, dtype=np.float64).reshape(rows, outputs, features + 1)
    return blocks[:, :, :features], blocks[:, :, features]


__all__ = ["LOG_ODDS", "RAW", "Explanation", "split_contributions"]
