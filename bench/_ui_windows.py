"""A year of hourly monitor windows made from one real window, for the dashboard bench.

Computing 8,760 windows per endpoint through the monitor would take hours; what the
dashboard reads is their stored shape, so one window the monitor really computed is
the template and every hour gets a copy whose figures move the way production's do:
rows and latency follow the day and the week with noise, labels (and so realized
performance) arrive two to seven days late, a few rows a day are refused by the
contract (now and then a burst), and an endpoint may have a drift episode on two or
three features, during which those features drift, the domain classifier sees it and
the estimated and realized performance fall. What does not move (histograms, the
reference's figures) is shared with the template, so a year costs little memory.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from statistics import median
from typing import Any

import numpy as np

HOUR = timedelta(hours=1)
MIN_ROWS = 100  # below it a window is described but not judged (DriftSettings.min_rows)
LABEL_LAG = (timedelta(days=2), timedelta(days=7))  # labels start, and are all in, by then
# Contract rules that refuse rows, and their shares of the refused ones.
RULES = (("income", "max", 0.6), ("age", "type", 0.3), ("loan_amount", "min", 0.1))
_NOT_METRICS = frozenset({"labels", "coverage", "label_delay_hours"})
_LOWER_IS_BETTER = frozenset({"log_loss", "brier", "calibration_error", "rmse", "mae"})


@dataclass(frozen=True)
class Profile:
    """How one endpoint's traffic looks: its hourly rows at the daily mean, its median
    latency, and its drift episode (None: none)."""

    rows: float
    latency_ms: float
    drift_from: datetime | None = None
    drift_until: datetime | None = None
    drift_features: tuple[str, ...] = ()

    def ramp(self, start: datetime) -> float:
        """0 outside the episode; inside it, rises to 1 over its first two days."""
        if self.drift_from is None or self.drift_until is None:
            return 0.0
        if not self.drift_from <= start < self.drift_until:
            return 0.0
        return min(1.0, (start - self.drift_from) / timedelta(days=2) + 0.25)


@dataclass(frozen=True)
class Hour:
    """One synthesized window: its start, answered rows and results document."""

    start: datetime
    n_rows: int
    results: dict[str, Any]
    refused_burst: bool


def hours(
    template: dict[str, Any],
    profile: Profile,
    *,
    first: datetime,
    count: int,
    now: datetime,
    seed: int,
) -> Iterator[Hour]:
    """``count`` hourly windows from ``first``, made from ``template`` (a real window's
    results) as ``profile`` says; ``now`` decides which have their labels yet."""
    rng = np.random.default_rng(seed)
    starts = [first + i * HOUR for i in range(count)]
    hour_of_day = np.array([s.hour for s in starts])
    weekend = np.array([s.weekday() >= 5 for s in starts])
    # Busiest mid-afternoon, quietest before dawn; weekends at 60%.
    load = 1 + 0.7 * np.sin(2 * math.pi * (hour_of_day - 9) / 24)
    load = load * np.where(weekend, 0.6, 1.0) * rng.lognormal(0, 0.12, count)
    rows = rng.poisson(profile.rows * load)
    bursts = rng.random(count) < 0.002
    recent: deque[int] = deque(maxlen=7)
    for i, start in enumerate(starts):
        n = int(rows[i])
        results = _results(template, profile, start, n, float(load[i]), bool(bursts[i]), now, rng)
        results["quality"]["expected_volume"] = float(median(recent)) if recent else None
        recent.append(n)
        yield Hour(start, n, results, bool(bursts[i]))


def _results(
    template: dict[str, Any],
    profile: Profile,
    start: datetime,
    n: int,
    load: float,
    burst: bool,
    now: datetime,
    rng: np.random.Generator,
) -> dict[str, Any]:
    ramp = profile.ramp(start)
    judged = n >= MIN_ROWS
    drift = _drift(template["drift"], profile, n, ramp, judged, rng)
    return {
        **template,
        "judged": judged,
        "drift": drift,
        "multivariate": _domain(template.get("multivariate"), n, ramp, rng) if judged else None,
        "quality": _quality(template["quality"], profile, n, ramp, burst, rng),
        "performance": _performance(template["performance"], start, n, ramp, now, rng),
        "latency": _latency(profile, load, rng),
        "freshness": {**template.get("freshness", {}), "prediction_age_hours": 0.05},
    }


def _drift(
    template: dict[str, Any],
    profile: Profile,
    n: int,
    ramp: float,
    judged: bool,
    rng: np.random.Generator,
) -> dict[str, Any]:
    # Noise alone moves a feature by about a quarter of its threshold at 1,000 rows,
    # more in smaller windows.
    noise = min(0.8, 0.25 * math.sqrt(1000 / max(n, 1)))
    features = {}
    for name, feature in template["features"].items():
        moved = ramp > 0 and name in profile.drift_features
        ratio = (
            (1.2 + 1.8 * ramp) * rng.lognormal(0, 0.1) if moved else noise * rng.lognormal(0, 0.4)
        )
        drifted = judged and ratio >= 1
        features[name] = {
            **feature,
            "statistic": feature["statistic"] * ratio / max(_ratio(feature), 1e-6),
            "p_value": float(rng.uniform(0, 1e-6) if drifted else rng.uniform(0.05, 1)),
            "p_adjusted": float(rng.uniform(0, 1e-5) if drifted else 1.0),
            "effect": ratio * feature["threshold"],
            "drifted": drifted,
            "reasons": [feature.get("effect_name", "effect")] if drifted else [],
        }
    drifted_features = [name for name, f in features.items() if f["drifted"]]
    share = len(drifted_features) / len(features) if judged and features else None
    prediction_drifted = judged and ramp > 0.6 and len(profile.drift_features) > 2
    return {
        **template,
        "n_rows": n,
        "judged": judged,
        "drift_share": share,
        "drifted": share is not None and share >= 0.5,
        "drifted_features": drifted_features,
        "features": features,
        "prediction_drifted": prediction_drifted,
        "prediction": {
            name: {**f, "drifted": prediction_drifted}
            for name, f in (template.get("prediction") or {}).items()
        },
    }


def _ratio(feature: dict[str, Any]) -> float:
    return float(feature["effect"] or 0) / float(feature["threshold"] or 1)


def _domain(
    template: dict[str, Any] | None, n: int, ramp: float, rng: np.random.Generator
) -> dict[str, Any] | None:
    if template is None:
        return None
    se = 0.008 * math.sqrt(2500 / max(n, 1))
    auc = 0.5 + abs(rng.normal(0, se)) + 0.15 * ramp
    return {
        **template,
        "auc": auc,
        "auc_se": se,
        "n_reference": min(n, 5000),
        "n_current": min(n, 5000),
        "drifted": auc >= template["threshold"] and auc - 2 * se > 0.5,
    }


def _quality(
    template: dict[str, Any],
    profile: Profile,
    n: int,
    ramp: float,
    burst: bool,
    rng: np.random.Generator,
) -> dict[str, Any]:
    refused = int(rng.poisson(n * (0.06 if burst else 0.003)))
    split = rng.multinomial(refused, [share for _, _, share in RULES])
    marked = int(rng.poisson(n * 0.01))
    rules = [
        {"column": column, "rule": rule, "scored": 0, "refused": int(k)}
        for (column, rule, _), k in zip(RULES, split, strict=True)
        if k
    ]
    if marked:
        rules.append({"column": "income", "rule": "max", "scored": marked, "refused": 0})
    unseen: dict[str, dict[str, int]] = {}
    if ramp > 0 and "channel" in profile.drift_features:
        unseen["channel"] = {"kiosk": int(rng.poisson(n * 0.1 * ramp))}
    return {
        **template,
        "null_rates": {
            name: min(1.0, rate * rng.lognormal(0, 0.15))
            for name, rate in template.get("null_rates", {}).items()
        },
        "out_of_range": {
            name: int(rng.poisson(n * (0.02 * ramp if name in profile.drift_features else 0.0005)))
            for name in template.get("out_of_range", {})
        },
        "unseen": unseen,
        "volume": n,
        "contract": {"scored": marked, "refused": refused, "rules": rules},
        "rejected": refused,
    }


def _performance(
    template: dict[str, Any],
    start: datetime,
    n: int,
    ramp: float,
    now: datetime,
    rng: np.random.Generator,
) -> dict[str, Any]:
    estimated_in = template.get("estimated") or {}
    rows_then = max((template.get("realized") or {}).get("labels") or 1000, 1)
    scale = math.sqrt(rows_then / max(n, 1))
    shift = float(rng.normal(0, 0.004)) - 0.03 * ramp  # covariate shift the estimate sees
    estimated = {}
    for metric, band in estimated_in.items():
        half = min(0.25, (band["high"] - band["low"]) / 2 * scale)
        value = min(1.0, max(0.0, band["value"] + shift))
        estimated[metric] = {
            "value": value,
            "low": max(0.0, value - half),
            "high": min(1.0, value + half),
        }
    age = now - (start + HOUR)
    early, late = LABEL_LAG
    coverage = 0.0 if age < early else min(0.97, 0.97 * (age - early) / (late - early) + 0.2)
    labels = int(rng.binomial(n, coverage)) if n else 0
    realized: dict[str, Any] = {"labels": labels, "coverage": labels / n if n else 0.0}
    if labels >= 30:
        # What the labels say: the estimate's figure, its noise, and a concept change
        # during the episode the estimate cannot see.
        noise = 0.1 / math.sqrt(labels)
        for metric, value in (template.get("realized") or {}).items():
            if metric in _NOT_METRICS or not isinstance(value, float):
                continue
            lower_is_better = metric in _LOWER_IS_BETTER
            worse = (0.03 if lower_is_better else -0.06) * ramp
            moved = value + (-shift if lower_is_better else shift) + rng.normal(0, noise) + worse
            realized[metric] = max(0.0, float(moved) if lower_is_better else min(1.0, float(moved)))
        realized["label_delay_hours"] = float(rng.uniform(48, 168))
    return {**template, "estimated": estimated, "realized": realized, "concept_drift": None}


def _latency(profile: Profile, load: float, rng: np.random.Generator) -> dict[str, float]:
    p50 = profile.latency_ms * (0.8 + 0.25 * load) * rng.lognormal(0, 0.05)
    spike = 5.0 if rng.random() < 0.003 else 1.0
    return {"p50_ms": p50, "p99_ms": p50 * (2.2 + rng.lognormal(-1, 0.5)) * spike}
