"""A window's digest: the few hundred bytes of its results that time series draw.

A window's results document (``monitor.py``) is some 17 KB for eleven features,
mostly histograms and test details that only the window's own page shows. The
dashboard draws a year of hourly windows on one page, and parsing 8,760 such
documents takes seconds; the digest is stored beside the results
(``monitor_windows.digest``, migration 0012) so that a series reads only it.

Shape (every key is always present; None, ``[]`` or ``{}`` where the results did
not hold it: a window without labels, one too small to judge, an older shape)::

    {"v": 1,
     "rows": int,                      # answered rows
     "p50_ms": x?, "p99_ms": x?,       # latency
     "judged": bool,                   # drift was decided (enough rows)
     "drift_share": x?,                # share of input features drifted
     "drifted": [name],                # drifted input features
     "scores": {name: x?},             # effect size / its threshold (1 = material),
                                       # the figure the report's heatmap colours
     "prediction_drifted": bool?,
     "auc": x?,                        # the domain classifier's AUC
     "refused": int?, "marked": int?,  # rows refused by / answered outside the contract
     "refused_by_rule": [[column, rule, n]],   # refused rows per rule, most first
     "max_null_rate": x?, "out_of_range": int?, "unseen": int?,
     "metric": name?,                  # the estimate's primary metric
     "estimated": {"value", "low", "high"}?,
     "labels": int?,                   # labels joined to the window's rows
     "realized": {metric: x?},         # realized metrics known (empty without labels)
     "alerts": int?}                   # conditions that held (alerts raised or bumped)

Floats keep four significant digits: a chart is a few hundred pixels high. Reading
never raises on a missing or malformed section: a digest is drawn, not judged.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

VERSION = 1
# The metric an estimate is drawn by: the one whose drop raises an alert
# (conditions.py watches the first the model has), else the first estimated.
_PRIMARY = ("accuracy", "rmse")
# Figures stored beside the realized metrics that are not metrics themselves.
_NOT_METRICS = frozenset({"labels", "coverage", "label_delay_hours", "problem"})
_OUTPUTS = frozenset({"__prediction__", "__score__"})


def digest(results: Mapping[str, Any], n_rows: int, *, alerts: int | None = None) -> dict[str, Any]:
    """The digest of one window's ``results`` (of ``n_rows`` answered rows); ``alerts``:
    how many conditions held in it, when the caller judged them (the results do not
    say)."""
    drift = _section(results, "drift")
    if "features" not in drift and "features" in results:  # a window stored flat
        drift = results
    features = _section(drift, "features")
    latency = _section(results, "latency")
    return {
        "v": VERSION,
        "rows": int(n_rows),
        "p50_ms": _round(latency.get("p50_ms")),
        "p99_ms": _round(latency.get("p99_ms")),
        "judged": bool(results.get("judged", drift.get("judged", True))),
        "drift_share": _round(drift.get("drift_share")),
        "drifted": [str(f) for f in drift.get("drifted_features") or () if str(f) not in _OUTPUTS],
        "scores": {
            str(name): _score(f) for name, f in features.items() if str(name) not in _OUTPUTS
        },
        "prediction_drifted": _prediction_drifted(drift, features),
        "auc": _round(_section(results, "multivariate").get("auc")),
        **_quality(_section(results, "quality")),
        **_performance(_section(results, "performance")),
        "alerts": alerts,
    }


def _section(d: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = d.get(key)
    return value if isinstance(value, Mapping) else {}


def _number(x: Any) -> float | None:
    """``x`` if it is a finite number, else None."""
    if isinstance(x, bool) or not isinstance(x, int | float) or not math.isfinite(x):
        return None
    return float(x)


def _round(x: Any) -> float | None:
    """Four significant digits; None for what is not a finite number."""
    number = _number(x)
    return None if number is None else float(f"{number:.4g}")


def _count(x: Any) -> int | None:
    return int(x) if isinstance(x, int | float) and not isinstance(x, bool) else None


def _score(feature: Any) -> float | None:
    """Effect size over its threshold: comparable across tests and scales."""
    if not isinstance(feature, Mapping):
        return None
    effect, threshold = _number(feature.get("effect")), _number(feature.get("threshold"))
    if effect is None or not threshold:
        return None
    return _round(effect / threshold)


def _prediction_drifted(drift: Mapping[str, Any], features: Mapping[str, Any]) -> bool | None:
    if drift.get("prediction_drifted") is not None:
        return bool(drift["prediction_drifted"])
    old = features.get("__prediction__")  # older windows judged it among the features
    return bool(old.get("drifted")) if isinstance(old, Mapping) else None


def _total(counts: Any) -> int | None:
    """A per-feature count (``{feature: n}``, or ``{feature: {category: n}}``) summed."""
    if not isinstance(counts, Mapping):
        return None
    total = 0
    for value in counts.values():
        if isinstance(value, Mapping):
            total += sum(_count(n) or 0 for n in value.values())
        else:
            total += _count(value) or 0
    return total


def _quality(quality: Mapping[str, Any]) -> dict[str, Any]:
    contract = _section(quality, "contract")
    refused = [
        (str(r.get("column")), str(r.get("rule")), _count(r.get("refused")) or 0)
        for r in contract.get("rules") or ()
        if isinstance(r, Mapping)
    ]
    rules = [[column, rule, n] for column, rule, n in sorted(refused, key=lambda r: -r[2]) if n]
    nulls = [_round(x) for x in _section(quality, "null_rates").values()]
    known = [x for x in nulls if x is not None]
    return {
        "refused": _count(contract.get("refused", quality.get("rejected"))),
        "marked": _count(contract.get("scored")),
        "refused_by_rule": rules,
        "max_null_rate": max(known) if known else None,
        "out_of_range": _total(quality.get("out_of_range")),
        "unseen": _total(quality.get("unseen")),
    }


def _performance(performance: Mapping[str, Any]) -> dict[str, Any]:
    estimated = _section(performance, "estimated")
    realized = _section(performance, "realized")
    known = [*estimated, *realized]
    metric = next((m for m in _PRIMARY if m in known), next(iter(estimated), None))
    band = _section(estimated, metric) if metric is not None else {}
    return {
        "metric": None if metric is None else str(metric),
        "estimated": {k: _round(band.get(k)) for k in ("value", "low", "high")} if band else None,
        "labels": _count(realized.get("labels")),
        "realized": {
            str(k): _round(v)
            for k, v in realized.items()
            if k not in _NOT_METRICS and _round(v) is not None
        },
    }
