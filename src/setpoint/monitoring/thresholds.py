"""Thresholds learned from the reference: from its noise, and from its own time.

How far a window's distribution sits from the reference by chance alone depends on
the feature and on the window's size: a high-cardinality category or a spiky discrete
feature in windows of a few hundred rows can exceed a static threshold with nothing
changed. So a monitor measures the noise floor of each feature on the reference
itself: it splits the reference rows at random into two halves, summarizes one half
as a reference, draws windows of the monitor's size from the other half, and records
each feature's effect size. The learned threshold is the larger of the static one
and a high quantile of those no-drift effects.

The halves matter. Windows drawn from a reference that contains them look closer to
it than new traffic ever can (in the limit, a window the size of the reference is
identical to it), so thresholds measured that way are too tight and alarm on honest
traffic. Held-out halves are, if anything, a little generous: the half-size
reference is itself noisier than the whole.

Random windows carry no structure in time, so a reference whose months differ (by
season, by region) sees its own months flagged when they come again. When the
reference has a time column, thresholds are also learned from its own time-ordered
chunks of the window's length, each against the rest of the reference (its counts
minus the chunk's: summaries subtract, nothing is counted twice), and the threshold
is the largest of the static, the random-window and the time-chunk ones. The domain
classifier's AUC threshold and the allowed drop of a performance metric are learned
the same way. The price is power: a change no larger than the reference's own swings
from month to month is no longer flagged (``docs/benchmarks.md`` measures it).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
from scipy.stats import norm

from setpoint.data.kinds import Kind
from setpoint.errors import InvalidDataError, UsageError
from setpoint.models.evaluation import evaluate
from setpoint.monitoring.counts import ColumnCounts, NumericCounts
from setpoint.monitoring.drift import detect
from setpoint.monitoring.multivariate import DEFAULT_THRESHOLD as DOMAIN_THRESHOLD
from setpoint.monitoring.multivariate import MIN_ROWS as DOMAIN_MIN_ROWS
from setpoint.monitoring.multivariate import domain_classifier
from setpoint.monitoring.settings import DriftSettings
from setpoint.monitoring.summary import (
    NumericReference,
    ReferenceSummary,
    WindowSummary,
    summarize,
)

IntArray = npt.NDArray[np.int64]

MIN_ROWS = 200


def learn_effect_thresholds(
    reference: pa.Table,
    kinds: Mapping[str, str],
    *,
    window_rows: int,
    settings: DriftSettings | None = None,
    windows: int = 30,
    quantile: float = 0.99,
    seed: int = 0,
) -> dict[str, float]:
    """Each feature's effect threshold for windows of ``window_rows`` rows: at least
    the static one in ``settings``, raised to the ``quantile`` of the effect sizes of
    ``windows`` no-drift windows (held-out reference rows against the other half)."""
    settings = settings or DriftSettings()
    if window_rows < 1:
        raise UsageError(f"window_rows must be 1 or more, not {window_rows}")
    if not 0 < quantile < 1:
        raise UsageError(f"quantile must be between 0 and 1, not {quantile}")
    if reference.num_rows < MIN_ROWS:
        raise InvalidDataError(
            f"learning thresholds needs at least {MIN_ROWS} reference rows; "
            f"got {reference.num_rows}"
        )
    rng = np.random.default_rng(seed)
    order = rng.permutation(reference.num_rows)
    half = reference.num_rows // 2
    base = ReferenceSummary.build(reference.take(pa.array(order[:half])), kinds)
    held_out = order[half:]
    # Windows larger than the held-out half are drawn with replacement: their noise is
    # then that of the half, slightly more than a real window's, never less.
    replace = window_rows > len(held_out)
    effects: dict[str, list[float]] = {name: [] for name in base.columns}
    for _ in range(windows):
        rows = rng.choice(held_out, size=window_rows, replace=replace)
        report = detect(base, summarize(reference.take(pa.array(rows)), base), settings)
        for name, feature in report.features.items():
            if np.isfinite(feature.effect):
                effects[name].append(feature.effect)
    learned = {}
    for name, ref in base.columns.items():
        static = settings.threshold(
            name, "numeric" if isinstance(ref, NumericReference) else "categorical"
        )
        noise = float(np.quantile(effects[name], quantile)) if effects[name] else 0.0
        learned[name] = max(static, noise)
    return learned


# -- learned from time -----------------------------------------------------------------

MIN_CHUNKS = 3  # fewer chunks of time say nothing about how the reference varies
MIN_DRAWS, MAX_DRAWS, DRAW_BUDGET = 5, 20, 200  # redraws per chunk, within a budget
# The domain classifier costs a fit per chunk: at most this many, on samples of at
# most this many rows a side (smaller samples than a window's only widen its noise,
# which the threshold includes: the threshold errs high).
MAX_DOMAIN_CHUNKS, DOMAIN_ROWS = 8, 1_000
_WATCHED = ("accuracy", "rmse")  # the metrics whose drop raises a performance alert
_RELATIVE = frozenset({"rmse"})  # judged relative to the reference (lower is better)


@dataclass(frozen=True)
class TimeThresholds:
    """What the reference's own chunks of time say about how far a window may sit
    from it with nothing changed, for one length of window: an effect threshold per
    column, the domain classifier's AUC threshold, and the drop of each watched
    metric seen between chunks (absolute for accuracy, relative for RMSE)."""

    chunks: int  # how many chunks of time the figures come from
    effects: dict[str, float] = field(default_factory=dict)
    domain_auc: float | None = None
    performance_drop: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "chunks": self.chunks,
            "effects": dict(self.effects),
            "domain_auc": self.domain_auc,
            "performance_drop": dict(self.performance_drop),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TimeThresholds:
        try:
            auc = data.get("domain_auc")
            return cls(
                chunks=int(data["chunks"]),
                effects={str(k): float(v) for k, v in data.get("effects", {}).items()},
                domain_auc=None if auc is None else float(auc),
                performance_drop={
                    str(k): float(v) for k, v in data.get("performance_drop", {}).items()
                },
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise InvalidDataError(
                f"not a document of thresholds learned from time: {exc}"
            ) from exc


def learn_from_time(
    reference: pa.Table,
    summary: ReferenceSummary,
    chunks: Sequence[IntArray],
    *,
    settings: DriftSettings | None = None,
    features: Mapping[str, Kind] | None = None,
    labels: tuple[pa.ChunkedArray, pa.ChunkedArray, str, list[Any] | None] | None = None,
    performance: Mapping[str, float | None] | None = None,
    min_labels: int = 100,
    quantile: float = 0.95,
    seed: int = 0,
) -> TimeThresholds | None:
    """Thresholds from the reference's own time-ordered ``chunks`` (row indices of
    ``reference``, each about a window's length of time), each chunk against the rest
    of the reference; None when fewer than ``MIN_CHUNKS`` chunks have enough rows.

    Effects, for every column of ``summary`` (the features and the model's outputs):
    each chunk is counted once on the reference's bins and the rest is the
    reference's counts minus the chunk's. A new window of the same season differs
    from the reference by that season's effect *and* its own sampling noise, so each
    chunk's counts are also redrawn (a multinomial resample: another sample of that
    chunk), and the threshold is the largest over chunks of the ``quantile`` of each
    chunk's effects, and at least the static one. With ``features`` (their kinds), the
    domain classifier's AUC threshold likewise (its AUC plus two standard errors, the
    largest over at most ``MAX_DOMAIN_CHUNKS`` chunks spread over the reference). With
    ``labels`` (the true and the answered values, the task and the classes) and the
    reference's ``performance``, the drop of each watched metric over chunks with at
    least ``min_labels`` labels."""
    settings = settings or DriftSettings()
    if not 0 < quantile < 1:
        raise UsageError(f"quantile must be between 0 and 1, not {quantile}")
    usable = [rows for rows in chunks if len(rows) >= settings.min_rows]
    if len(usable) < MIN_CHUNKS:
        return None
    rng = np.random.default_rng(seed)
    draws = max(MIN_DRAWS, min(MAX_DRAWS, DRAW_BUDGET // len(usable)))
    highest: dict[str, float] = dict.fromkeys(summary.columns, 0.0)
    for rows in usable:
        part = summarize(reference.take(pa.array(rows)), summary)
        rest = summary.without(part)
        effects: dict[str, list[float]] = {name: [] for name in summary.columns}
        for drawn in [part, *(_redrawn(part, rng) for _ in range(draws))]:
            for name, feature in detect(rest, drawn, settings).features.items():
                if np.isfinite(feature.effect):
                    effects[name].append(feature.effect)
        for name, found in effects.items():
            if found:
                highest[name] = max(highest[name], float(np.quantile(found, quantile)))
    learned = {}
    for name, ref in summary.columns.items():
        kind = "numeric" if isinstance(ref, NumericReference) else "categorical"
        learned[name] = max(settings.threshold(name, kind), highest[name])
    domain = None
    if features:
        domain = _domain_from_time(reference, usable, features)
    drops: dict[str, float] = {}
    if labels is not None and performance:
        truth, answered, task, classes = labels
        drops = drops_from_time(
            truth,
            answered,
            usable,
            task=task,
            classes=classes,
            performance=performance,
            min_labels=min_labels,
            quantile=quantile,
        )
    return TimeThresholds(len(usable), learned, domain, drops)


def _redrawn(part: WindowSummary, rng: np.random.Generator) -> WindowSummary:
    """Another sample of the same rows' size from the same rows, drawn on the counts
    (each bin's values keep their mean): what the chunk could have been."""
    columns: dict[str, ColumnCounts] = {}
    for name, counts in part.columns.items():
        if isinstance(counts, NumericCounts):
            cells = np.append(counts.counts, [counts.nulls, counts.non_finite])
            drawn = rng.multinomial(int(cells.sum()), cells / max(cells.sum(), 1))
            bins = drawn[:-2].astype(np.int64)
            means = np.divide(
                counts.sums, counts.counts, out=np.zeros_like(counts.sums), where=counts.counts > 0
            )
            scale = bins.sum() / counts.count if counts.count else 0.0
            sums = np.asarray(bins * means, dtype=np.float64)
            columns[name] = replace(
                counts,
                counts=bins,
                sums=sums,
                nulls=int(drawn[-2]),
                non_finite=int(drawn[-1]),
                count=int(bins.sum()),
                sum=float(sums.sum()),
                sum_squares=counts.sum_squares * scale,
            )
        else:
            cells = np.append(counts.counts, counts.nulls)
            drawn = rng.multinomial(int(cells.sum()), cells / max(cells.sum(), 1))
            columns[name] = replace(
                counts, counts=drawn[:-1].astype(np.int64), nulls=int(drawn[-1])
            )
    return WindowSummary(columns, part.n_rows)


def _domain_from_time(
    reference: pa.Table, chunks: list[IntArray], kinds: Mapping[str, Kind]
) -> float | None:
    """The largest AUC (plus two standard errors) of the domain classifier telling a
    chunk from the rest of the reference."""
    picked = np.unique(np.linspace(0, len(chunks) - 1, MAX_DOMAIN_CHUNKS).round().astype(int))
    features = reference.select(list(kinds))
    aucs = []
    for i in picked:
        inside = np.zeros(features.num_rows, dtype=bool)
        inside[chunks[i]] = True
        chunk, rest = features.filter(pa.array(inside)), features.filter(pa.array(~inside))
        if min(chunk.num_rows, rest.num_rows) < DOMAIN_MIN_ROWS:
            continue
        found = domain_classifier(rest, chunk, kinds, max_rows=DOMAIN_ROWS)
        aucs.append(found.auc + 2 * _standard_error(found))
    if len(aucs) < MIN_CHUNKS:
        return None
    return max(DOMAIN_THRESHOLD, min(1.0, max(aucs)))


def _standard_error(found: Any) -> float:
    """The AUC's standard error: as the classifier reports it, or from its folds."""
    se = getattr(found, "auc_se", None)
    if se is not None:
        return float(se)
    return float(getattr(found, "auc_std", 0.0)) / math.sqrt(5)


def drops_from_time(
    truth: pa.Array | pa.ChunkedArray,
    answered: pa.Array | pa.ChunkedArray,
    chunks: Sequence[IntArray],
    *,
    task: str,
    classes: list[Any] | None,
    performance: Mapping[str, float | None],
    min_labels: int = 100,
    quantile: float = 0.95,
    seed: int = 0,
) -> dict[str, float]:
    """How far each watched metric falls below the reference's figure in a chunk of
    time: per chunk with at least ``min_labels`` labels, its fall plus the
    ``quantile`` of the difference between two samples of that chunk (the spread of
    the fall over resamples of its rows, times sqrt(2)), and the largest of those over
    chunks (absolute, or relative for RMSE); nothing for a metric seen in fewer than
    ``MIN_CHUNKS`` chunks."""
    watched = [m for m in _WATCHED if performance.get(m) is not None]
    if not watched:
        return {}
    has = np.asarray(
        pc.and_(pc.is_valid(truth), pc.is_valid(answered)).to_numpy(zero_copy_only=False)
    )
    y = np.asarray(truth.to_numpy(zero_copy_only=False), dtype=object)
    pred = np.asarray(answered.to_numpy(zero_copy_only=False), dtype=object)
    labelled = [chunk[has[chunk]] for chunk in chunks]
    labelled = [rows for rows in labelled if len(rows) >= min_labels]
    if len(labelled) < MIN_CHUNKS:
        return {}
    rng = np.random.default_rng(seed)
    draws = max(MIN_DRAWS, min(MAX_DRAWS, DRAW_BUDGET // len(labelled)))
    largest: dict[str, list[float]] = {m: [] for m in watched}
    for rows in labelled:
        falls: dict[str, list[float]] = {m: [] for m in watched}
        for drawn in [rows, *(rng.choice(rows, len(rows)) for _ in range(draws))]:
            truths, answers = y[drawn].tolist(), pred[drawn].tolist()
            figures = evaluate(truths, answers, None, task=task, classes=classes, metrics=watched)
            for metric in watched:
                value, base = figures.get(metric), performance[metric]
                if value is None or base is None:
                    continue
                if metric in _RELATIVE:
                    falls[metric].append(value / base - 1 if base > 0 else value)
                else:
                    falls[metric].append(base - value)
        for metric, found in falls.items():
            if found:
                # A new window of this season differs from this chunk by both samples'
                # noise: sqrt(2) times the spread of one.
                spread = math.sqrt(2) * float(np.std(found[1:]))
                largest[metric].append(found[0] + float(norm.ppf(quantile)) * spread)
    return {m: max(0.0, *v) for m, v in largest.items() if len(v) >= MIN_CHUNKS}
