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
as a positive with weight p and as a negative with weight 1 - p). The band is the
spread of the metric over labels drawn from those probabilities (what the realized
figure scatters by if the calibration holds), widened by how much the estimate moves
when the calibration is learned again on resamples of the reference.

It holds under covariate shift (the inputs move, the relation between inputs and
label does not): the estimate follows the drop in performance that a shift towards
harder cases brings. It cannot see concept drift (the relation itself changes);
only realized performance shows that, which is why both are reported side by side.
Regressors get no estimate; their monitors say so and rely on drift signals.
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

from setpoint.errors import InvalidDataError, UsageError
from setpoint.models.evaluation import evaluate

FloatArray = npt.NDArray[np.float64]

ESTIMATED_METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc")
_MIN_REFERENCE_ROWS = 100
_ECE_BINS = 10
_RESAMPLES = 20


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
        self._calibrators: list[IsotonicRegression] = []
        self._resampled: list[list[IsotonicRegression]] = []

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
            raise UsageError("fit the estimator on labelled reference predictions first")
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
            raise UsageError(f"band must be between 0 and 1, not {band}")
        p = self.calibrated(proba)
        if len(p) == 0:
            raise InvalidDataError("no predictions to estimate performance on")
        k = len(self.classes)
        if predicted is None:
            chosen = _proba(proba, k).argmax(axis=1)
        else:
            index = {label: j for j, label in enumerate(self.classes)}
            try:
                chosen = np.asarray([index[label] for label in predicted], dtype=np.int64)
            except KeyError as exc:
                raise InvalidDataError(
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
        raise InvalidDataError(
            f"probabilities should have one column per class ({k}); got shape {scores.shape}"
        )
    if not np.isfinite(scores).all():
        raise InvalidDataError("probabilities hold NaN or infinite values")
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
