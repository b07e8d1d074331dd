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
     "alerts": int?,                   # conditions that held (alerts raised or bumped)
     "cost": x?, "measured": int?}     # what the served rows cost, over how many rows
                                       # were measured (cost.py; per 1,000 = cost/measured)

``merge`` folds several windows' digests into one of the same shape (a day's rollup,
``rollups.py``), with ``"windows"``: how many it merged.

Floats keep four significant digits: a chart is a few hundred pixels high. Reading
never raises on a missing or malformed section: a digest is drawn, not judged.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
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
        **_cost(_section(results, "cost")),
    }


def _cost(cost: Mapping[str, Any]) -> dict[str, Any]:
    total = _section(cost, "total")
    measured = _count(total.get("measured_rows"))
    spent = _round(total.get("cost"))
    return {"cost": spent if measured else None, "measured": measured or None}


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


def merge(digests: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """One digest of the same shape for several windows' ``digests`` (a day of hourly
    windows, say), plus ``"windows"``: how many windows it holds (a window's own digest
    counts one). Merging merged digests gives the merge of all their windows for every
    sum, maximum and union; the weighted means come out the same up to rounding.

    - summed (None when none knows it): rows, refused, marked, out_of_range, unseen,
      labels, alerts, cost, measured; ``refused_by_rule`` per (column, rule), most first;
    - the highest: p99_ms, drift_share, auc, max_null_rate, each feature's score;
    - any: judged, prediction_drifted (None when none knows it);
    - drifted: every feature any window drifted on, in the order first seen;
    - p50_ms and the estimate's value, low and high: their means weighted by rows
      (a median of medians is only an approximation; a chart is what draws it);
    - realized: per metric, the mean weighted by labels;
    - metric: the last one named.
    """
    ds = list(digests)
    rows = [_count(d.get("rows")) or 0 for d in ds]
    labels = [_count(d.get("labels")) or 0 for d in ds]
    drifted: dict[str, None] = {}
    scores: dict[str, float | None] = {}
    rules: dict[tuple[str, str], int] = {}
    realized: dict[str, list[tuple[float, int]]] = {}
    for d, weight in zip(ds, labels, strict=True):
        drifted.update(dict.fromkeys(str(f) for f in d.get("drifted") or ()))
        for name, score in (d.get("scores") or {}).items():
            scores[name] = _highest([scores.get(name), score])
        for column, rule, n in d.get("refused_by_rule") or ():
            rules[(column, rule)] = rules.get((column, rule), 0) + (_count(n) or 0)
        for metric, x in (d.get("realized") or {}).items():
            if _number(x) is not None:
                realized.setdefault(metric, []).append((x, weight))
    estimates = [(d.get("estimated"), w) for d, w in zip(ds, rows, strict=True)]
    known = [(e, w) for e, w in estimates if isinstance(e, Mapping)]
    return {
        "v": VERSION,
        "rows": sum(rows),
        "p50_ms": _weighted((d.get("p50_ms"), w) for d, w in zip(ds, rows, strict=True)),
        "p99_ms": _highest(d.get("p99_ms") for d in ds),
        "judged": any(bool(d.get("judged")) for d in ds),
        "drift_share": _highest(d.get("drift_share") for d in ds),
        "drifted": list(drifted),
        "scores": scores,
        "prediction_drifted": _any(d.get("prediction_drifted") for d in ds),
        "auc": _highest(d.get("auc") for d in ds),
        "refused": _sum(d.get("refused") for d in ds),
        "marked": _sum(d.get("marked") for d in ds),
        "refused_by_rule": [
            [column, rule, n]
            for (column, rule), n in sorted(rules.items(), key=lambda kv: -kv[1])
            if n
        ],
        "max_null_rate": _highest(d.get("max_null_rate") for d in ds),
        "out_of_range": _sum(d.get("out_of_range") for d in ds),
        "unseen": _sum(d.get("unseen") for d in ds),
        "metric": next((d["metric"] for d in reversed(ds) if d.get("metric") is not None), None),
        "estimated": {
            k: _weighted((e.get(k), w) for e, w in known) for k in ("value", "low", "high")
        }
        if known
        else None,
        "labels": _sum(d.get("labels") for d in ds),
        "realized": {metric: _weighted(pairs) for metric, pairs in realized.items()},
        "alerts": _sum(d.get("alerts") for d in ds),
        "cost": _added(d.get("cost") for d in ds),
        "measured": _sum(d.get("measured") for d in ds),
        "windows": sum(_count(d.get("windows")) or 1 for d in ds),
    }


def _sum(values: Iterable[Any]) -> int | None:
    known = [n for n in map(_count, values) if n is not None]
    return sum(known) if known else None


def _added(values: Iterable[Any]) -> float | None:
    known = [x for x in map(_number, values) if x is not None]
    return _round(sum(known)) if known else None


def _highest(values: Iterable[Any]) -> float | None:
    known = [x for x in map(_number, values) if x is not None]
    return max(known) if known else None


def _any(values: Iterable[Any]) -> bool | None:
    known = [bool(x) for x in values if x is not None]
    return any(known) if known else None


def _weighted(pairs: Iterable[tuple[Any, int]]) -> float | None:
    """The mean of the known values weighted by theirs; the plain mean where no value
    has a weight (windows without rows still say something)."""
    known = [(x, w) for x, w in ((_number(x), w) for x, w in pairs) if x is not None]
    if not known:
        return None
    total = sum(w for _, w in known)
    if total <= 0:
        return _round(sum(x for x, _ in known) / len(known))
    return _round(sum(x * w for x, w in known) / total)
