"""One window of data measured against a reference: what monitors and offline
comparisons both call.

The engine needs no workspace and no log. It is given a :class:`Baseline` (the
reference's summary, its feature kinds, the model's output columns, the model's
figures on its hold-out), a sample of reference rows (for the domain classifier and
for learning thresholds), optionally a fitted :class:`ConfidenceEstimator`, and the
settings; then, per window, the window's inputs with the model's outputs,
probabilities and labels where they are known. It returns the window's results
document as monitors store it: ``judged``, ``reference``, ``drift``,
``multivariate``, ``quality``, ``performance`` and, given an attributor,
``attribution`` (``attribution.py``). What only a log can say (latency,
freshness, how late labels came, the volume other windows had) is added by the
caller (``window.py``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from setpoint.monitoring.attribution import Attributor
from setpoint.monitoring.conditions import concept_drift
from setpoint.monitoring.contract_counts import add_inputs
from setpoint.monitoring.counts import CategoricalCounts, NumericCounts
from setpoint.monitoring.drift import detect
from setpoint.monitoring.multivariate import DEFAULT_THRESHOLD as DOMAIN_THRESHOLD
from setpoint.monitoring.multivariate import MIN_ROWS as DOMAIN_MIN_ROWS
from setpoint.monitoring.multivariate import domain_classifier
from setpoint.monitoring.performance import ConfidenceEstimator, realized
from setpoint.monitoring.reference import PREDICTION, SCORE
from setpoint.monitoring.settings import DriftSettings
from setpoint.monitoring.summary import NumericReference, ReferenceSummary, WindowSummary, summarize
from setpoint.monitoring.thresholds import MIN_ROWS as LEARN_MIN_ROWS
from setpoint.monitoring.thresholds import TimeThresholds, learn_effect_thresholds

LEARN_MAX_ROWS = 50_000  # windows larger than this learn the thresholds of this size


@dataclass(frozen=True)
class EngineSettings:
    """How windows are judged (a monitor's configuration, or a comparison's)."""

    drift: DriftSettings = field(default_factory=DriftSettings)
    multivariate: bool = True
    learn_thresholds: bool = True
    min_labels: int = 100  # realized figures are evidence of concept drift from this many


@dataclass(frozen=True)
class Baseline:
    """What every window is measured against."""

    summary: ReferenceSummary  # the features and the model's outputs
    features: Mapping[str, str]  # input feature -> kind
    outputs: Mapping[str, str] = field(default_factory=dict)  # __prediction__, __score__
    name: str | None = None  # what the window was measured against (a model NAME@VERSION)
    task: str | None = None  # "classification" or "regression", when a model answered
    classes: list[Any] | None = None
    performance: Mapping[str, float | None] = field(default_factory=dict)  # on the hold-out
    learned: TimeThresholds | None = None  # from the reference's own chunks of time


class Engine:
    """Measures windows against one baseline. ``sample``: reference rows of the
    features (or a function that loads them, called only when needed)."""

    def __init__(
        self,
        baseline: Baseline,
        settings: EngineSettings,
        *,
        sample: pa.Table | Callable[[], pa.Table],
        estimator: ConfidenceEstimator | None = None,
        attributor: Attributor | Callable[[], Attributor | None] | None = None,
    ) -> None:
        self.baseline = baseline
        self.settings = settings
        self.estimator = estimator
        self._sample = sample
        self._attributor = attributor
        self._learned: dict[int, dict[str, float]] = {}

    @property
    def sample(self) -> pa.Table:
        if not isinstance(self._sample, pa.Table):
            self._sample = self._sample()
        return self._sample

    @property
    def attributor(self) -> Attributor | None:
        """What explains windows' rows (``attribution.py``), made when first needed;
        None when the model cannot be explained here."""
        if self._attributor is not None and not isinstance(self._attributor, Attributor):
            self._attributor = self._attributor()
        return self._attributor

    def measure(
        self,
        inputs: pa.Table,
        *,
        predictions: pa.Array | None = None,
        probabilities: np.ndarray | None = None,
        labels: pa.Array | None = None,
        refused: pa.Table | None = None,
    ) -> dict[str, Any]:
        """The results document of one window: ``inputs`` (a column per feature), the
        model's answers and probabilities on them, the true labels (null where unknown;
        None when no label can be known), and the inputs of rows refused before the
        model saw them (counted as traffic in the features' drift, nowhere else)."""
        base = self.baseline
        n = inputs.num_rows
        summary = summarize(self._with_outputs(inputs, predictions, probabilities), base.summary)
        if refused is not None and refused.num_rows:
            summary = add_inputs(summary, refused, base.summary, base.features)
        # The features are judged on every row sent (refused ones too); the model's
        # outputs only on the rows it answered, and only when there are enough of them.
        settings = self.drift_settings(summary.n_rows)
        drift = detect(base.summary, summary, settings, outputs=base.outputs)
        if n < settings.min_rows and drift.prediction:
            drift = replace(drift, prediction={})
        return {
            "judged": drift.judged,
            "reference": base.name,
            "drift": drift.to_dict(),
            "multivariate": self._multivariate(inputs) if drift.judged else None,
            "quality": _quality(base.features, base.summary, summary, inputs, n),
            "performance": self._performance(predictions, probabilities, labels),
            "attribution": self._attribution(inputs, n, settings.min_rows),
        }

    @property
    def learned(self) -> dict[int, dict[str, float]]:
        """The effect thresholds learned so far from the reference's noise, per window
        size class: another engine on the same baseline and settings given them
        (``reuse``) judges windows of those sizes without learning them again."""
        return {size: dict(effects) for size, effects in self._learned.items()}

    def reuse(self, learned: Mapping[int, Mapping[str, float]]) -> None:
        """Take thresholds ``learned`` by an engine on the same baseline and settings."""
        for size, effects in learned.items():
            self._learned.setdefault(size, dict(effects))

    def drift_settings(self, n: int) -> DriftSettings:
        """The settings a window of ``n`` rows is judged with: effect thresholds raised
        to the reference's own noise at that size (learned once per power-of-two size)
        and to its swings over time (learned with the reference)."""
        base = self.settings.drift
        if not self.settings.learn_thresholds or n < base.min_rows:
            return base
        if self.sample.num_rows < LEARN_MIN_ROWS:  # too little reference to learn from
            return base
        bucket = 1 << max(0, math.ceil(math.log2(n)))  # one learning per size class
        if bucket not in self._learned:
            self._learned[bucket] = learn_effect_thresholds(
                self.sample,
                self.baseline.features,
                window_rows=min(bucket, LEARN_MAX_ROWS),
                settings=base,
            )
        noise = self._learned[bucket]
        over_time = self._time.effects if self._time is not None else {}
        learned = {
            name: max(noise.get(name, 0.0), over_time.get(name, 0.0))
            for name in {**noise, **over_time}
        }
        learned.update(base.effects)  # explicit overrides win
        return DriftSettings(**{**base.to_dict(), "effects": learned})

    @property
    def _time(self) -> TimeThresholds | None:
        return self.baseline.learned if self.settings.learn_thresholds else None

    def realized(
        self, labels: pa.Array, predictions: pa.Array | None, probabilities: np.ndarray | None
    ) -> dict[str, Any]:
        """How many rows have a label, the share that do, and the task's metrics on
        them (``labels`` null, or NaN, where unknown)."""
        has = pc.is_valid(labels)
        if pa.types.is_floating(labels.type):
            has = pc.and_(has, pc.invert(pc.fill_null(pc.is_nan(labels), True)))
        count = pc.sum(has).as_py() or 0
        coverage = count / len(labels) if len(labels) else 0.0
        figures: dict[str, Any] = {"labels": count, "coverage": coverage}
        if count and predictions is not None:
            mask = has.to_numpy(zero_copy_only=False)
            truth = labels.filter(has).to_pylist()
            answered = predictions.filter(has).to_pylist()
            probs = None if probabilities is None else probabilities[mask]
            base = self.baseline
            try:
                figures.update(
                    realized(truth, answered, probs, task=str(base.task), classes=base.classes)
                )
            except (ValueError, TypeError) as exc:
                # Labels a client sent that cannot be compared with the answers (text
                # for a 0/1 model, say): said in the window, never a failed run.
                figures["problem"] = (
                    f"the labels cannot be compared with the model's answers ({exc}); "
                    "send labels of the kind the model answers"
                )
        return figures

    def _with_outputs(
        self, inputs: pa.Table, predictions: pa.Array | None, proba: np.ndarray | None
    ) -> pa.Table:
        kinds = self.baseline.outputs
        table = inputs
        if PREDICTION in kinds and predictions is not None:
            values = (
                predictions if kinds[PREDICTION] == "numeric" else pc.cast(predictions, pa.string())
            )
            table = table.append_column(PREDICTION, values)
        if SCORE in kinds and proba is not None and proba.shape[1] == 2:
            table = table.append_column(SCORE, pa.array(proba[:, 1], pa.float64()))
        return table

    def _attribution(self, inputs: pa.Table, n: int, least: int) -> dict[str, Any] | None:
        """The window's attribution drift, on the rows the model answered, when there
        are enough of them to judge and the model can be explained."""
        if self._attributor is None or n < least:
            return None
        attributor = self.attributor
        return None if attributor is None else attributor.measure(inputs)

    def _multivariate(self, inputs: pa.Table) -> dict[str, Any] | None:
        if not self.settings.multivariate:
            return None
        if min(inputs.num_rows, self.sample.num_rows) < DOMAIN_MIN_ROWS:
            return None
        threshold = DOMAIN_THRESHOLD
        if self._time is not None and self._time.domain_auc is not None:
            threshold = max(threshold, self._time.domain_auc)
        return domain_classifier(
            self.sample,
            inputs,
            self.baseline.features,  # type: ignore[arg-type]
            threshold=threshold,
        ).to_dict()

    def _performance(
        self, predictions: pa.Array | None, proba: np.ndarray | None, labels: pa.Array | None
    ) -> dict[str, Any]:
        base = self.baseline
        out: dict[str, Any] = {
            "reference": dict(base.performance),
            "estimated": None,
            "realized": None,
        }
        if self.estimator is not None and proba is not None and len(proba):
            answered = None if predictions is None else predictions.to_pylist()
            estimate = self.estimator.estimate(proba, answered)
            out["estimated"] = {name: e.to_dict() for name, e in estimate.items()}
        if labels is not None:
            out["realized"] = self.realized(labels, predictions, proba)
        out["concept_drift"] = concept_drift(out, min_labels=self.settings.min_labels)
        if self._time is not None and self._time.performance_drop:
            # How far the watched metric fell between the reference's own chunks of
            # time: a performance alert needs a larger drop than this.
            out["learned_drop"] = dict(self._time.performance_drop)
        return out


def _quality(
    features: Mapping[str, str],
    reference_summary: ReferenceSummary,
    summary: WindowSummary,
    inputs: pa.Table,
    n: int,
) -> dict[str, Any]:
    null_rates: dict[str, float] = {}
    out_of_range: dict[str, int] = {}
    unseen: dict[str, dict[str, int]] = {}
    for name in features:
        counts = summary.columns.get(name)
        reference = reference_summary.columns.get(name)
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
