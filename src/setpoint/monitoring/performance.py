"""How well the model does per window: realized from labels, estimated without them.

**Realized** performance joins feedback to predictions by request id and computes the
task's metrics with the same registry training and gates use
(``models/evaluation.py``), plus the expected calibration error, the share of
predictions that have a label (coverage) and how late the labels came.

**Estimated** performance is for classifiers while labels are missing, which is most
of the time in lending, fraud or churn. Confidence-based estimation: on reference
data with labels, learn how the model's probabilities map to how often it is right
(isotonic calibration per class). In a window without labels, the calibrated
probability of each row is the chance that its true class is each class, so every
cell of the confusion matrix has an expected value, and so do accuracy, precision,
recall and F1; ROC AUC is the area under the expected ROC curve (each row counted
as a positive with weight p and as a negative with weight 1 - p), by its rank-sum form.

The band is the estimate plus or minus a normal quantile of its standard error, in
closed form from the same sums (the delta method: each metric is a smooth function of
sums over rows, so its first-order change in each row's probabilities gives both
parts). Two independent errors add up: the labels' own scatter (what the realized
figure varies by if the calibration holds: each row's class is a draw from its
probabilities) and the calibration's (each isotonic block's value is the share of its
reference rows of that class, a binomial mean over the block's rows). The band costs
about 1.4 times the estimate alone, where drawing label sets and re-applying refit
calibrations cost 70 to 120 times (``bench/drift.py``); it agrees with such a Monte
Carlo band within 15% of its width (tests).

It holds under covariate shift (the inputs move, the relation between inputs and
label does not): the estimate follows the drop in performance that a shift towards
harder cases brings. It cannot see concept drift (the relation itself changes);
only realized performance shows that, which is why both are reported side by side.
Regressors get no estimate; their monitors say so and rely on drift signals.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy.stats import norm

from setpoint.errors import InvalidDataError, UsageError
from setpoint.models.evaluation import evaluate
from setpoint.monitoring._calibration import Isotonic, Place

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]

ESTIMATED_METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc")
_MIN_REFERENCE_ROWS = 100
_ECE_BINS = 10


@dataclass(frozen=True)
class Estimate:
    """An estimated metric and its band (``low`` to ``high``)."""

    value: float
    low: float
    high: float

    def to_dict(self) -> dict[str, float]:
        return {"value": self.value, "low": self.low, "high": self.high}


def realized(
    y_true: Sequence[Any],
    y_pred: Sequence[Any],
    proba: Any,
    *,
    task: str,
    classes: Sequence[Any] | None,
) -> dict[str, float | None]:
    """The task's metrics on labelled predictions (None where undefined), with the
    expected calibration error of a classifier with probabilities."""
    figures = evaluate(y_true, y_pred, proba, task=task, classes=classes)
    if task == "classification" and proba is not None and classes is not None and len(y_true):
        figures["calibration_error"] = expected_calibration_error(
            np.asarray(y_true), np.asarray(proba, dtype=np.float64), list(classes)
        )
    return figures


def expected_calibration_error(y: npt.NDArray[Any], proba: FloatArray, classes: list[Any]) -> float:
    """The mean gap between confidence and accuracy over ten equal-width confidence
    bins, weighted by the bins' rows (the confidence is the top class probability)."""
    confidence = proba.max(axis=1)
    correct = np.asarray(classes, dtype=object)[proba.argmax(axis=1)] == y
    bins = np.minimum((confidence * _ECE_BINS).astype(np.int64), _ECE_BINS - 1)
    total = 0.0
    for b in np.unique(bins):
        inside = bins == b
        total += inside.sum() * abs(confidence[inside].mean() - correct[inside].mean())
    return float(total / len(y))


class ConfidenceEstimator:
    """Estimates a classifier's performance from its probabilities (see the module).

    ``fit`` on reference predictions with their labels; ``estimate`` on a window's
    predicted probabilities and labels (the labels the model gave, not the truth).
    """

    def __init__(self, classes: Sequence[Any]) -> None:
        if len(classes) < 2:
            raise UsageError("performance estimation needs a classifier with 2 or more classes")
        self.classes = list(classes)
        self._calibrators: list[Isotonic] = []

    @property
    def fitted(self) -> bool:
        return bool(self._calibrators)

    def fit(self, proba: Any, labels: Sequence[Any]) -> ConfidenceEstimator:
        scores = _proba(proba, len(self.classes))
        truth = np.asarray(labels, dtype=object)
        if len(truth) != len(scores):
            raise InvalidDataError(
                f"{len(scores)} predictions but {len(truth)} labels to calibrate on"
            )
        if len(truth) < _MIN_REFERENCE_ROWS:
            raise InvalidDataError(
                f"calibrating the estimate needs at least {_MIN_REFERENCE_ROWS} labelled "
                f"reference predictions; got {len(truth)}"
            )
        self._calibrators = [
            Isotonic.fit(scores[:, j], (truth == self.classes[j]).astype(np.float64))
            for j in _scored_classes(len(self.classes))
        ]
        return self

    def calibrated(self, proba: Any) -> FloatArray:
        """Each row's calibrated probability of each class (rows sum to 1)."""
        return np.ascontiguousarray(self._window(proba, None).p.T)

    def expected(self, proba: Any, predicted: Sequence[Any] | None = None) -> dict[str, float]:
        """The estimate alone, without its band (what :meth:`estimate` centres on)."""
        window = self._window(proba, predicted)
        figures = _figures(window, gradients=False)
        return {name: value for name, (value, _) in figures.items() if value is not None}

    def estimate(
        self, proba: Any, predicted: Sequence[Any] | None = None, *, band: float = 0.9
    ) -> dict[str, Estimate]:
        """Expected accuracy, precision, recall and F1 (binary: of the positive class,
        the last; multiclass: unweighted class means) and ROC AUC, each with the
        ``band`` interval the realized figure falls in if the calibration holds (the
        labels' scatter and the calibration's own error, see the module).
        ``predicted`` defaults to the top class."""
        if not 0 < band < 1:
            raise UsageError(f"band must be between 0 and 1, not {band}")
        window = self._window(proba, predicted)
        z = float(norm.ppf(0.5 + band / 2))
        out = {}
        for name, (value, gradient) in _figures(window, gradients=True).items():
            if value is None or gradient is None:
                continue
            # Row i moves the metric by gradient[c, i] when it is of class c: the labels'
            # variance sums the variance of that move over rows (classes drawn from p).
            expected_change = (window.p * gradient).sum(axis=0)
            labels = float((window.p * gradient**2).sum() - expected_change @ expected_change)
            calibration = self._calibration_variance(window, gradient, expected_change)
            spread = z * math.sqrt(max(labels, 0.0) + calibration)
            out[name] = Estimate(value, max(0.0, value - spread), min(1.0, value + spread))
        return out

    def _window(self, proba: Any, predicted: Sequence[Any] | None) -> _Window:
        if not self.fitted:
            raise UsageError("fit the estimator on labelled reference predictions first")
        k = len(self.classes)
        scores = _proba(proba, k)
        if len(scores) == 0:
            raise InvalidDataError("no predictions to estimate performance on")
        if predicted is None:
            chosen = scores.argmax(axis=1).astype(np.intp)
        else:
            labels = np.asarray(predicted, dtype=object)
            chosen = pd.Index(self.classes).get_indexer(labels)
            if (chosen < 0).any():
                raise InvalidDataError(
                    f"predicted label {labels[np.flatnonzero(chosen < 0)[0]]!r} is not one "
                    f"of the classes {self.classes}"
                )
        places = [
            iso.locate(scores[:, j])
            for iso, j in zip(self._calibrators, _scored_classes(k), strict=True)
        ]
        raw = np.vstack(
            [iso.value(place) for iso, place in zip(self._calibrators, places, strict=True)]
        )
        if k == 2:
            p = np.vstack([1.0 - raw[0], raw[0]])
            totals = np.ones(len(scores))
        else:
            totals = raw.sum(axis=0)
            # A row no calibrator gives any chance: the model's own probabilities.
            fallback = totals <= 0
            p = np.where(fallback, scores.T, raw / np.where(fallback, 1.0, totals))
            totals = np.where(fallback, np.inf, totals)  # their calibration has no say
        return _Window(scores, chosen, p, places, totals)

    def _calibration_variance(
        self, window: _Window, gradient: FloatArray, expected_change: FloatArray
    ) -> float:
        """The variance the calibration's own error adds to a metric whose change per
        unit of each calibrated probability is ``gradient`` (classes x rows)."""
        if len(gradient) == 2:
            per_raw = (gradient[1] - gradient[0])[None, :]
        else:  # through the renormalization p = raw / raw.sum()
            per_raw = (gradient - expected_change) / window.totals
        return sum(
            iso.variance(place, per_raw[i])
            for i, (iso, place) in enumerate(zip(self._calibrators, window.places, strict=True))
        )


@dataclass(frozen=True)
class _Window:
    """What the estimate and its band share about one window's rows: the model's
    scores (rows x classes), the class it chose, the calibrated probabilities ``p``
    (classes x rows: sums over classes are then sums of rows), where each scored class
    fell in its calibration, and the rows' calibrated totals before they were
    renormalized (multiclass)."""

    scores: FloatArray
    chosen: IntArray
    p: FloatArray
    places: list[Place]
    totals: FloatArray


Figure = tuple[float | None, FloatArray | None]


def _figures(window: _Window, *, gradients: bool) -> dict[str, Figure]:
    """Each metric's expected value and, with ``gradients``, its first-order change per
    unit of each row's probability of each class (classes x rows)."""
    p, chosen = window.p, window.chosen
    k, n = p.shape
    rows = np.arange(n)
    classes = np.asarray(_scored_classes(k))
    m = len(classes)
    hit = p[chosen, rows]
    tp = np.bincount(chosen, weights=hit, minlength=k)[classes]
    predicted = np.bincount(chosen, minlength=k).astype(np.float64)[classes]
    actual = p[classes].sum(axis=1)

    def ratio(top: FloatArray, bottom: FloatArray) -> tuple[float, FloatArray]:
        """The class mean of top / bottom (0 where bottom is 0) and 1 / bottom."""
        inverse = np.divide(1.0, bottom, out=np.zeros_like(bottom), where=bottom > 0)
        return float(np.mean(top * inverse)), inverse

    precision, per_predicted = ratio(tp, predicted)
    recall, per_actual = ratio(tp, actual)
    f1, per_both = ratio(2 * tp, predicted + actual)
    auc = [_auc(p[j], window.scores[:, j], gradients) for j in classes]
    defined = all(value is not None for value, _ in auc)
    out: dict[str, Figure] = {
        "accuracy": (float(hit.mean()), None),
        "precision": (precision, None),
        "recall": (recall, None),
        "f1": (f1, None),
        "roc_auc": (float(np.mean([v for v, _ in auc])) if defined else None, None),
    }
    if not gradients:
        return out
    mine = chosen[None, :] == classes[:, None]  # scored classes x rows

    def spread(own: FloatArray, every: FloatArray) -> FloatArray:
        """A change over the scored classes: ``own`` for the rows the model put in the
        class, less ``every`` for all rows."""
        change = np.zeros((k, n))
        change[classes] = (mine * own[:, None] - every[:, None]) / m
        return change

    accuracy = np.zeros((k, n))
    accuracy[chosen, rows] = 1.0 / n
    roc = np.zeros((k, n))
    for j, (_, change) in zip(classes, auc, strict=True):
        if change is not None:
            roc[j] = change / m
    changes = {
        "accuracy": accuracy,
        "precision": spread(per_predicted, np.zeros(m)),
        "recall": spread(per_actual, tp * per_actual**2),
        "f1": spread(2 * per_both, 2 * tp * per_both**2),
        "roc_auc": roc,
    }
    return {name: (value, changes[name]) for name, (value, _) in out.items()}


def _auc(
    p: FloatArray, scores: FloatArray, gradients: bool
) -> tuple[float | None, FloatArray | None]:
    """The area under the expected ROC curve, every row a positive with weight p and a
    negative with weight 1 - p, by its rank-sum form (a pair of tied scores counts a
    half), and its change per unit of each row's p."""
    order = np.argsort(scores, kind="stable")
    ordered = scores[order]
    group = np.empty(len(scores), dtype=np.intp)  # rows of equal scores share a group
    group[order] = np.concatenate([[0], np.cumsum(ordered[1:] != ordered[:-1])])
    positive = np.bincount(group, weights=p)
    negative = np.bincount(group, weights=1.0 - p)
    total_pos, total_neg = positive.sum(), negative.sum()
    if total_pos <= 0 or total_neg <= 0:
        return None, None
    # Each group's positives beat the negatives below it and tie with its own.
    below = np.cumsum(negative) - negative + 0.5 * negative
    area = float(positive @ below / (total_pos * total_neg))
    if not gradients:
        return area, None
    above = total_pos - np.cumsum(positive) + 0.5 * positive
    change = ((below - above)[group] - area * (total_neg - total_pos)) / (total_pos * total_neg)
    return area, change


def _proba(proba: Any, k: int) -> FloatArray:
    scores = np.asarray(proba, dtype=np.float64)
    if scores.ndim == 1 and k == 2:
        scores = np.column_stack([1.0 - scores, scores])
    if scores.ndim != 2 or scores.shape[1] != k:
        raise InvalidDataError(
            f"probabilities should have one column per class ({k}); got shape {scores.shape}"
        )
    if not np.isfinite(scores).all():
        raise InvalidDataError("probabilities hold NaN or infinite values")
    return scores


def _scored_classes(k: int) -> list[int]:
    """Binary problems are scored on the positive class (the last); others on each."""
    return [k - 1] if k == 2 else list(range(k))
