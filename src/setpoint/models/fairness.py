"""Fairness: a model's metrics per group of sensitive columns, and the gaps between groups.

:func:`fairness_table` computes, with fairlearn's ``MetricFrame``, each group's
selection rate, true and false positive rates, precision and error rate (a
classifier, for one positive class) or mean absolute error (a regressor), and per
metric the largest difference and the smallest ratio between groups: demographic
parity is the selection rate's, equalized odds the true and false positive rates'.
A group with fewer than ``min_group`` rows is listed and marked too small, and left
out of the differences, where one or two rows would decide them. The sensitive
columns need not be model inputs: they are passed beside the predictions.

:func:`judged` is the table as the registry keeps it (``evaluation["fairness"]``):
``to_dict()`` plus the positive class, ``max_disparity`` and the metrics over it;
:meth:`FairnessTable.gap` says a metric's largest difference in a sentence naming the
two groups, as gates, alerts and ``models show`` print it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from setpoint.errors import UsageError
from setpoint.models._spec_parts import FAIRNESS_METRICS

Metric = Callable[..., float]

CLASSIFICATION = FAIRNESS_METRICS["classification"]
REGRESSION = FAIRNESS_METRICS["regression"]
MIN_GROUP = 30


def _metrics(task: str, positive: Any) -> dict[str, Metric]:
    """The metric functions of ``task``, for ``positive`` as the positive class."""
    from fairlearn import metrics as fm
    from sklearn.metrics import accuracy_score, mean_absolute_error, precision_score

    if task == "regression":
        return {"mean_error": mean_absolute_error}

    def selection_rate(y_true: Any, y_pred: Any) -> float:
        return float(fm.selection_rate(y_true, y_pred, pos_label=positive))

    def true_positive_rate(y_true: Any, y_pred: Any) -> float:
        return float(fm.true_positive_rate(y_true, y_pred, pos_label=positive))

    def false_positive_rate(y_true: Any, y_pred: Any) -> float:
        return float(fm.false_positive_rate(y_true, y_pred, pos_label=positive))

    def precision(y_true: Any, y_pred: Any) -> float:
        return float(precision_score(y_true, y_pred, pos_label=positive, zero_division=0))

    def error_rate(y_true: Any, y_pred: Any) -> float:
        return 1.0 - float(accuracy_score(y_true, y_pred))

    return {
        "selection_rate": selection_rate,
        "true_positive_rate": true_positive_rate,
        "false_positive_rate": false_positive_rate,
        "precision": precision,
        "error_rate": error_rate,
    }


@dataclass(frozen=True)
class Group:
    """One group: its sensitive values, its rows, its metrics."""

    values: dict[str, Any]
    rows: int
    metrics: dict[str, float | None]
    too_small: bool

    @property
    def name(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.values.items())


@dataclass(frozen=True)
class FairnessTable:
    """Per group metrics, and per metric the gap between the judged groups."""

    sensitive: list[str]
    metrics: list[str]
    groups: list[Group]
    min_group: int
    difference: dict[str, float | None] = field(default_factory=dict)
    ratio: dict[str, float | None] = field(default_factory=dict)

    def extremes(self, metric: str) -> tuple[Group, Group] | None:
        """The judged groups with the lowest and the highest ``metric``."""
        judged = [g for g in self.groups if not g.too_small and g.metrics[metric] is not None]
        if len(judged) < 2:
            return None
        ordered = sorted(judged, key=lambda g: float(g.metrics[metric] or 0.0))
        return ordered[0], ordered[-1]

    def gap(self, metric: str) -> str:
        """``false positive rate differs by 0.21 between region=south (0.31) and
        region=north (0.10)``: the largest difference of ``metric``, in words."""
        found = self.extremes(metric)
        if found is None:
            return f"{metric.replace('_', ' ')} has fewer than two groups large enough to judge"
        low, high = found
        return (
            f"{metric.replace('_', ' ')} differs by {_two(self.difference[metric])} between "
            f"{high.name} ({_two(high.metrics[metric])}) and {low.name} "
            f"({_two(low.metrics[metric])})"
        )

    def over(self, limit: float | None) -> list[str]:
        """The metrics whose difference between judged groups exceeds ``limit``."""
        if limit is None:
            return []
        return [m for m in self.metrics if (self.difference.get(m) or 0.0) > limit + 1e-12]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FairnessTable:
        """The table back from :meth:`to_dict` (or the registry's form of it)."""
        metrics = list(data["metrics"])
        return cls(
            sensitive=list(data["sensitive"]),
            metrics=metrics,
            groups=[
                Group(
                    dict(g["values"]),
                    int(g["rows"]),
                    {m: g.get(m) for m in metrics},
                    bool(g["too_small"]),
                )
                for g in data["groups"]
            ],
            min_group=int(data["min_group"]),
            difference=dict(data.get("difference") or {}),
            ratio=dict(data.get("ratio") or {}),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "sensitive": self.sensitive,
            "metrics": self.metrics,
            "min_group": self.min_group,
            "groups": [
                {"values": g.values, "rows": g.rows, "too_small": g.too_small, **g.metrics}
                for g in self.groups
            ],
            "difference": self.difference,
            "ratio": self.ratio,
        }


def fairness_table(
    y_true: Sequence[Any] | np.ndarray[Any, Any] | pd.Series[Any],
    y_pred: Sequence[Any] | np.ndarray[Any, Any] | pd.Series[Any],
    sensitive: pd.DataFrame | Mapping[str, Sequence[Any]],
    *,
    task: str,
    positive: Any = 1,
    metrics: Sequence[str] | None = None,
    min_group: int = MIN_GROUP,
) -> FairnessTable:
    """The metrics of predictions ``y_pred`` against ``y_true`` per group of the
    ``sensitive`` columns (one value per row each)."""
    from fairlearn.metrics import MetricFrame

    frame = pd.DataFrame(sensitive).reset_index(drop=True)
    if frame.shape[1] == 0:
        raise UsageError("fairness needs at least one sensitive column")
    if len(frame) != len(y_true) or len(y_true) != len(y_pred):
        raise UsageError(
            f"fairness needs as many labels ({len(y_true)}), predictions ({len(y_pred)}) and "
            f"sensitive rows ({len(frame)})"
        )
    available = _metrics(task, positive)
    chosen = list(metrics or (REGRESSION if task == "regression" else CLASSIFICATION))
    unknown = [m for m in chosen if m not in available]
    if unknown:
        raise UsageError(
            f"fairness metric {unknown[0]!r} is not one of: {', '.join(available)} (for {task})"
        )
    # Missing sensitive values are a group of their own, named, not dropped.
    frame = frame.astype(object).where(frame.notna(), "(missing)")
    truth, predicted = np.asarray(y_true), np.asarray(y_pred)
    measured = MetricFrame(
        metrics={name: available[name] for name in chosen},
        y_true=truth,
        y_pred=predicted,
        sensitive_features=frame,
    ).by_group
    counts = frame.groupby(list(frame.columns), sort=True, dropna=False).size()
    groups = []
    for key, row in measured.iterrows():
        values = key if isinstance(key, tuple) else (key,)
        rows = int(counts.loc[key])
        groups.append(
            Group(
                dict(zip(frame.columns, values, strict=True)),
                rows,
                {m: _number(row[m]) for m in chosen},
                rows < min_group,
            )
        )
    table = FairnessTable(list(frame.columns), chosen, groups, min_group)
    for metric in chosen:
        found = table.extremes(metric)
        if found is None:
            table.difference[metric] = table.ratio[metric] = None
            continue
        low, high = (float(g.metrics[metric] or 0.0) for g in found)
        table.difference[metric] = high - low
        table.ratio[metric] = low / high if high > 0 else None
    return table


def judged(table: FairnessTable, *, positive: Any, max_disparity: float | None) -> dict[str, Any]:
    """``table`` as the registry keeps it: :meth:`FairnessTable.to_dict` plus the
    positive class the rates count, ``max_disparity`` and the metrics over it."""
    if isinstance(positive, np.generic):
        positive = positive.item()
    return {
        **table.to_dict(),
        "positive": positive,
        "max_disparity": max_disparity,
        "over": table.over(max_disparity),
    }


def _two(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _number(value: Any) -> float | None:
    number = float(value)
    return None if math.isnan(number) else number


__all__ = [
    "CLASSIFICATION",
    "MIN_GROUP",
    "REGRESSION",
    "FairnessTable",
    "Group",
    "fairness_table",
    "judged",
]
