"""The estimated-performance band as it was computed before issue 11, kept only so
``bench/drift.py`` can measure the closed form against it in the same run.

A copy of ``ConfidenceEstimator`` from ``src/setpoint/monitoring/performance.py`` at
commit c46cd36: 20 isotonic calibrations refit on resamples of the reference at
``fit``; at ``estimate``, each of them re-applied with a weighted scikit-learn ROC AUC
(21 calls in all with the point estimate), plus 200 label sets drawn from the
calibrated probabilities and scored. Not used by setpoint itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.stats import rankdata
from sklearn.isotonic import IsotonicRegression
from sklearn.metrics import roc_auc_score

FloatArray = npt.NDArray[np.float64]
_RESAMPLES = 20
_MIN_REFERENCE_ROWS = 100


@dataclass(frozen=True)
class Estimate:
    value: float
    low: float
    high: float


class ConfidenceEstimator:
    """Estimates a classifier's performance from its probabilities (see the module).

    ``fit`` on reference predictions with their labels; ``estimate`` on a window's
    predicted probabilities and labels (the labels the model gave, not the truth).
    """

    def __init__(self, classes: Sequence[Any]) -> None:
        if len(classes) < 2:
            raise ValueError("performance estimation needs a classifier with 2 or more classes")
        self.classes = list(classes)
        self._calibrators: list[IsotonicRegression] = []
        self._resampled: list[list[IsotonicRegression]] = []

    @property
    def fitted(self) -> bool:
        return bool(self._calibrators)

    def fit(self, proba: Any, labels: Sequence[Any]) -> ConfidenceEstimator:
        scores = _proba(proba, len(self.classes))
        truth = np.asarray(labels, dtype=object)
        if len(truth) != len(scores):
            raise ValueError(f"{len(scores)} predictions but {len(truth)} labels to calibrate on")
        if len(truth) < _MIN_REFERENCE_ROWS:
            raise ValueError(
                f"calibrating the estimate needs at least {_MIN_REFERENCE_ROWS} labelled "
                f"reference predictions; got {len(truth)}"
            )
        onehot = np.column_stack([(truth == label) for label in self.classes]).astype(np.float64)
        self._calibrators = _calibrate(scores, onehot)
        # The same calibration on resamples of the reference: how much the estimate
        # itself could be off, which the band adds to the labels' own scatter.
        rng = np.random.default_rng(0)
        self._resampled = []
        for _ in range(_RESAMPLES):
            rows = rng.integers(0, len(scores), len(scores))
            self._resampled.append(_calibrate(scores[rows], onehot[rows]))
        return self

    def calibrated(self, proba: Any) -> FloatArray:
        """Each row's calibrated probability of each class (rows sum to 1)."""
        if not self.fitted:
            raise ValueError("fit the estimator on labelled reference predictions first")
        return _apply(self._calibrators, _proba(proba, len(self.classes)))

    def estimate(
        self,
        proba: Any,
        predicted: Sequence[Any] | None = None,
        *,
        band: float = 0.9,
        draws: int = 200,
        seed: int = 0,
    ) -> dict[str, Estimate]:
        """Expected accuracy, precision, recall and F1 (binary: of the positive class,
        the last; multiclass: unweighted class means) and ROC AUC, each with the
        ``band`` interval of the metric over ``draws`` label sets drawn from the
        calibrated probabilities. ``predicted`` defaults to the top class."""
        if not 0 < band < 1:
            raise ValueError(f"band must be between 0 and 1, not {band}")
        p = self.calibrated(proba)
        if len(p) == 0:
            raise ValueError("no predictions to estimate performance on")
        k = len(self.classes)
        if predicted is None:
            chosen = _proba(proba, k).argmax(axis=1)
        else:
            index = {label: j for j, label in enumerate(self.classes)}
            try:
                chosen = np.asarray([index[label] for label in predicted], dtype=np.int64)
            except KeyError as exc:
                raise ValueError(
                    f"predicted label {exc.args[0]!r} is not one of the classes {self.classes}"
                ) from None
        scores = _proba(proba, k)
        point = _expected(p, chosen, scores)
        sampler = _Sampler(scores, chosen)
        rng = np.random.default_rng(seed)
        cumulative = p.cumsum(axis=1)
        # Each draw adds two deviations from the estimate: the calibration's (one of
        # the resampled calibrations, in turn) and the labels' (drawn from p).
        offsets = [
            _expected(_apply(calibrators, scores), chosen, scores)
            for calibrators in self._resampled
        ]
        samples: dict[str, list[float]] = {name: [] for name in point}
        for d in range(draws):
            u = rng.random((len(p), 1))
            truth = np.minimum((u > cumulative).sum(axis=1), k - 1)
            offset = offsets[d % len(offsets)]
            for name, value in sampler.figures(truth).items():
                base, moved = point[name], offset[name]
                if value is not None and base is not None and moved is not None:
                    samples[name].append(value + moved - base)
        tail = (1 - band) / 2
        out = {}
        for name, value in point.items():
            if value is None or not samples[name]:
                continue
            low, high = np.quantile(samples[name], [tail, 1 - tail])
            out[name] = Estimate(value, float(min(low, value)), float(max(high, value)))
        return out


def _calibrate(scores: FloatArray, onehot: FloatArray) -> list[IsotonicRegression]:
    """Isotonic maps from the model's probability to how often it is right: of the
    positive class for a binary model (the other is its complement), else of each."""
    calibrators = []
    for j in _scored_classes(scores.shape[1]):
        iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
        calibrators.append(iso.fit(scores[:, j], onehot[:, j]))
    return calibrators


def _apply(calibrators: list[IsotonicRegression], scores: FloatArray) -> FloatArray:
    if scores.shape[1] == 2:
        positive = calibrators[0].predict(scores[:, 1])
        return np.column_stack([1.0 - positive, positive]).astype(np.float64)
    calibrated = np.column_stack([iso.predict(scores[:, j]) for j, iso in enumerate(calibrators)])
    totals = calibrated.sum(axis=1, keepdims=True)
    # A row no calibrator gives any chance: fall back to the model's own probabilities.
    fallback = totals[:, 0] <= 0
    calibrated[fallback] = scores[fallback]
    totals[fallback] = 1.0
    return np.asarray(calibrated / totals, dtype=np.float64)


def _proba(proba: Any, k: int) -> FloatArray:
    scores = np.asarray(proba, dtype=np.float64)
    if scores.ndim == 1 and k == 2:
        scores = np.column_stack([1.0 - scores, scores])
    if scores.ndim != 2 or scores.shape[1] != k:
        raise ValueError(
            f"probabilities should have one column per class ({k}); got shape {scores.shape}"
        )
    if not np.isfinite(scores).all():
        raise ValueError("probabilities hold NaN or infinite values")
    return scores


def _expected(
    p: FloatArray, chosen: npt.NDArray[np.int64], scores: FloatArray
) -> dict[str, float | None]:
    """The expected confusion-matrix metrics when row i's class is j with chance p[i, j]."""
    hit = p[np.arange(len(p)), chosen]  # the chance each prediction is right
    classes = _scored_classes(p.shape[1])
    tp = np.array([hit[chosen == j].sum() for j in classes])
    predicted = np.array([(chosen == j).sum() for j in classes], dtype=np.float64)
    actual = p[:, classes].sum(axis=0)
    return {
        "accuracy": float(hit.mean()),
        **_precision_recall_f1(tp, predicted, actual),
        "roc_auc": _expected_auc(p, scores),
    }


def _expected_auc(p: FloatArray, scores: FloatArray) -> float | None:
    """The area under the expected ROC curve (binary; one-vs-rest class mean otherwise):
    every row is a positive with weight p and a negative with weight 1 - p."""
    n = len(p)
    truth = np.concatenate([np.ones(n), np.zeros(n)])
    areas = []
    for j in _scored_classes(p.shape[1]):
        weight = np.concatenate([p[:, j], 1.0 - p[:, j]])
        if weight[:n].sum() <= 0 or weight[n:].sum() <= 0:
            return None
        score = np.concatenate([scores[:, j], scores[:, j]])
        areas.append(float(roc_auc_score(truth, score, sample_weight=weight)))
    return float(np.mean(areas))


class _Sampler:
    """The metrics on label sets drawn from calibrated probabilities, cheaply: the
    scores' ranks are computed once, so each draw's ROC AUC is a sum over its positives."""

    def __init__(self, scores: FloatArray, chosen: npt.NDArray[np.int64]) -> None:
        self.chosen = chosen
        self.classes = _scored_classes(scores.shape[1])
        self.ranks = [rankdata(scores[:, j]) for j in self.classes]
        self.predicted = np.array([(chosen == j).sum() for j in self.classes], dtype=np.float64)

    def figures(self, truth: npt.NDArray[np.int64]) -> dict[str, float | None]:
        hit = truth == self.chosen
        tp = np.array([(hit & (truth == j)).sum() for j in self.classes], dtype=np.float64)
        actual = np.array([(truth == j).sum() for j in self.classes], dtype=np.float64)
        n = len(truth)
        areas = []
        for j, ranks, positives in zip(self.classes, self.ranks, actual, strict=True):
            if positives == 0 or positives == n:
                break
            rank_sum = ranks[truth == j].sum()
            areas.append(
                (rank_sum - positives * (positives + 1) / 2) / (positives * (n - positives))
            )
        return {
            "accuracy": float(hit.mean()),
            **_precision_recall_f1(tp, self.predicted, actual),
            "roc_auc": float(np.mean(areas)) if len(areas) == len(self.classes) else None,
        }


def _scored_classes(k: int) -> list[int]:
    """Binary problems are scored on the positive class (the last); others on each."""
    return [k - 1] if k == 2 else list(range(k))


def _precision_recall_f1(
    tp: FloatArray, predicted: FloatArray, actual: FloatArray
) -> dict[str, float | None]:
    """Class means of precision, recall and F1 from true positives and the predicted
    and actual totals of each class (a class with no rows to divide by scores 0)."""

    def ratio(top: FloatArray, bottom: FloatArray) -> float:
        return float(np.mean(np.divide(top, bottom, out=np.zeros_like(top), where=bottom > 0)))

    return {
        "precision": ratio(tp, predicted),
        "recall": ratio(tp, actual),
        "f1": ratio(2 * tp, predicted + actual),
    }
