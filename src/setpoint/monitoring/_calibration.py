"""Isotonic calibration that knows how sure it is.

scikit-learn's isotonic regression maps a model's probability of a class to how often
rows with that probability are of the class: the pool-adjacent-violators fit pools
reference rows into blocks whose value is their share of the class, and predicts by
linear interpolation between the blocks' first and last scores. This keeps the fit's
thresholds and, per block, the variance of its value (a binomial share over the
block's rows), so an estimate built on the calibrated probabilities can say how much
the calibration's own error moves it. Used by ``performance.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from sklearn.isotonic import IsotonicRegression

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]


@dataclass(frozen=True)
class Place:
    """Where scores fall among a calibration's thresholds: between ``index`` and
    ``index + 1``, ``share`` of the way."""

    index: IntArray
    share: FloatArray


@dataclass(frozen=True)
class Isotonic:
    """An isotonic map from the model's probability of a class to how often the row is
    of that class: linear between thresholds, flat beyond them (scikit-learn's fit and
    interpolation). Each threshold belongs to a pooled block of reference rows whose
    share of the class is its value; ``block_variance`` is that share's variance."""

    x: FloatArray
    y: FloatArray
    block: IntArray
    block_variance: FloatArray

    @classmethod
    def fit(cls, scores: FloatArray, truth: FloatArray) -> Isotonic:
        iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(scores, truth)
        x = np.asarray(iso.X_thresholds_, dtype=np.float64)
        y = np.asarray(iso.y_thresholds_, dtype=np.float64)
        if len(x) == 1:  # one distinct score: a constant
            x, y = np.repeat(x, 2), np.repeat(y, 2)
        # scikit-learn keeps the first and last threshold of every pooled block (the
        # points where the value changes), so a block spans the reference rows whose
        # scores lie between its first and last threshold.
        block = np.concatenate([[0], np.cumsum(np.diff(y) != 0)]).astype(np.intp)
        blocks = int(block[-1]) + 1
        first = np.full(blocks, np.inf)
        last = np.full(blocks, -np.inf)
        np.minimum.at(first, block, x)
        np.maximum.at(last, block, x)
        ordered = np.sort(scores)
        rows = np.searchsorted(ordered, last, "right") - np.searchsorted(ordered, first, "left")
        value = np.zeros(blocks)
        value[block] = y
        # A block of all or none of the class still has an uncertain share: add one
        # row of each (Laplace), so its variance is not zero.
        share = (value * rows + 1.0) / (rows + 2.0)
        return cls(x, y, block, share * (1.0 - share) / np.maximum(rows, 1))

    def locate(self, scores: FloatArray) -> Place:
        index = np.clip(np.searchsorted(self.x, scores, "right") - 1, 0, len(self.x) - 2)
        width = self.x[index + 1] - self.x[index]
        with np.errstate(invalid="ignore", divide="ignore"):
            share = np.where(width > 0, (scores - self.x[index]) / width, 0.0)
        return Place(index.astype(np.intp), np.clip(share, 0.0, 1.0))

    def value(self, place: Place) -> FloatArray:
        low, high = self.y[place.index], self.y[place.index + 1]
        return np.asarray(low + place.share * (high - low), dtype=np.float64)

    def variance(self, place: Place, gradient: FloatArray) -> float:
        """The variance of sum(gradient * value(place)) from the blocks' errors (blocks
        are independent; a row between two blocks moves with both)."""
        size = len(self.block_variance)
        weight = np.bincount(
            self.block[place.index], gradient * (1.0 - place.share), minlength=size
        ) + np.bincount(self.block[place.index + 1], gradient * place.share, minlength=size)
        return float(weight**2 @ self.block_variance)
