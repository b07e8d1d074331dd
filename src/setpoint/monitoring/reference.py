"""A monitor's reference: the champion's training data, summarized once.

By default an endpoint is compared with the data its model was trained on: the
dataset version its lineage names, with the model's own answers on it (so that
prediction drift has a reference too). What is kept:

- the summary of every feature and of the model's outputs (``summary.py``), which
  every window is compared with;
- a random sample of at most ``SAMPLE_ROWS`` rows of features, for the domain
  classifier and for learning thresholds, stored as a Parquet artifact;
- for a classifier, its probabilities and the true labels on the rows it was *not*
  trained on (the training run's hold-out, recomputed from the stored spec and seed),
  to calibrate the performance estimate: on its own training rows a model is more
  sure of itself than it will ever be on new traffic;
- when the data has a time column (the monitor's, or the training spec's time split
  column), thresholds learned from its own chunks of the window's length
  (``thresholds.learn_from_time``), per window length, so that runs need not learn
  them again.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from setpoint.errors import UsageError
from setpoint.models import _training_data as training_data
from setpoint.models.evaluation import evaluate
from setpoint.models.spec import TrainSpec
from setpoint.monitoring.chunks import MAX_CHUNKS, Period, cut, period_keys, times
from setpoint.monitoring.summary import ReferenceSummary
from setpoint.monitoring.thresholds import TimeThresholds, drops_from_time, learn_from_time

if TYPE_CHECKING:
    from setpoint.models.predictor import Predictor
    from setpoint.models.registry import ModelVersion
    from setpoint.monitoring._sources import ReferenceSources
    from setpoint.monitoring.settings import MonitorConfig

SAMPLE_ROWS = 5_000
PREDICTION = "__prediction__"  # the answered label or value, as an extra column
SCORE = "__score__"  # a binary classifier's probability of the positive class


@dataclass(frozen=True)
class Reference:
    """What a monitor compares each window with (stored in its ``reference`` column)."""

    model: str  # NAME@VERSION the reference was built from
    dataset: str  # NAME@VERSION
    task: str
    classes: list[Any] | None
    features: dict[str, str]  # name -> kind, the model's contract columns
    summary: ReferenceSummary
    sample: str  # artifact digest of the feature sample (Parquet)
    calibration: str | None  # artifact digest: probabilities and labels of the hold-out
    performance: dict[str, float | None]  # the model's figures on the hold-out
    n_rows: int
    time_column: str | None = None  # what orders the reference's rows, when known
    learned: dict[str, dict[str, Any]] = field(default_factory=dict)  # window -> TimeThresholds

    @property
    def output_kinds(self) -> dict[str, str]:
        """The extra columns a window adds for the model's outputs."""
        return output_kinds(self.task, self.classes)

    def learned_for(self, window: str) -> TimeThresholds | None:
        """What was learned from the reference's time for windows of ``window``."""
        found = self.learned.get(window)
        return None if found is None else TimeThresholds.from_dict(found)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "dataset": self.dataset,
            "task": self.task,
            "classes": self.classes,
            "features": self.features,
            "summary": self.summary.to_dict(),
            "sample": self.sample,
            "calibration": self.calibration,
            "performance": self.performance,
            "n_rows": self.n_rows,
            "time_column": self.time_column,
            "learned": self.learned,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Reference:
        return cls(
            model=data["model"],
            dataset=data["dataset"],
            task=data["task"],
            classes=data["classes"],
            features=dict(data["features"]),
            summary=ReferenceSummary.from_dict(data["summary"]),
            sample=data["sample"],
            calibration=data["calibration"],
            performance=dict(data["performance"]),
            n_rows=int(data["n_rows"]),
            time_column=data.get("time_column"),
            learned=dict(data.get("learned") or {}),
        )


def build_reference(
    sources: ReferenceSources,
    model_ref: str,
    dataset_ref: str | None = None,
    *,
    config: MonitorConfig | None = None,
) -> Reference:
    """The reference of ``model_ref`` (NAME@ALIAS or NAME@VERSION): its training dataset
    (or ``dataset_ref``), its contract's features and its answers on that data; with a
    monitor's ``config`` that learns thresholds, what its time says for its windows."""
    version = sources.model(model_ref)
    if version.contract is None:
        raise UsageError(f"model {version.ref} has no input contract to monitor against")
    columns = version.contract["columns"]
    # Personal data is never monitored: the logs keep only its keyed hash (or nothing),
    # and a summary of its values would copy them into the metadata store.
    features = {name: rule["kind"] for name, rule in columns.items() if not rule.get("pii")}
    inputs = list(columns)  # what the model takes, to answer the reference rows
    dataset = dataset_ref or _training_dataset(version)
    table = sources.load_dataset(dataset)
    missing = [name for name in inputs if name not in table.column_names]
    if missing:
        raise UsageError(
            f"dataset {dataset} lacks the model's feature(s) {', '.join(missing)}; "
            "give a reference dataset that has them"
        )
    predictor = sources.load_model(version.ref)
    with_outputs = add_outputs(table.select(inputs), predictor)
    with_outputs = with_outputs.drop_columns([n for n in inputs if n not in features])
    reference_kinds = {**features, **output_kinds(version.task, predictor.classes)}
    summary = ReferenceSummary.build(with_outputs, reference_kinds)
    rng = np.random.default_rng(0)
    rows = np.sort(rng.choice(table.num_rows, size=min(SAMPLE_ROWS, table.num_rows), replace=False))
    sample = sources.artifacts.put(_parquet(table.select(list(features)).take(pa.array(rows))))
    calibration, performance, holdout = _holdout(sources, version, predictor, table)
    time_column = _time_column(version, table, config)
    learned: dict[str, dict[str, Any]] = {}
    if config is not None and config.learn_thresholds and time_column is not None:
        found = _learn_from_time(
            with_outputs.append_column(time_column, table.column(time_column)),
            summary,
            holdout,
            time_column=time_column,
            features=features,
            task=version.task,
            classes=predictor.classes,
            performance=performance,
            config=config,
        )
        if found is not None:
            learned[config.window] = found.to_dict()
    return Reference(
        model=version.ref,
        dataset=sources.dataset(dataset).ref,
        task=version.task,
        classes=predictor.classes,
        features=features,
        summary=summary,
        sample=sample,
        calibration=calibration,
        performance=performance,
        n_rows=table.num_rows,
        time_column=time_column,
        learned=learned,
    )


def _time_column(
    version: ModelVersion, table: pa.Table, config: MonitorConfig | None
) -> str | None:
    """The monitor's time column, else the training spec's time split column, if the
    reference data has it."""
    given = None if config is None else config.time_column
    if given is not None:
        if given not in table.column_names:
            raise UsageError(
                f"time column {given!r} is not in the reference data; its columns are "
                f"{', '.join(table.column_names)}"
            )
        return given
    if version.spec is None:
        return None
    spec = TrainSpec.from_dict(version.spec)
    column = spec.split.time_column
    return column if column is not None and column in table.column_names else None


def _learn_from_time(
    reference: pa.Table,
    summary: ReferenceSummary,
    holdout: tuple[pa.Table, np.ndarray, np.ndarray] | None,
    *,
    time_column: str,
    features: dict[str, str],
    task: str,
    classes: list[Any] | None,
    performance: dict[str, float | None],
    config: MonitorConfig,
) -> TimeThresholds | None:
    """Thresholds from the reference's chunks of the monitor's window length; the
    allowed drop in performance from the hold-out's chunks (the rows with labels)."""
    span = Period(config.window_seconds, "s")
    chunks, _ = cut(_recent(reference, time_column, span), time_column=time_column, chunk=span)
    learned = learn_from_time(
        reference,
        summary,
        [c.rows for c in chunks],
        settings=config.drift,
        features=features if config.multivariate else None,  # type: ignore[arg-type]
    )
    if learned is None or holdout is None or time_column not in holdout[0].column_names:
        return learned
    rows, truth, predicted = holdout
    held, _ = cut(_recent(rows, time_column, span), time_column=time_column, chunk=span)
    drops = drops_from_time(
        pa.array(_plain(truth)),
        pa.array(_plain(predicted)),
        [c.rows for c in held],
        task=task,
        classes=classes,
        performance=performance,
        min_labels=config.min_labels,
    )
    return replace(learned, performance_drop=drops)


def _recent(table: pa.Table, time_column: str, span: Period) -> pa.Table:
    """The rows of the last ``MAX_CHUNKS`` windows (and those without a time, which no
    chunk takes). How the reference varies from window to window is as clear from a
    thousand windows as from more, and ``cut`` allows no more: an hourly monitor on 90
    days of training data (2,160 hours) was refused."""
    micros, timed = times(table, time_column)
    if not timed.any():
        return table
    keys = period_keys(micros, span)
    first = int(keys[timed].max()) - MAX_CHUNKS + 1
    if int(keys[timed].min()) >= first:
        return table
    return table.filter(pa.array(~timed | (keys >= first)))


def add_outputs(inputs: pa.Table, predictor: Predictor) -> pa.Table:
    """``inputs`` with the model's answers on them as the output columns."""
    proba = predictor.predict_proba(inputs) if predictor.task == "classification" else None
    if proba is not None and predictor.classes is not None:
        labels = np.asarray(predictor.classes, dtype=object)[np.argmax(proba, axis=1)]
    else:
        labels = np.asarray(predictor.predict(inputs))
    table = inputs.append_column(PREDICTION, pa.array(_plain(labels)))
    if proba is not None and proba.shape[1] == 2:
        table = table.append_column(SCORE, pa.array(proba[:, 1], pa.float64()))
    return table


def load_sample(sources: ReferenceSources, reference: Reference) -> pa.Table:
    return pq.read_table(io.BytesIO(sources.artifacts.get(reference.sample)))


def load_calibration(
    sources: ReferenceSources, reference: Reference
) -> tuple[np.ndarray, list[Any]] | None:
    """The hold-out's probabilities (rows x classes) and true labels, if stored."""
    if reference.calibration is None:
        return None
    table = pq.read_table(io.BytesIO(sources.artifacts.get(reference.calibration)))
    proba = np.column_stack(
        [table.column(f"p{j}").to_numpy() for j in range(table.num_columns - 1)]
    )
    return proba, table.column("label").to_pylist()


def _training_dataset(version: ModelVersion) -> str:
    if version.training_dataset is not None:
        return version.training_dataset
    raise UsageError(
        f"model {version.ref} records no training dataset; give the reference dataset "
        "(setpoint monitor create ENDPOINT --reference NAME@VERSION)"
    )


def output_kinds(task: str, classes: list[Any] | None) -> dict[str, str]:
    """The output columns: the answer (a label or a value), and a binary classifier's
    probability of its positive class."""
    kinds = {PREDICTION: "categorical" if task == "classification" else "numeric"}
    if task == "classification" and classes is not None and len(classes) == 2:
        kinds[SCORE] = "numeric"
    return kinds


def _holdout(
    sources: ReferenceSources, version: ModelVersion, predictor: Predictor, table: pa.Table
) -> tuple[str | None, dict[str, float | None], tuple[pa.Table, np.ndarray, np.ndarray] | None]:
    """The hold-out rows of the training run (same spec, same seed), scored: the
    calibration artifact of a classifier, the model's figures there, and the rows
    with their true and answered values."""
    if version.spec is None:
        return None, {}, None
    spec = TrainSpec.from_dict(version.spec)
    if spec.target not in table.column_names:
        return None, {}, None
    task = version.task
    holdout, truth = training_data.holdout(spec, table, task)  # type: ignore[arg-type]
    proba = predictor.predict_proba(holdout) if task == "classification" else None
    predicted = np.asarray(predictor.predict(holdout))
    performance = evaluate(truth, predicted, proba, task=task, classes=predictor.classes)
    rows = (holdout, truth, predicted)
    if proba is None:
        return None, performance, rows
    columns = {f"p{j}": pa.array(proba[:, j], pa.float64()) for j in range(proba.shape[1])}
    columns["label"] = pa.array(_plain(truth))
    return sources.artifacts.put(_parquet(pa.table(columns))), performance, rows


def _plain(values: np.ndarray) -> list[Any]:
    return [v.item() if isinstance(v, np.generic) else v for v in values.tolist()]


def _parquet(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()
