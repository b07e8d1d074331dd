"""The paired bootstrap of the gates: how much better the candidate is than the
champion on resamples of the hold-out, both scored on the same resampled rows.

Recomputing a metric with scikit-learn a thousand times costs seconds (ROC AUC on
5,000 rows: ~3.5 s for 500 resamples of two models); the common metrics are computed
here for all resamples at once from the resamples' row counts, and only where that
gives the registry's own value on the full hold-out. Anything else is recomputed per
resample with :func:`setpoint.models.evaluation.evaluate`, which stays the definition.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from setpoint.models.evaluation import METRICS, evaluate

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]
Array = npt.NDArray[Any]
# One model's answers on the hold-out: the labels or values, and the probabilities.
Answers = tuple[Array, "FloatArray | None"]

# Bootstrap weight matrices are built in chunks of at most this many cells, so a large
# hold-out does not need resamples x rows floats at once.
_CHUNK_CELLS = 2_000_000


# A resample's values of one model's metric: from the resamples' row counts (weights,
# resamples x rows) or their row indices.
Scorer = Callable[[FloatArray, IntArray], FloatArray]


def paired_differences(
    names: list[str],
    y: Array,
    champion: Answers,
    candidate: Answers,
    task: str,
    classes: list[Any] | None,
    *,
    resamples: int,
    seed: int,
) -> dict[str, FloatArray]:
    """Per metric, the candidate's improvement on each of ``resamples`` resamples of
    the rows (NaN where the metric is undefined on a resample).

    Both models are scored on the same resamples (paired), which is what makes the
    interval of the difference narrow when the two models err on the same rows.
    """
    n = len(y)
    scorers = {
        name: (
            _scorer(name, y, champion[0], champion[1], task, classes),
            _scorer(name, y, candidate[0], candidate[1], task, classes),
        )
        for name in names
    }
    out = {name: np.empty(resamples, dtype=np.float64) for name in names}
    rng = np.random.default_rng(seed)
    chunk = max(1, _CHUNK_CELLS // max(n, 1))
    for start in range(0, resamples, chunk):
        size = min(chunk, resamples - start)
        idx: IntArray = rng.integers(0, n, size=(size, n)).astype(np.intp)
        offsets = (idx + (np.arange(size) * n)[:, None]).ravel()
        weights = np.bincount(offsets, minlength=size * n).reshape(size, n).astype(np.float64)
        for name, (champ_score, cand_score) in scorers.items():
            champ_values = champ_score(weights, idx)
            cand_values = cand_score(weights, idx)
            sign = 1.0 if METRICS[name].higher_is_better else -1.0
            out[name][start : start + size] = sign * (cand_values - champ_values)
    return out


def _scorer(
    name: str,
    y: Array,
    pred: Array,
    proba: FloatArray | None,
    task: str,
    classes: list[Any] | None,
) -> Scorer:
    """The metric ``name`` of one model on resamples.

    The registry's own function computes it, on each resample's rows. For the common
    metrics a vectorized form over the resample weights is ~100 times faster; it is
    used only when it gives the registry's value on the full hold-out (so the registry
    stays the definition, and anything unusual takes the registry's way).
    """

    def registry(_weights: FloatArray, idx: IntArray) -> FloatArray:
        values = np.empty(len(idx), dtype=np.float64)
        for b, rows in enumerate(idx):
            value = evaluate(
                y[rows],
                pred[rows],
                None if proba is None else proba[rows],
                task=task,
                classes=classes,
                metrics=[name],
            )[name]
            values[b] = math.nan if value is None else value
        return values

    with np.errstate(all="ignore"):  # a 0/0 term makes the full value differ: registry
        fast = _vectorized(name, y, pred, proba, classes)
    if fast is None:
        return registry
    expected = evaluate(y, pred, proba, task=task, classes=classes, metrics=[name])[name]
    with np.errstate(all="ignore"):
        got = float(fast(np.ones((1, len(y)), dtype=np.float64))[0])
    if expected is None or not math.isclose(got, expected, rel_tol=1e-9, abs_tol=1e-12):
        return registry
    return lambda weights, _idx: _quietly(fast, weights)


def _quietly(fn: Callable[[FloatArray], FloatArray], weights: FloatArray) -> FloatArray:
    with np.errstate(all="ignore"):  # 0/0 on a degenerate resample is NaN: undefined
        return fn(weights)


def _vectorized(
    name: str,
    y: Array,
    pred: Array,
    proba: FloatArray | None,
    classes: list[Any] | None,
) -> Callable[[FloatArray], FloatArray] | None:
    """The metric as a function of resample weights (each row sums to the row count),
    or None when this metric or these data take the registry's way."""
    n = len(y)
    try:
        if name in ("mae", "rmse", "r2", "mape"):
            truth = y.astype(np.float64)
            error = truth - pred.astype(np.float64)
            if name == "mae":
                return _mean_of(np.abs(error), n)
            if name == "rmse":
                squared = error**2
                return lambda w: np.sqrt(w @ squared / n)
            if name == "mape":
                return _mean_of(np.abs(error) / np.abs(truth), n)
            return _r2(truth, error, n)
        if name == "accuracy":
            return _mean_of((pred == y).astype(np.float64), n)
    except (TypeError, ValueError):
        return None
    if classes is None or len(classes) < 2:
        return None
    if name in ("precision", "recall", "f1"):
        return _averaged(name, y, pred, classes)
    if name == "balanced_accuracy":
        return _balanced_accuracy(y, pred, classes)
    if proba is None:
        return None
    probabilities = _normalized(proba)
    positive = y == classes[-1]
    if name == "roc_auc" and len(classes) == 2:
        return _roc_auc(probabilities[:, 1], positive)
    if name == "roc_auc":  # one against the rest, the unweighted mean over classes
        per_class = [_roc_auc(probabilities[:, k], y == c) for k, c in enumerate(classes)]
        return lambda w: np.mean([auc(w) for auc in per_class], axis=0)
    if name == "brier" and len(classes) == 2:
        return _mean_of((probabilities[:, 1] - positive) ** 2, n)
    if name == "log_loss":
        codes = _codes(y, classes)
        if codes is None:
            return None
        eps = np.finfo(np.float64).eps
        true_class = np.clip(probabilities[np.arange(n), codes], eps, 1 - eps)
        return _mean_of(-np.log(true_class), n)
    return None


def _mean_of(terms: FloatArray, n: int) -> Callable[[FloatArray], FloatArray]:
    return lambda w: w @ terms / n


def _r2(truth: FloatArray, error: FloatArray, n: int) -> Callable[[FloatArray], FloatArray]:
    centred = truth - truth.mean()
    squared_error = error**2

    def r2(w: FloatArray) -> FloatArray:
        total = w @ centred**2 - (w @ centred) ** 2 / n
        scale = w @ centred**2
        degenerate = total <= 1e-12 * np.maximum(scale, 1e-300)
        return np.where(
            degenerate, np.nan, 1 - (w @ squared_error) / np.where(degenerate, 1, total)
        )

    return r2


def _averaged(
    name: str, y: Array, pred: Array, classes: list[Any]
) -> Callable[[FloatArray], FloatArray]:
    """Precision, recall or F1 of the positive class (binary) or their unweighted mean
    over ``classes`` (multiclass); 0 where a ratio has nothing to count."""
    chosen = [classes[-1]] if len(classes) == 2 else list(classes)
    actual = np.stack([y == c for c in chosen], axis=1)
    predicted = np.stack([pred == c for c in chosen], axis=1)
    hits = (actual & predicted).astype(np.float64)
    false_pos = (~actual & predicted).astype(np.float64)
    false_neg = (actual & ~predicted).astype(np.float64)

    def score(w: FloatArray) -> FloatArray:
        tp, fp, fn = w @ hits, w @ false_pos, w @ false_neg
        if name == "precision":
            num, den = tp, tp + fp
        elif name == "recall":
            num, den = tp, tp + fn
        else:
            num, den = 2 * tp, 2 * tp + fp + fn
        ratio = np.where(den > 0, num / np.where(den > 0, den, 1), 0.0)
        result: FloatArray = ratio.mean(axis=1)
        return result

    return score


def _balanced_accuracy(
    y: Array, pred: Array, classes: list[Any]
) -> Callable[[FloatArray], FloatArray]:
    """The mean recall over the classes present in the resample; undefined with fewer
    than two."""
    actual = np.stack([y == c for c in classes], axis=1)
    hits = (actual & np.stack([pred == c for c in classes], axis=1)).astype(np.float64)
    rows = actual.astype(np.float64)

    def score(w: FloatArray) -> FloatArray:
        tp, total = w @ hits, w @ rows
        present = total > 0
        recall = np.where(present, tp / np.where(present, total, 1), 0.0)
        count = present.sum(axis=1)
        result: FloatArray = np.where(count >= 2, recall.sum(axis=1) / np.maximum(count, 1), np.nan)
        return result

    return score


def _roc_auc(
    score: FloatArray, positive: npt.NDArray[np.bool_]
) -> Callable[[FloatArray], FloatArray]:
    """The area under the ROC curve as the weighted Mann-Whitney statistic: the chance
    that a positive row scores above a negative one, ties counting half."""
    order = np.argsort(score, kind="stable")
    ranked = score[order]
    starts = np.flatnonzero(np.r_[True, ranked[1:] != ranked[:-1]])
    is_positive = positive[order].astype(np.float64)
    is_negative = 1.0 - is_positive

    def auc(w: FloatArray) -> FloatArray:
        sorted_weights = w[:, order]
        pos = np.add.reduceat(sorted_weights * is_positive, starts, axis=1)
        neg = np.add.reduceat(sorted_weights * is_negative, starts, axis=1)
        below = np.cumsum(neg, axis=1) - neg
        pairs = pos.sum(axis=1) * neg.sum(axis=1)
        won = (pos * (below + 0.5 * neg)).sum(axis=1)
        result: FloatArray = np.where(pairs > 0, won / np.where(pairs > 0, pairs, 1), np.nan)
        return result

    return auc


def _normalized(proba: FloatArray) -> FloatArray:
    """Rows summing to 1, the way the registry's ``evaluate`` normalizes them."""
    totals = proba.sum(axis=1, keepdims=True)
    normalized: FloatArray = np.divide(proba, totals, out=np.zeros_like(proba), where=totals > 0)
    return normalized


def _codes(y: Array, classes: list[Any]) -> IntArray | None:
    """Each label's column in the probabilities; None when a label is not a class or
    the classes are not in sorted order (scikit-learn's log loss sorts them)."""
    try:
        if list(classes) != sorted(classes):
            return None
    except TypeError:
        return None
    position = {c: i for i, c in enumerate(classes)}
    try:
        return np.fromiter((position[v] for v in y.tolist()), dtype=np.intp, count=len(y))
    except (KeyError, TypeError):
        return None
