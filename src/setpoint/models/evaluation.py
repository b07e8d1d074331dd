"""Metrics: one registry, used for hold-out evaluation, segments and gates.

Every metric knows its task, whether higher is better and whether it needs
probabilities. A metric that is undefined on the data at hand (ROC AUC on one class,
R2 on one row, MAPE with a true zero) is ``None``, never a warning or a made-up
number: these figures end up in JSON, in gates and in front of people.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn import metrics as skm
from sklearn.exceptions import UndefinedMetricWarning

__all__ = [
    "FALLBACK",
    "MAX_SEGMENTS",
    "METRICS",
    "PRIMARY",
    "Metric",
    "evaluate",
    "metrics_for",
    "overfit_gap",
    "primary_metric",
    "segment_metrics",
]

Array = npt.NDArray[Any]
Compute = Callable[[Array, Array, "Array | None", list[Any]], "float | None"]

MISSING_SEGMENT = "(missing)"
OTHER_SEGMENT = "(other)"
MAX_SEGMENTS = 100


@dataclass(frozen=True)
class Metric:
    name: str
    task: str
    higher_is_better: bool
    needs_proba: bool
    compute: Compute


def _positive(classes: list[Any]) -> Any:
    """The positive class of a binary problem: the last label (1 of 0/1, 'yes' of no/yes)."""
    return classes[-1]


def _accuracy(y: Array, pred: Array, _p: Array | None, _c: list[Any]) -> float:
    return float(skm.accuracy_score(y, pred))


def _balanced_accuracy(y: Array, pred: Array, _p: Array | None, _c: list[Any]) -> float | None:
    if len(np.unique(y)) < 2:
        return None  # the mean recall over one class is just that class's recall
    return float(skm.balanced_accuracy_score(y, pred))


def _averaged(fn: Callable[..., Any]) -> Compute:
    """Binary: the score of the positive class. Multiclass: the unweighted class mean,
    so a rare class counts as much as a common one."""

    def compute(y: Array, pred: Array, _p: Array | None, classes: list[Any]) -> float:
        if len(classes) == 2:
            return float(
                fn(y, pred, pos_label=_positive(classes), average="binary", zero_division=0)
            )
        return float(fn(y, pred, labels=classes, average="macro", zero_division=0))

    return compute


def _roc_auc(y: Array, _pred: Array, proba: Array | None, classes: list[Any]) -> float | None:
    present = len(np.unique(y))
    if proba is None or present < 2:
        return None
    if len(classes) == 2:
        return float(skm.roc_auc_score(y == _positive(classes), proba[:, 1]))
    if present < len(classes):
        return None  # one-vs-rest needs every class present
    return float(skm.roc_auc_score(y, proba, multi_class="ovr", average="macro", labels=classes))


def _log_loss(y: Array, _pred: Array, proba: Array | None, classes: list[Any]) -> float | None:
    if proba is None:
        return None
    return float(skm.log_loss(y, proba, labels=classes))


def _brier(y: Array, _pred: Array, proba: Array | None, classes: list[Any]) -> float | None:
    if proba is None or len(classes) != 2:
        return None
    return float(skm.brier_score_loss(y == _positive(classes), proba[:, 1], pos_label=True))


def _mae(y: Array, pred: Array, _p: Array | None, _c: list[Any]) -> float:
    return float(skm.mean_absolute_error(y, pred))


def _rmse(y: Array, pred: Array, _p: Array | None, _c: list[Any]) -> float:
    return float(skm.root_mean_squared_error(y, pred))


def _r2(y: Array, pred: Array, _p: Array | None, _c: list[Any]) -> float | None:
    if len(y) < 2 or np.all(y == y[0]):
        return None  # no variance to explain
    return float(skm.r2_score(y, pred))


def _mape(y: Array, pred: Array, _p: Array | None, _c: list[Any]) -> float | None:
    if np.any(y == 0):
        return None  # a percentage of zero is undefined
    return float(skm.mean_absolute_percentage_error(y, pred))


METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("accuracy", "classification", True, False, _accuracy),
        Metric("balanced_accuracy", "classification", True, False, _balanced_accuracy),
        Metric("f1", "classification", True, False, _averaged(skm.f1_score)),
        Metric("precision", "classification", True, False, _averaged(skm.precision_score)),
        Metric("recall", "classification", True, False, _averaged(skm.recall_score)),
        Metric("roc_auc", "classification", True, True, _roc_auc),
        Metric("log_loss", "classification", False, True, _log_loss),
        Metric("brier", "classification", False, True, _brier),
        Metric("mae", "regression", False, False, _mae),
        Metric("rmse", "regression", False, False, _rmse),
        Metric("r2", "regression", True, False, _r2),
        Metric("mape", "regression", False, False, _mape),
    )
}

# The metric that judges a model of each task, and the one used when it is undefined
# (ROC AUC needs probabilities and both classes).
PRIMARY: dict[str, str] = {"classification": "roc_auc", "regression": "rmse"}
FALLBACK: dict[str, str] = {"classification": "accuracy", "regression": "mae"}


def metrics_for(task: str, names: Sequence[str] | None = None) -> list[Metric]:
    """The metrics of ``task``: those named (names of other tasks are skipped), or all."""
    chosen = [METRICS[n] for n in names] if names else list(METRICS.values())
    return [m for m in chosen if m.task == task]


def evaluate(
    y_true: Any,
    y_pred: Any,
    proba: Any,
    *,
    task: str,
    classes: Sequence[Any] | None,
    metrics: Sequence[str] | None = None,
) -> dict[str, float | None]:
    """Every metric of ``task`` (or the named ones) on these predictions, as plain
    floats, or None where a metric is undefined on this data.

    ``proba`` has one column per class in ``classes`` order (None for regression or
    a classifier without probabilities); ``classes`` default to the labels seen.
    """
    y = np.asarray(y_true)
    pred = np.asarray(y_pred)
    chosen = metrics_for(task, metrics)
    if len(y) == 0:
        return {m.name: None for m in chosen}
    probabilities = None if proba is None else _normalized(np.asarray(proba, dtype=np.float64))
    labels = list(classes) if classes is not None else _labels_seen(y, pred)
    return {m.name: _safely(m, y, pred, probabilities, labels) for m in chosen}


def _safely(
    metric: Metric, y: Array, pred: Array, proba: Array | None, classes: list[Any]
) -> float | None:
    # scikit-learn signals "undefined here" with UndefinedMetricWarning, numpy with
    # RuntimeWarning (0/0); either makes the value None rather than a warning.
    with warnings.catch_warnings():
        warnings.simplefilter("error", UndefinedMetricWarning)
        warnings.simplefilter("error", RuntimeWarning)
        try:
            value = metric.compute(y, pred, proba, classes)
        except (UndefinedMetricWarning, RuntimeWarning):
            return None
    return value if value is not None and math.isfinite(value) else None


def _normalized(proba: Array) -> Array:
    """Rows summing to exactly 1: float32 boosters are off by ~1e-7, which
    scikit-learn's probability checks would warn about or refuse."""
    if proba.ndim != 2:
        return proba
    totals = proba.sum(axis=1, keepdims=True)
    normalized: Array = np.divide(proba, totals, out=np.zeros_like(proba), where=totals > 0)
    return normalized


def _labels_seen(y: Array, pred: Array) -> list[Any]:
    seen: list[Any] = pd.unique(np.concatenate([y.ravel(), pred.ravel()])).tolist()
    try:
        return sorted(seen)
    except TypeError:  # mixed label types
        return sorted(seen, key=str)


def segment_metrics(
    y_true: Any,
    y_pred: Any,
    proba: Any,
    segment_values: Any,
    *,
    task: str,
    classes: Sequence[Any] | None,
    metrics: Sequence[str] | None = None,
    min_rows: int = 20,
    max_segments: int = MAX_SEGMENTS,
) -> dict[str, dict[str, Any]]:
    """Metrics per value of a segment column, keyed by the value as text.

    Every segment gets its row count ``n``; only those with at least ``min_rows``
    get metrics (a metric on a handful of rows says more about noise than about the
    model). Missing values form the segment ``(missing)``. Beyond ``max_segments``
    values (an identifier chosen by mistake) the largest are kept and the rest pooled
    as ``(other)``, so the report stays readable and small.
    """
    y, pred = np.asarray(y_true), np.asarray(y_pred)
    probabilities = None if proba is None else np.asarray(proba)
    values = pd.Series(np.asarray(segment_values, dtype=object))
    labels = values.astype(str).where(values.notna(), MISSING_SEGMENT)
    counts = labels.value_counts()
    if len(counts) > max_segments:
        kept = counts.index[: max_segments - 1]
        labels = labels.where(labels.isin(kept), OTHER_SEGMENT)
    out: dict[str, dict[str, Any]] = {}
    for value, rows in sorted(labels.groupby(labels).indices.items()):
        row: dict[str, Any] = {"n": len(rows)}
        if len(rows) >= min_rows:
            row |= evaluate(
                y[rows],
                pred[rows],
                None if probabilities is None else probabilities[rows],
                task=task,
                classes=classes,
                metrics=metrics,
            )
        out[str(value)] = row
    return out


def primary_metric(
    task: str, train: Mapping[str, float | None], validation: Mapping[str, float | None]
) -> str | None:
    """The metric to judge the gap by: :data:`PRIMARY`, else :data:`FALLBACK`, else the
    first metric defined on both sides; None when no metric is."""
    for name in (PRIMARY[task], FALLBACK[task], *train):
        if name in METRICS and train.get(name) is not None and validation.get(name) is not None:
            return name
    return None


def overfit_gap(
    train_metrics: Mapping[str, float | None],
    valid_metrics: Mapping[str, float | None],
    primary: str,
    threshold: float,
) -> dict[str, Any]:
    """How much worse the validation rows score than the training rows on ``primary``.

    ``relative_gap`` is the loss relative to the training value, positive when
    validation is worse whichever way the metric points (0.10: 10 % worse), and
    ``likely_overfit`` says whether it exceeds ``threshold``. Both are None when the
    metric is missing on a side; from a perfect zero (an RMSE of 0 on training rows)
    any loss is an infinite relative gap, so ``relative_gap`` is None but the flag set.
    """
    if primary not in METRICS:
        raise ValueError(f"unknown metric {primary!r}; known: {', '.join(METRICS)}")
    train, valid = train_metrics.get(primary), valid_metrics.get(primary)
    relative: float | None = None
    likely: bool | None = None
    if train is not None and valid is not None:
        worse = (train - valid) if METRICS[primary].higher_is_better else (valid - train)
        if train != 0:
            relative = worse / abs(train)
            likely = relative > threshold
        else:
            relative = 0.0 if worse == 0 else None
            likely = worse > 0
    return {
        "metric": primary,
        "train": train,
        "validation": valid,
        "relative_gap": relative,
        "threshold": threshold,
        "likely_overfit": likely,
    }
