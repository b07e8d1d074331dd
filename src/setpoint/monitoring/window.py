"""One window of an endpoint's traffic, measured against its monitor's reference.

A run of a monitor reads the logs once for all the windows it computes; a
:class:`Measurement` holds what those windows share (the traffic, the engine that
measures them against the reference, the performance estimator) and turns each span
of time into a :class:`Window`. The measuring itself (drift of the features and the
model's outputs, the domain classifier, data quality, performance) is the engine's
(``engine.py``, shared with offline comparisons); what only the logs know is added
here: the rows the server refused and marked, latency, freshness, how late labels
came, the volume other windows had.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from setpoint._display import count, html_summary, listing, minute, number, short_repr
from setpoint.cost import Prices
from setpoint.errors import InvalidDataError
from setpoint.monitoring import fairness
from setpoint.monitoring import reference as references
from setpoint.monitoring.attribution import Attributor
from setpoint.monitoring.contract_counts import contract_quality, refused_in
from setpoint.monitoring.cost import window_cost
from setpoint.monitoring.engine import Baseline, Engine, EngineSettings
from setpoint.monitoring.performance import ConfidenceEstimator
from setpoint.monitoring.traffic import Traffic, usage_between

if TYPE_CHECKING:
    from setpoint.models.predictor import Predictor
    from setpoint.monitoring._sources import ReferenceSources
    from setpoint.monitoring.monitor import Monitor

VOLUME_WINDOWS = 7  # the expected volume is the median of this many latest windows


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime
    n_rows: int
    results: dict[str, Any]
    # Whose traffic: for showing only (the results document and the store do not hold it).
    endpoint: str = field(default="", compare=False)

    def __repr__(self) -> str:
        return short_repr("Window", self.endpoint or "-", self._facts())

    def _facts(self) -> list[str]:
        drift = self.results.get("drift") or {}
        share = drift.get("drift_share")
        judged = bool(self.results.get("judged", drift.get("judged")))
        return [
            f"{minute(self.start)} to {minute(self.end)}",
            f"{count(self.n_rows)} rows",
            "judged" if judged else "not judged",
            "" if share is None else f"drift share {number(share, 2)}",
            "drifted" if drift.get("drifted") else "",
        ]

    def _repr_html_(self) -> str:
        drift = self.results.get("drift") or {}
        alerts = self.results.get("alerts") or []
        rows: list[tuple[str, object]] = [
            ("from", minute(self.start)),
            ("to", minute(self.end)),
            ("rows", count(self.n_rows)),
            ("judged", "yes" if self.results.get("judged", drift.get("judged")) else "no"),
            ("drift share", number(drift.get("drift_share"), 2)),
            ("drifted features", listing(drift.get("drifted_features") or [], 8) or "-"),
        ]
        if self.results.get("reference"):
            rows.append(("model", self.results["reference"]))
        rows += [("alerts", listing(str(a.get("key", a)) for a in alerts))] if alerts else []
        return html_summary("Window", self.endpoint or "-", rows)

    def to_dict(self) -> dict[str, Any]:
        return {
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "n_rows": self.n_rows,
            **self.results,
        }


@dataclass(frozen=True)
class ReferenceParts:
    """What a run loads of its monitor's reference besides the stored document: when
    the training data was registered, the hold-out to calibrate the performance
    estimate on, and the sample of reference rows (or a function that loads it, called
    only when a window needs it). With the sample read, it can be handed to other
    processes."""

    trained_on: datetime
    calibration: tuple[np.ndarray, list[Any]] | None
    sample: pa.Table | Callable[[], pa.Table]
    # What loads the reference's model, for attribution drift, and once made, what
    # explains the windows (``attribution.py``; sent along to other processes in
    # the loader's place).
    predictor: Callable[[], Predictor] | None = None
    attributor: Attributor | None = None

    @classmethod
    def load(cls, sources: ReferenceSources, ref: references.Reference) -> ReferenceParts:
        """The parts of ``ref``, the sample and the model to be read when first needed."""
        return cls(
            sources.dataset(ref.dataset).created_at,
            references.load_calibration(sources, ref),
            partial(references.load_sample, sources, ref),
            partial(sources.load_model, ref.model),
        )


class Measurement:
    """What every window of one run shares: the traffic and the reference pieces,
    loaded once. ``volumes``: the rows of the latest windows computed before;
    ``clock``: the time now (freshness is measured from it).

    A window is measured (``measure``: what its own rows say) and then finished
    (``finish``: what the run as a whole knows, the expected volume and freshness);
    ``window`` does both. A share of a run's windows can be measured elsewhere, on a
    Measurement of only that share's traffic (``Traffic.between``), and finished here:
    the same figures (``parallel.py``)."""

    def __init__(
        self,
        parts: ReferenceParts,
        monitor: Monitor,
        traffic: Traffic,
        volumes: list[int],
        *,
        clock: Callable[[], datetime] = partial(datetime.now, UTC),
        prices: Prices | None = None,
    ) -> None:
        self.monitor = monitor
        self.prices = prices
        self.ref = monitor.reference
        self.parts = parts
        self.traffic = traffic
        self.ts = traffic.log.column("ts")
        self.volumes = list(volumes)  # rows of the latest windows, for the expected volume
        self.clock = clock
        self.trained_on = parts.trained_on
        estimator: ConfidenceEstimator | None = None
        if parts.calibration is not None and self.ref.classes is not None:
            proba, labels = parts.calibration
            try:
                estimator = ConfidenceEstimator(self.ref.classes).fit(proba, labels)
            except InvalidDataError:
                estimator = None  # too few hold-out rows to calibrate on
        config = monitor.config
        self.engine = Engine(
            Baseline(
                summary=self.ref.summary,
                features=self.ref.features,
                outputs=self.ref.output_kinds,
                name=self.ref.model,
                task=self.ref.task,
                classes=self.ref.classes,
                performance=self.ref.performance,
                learned=self.ref.learned_for(config.window),
            ),
            EngineSettings(
                drift=config.drift,
                multivariate=config.multivariate,
                learn_thresholds=config.learn_thresholds,
                min_labels=config.min_labels,
            ),
            sample=parts.sample,
            estimator=estimator,
            attributor=parts.attributor
            or (self._attributor if parts.predictor is not None else None),
        )

    def _attributor(self) -> Attributor | None:
        load = self.parts.predictor
        if load is None:
            return None
        return Attributor.of(
            load(),
            self.engine.sample,
            self.monitor.config.attribution,
            self.ref.features,
        )

    def window(self, start: datetime, end: datetime) -> Window:
        n, results = self.measure(start, end)
        return self.finish(start, end, n, results)

    def measure(self, start: datetime, end: datetime) -> tuple[int, dict[str, Any]]:
        """The rows in [start, end) and what they say (all but ``finish``'s part)."""
        rows = self._rows(start, end)
        n = len(rows)
        predictions = self.traffic.predictions.take(rows)
        proba = (
            None
            if self.traffic.probabilities is None
            else self.traffic.probabilities[rows.to_numpy()]
        )
        labels = self.traffic.labels
        refused = refused_in(self.traffic, start, end)
        inputs = self.traffic.inputs.take(rows)
        features = list(self.ref.features)
        measured = self.engine.measure(
            inputs if inputs.column_names == features else inputs.select(features),
            predictions=predictions,
            probabilities=proba,
            labels=None if labels is None else labels.take(rows),
            refused=refused.inputs,
        )
        # What the server refused and marked, by column and rule (from the logs).
        measured["quality"].update(contract_quality(self.traffic, rows, refused))
        if self.monitor.config.fairness is not None:
            measured["fairness"] = self._fairness(rows)
        realized = measured["performance"]["realized"]
        if realized is not None and realized["labels"]:
            realized["label_delay_hours"] = self._label_delay(rows)
        results: dict[str, Any] = {
            **measured,
            "latency": _latency(self.traffic.log.column("latency_ms").take(rows)),
            "performance": measured["performance"],
        }
        return n, results

    def judged_rows(self, start: datetime, end: datetime) -> int:
        """How many rows the window's drift is judged on: answered and refused."""
        return len(self._rows(start, end)) + refused_in(self.traffic, start, end).num_rows

    def finish(self, start: datetime, end: datetime, n: int, results: dict[str, Any]) -> Window:
        """The window of ``n`` rows ``measure`` found in [start, end), with what depends
        on the whole run: freshness, and the volume against the windows before it.
        Windows are finished in order."""
        results = {**results, "freshness": self._freshness()}
        usage = self.traffic.usage
        if usage is not None and self.prices is not None:
            results["cost"] = window_cost(usage_between(usage, start, end), self.prices)
        # Volume against what the latest windows received (the median of up to 7).
        recent = self.volumes[-VOLUME_WINDOWS:]
        results["quality"]["expected_volume"] = float(np.median(recent)) if recent else None
        self.volumes.append(n)
        return Window(start, end, n, results, self.monitor.endpoint)

    def _freshness(self) -> dict[str, float | None]:
        """Hours, when the window was computed, since the newest prediction and the newest
        label the run read, and since the reference (training) data was registered."""
        now = self.clock()

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

    def fairness_in(self, start: datetime, end: datetime) -> dict[str, Any] | None:
        """The fairness of the answers in [start, end) on the labels known now."""
        if self.monitor.config.fairness is None:
            return None
        return self._fairness(self._rows(start, end))

    def _fairness(self, rows: pa.Array) -> dict[str, Any]:
        settings = self.monitor.config.fairness
        assert settings is not None
        inputs, labels = self.traffic.inputs, self.traffic.labels
        return fairness.measure(
            settings,
            task=self.ref.task,
            classes=self.ref.classes,
            groups=inputs.select([c for c in settings.sensitive if c in inputs.column_names]).take(
                rows
            ),
            predictions=self.traffic.predictions.take(rows),
            labels=None if labels is None else labels.take(rows),
        )

    def _rows(self, start: datetime, end: datetime) -> pa.Array:
        inside = pc.and_(
            pc.greater_equal(self.ts, pa.scalar(start)), pc.less(self.ts, pa.scalar(end))
        )
        return pc.indices_nonzero(inside)

    def _realized(
        self, rows: pa.Array, predictions: pa.Array, proba: np.ndarray | None
    ) -> dict[str, Any] | None:
        labels = self.traffic.labels
        if labels is None:
            return None
        figures = self.engine.realized(labels.take(rows), predictions, proba)
        if figures["labels"]:
            figures["label_delay_hours"] = self._label_delay(rows)
        return figures

    def _label_delay(self, rows: pa.Array) -> float:
        """The median time, in hours, from a labelled prediction to its label."""
        has = pc.is_valid(self.traffic.labels.take(rows))  # type: ignore[union-attr]
        delays = pc.subtract(
            self.traffic.label_ts.take(rows).filter(has),  # type: ignore[union-attr]
            self.traffic.log.column("ts").take(rows).filter(has),
        )
        seconds = pc.divide(pc.cast(delays, pa.int64()), 1_000_000).to_numpy(zero_copy_only=False)
        return float(np.median(seconds) / 3600)


def _latency(values: pa.Array) -> dict[str, float | None]:
    array = values.to_numpy(zero_copy_only=False)
    array = array[np.isfinite(array)]
    if not len(array):
        return {"p50_ms": None, "p99_ms": None}
    p50, p99 = np.percentile(array, [50, 99])
    return {"p50_ms": float(p50), "p99_ms": float(p99)}


def aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
