"""Per-feature drift decisions: one window against the reference.

A feature drifts when its change is both *significant* and *material* (see the
design in docs/architecture.md, "Monitoring"):

- numeric: the two-sample KS test for significance, the Wasserstein distance in
  units of the reference's standard deviation for size (a mean shift of 0.2 standard
  deviations scores 0.2);
- categorical: the chi-square test on the categories (unseen ones together) for
  significance, the Jensen-Shannon distance (base 2, 0 to 1) for size;
- missing values, for every feature: a two-proportion test on the null rate, and the
  absolute change in that rate for size. A feature that starts arriving empty has
  drifted, whatever its other values do.

Every p-value of the window (all features, values and nulls) goes through one
Benjamini-Hochberg correction, so twenty features do not make twenty chances of a
false alarm. PSI and total variation are reported beside the deciding figures. A
window with fewer than ``min_rows`` rows is described but not judged: its share is
None, not 0, and nothing in it counts as "no drift".

The model's outputs (its answer, and a binary classifier's score) are judged like
features but apart from them: they are *prediction drift*, with a correction of their
own, and never count in the share of drifted input features. There is one share, and
every view (alerts, summaries, the report, the loop's triggers) reads it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from setpoint.monitoring import stats
from setpoint.monitoring.counts import CategoricalCounts, NumericCounts
from setpoint.monitoring.settings import DriftSettings
from setpoint.monitoring.summary import (
    CategoricalReference,
    NumericReference,
    ReferenceSummary,
    WindowSummary,
)


@dataclass(frozen=True)
class FeatureDrift:
    name: str
    kind: str  # "numeric" or "categorical"
    test: str  # "ks" or "chi_square"
    statistic: float
    p_value: float
    effect_name: str  # "wasserstein_std" or "jensen_shannon"
    effect: float
    threshold: float
    psi: float
    null_fraction: float
    reference_null_fraction: float
    null_p_value: float
    p_adjusted: float = 1.0
    null_p_adjusted: float = 1.0
    drifted: bool = False
    reasons: tuple[str, ...] = ()
    details: Mapping[str, Any] = field(default_factory=dict)  # bounds, unseen, TV...
    histogram: Mapping[str, Any] = field(default_factory=dict)  # for reports

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "test": self.test,
            "statistic": self.statistic,
            "p_value": self.p_value,
            "p_adjusted": self.p_adjusted,
            "effect_name": self.effect_name,
            "effect": _finite(self.effect),
            "threshold": self.threshold,
            "psi": _finite(self.psi),
            "null_fraction": self.null_fraction,
            "reference_null_fraction": self.reference_null_fraction,
            "null_p_value": self.null_p_value,
            "null_p_adjusted": self.null_p_adjusted,
            "drifted": self.drifted,
            "reasons": list(self.reasons),
            "details": dict(self.details),
            "histogram": dict(self.histogram),
        }


@dataclass(frozen=True)
class DriftReport:
    n_rows: int
    judged: bool  # False when the window had too few rows to decide anything
    features: dict[str, FeatureDrift]  # the input features
    drift_share: float | None  # of the input features; None when not judged
    drifted: bool  # the share of drifted features reached the dataset share
    prediction: dict[str, FeatureDrift] = field(default_factory=dict)  # the outputs

    @property
    def drifted_features(self) -> list[str]:
        return [name for name, f in self.features.items() if f.drifted]

    @property
    def prediction_drifted(self) -> bool:
        return any(f.drifted for f in self.prediction.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "n_rows": self.n_rows,
            "judged": self.judged,
            "drift_share": self.drift_share,
            "drifted": self.drifted,
            "drifted_features": self.drifted_features,
            "features": {name: f.to_dict() for name, f in self.features.items()},
            "prediction_drifted": self.prediction_drifted,
            "prediction": {name: f.to_dict() for name, f in self.prediction.items()},
        }


def detect(
    reference: ReferenceSummary,
    window: WindowSummary,
    settings: DriftSettings | None = None,
    *,
    outputs: Iterable[str] = (),
) -> DriftReport:
    """Compare every reference column in ``window`` with the reference; the columns
    named in ``outputs`` (the model's answers) are judged apart, as prediction drift."""
    settings = settings or DriftSettings()
    apart = set(outputs)
    features: dict[str, FeatureDrift] = {}
    prediction: dict[str, FeatureDrift] = {}
    for name, ref in reference.columns.items():
        counts = window.columns.get(name)
        found = prediction if name in apart else features
        if isinstance(ref, NumericReference) and isinstance(counts, NumericCounts):
            found[name] = _numeric(name, ref, counts, settings)
        elif isinstance(ref, CategoricalReference) and isinstance(counts, CategoricalCounts):
            found[name] = _categorical(name, ref, counts, settings)
    judged = window.n_rows >= settings.min_rows and bool(features or prediction)
    if not judged:
        return DriftReport(window.n_rows, False, features, None, False, prediction)
    decided = _corrected(features, settings)
    share = sum(f.drifted for f in decided.values()) / len(decided) if decided else None
    return DriftReport(
        window.n_rows,
        True,
        decided,
        share,
        share is not None and share >= settings.dataset_share,
        _corrected(prediction, settings),
    )


def _corrected(
    features: dict[str, FeatureDrift], settings: DriftSettings
) -> dict[str, FeatureDrift]:
    """The features decided after one correction over every p-value among them:
    values and nulls of each feature."""
    names = list(features)
    if not names:
        return {}
    p_values = [features[n].p_value for n in names] + [features[n].null_p_value for n in names]
    adjusted = stats.benjamini_hochberg(np.asarray(p_values, dtype=np.float64))
    return {
        name: _decide(features[name], float(adjusted[i]), float(adjusted[len(names) + i]), settings)
        for i, name in enumerate(names)
    }


def _decide(
    feature: FeatureDrift, p_adjusted: float, null_p_adjusted: float, settings: DriftSettings
) -> FeatureDrift:
    reasons = []
    if p_adjusted < settings.alpha and feature.effect >= feature.threshold:
        what = "distribution" if feature.kind == "numeric" else "category mix"
        reasons.append(
            f"{what} moved: {feature.effect_name} {feature.effect:.3g} >= {feature.threshold:g} "
            f"({feature.test} p={p_adjusted:.2g} after correction)"
        )
    null_change = abs(feature.null_fraction - feature.reference_null_fraction)
    if null_p_adjusted < settings.alpha and null_change >= settings.null_effect:
        reasons.append(
            f"missing values {feature.reference_null_fraction:.1%} -> {feature.null_fraction:.1%}"
        )
    return replace(
        feature,
        p_adjusted=p_adjusted,
        null_p_adjusted=null_p_adjusted,
        drifted=bool(reasons),
        reasons=tuple(reasons),
    )


def _null_p(ref_nulls: int, ref_total: int, cur_nulls: int, cur_total: int) -> float:
    """The null-rate test's p-value; 1 (no evidence) when either side has no rows."""
    if ref_total == 0 or cur_total == 0:
        return 1.0
    return stats.null_rate_test(ref_nulls, ref_total, cur_nulls, cur_total)


def _null_fraction(nulls: int, total: int) -> float:
    return nulls / total if total else 0.0


def _numeric(
    name: str, ref: NumericReference, cur: NumericCounts, settings: DriftSettings
) -> FeatureDrift:
    base = ref.counts
    ref_total = base.count + base.nulls + base.non_finite
    cur_total = cur.count + cur.nulls + cur.non_finite
    # Non-finite values are neither missing nor comparable: they count as missing here
    # (the quality view reports them apart as out of range).
    ref_missing, cur_missing = base.nulls + base.non_finite, cur.nulls + cur.non_finite
    null_p = _null_p(ref_missing, ref_total, cur_missing, cur_total)
    details: dict[str, Any] = {}
    if cur.count == 0 or base.count == 0:
        statistic, p_value, effect, psi = 0.0, 1.0, 0.0, 0.0
    else:
        ks = stats.ks(base.counts, cur.counts)
        lows = [v for v in (base.min, cur.min) if v is not None]
        highs = [v for v in (base.max, cur.max) if v is not None]
        distance = stats.wasserstein(
            ref.edges,
            base.counts,
            base.sums,
            cur.counts,
            cur.sums,
            minimum=min(lows),
            maximum=max(highs),
        )
        std = ref.std or 0.0
        effect = (
            distance.distance / std if std > 0 else (0.0 if distance.distance == 0 else math.inf)
        )
        statistic, p_value = ks.statistic, ks.p_value
        psi = stats.psi(*_deciles(base.counts, cur.counts))
        details = {
            "ks_bound": ks.bound,
            "wasserstein": distance.distance,
            "wasserstein_bound": distance.bound,
            "reference_mean": ref.mean,
            "mean": cur.mean,
            "reference_std": ref.std,
            "std": cur.std,
            "exact": ref.exact,
        }
    return FeatureDrift(
        name=name,
        kind="numeric",
        test="ks",
        statistic=statistic,
        p_value=p_value,
        effect_name="wasserstein_std",
        effect=effect,
        threshold=settings.threshold(name, "numeric"),
        psi=psi,
        null_fraction=_null_fraction(cur_missing, cur_total),
        reference_null_fraction=_null_fraction(ref_missing, ref_total),
        null_p_value=null_p,
        details=details,
        histogram=_numeric_histogram(ref, cur),
    )


def _categorical(
    name: str, ref: CategoricalReference, cur: CategoricalCounts, settings: DriftSettings
) -> FeatureDrift:
    base = ref.counts
    ref_total, cur_total = base.count + base.nulls, cur.count + cur.nulls
    null_p = _null_p(base.nulls, ref_total, cur.nulls, cur_total)
    details: dict[str, Any] = {}
    if cur.count == 0 or base.count == 0:
        statistic, p_value, effect, psi = 0.0, 1.0, 0.0, 0.0
    else:
        chi = stats.chi_square(base.counts, cur.counts)
        statistic, p_value = chi.statistic, chi.p_value
        effect = stats.jensen_shannon(base.counts, cur.counts)
        psi = stats.psi(base.counts, cur.counts)
        other = int(cur.counts[-1])
        details = {
            "total_variation": stats.total_variation(base.counts, cur.counts),
            "dof": chi.dof,
            "other_share": other / cur.count,  # categories beyond the reference's kept ones
            "unseen": dict(cur.unseen),
        }
    return FeatureDrift(
        name=name,
        kind="categorical",
        test="chi_square",
        statistic=statistic,
        p_value=p_value,
        effect_name="jensen_shannon",
        effect=effect,
        threshold=settings.threshold(name, "categorical"),
        psi=psi,
        null_fraction=_null_fraction(cur.nulls, cur_total),
        reference_null_fraction=_null_fraction(base.nulls, ref_total),
        null_p_value=null_p,
        details=details,
        histogram={
            "categories": [*ref.categories, "(other)"],
            "reference": base.counts.tolist(),
            "current": cur.counts.tolist(),
        },
    )


def _deciles(ref: np.ndarray, cur: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The fine bins regrouped into ten of about equal reference mass, for PSI (which
    is meant for about ten bins: on a thousand it mostly measures noise)."""
    cumulative = np.cumsum(ref) / max(ref.sum(), 1)
    group = np.minimum((cumulative * 10).astype(np.int64), 9)  # non-decreasing
    return np.bincount(group, weights=ref, minlength=10), np.bincount(
        group, weights=cur, minlength=10
    )


def _numeric_histogram(ref: NumericReference, cur: NumericCounts, bins: int = 20) -> dict[str, Any]:
    """About ``bins`` bars of equal reference mass, for a person to look at."""
    edges = ref.edges
    counts = ref.counts.counts
    if len(edges) == 0:
        return {}
    cumulative = np.cumsum(counts[:-1]) / max(counts.sum(), 1)  # at each edge
    picks = np.unique(np.searchsorted(cumulative, np.linspace(0, 1, bins + 1)[1:-1]))
    picks = picks[picks < len(edges)]
    starts = np.concatenate([[0], picks + 1])  # each bar's first fine bin
    ref_bars = np.add.reduceat(counts, starts).tolist()
    cur_bars = np.add.reduceat(cur.counts, starts).tolist()
    low = ref.counts.min if ref.counts.min is not None else float(edges[0])
    high = ref.counts.max if ref.counts.max is not None else float(edges[-1])
    bar_edges = [low, *[float(edges[i]) for i in picks], high]
    return {"edges": bar_edges, "reference": ref_bars, "current": cur_bars}


def _finite(value: float) -> float | None:
    """JSON has no infinity: an infinite effect (a constant feature that moved) is None."""
    return value if math.isfinite(value) else None
