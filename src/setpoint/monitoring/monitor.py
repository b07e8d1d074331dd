"""Monitors: per endpoint, windows of traffic compared with a reference, as a time series.

``create`` builds and stores the reference (``reference.py``) with the monitor's
configuration. ``run`` computes every complete window not computed yet (windows are
fixed spans of time aligned to the epoch, e.g. each UTC hour or day, so that reruns
and several machines agree on them), stores each window's results, and raises or
resolves alerts. Old windows are never recomputed unless asked (``recompute``).

Per window: drift of each feature and of the model's outputs (``drift.py``, with
thresholds learned for the window's size when asked), the domain classifier, data
quality (missing values, values outside the reference's range, unseen categories,
volume against the previous windows), latency, freshness (how old the newest
prediction, label and training data are), realized performance where labels have
arrived, and, for classifiers, estimated performance with its band.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

from setpoint.data.kinds import Kind
from setpoint.errors import ConflictError, InvalidDataError, NotFoundError, UsageError
from setpoint.monitoring import reference as references
from setpoint.monitoring.alerts import AlertStore, Notifier, WebhookConfig
from setpoint.monitoring.drift import DriftSettings, detect
from setpoint.monitoring.multivariate import MIN_ROWS as DOMAIN_MIN_ROWS
from setpoint.monitoring.multivariate import domain_classifier
from setpoint.monitoring.performance import ConfidenceEstimator, realized
from setpoint.monitoring.summary import (
    CategoricalCounts,
    NumericCounts,
    NumericReference,
    summarize,
)
from setpoint.monitoring.thresholds import learn_effect_thresholds
from setpoint.monitoring.traffic import Traffic, read_traffic
from setpoint.store import audit
from setpoint.store.schema import monitor_windows, monitors

if TYPE_CHECKING:
    from setpoint.workspace import Workspace

_WINDOW = re.compile(r"^\s*(\d+)\s*(m|h|d)\s*$")
_UNITS = {"m": 60, "h": 3600, "d": 86400}
# The metric whose drop raises a performance alert, by what the model has.
_WATCHED = ("accuracy", "rmse")
_LOWER_IS_BETTER = frozenset({"rmse", "mae", "log_loss", "brier", "calibration_error"})
_VOLUME_WINDOWS = 7


@dataclass(frozen=True)
class MonitorConfig:
    window: str = "1d"  # a fixed span of time: 30m, 1h, 1d...
    drift: DriftSettings = field(default_factory=DriftSettings)
    multivariate: bool = True
    learn_thresholds: bool = True
    performance_drop: float = 0.05  # alert when the watched metric is this much worse
    min_labels: int = 100  # realized performance is judged from this many labels on
    cooldown_hours: float = 24.0
    webhooks: tuple[WebhookConfig, ...] = ()

    def __post_init__(self) -> None:
        self.window_seconds  # noqa: B018 - validates the window
        if not self.performance_drop >= 0:
            raise UsageError(f"performance_drop must be 0 or more, not {self.performance_drop}")
        if self.min_labels < 1:
            raise UsageError(f"min_labels must be 1 or more, not {self.min_labels}")

    @property
    def window_seconds(self) -> int:
        match = _WINDOW.match(self.window)
        if match is None or int(match.group(1)) == 0:
            raise UsageError(
                f"window {self.window!r} is not a span of time; write e.g. 30m, 1h or 1d"
            )
        return int(match.group(1)) * _UNITS[match.group(2)]

    def to_dict(self) -> dict[str, Any]:
        return {
            "window": self.window,
            "drift": self.drift.to_dict(),
            "multivariate": self.multivariate,
            "learn_thresholds": self.learn_thresholds,
            "performance_drop": self.performance_drop,
            "min_labels": self.min_labels,
            "cooldown_hours": self.cooldown_hours,
            "webhooks": [
                {"url": h.url, "format": h.format, "timeout": h.timeout} for h in self.webhooks
            ],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MonitorConfig:
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise UsageError(
                f"unknown monitor setting(s) {', '.join(unknown)}; "
                f"known: {', '.join(sorted(known))}"
            )
        values = dict(data)
        if "drift" in values:
            values["drift"] = DriftSettings.from_dict(values["drift"])
        if "webhooks" in values:
            values["webhooks"] = tuple(WebhookConfig(**hook) for hook in values["webhooks"])
        return cls(**values)


@dataclass(frozen=True)
class Monitor:
    id: int
    endpoint: str
    config: MonitorConfig
    reference: references.Reference
    created_at: datetime
    created_by: str

    def to_dict(self) -> dict[str, Any]:
        ref = self.reference
        return {
            "endpoint": self.endpoint,
            "config": self.config.to_dict(),
            "reference": {
                "model": ref.model,
                "dataset": ref.dataset,
                "rows": ref.n_rows,
                "features": ref.features,
                "performance": ref.performance,
            },
            "created_at": self.created_at.isoformat(),
            "created_by": self.created_by,
        }


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


class Monitors:
    """The monitors of a workspace."""

    def __init__(self, workspace: Workspace) -> None:
        self._ws = workspace
        self.alerts = AlertStore(workspace.db, actor=workspace.actor)

    # -- configuration --------------------------------------------------------------

    def create(
        self,
        endpoint: str,
        config: MonitorConfig | None = None,
        *,
        reference: str | None = None,
        replace: bool = False,
    ) -> Monitor:
        """A monitor for ``endpoint``, its reference built from the model the endpoint
        serves now (or the dataset ``reference``). ``replace`` rebuilds an existing one
        (its computed windows are dropped: they were measured against another reference)."""
        config = config or MonitorConfig()
        deployment = self._ws.deployments.get(endpoint)
        built = references.build_reference(self._ws, deployment.config.model, reference)
        now = datetime.now(UTC)
        row = {
            "endpoint": endpoint,
            "config": config.to_dict(),
            "reference": built.to_dict(),
            "created_at": now,
            "updated_at": now,
            "created_by": self._ws.actor,
        }
        with self._ws.db.write() as conn:
            existing = conn.execute(
                sa.select(monitors.c.id).where(monitors.c.endpoint == endpoint)
            ).scalar_one_or_none()
            if existing is not None and not replace:
                raise ConflictError(
                    f"endpoint {endpoint!r} already has a monitor; pass --replace to rebuild it"
                )
            if existing is not None:
                conn.execute(
                    sa.delete(monitor_windows).where(monitor_windows.c.monitor_id == existing)
                )
                conn.execute(sa.update(monitors).where(monitors.c.id == existing).values(**row))
                action = "monitor.replace"
            else:
                conn.execute(sa.insert(monitors).values(**row))
                action = "monitor.create"
            audit.record(
                conn,
                actor=self._ws.actor,
                action=action,
                entity_type="monitor",
                entity=endpoint,
                after={"config": config.to_dict(), "model": built.model, "dataset": built.dataset},
            )
        return self.get(endpoint)

    def get(self, endpoint: str) -> Monitor:
        with self._ws.db.read() as conn:
            row = conn.execute(sa.select(monitors).where(monitors.c.endpoint == endpoint)).first()
        if row is None:
            raise NotFoundError(
                f"endpoint {endpoint!r} has no monitor; "
                f"create one with: setpoint monitor create {endpoint}"
            )
        return Monitor(
            id=row.id,
            endpoint=row.endpoint,
            config=MonitorConfig.from_dict(row.config),
            reference=references.Reference.from_dict(row.reference),
            created_at=_aware(row.created_at),
            created_by=row.created_by,
        )

    def all(self) -> list[Monitor]:
        with self._ws.db.read() as conn:
            names = conn.execute(
                sa.select(monitors.c.endpoint).order_by(monitors.c.endpoint)
            ).scalars()
            return [self.get(name) for name in list(names)]

    def windows(self, endpoint: str, *, limit: int | None = None) -> list[Window]:
        """The computed windows, oldest first (the newest ``limit`` of them)."""
        monitor = self.get(endpoint)
        query = (
            sa.select(monitor_windows)
            .where(monitor_windows.c.monitor_id == monitor.id)
            .order_by(monitor_windows.c.start.desc())
        )
        if limit is not None:
            query = query.limit(limit)
        with self._ws.db.read() as conn:
            rows = list(conn.execute(query))
        return [
            Window(_aware(r.start), _aware(r.end), r.n_rows, dict(r.results))
            for r in reversed(rows)
        ]

    def report_data(self, endpoint: str, *, last: int | None = None) -> dict[str, Any]:
        """What ``report.ReportData.from_dict`` reads: the monitor's latest windows
        (``last`` of them, default all) and the endpoint's alerts."""
        monitor = self.get(endpoint)
        ref = monitor.reference
        model, _, version = ref.model.partition("@")
        return {
            "endpoint": endpoint,
            "model": model,
            "version": version,
            "reference": f"{ref.dataset} ({ref.n_rows:,} rows), scored by {ref.model}",
            "generated_at": datetime.now(UTC).isoformat(),
            "windows": [w.to_dict() for w in self.windows(endpoint, limit=last)],
            "alerts": [a.to_dict() for a in self.alerts.list(endpoint=endpoint, limit=200)],
        }

    # -- computing ------------------------------------------------------------------

    def run(
        self,
        endpoint: str,
        *,
        until: datetime | None = None,
        recompute: bool = False,
        progress: Callable[[int, int], None] | None = None,
        notifier: Notifier | None = None,
    ) -> list[Window]:
        """Compute every complete window up to ``until`` (default: now) not computed
        yet, store them, and raise or resolve alerts; the new windows, oldest first."""
        monitor = self.get(endpoint)
        until = _aware(until or datetime.now(UTC))
        span = monitor.config.window_seconds
        first = self._first_prediction(endpoint)
        if first is None:
            return []
        done = set() if recompute else {w.start for w in self.windows(endpoint)}
        starts = [s for s in _starts(first, until, span) if s not in done]
        if not starts:
            return []
        kinds = cast(dict[str, Kind], monitor.reference.features)
        traffic = read_traffic(
            self._ws.root,
            endpoint,
            kinds,
            since=starts[0],
            until=starts[-1] + timedelta(seconds=span),
        )
        previous = [w.n_rows for w in self.windows(endpoint, limit=_VOLUME_WINDOWS)]
        context = _Context(self._ws, monitor, traffic, previous)
        own = notifier is None
        notifier = notifier or Notifier(self.alerts, monitor.config.webhooks)
        computed = []
        try:
            for done_count, start in enumerate(starts, 1):
                window = context.window(start, start + timedelta(seconds=span))
                self._store(monitor, window, replace=recompute)
                computed.append(window)
                self._alert(monitor, window, notifier)
                if progress is not None:
                    progress(done_count, len(starts))
        finally:
            if own:
                notifier.flush(timeout=10)
                notifier.close()
        return computed

    def _first_prediction(self, endpoint: str) -> datetime | None:
        from setpoint.serving._logtables import read_log

        log = read_log(self._ws.root, kind="predictions", endpoint=endpoint)
        if log.num_rows == 0:
            return None
        return _aware(pc.min(log.column("ts")).as_py())

    def _store(self, monitor: Monitor, window: Window, *, replace: bool) -> None:
        with self._ws.db.write() as conn:
            if replace:
                conn.execute(
                    sa.delete(monitor_windows).where(
                        (monitor_windows.c.monitor_id == monitor.id)
                        & (monitor_windows.c.start == window.start)
                    )
                )
            conn.execute(
                sa.insert(monitor_windows).values(
                    monitor_id=monitor.id,
                    start=window.start,
                    end=window.end,
                    n_rows=window.n_rows,
                    computed_at=datetime.now(UTC),
                    results=window.results,
                )
            )

    def _alert(self, monitor: Monitor, window: Window, notifier: Notifier) -> None:
        """Raise what holds in this window; resolve what held before and no longer does."""
        holding = dict(_conditions(monitor, window))
        cooldown = timedelta(hours=monitor.config.cooldown_hours)
        for key, (severity, message, evidence) in holding.items():
            notifier.raise_alert(
                monitor.endpoint, key, severity, message, evidence, cooldown=cooldown
            )
        if not window.results.get("judged", True):
            return  # too few rows to say that anything stopped
        for alert in self.alerts.list(endpoint=monitor.endpoint):
            if (
                alert.state != "resolved"
                and alert.key not in holding
                and alert.key.startswith(_OWN)
            ):
                self.alerts.resolve(monitor.endpoint, alert.key)


_OWN = ("drift:", "performance:", "quality:")


class _Context:
    """What every window of one run shares: the reference pieces, loaded once."""

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
        inside = pc.and_(
            pc.greater_equal(self.ts, pa.scalar(start)), pc.less(self.ts, pa.scalar(end))
        )
        rows = pc.indices_nonzero(inside)
        n = len(rows)
        inputs = self.traffic.inputs.take(rows)
        predictions = self.traffic.predictions.take(rows)
        proba = (
            None
            if self.traffic.probabilities is None
            else self.traffic.probabilities[rows.to_numpy()]
        )
        with_outputs = _with_outputs(inputs, predictions, proba, self.ref)
        summary = summarize(with_outputs, self.ref.summary)
        settings = self._settings(n)
        drift = detect(self.ref.summary, summary, settings)
        results: dict[str, Any] = {
            "judged": drift.judged,
            "drift": drift.to_dict(),
            "multivariate": self._multivariate(inputs) if drift.judged else None,
            "quality": _quality(self.ref, summary, inputs, n),
            "latency": _latency(self.traffic.log.column("latency_ms").take(rows)),
            "performance": self._performance(rows, predictions, proba),
            "freshness": self._freshness(),
        }
        # Volume against what the latest windows received (the median of up to 7).
        recent = self.volumes[-_VOLUME_WINDOWS:]
        results["quality"]["expected_volume"] = float(np.median(recent)) if recent else None
        self.volumes.append(n)
        return Window(start, end, n, results)

    def _freshness(self) -> dict[str, float | None]:
        """Hours, when the window was computed, since the newest prediction and the newest
        label the run read, and since the reference (training) data was registered."""
        now = datetime.now(UTC)

        def hours(when: Any) -> float | None:
            return None if when is None else (now - _aware(when)).total_seconds() / 3600

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
        labels = self.traffic.labels
        if labels is None:
            return out
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
        out["realized"] = figures
        return out


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
        "rejected": None,  # requests the server refused are not stored yet
        "volume": n,
    }


def _latency(values: pa.Array) -> dict[str, float | None]:
    array = values.to_numpy(zero_copy_only=False)
    array = array[np.isfinite(array)]
    if not len(array):
        return {"p50_ms": None, "p99_ms": None}
    p50, p99 = np.percentile(array, [50, 99])
    return {"p50_ms": float(p50), "p99_ms": float(p99)}


def _conditions(monitor: Monitor, window: Window) -> Iterator[tuple[str, tuple[str, str, Any]]]:
    """(key, (severity, message, evidence)) of each condition that holds in ``window``."""
    results = window.results
    when = f"{window.start:%Y-%m-%d %H:%M}-{window.end:%H:%M} UTC"
    drift = results["drift"]
    for name in drift["drifted_features"]:
        feature = drift["features"][name]
        output = name in monitor.reference.output_kinds
        what = "the model's outputs" if output else f"feature {name!r}"
        yield (
            "drift:prediction" if output else f"drift:feature:{name}",
            ("warning", f"{what} drifted in {when}: {'; '.join(feature['reasons'])}", feature),
        )
    if drift["drifted"]:
        yield (
            "drift:dataset",
            (
                "critical",
                f"{drift['drift_share']:.0%} of the features drifted in {when}",
                {"drifted_features": drift["drifted_features"]},
            ),
        )
    domain = results.get("multivariate")
    if domain and domain["drifted"]:
        yield (
            "drift:multivariate",
            (
                "warning",
                f"a classifier tells {when} from the reference (AUC {domain['auc']:.2f})",
                domain,
            ),
        )
    performance = results["performance"]
    reference = performance["reference"] or {}
    drop = monitor.config.performance_drop
    for metric in _WATCHED:
        base = reference.get(metric)
        if base is None:
            continue
        estimated = (performance.get("estimated") or {}).get(metric)
        if estimated is not None and _worse(metric, estimated["high"], base, drop):
            yield (
                f"performance:estimated:{metric}",
                (
                    "critical",
                    f"estimated {metric} {estimated['value']:.3f} ({estimated['low']:.3f}-"
                    f"{estimated['high']:.3f}) in {when}, against {base:.3f} on the hold-out",
                    estimated,
                ),
            )
        labelled = performance.get("realized") or {}
        value = labelled.get(metric)
        if (
            value is not None
            and labelled.get("labels", 0) >= monitor.config.min_labels
            and _worse(metric, value, base, drop)
        ):
            yield (
                f"performance:realized:{metric}",
                (
                    "critical",
                    f"{metric} {value:.3f} on {labelled['labels']} labels in {when}, "
                    f"against {base:.3f} on the hold-out",
                    labelled,
                ),
            )


def _worse(metric: str, value: float, base: float, drop: float) -> bool:
    if metric in _LOWER_IS_BETTER:
        return value > base * (1 + drop) if base > 0 else value > drop
    return value < base - drop


def _starts(first: datetime, until: datetime, span: int) -> list[datetime]:
    """The starts of complete windows of ``span`` seconds from the one holding ``first``
    to the last that ends by ``until``."""
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    begin = int((first - epoch).total_seconds()) // span * span
    end = int((until - epoch).total_seconds()) // span * span
    return [epoch + timedelta(seconds=s) for s in range(begin, end, span)]


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
