"""Metrics: one registry, used for hold-out evaluation, segments and gates.

Every metric knows its task, whether higher is better and whether it needs
probabilities. A metric that is undefined on the data at hand (ROC AUC on one class,
R2 on one row) is ``None``, never a warning or a made-up number.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn import metrics as skm

Array = npt.NDArray[Any]


@dataclass(frozen=True)
class Metric:
    name: str
    task: str
    higher_is_better: bool
    needs_proba: bool
    compute: Callable[[Array, Array, Array | None, list[Any]], float | None]


def _positive(classes: list[Any]) -> Any:
    """The positive class of a binary problem: the last label (1 of 0/1, 'yes' of no/yes)."""
    return classes[-1]


def _accuracy(y: Array, pred: Array, _p: Array | None, _c: list[Any]) -> float:
    return float(skm.accuracy_score(y, pred))


def _balanced_accuracy(y: Array, pred: Array, _p: Array | None, classes: list[Any]) -> float | None:
    if len(np.unique(y)) < 2:
        return None
    return float(skm.balanced_accuracy_score(y, pred))


def _averaged(fn: Callable[..., Any]) -> Callable[[Array, Array, Array | None, list[Any]], float]:
    def compute(y: Array, pred: Array, _p: Array | None, classes: list[Any]) -> float:
        if len(classes) == 2:
            return float(
                fn(y, pred, pos_label=_positive(classes), average="binary", zero_division=0)
            )
        return float(fn(y, pred, labels=classes, average="macro", zero_division=0))

    return compute


def _roc_auc(y: Array, _pred: Array, proba: Array | None, classes: list[Any]) -> float | None:
    if proba is None or len(np.unique(y)) < 2:
        return None
    if len(classes) == 2:
        return float(skm.roc_auc_score(y == _positive(classes), proba[:, 1]))
    if len(np.unique(y)) < len(classes):
        return None  # one-vs-rest needs every class present
    return float(skm.roc_auc_score(y, proba, multi_class="ovr", average="macro", labels=classes))


def _log_loss(y: Array, _pred: Array, proba: Array | None, classes: list[Any]) -> float | None:
    if proba is None:
        return None
    return float(skm.log_loss(y, np.clip(proba, 1e-15, 1.0), labels=classes))


def _brier(y: Array, _pred: Array, proba: Array | None, classes: list[Any]) -> float | None:
    if proba is None or len(classes) != 2:
        return None
    return float(skm.brier_score_loss(y == _positive(classes), proba[:, 1]))


def _mae(y: Array, pred: Array, _p: Array | None, _c: list[Any]) -> float:
    return float(skm.mean_absolute_error(y, pred))


def _rmse(y: Array, pred: Array, _p: Array | None, _c: list[Any]) -> float:
    return float(np.sqrt(skm.mean_squared_error(y, pred)))


def _r2(y: Array, pred: Array, _p: Array | None, _c: list[Any]) -> float | None:
    if len(y) < 2 or np.all(y == y[0]):
        return None
    return float(skm.r2_score(y, pred))


def _mape(y: Array, pred: Array, _p: Array | None, _c: list[Any]) -> float | None:
    if np.any(y == 0):
        return None  # undefined: a true value of zero
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

PRIMARY = {"classification": "roc_auc", "regression": "rmse"}


def metrics_for(task: str, names: Sequence[str] | None = None) -> list[Metric]:
    """The metrics of ``task``: those named (others' names are ignored), or all."""
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
    """Every metric of ``task`` (or the named ones) on these predictions."""
    y = np.asarray(y_true)
    pred = np.asarray(y_pred)
    if len(y) == 0:
        return {m.name: None for m in metrics_for(task, metrics)}
    probabilities = None if proba is None else np.asarray(proba, dtype=np.float64)
    labels = list(classes) if classes is not None else sorted(np.unique(y).tolist())
    out: dict[str, float | None] = {}
    for metric in metrics_for(task, metrics):
        value = metric.compute(y, pred, probabilities, labels)
        out[metric.name] = None if value is None or not np.isfinite(value) else value
    return out


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
) -> dict[str, dict[str, Any]]:
    """Metrics per value of a segment column; segments under ``min_rows`` get only
    their count (a metric on a handful of rows says more about noise than the model)."""
    y, pred = np.asarray(y_true), np.asarray(y_pred)
    probabilities = None if proba is None else np.asarray(proba)
    values = np.asarray([_label(v) for v in segment_values], dtype=object)
    out: dict[str, dict[str, Any]] = {}
    for value in sorted(set(values.tolist())):
        mask = values == value
        n = int(mask.sum())
        row: dict[str, Any] = {"n": n}
        if n >= min_rows:
            row |= evaluate(
                y[mask],
                pred[mask],
                None if probabilities is None else probabilities[mask],
                task=task,
                classes=classes,
                metrics=metrics,
            )
        out[value] = row
    return out


def overfit_gap(
    train: dict[str, float | None],
    validation: dict[str, float | None],
    *,
    task: str,
    threshold: float,
) -> dict[str, Any] | None:
    """How much worse the hold-out is than the training rows on the primary metric
    (relative to the training value), and whether that is above ``threshold``."""
    name = PRIMARY[task]
    if train.get(name) is None or validation.get(name) is None:
        name = "accuracy" if task == "classification" else "mae"
    a, b = train.get(name), validation.get(name)
    if a is None or b is None:
        return None
    worse = (a - b) if METRICS[name].higher_is_better else (b - a)
    relative = worse / max(abs(a), 1e-12)
    return {
        "metric": name,
        "train": a,
        "validation": b,
        "relative_gap": relative,
        "threshold": threshold,
        "likely_overfit": bool(relative > threshold),
    }


def _label(value: Any) -> str:
    return (
        "(missing)"
        if value is None or (isinstance(value, float) and np.isnan(value))
        else str(value)
    )
