"""One window of an endpoint's traffic, measured against its monitor's reference.

A run of a monitor reads the logs once for all the windows it computes; a
:class:`Measurement` holds what those windows share (the traffic, the loaded reference
sample, the performance estimator, the thresholds learned per window size) and turns
each span of time into a :class:`Window`: drift of the features and the model's
outputs, the domain classifier, data quality, latency, performance and freshness.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from setpoint.errors import InvalidDataError
from setpoint.monitoring import reference as references
from setpoint.monitoring.conditions import concept_drift
from setpoint.monitoring.contract_counts import contract_quality, refused_in, with_refused
from setpoint.monitoring.counts import CategoricalCounts, NumericCounts
from setpoint.monitoring.drift import DriftSettings, detect
from setpoint.monitoring.multivariate import MIN_ROWS as DOMAIN_MIN_ROWS
from setpoint.monitoring.multivariate import domain_classifier
from setpoint.monitoring.performance import ConfidenceEstimator, realized
from setpoint.monitoring.summary import NumericReference, summarize
from setpoint.monitoring.thresholds import learn_effect_thresholds
from setpoint.monitoring.traffic import Traffic

if TYPE_CHECKING:
    from setpoint.monitoring.monitor import Monitor
    from setpoint.workspace import Workspace

VOLUME_WINDOWS = 7  # the expected volume is the median of this many latest windows


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime
    n_rows: int
    results: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "n_rows": self.n_rows,
            **self.results,
        }


class Measurement:
    """What every window of one run shares: the traffic and the reference pieces,
    loaded once. ``volumes``: the rows of the latest windows computed before."""

    def __init__(
        self, workspace: Workspace, monitor: Monitor, traffic: Traffic, volumes: list[int]
    ) -> None:
        self.ws = workspace
        self.monitor = monitor
        self.ref = monitor.reference
        self.traffic = traffic
        self.ts = traffic.log.column("ts")
        self.volumes = list(volumes)  # rows of the latest windows, for the expected volume
        self.trained_on = workspace.dataset(self.ref.dataset).created_at
        self._sample: pa.Table | None = None
        self._learned: dict[int, dict[str, float]] = {}
        self._estimator: ConfidenceEstimator | None = None
        calibration = references.load_calibration(workspace, self.ref)
        if calibration is not None and self.ref.classes is not None:
            proba, labels = calibration
            try:
                self._estimator = ConfidenceEstimator(self.ref.classes).fit(proba, labels)
            except InvalidDataError:
                self._estimator = None  # too few hold-out rows to calibrate on

    @property
    def sample(self) -> pa.Table:
        if self._sample is None:
            self._sample = references.load_sample(self.ws, self.ref)
        return self._sample

    def window(self, start: datetime, end: datetime) -> Window:
        rows = self._rows(start, end)
        n = len(rows)
        inputs = self.traffic.inputs.take(rows)
        predictions = self.traffic.predictions.take(rows)
        proba = (
            None
            if self.traffic.probabilities is None
            else self.traffic.probabilities[rows.to_numpy()]
        )
        with_outputs = _with_outputs(inputs, predictions, proba, self.ref)
        refused = refused_in(self.traffic, start, end)
        summary = with_refused(summarize(with_outputs, self.ref.summary), refused, self.ref)
        settings = self._settings(n)
        drift = detect(self.ref.summary, summary, settings, outputs=self.ref.output_kinds)
        results: dict[str, Any] = {
            "judged": drift.judged,
            "reference": self.ref.model,
            "drift": drift.to_dict(),
            "multivariate": self._multivariate(inputs) if drift.judged else None,
            "quality": {
                **_quality(self.ref, summary, inputs, n),
                **contract_quality(self.traffic, rows, refused),
            },
            "latency": _latency(self.traffic.log.column("latency_ms").take(rows)),
            "performance": self._performance(rows, predictions, proba),
            "freshness": self._freshness(),
        }
        # Volume against what the latest windows received (the median of up to 7).
        recent = self.volumes[-VOLUME_WINDOWS:]
        results["quality"]["expected_volume"] = float(np.median(recent)) if recent else None
        self.volumes.append(n)
        return Window(start, end, n, results)

    def _freshness(self) -> dict[str, float | None]:
        """Hours, when the window was computed, since the newest prediction and the newest
        label the run read, and since the reference (training) data was registered."""
        now = datetime.now(UTC)

        def hours(when: Any) -> float | None:
            return None if when is None else (now - aware(when)).total_seconds() / 3600

        labels = self.traffic.label_ts
        newest_label = None if labels is None or not len(labels) else pc.max(labels).as_py()
        newest = pc.max(self.ts).as_py() if len(self.ts) else None
        return {
            "prediction_age_hours": hours(newest),
            "label_age_hours": hours(newest_label),
            "training_data_age_hours": hours(self.trained_on),
        }

    def _settings(self, n: int) -> DriftSettings:
        base = self.monitor.config.drift
        if not self.monitor.config.learn_thresholds or n < base.min_rows:
            return base
        bucket = 1 << max(0, math.ceil(math.log2(n)))  # one learning per size class
        if bucket not in self._learned:
            self._learned[bucket] = learn_effect_thresholds(
                self.sample, self.ref.features, window_rows=min(bucket, 50_000), settings=base
            )
        learned = {**self._learned[bucket], **base.effects}  # explicit overrides win
        return DriftSettings(**{**base.to_dict(), "effects": learned})

    def _multivariate(self, inputs: pa.Table) -> dict[str, Any] | None:
        if not self.monitor.config.multivariate:
            return None
        if min(inputs.num_rows, self.sample.num_rows) < DOMAIN_MIN_ROWS:
            return None
        return domain_classifier(self.sample, inputs, self.ref.features).to_dict()  # type: ignore[arg-type]

    def _performance(
        self, rows: pa.Array, predictions: pa.Array, proba: np.ndarray | None
    ) -> dict[str, Any]:
        ref = self.ref
        out: dict[str, Any] = {"reference": ref.performance, "estimated": None, "realized": None}
        if self._estimator is not None and proba is not None and len(proba):
            estimate = self._estimator.estimate(proba, predictions.to_pylist())
            out["estimated"] = {name: e.to_dict() for name, e in estimate.items()}
        out["realized"] = self._realized(rows, predictions, proba)
        out["concept_drift"] = concept_drift(out, min_labels=self.monitor.config.min_labels)
        return out

    def realized_in(self, start: datetime, end: datetime) -> dict[str, Any] | None:
        """Realized performance of the answers in [start, end) on the labels known now
        (a window computed before its labels came is brought up to date with this)."""
        rows = self._rows(start, end)
        predictions = self.traffic.predictions.take(rows)
        proba = (
            None
            if self.traffic.probabilities is None
            else self.traffic.probabilities[rows.to_numpy()]
        )
        return self._realized(rows, predictions, proba)

    def _rows(self, start: datetime, end: datetime) -> pa.Array:
        inside = pc.and_(
            pc.greater_equal(self.ts, pa.scalar(start)), pc.less(self.ts, pa.scalar(end))
        )
        return pc.indices_nonzero(inside)

    def _realized(
        self, rows: pa.Array, predictions: pa.Array, proba: np.ndarray | None
    ) -> dict[str, Any] | None:
        ref = self.ref
        labels = self.traffic.labels
        if labels is None:
            return None
        window_labels = labels.take(rows)
        has = pc.is_valid(window_labels)
        count = pc.sum(has).as_py() or 0
        coverage = count / len(rows) if len(rows) else 0.0
        figures: dict[str, Any] = {"labels": count, "coverage": coverage}
        if count:
            mask = has.to_numpy(zero_copy_only=False)
            truth = window_labels.filter(has).to_pylist()
            answered = predictions.filter(has).to_pylist()
            probs = None if proba is None else proba[mask]
            figures.update(realized(truth, answered, probs, task=ref.task, classes=ref.classes))
            delays = pc.subtract(
                self.traffic.label_ts.take(rows).filter(has),  # type: ignore[union-attr]
                self.traffic.log.column("ts").take(rows).filter(has),
            )
            seconds = pc.divide(pc.cast(delays, pa.int64()), 1_000_000).to_numpy(
                zero_copy_only=False
            )
            figures["label_delay_hours"] = float(np.median(seconds) / 3600)
        return figures


def _with_outputs(
    inputs: pa.Table, predictions: pa.Array, proba: np.ndarray | None, ref: references.Reference
) -> pa.Table:
    kinds = ref.output_kinds
    table = inputs
    if references.PREDICTION in kinds:
        values = (
            predictions
            if kinds[references.PREDICTION] == "numeric"
            else pc.cast(predictions, pa.string())
        )
        table = table.append_column(references.PREDICTION, values)
    if references.SCORE in kinds and proba is not None and proba.shape[1] == 2:
        table = table.append_column(references.SCORE, pa.array(proba[:, 1], pa.float64()))
    return table


def _quality(ref: references.Reference, summary: Any, inputs: pa.Table, n: int) -> dict[str, Any]:
    null_rates: dict[str, float] = {}
    out_of_range: dict[str, int] = {}
    unseen: dict[str, dict[str, int]] = {}
    for name in ref.features:
        counts = summary.columns.get(name)
        reference = ref.summary.columns.get(name)
        if isinstance(counts, NumericCounts) and isinstance(reference, NumericReference):
            total = counts.count + counts.nulls + counts.non_finite
            null_rates[name] = counts.nulls / total if total else 0.0
            low, high = reference.counts.min, reference.counts.max
            values = inputs.column(name) if name in inputs.column_names else None
            outside = counts.non_finite
            if values is not None and low is not None and high is not None:
                beyond = pc.or_(pc.less(values, low), pc.greater(values, high))
                outside += int(pc.sum(pc.fill_null(beyond, False)).as_py() or 0)
            out_of_range[name] = outside
        elif isinstance(counts, CategoricalCounts):
            total = counts.count + counts.nulls
            null_rates[name] = counts.nulls / total if total else 0.0
            if counts.unseen:
                unseen[name] = dict(counts.unseen)
    return {
        "null_rates": null_rates,
        "out_of_range": out_of_range,
        "unseen": unseen,
        "volume": n,
    }


def _latency(values: pa.Array) -> dict[str, float | None]:
    array = values.to_numpy(zero_copy_only=False)
    array = array[np.isfinite(array)]
    if not len(array):
        return {"p50_ms": None, "p99_ms": None}
    p50, p99 = np.percentile(array, [50, 99])
    return {"p50_ms": float(p50), "p99_ms": float(p99)}


def aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
