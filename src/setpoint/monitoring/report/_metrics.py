"""Which performance metrics the report shows, how it names them, and where to
find a metric's figures in a window."""

from __future__ import annotations

from collections.abc import Sequence

from setpoint.monitoring.report._data import Estimate, WindowResult

_PREFERRED_METRICS = ("accuracy", "roc_auc", "f1", "precision", "recall", "rmse", "mae", "r2")
_METRIC_WORDS = {
    "accuracy": "accuracy",
    "roc_auc": "ROC AUC",
    "f1": "F1 score",
    "precision": "precision",
    "recall": "recall",
    "rmse": "RMSE",
    "mae": "mean absolute error",
    "r2": "R²",
    "calibration_error": "calibration error",
}


def _metric_list(windows: Sequence[WindowResult]) -> list[str]:
    """The metrics worth a plot, most familiar first, at most three."""
    seen: dict[str, None] = {}
    for w in windows:
        p = w.performance
        if p is not None:
            seen.update(dict.fromkeys(p.estimated or {}))
            seen.update({m: None for m, v in (p.realized or {}).items() if v is not None})
    return sorted(seen, key=lambda m: (*_PREFERRED_METRICS, m).index(m))[:3]


def _estimate(w: WindowResult, metric: str) -> Estimate | None:
    return (w.performance.estimated or {}).get(metric) if w.performance else None


def _realized(w: WindowResult, metric: str) -> float | None:
    return (w.performance.realized or {}).get(metric) if w.performance else None


def _has_trained(windows: Sequence[WindowResult]) -> bool:
    return any(_trained(windows, m) is not None for m in _metric_list(windows))


def _trained(windows: Sequence[WindowResult], metric: str) -> float | None:
    """The model's figure on its hold-out data at training, from the latest window."""
    for w in reversed(windows):
        if w.performance and w.performance.reference:
            return w.performance.reference.get(metric)
    return None


def _metric_words(m: str) -> str:
    return _METRIC_WORDS.get(m, m.replace("_", " "))
