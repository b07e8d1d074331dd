"""Offline monitoring: a current table compared with a reference table, no server, no
workspace.

``compare`` reads both tables (pandas, Polars, Arrow, or a CSV/Parquet path), infers
each column's kind as ``data add`` does, summarizes the reference once, cuts the
current table into chunks (calendar periods of a time column, or runs of rows), and
measures every chunk with the engine monitors use (``engine.py``): drift of every
feature, of the model's answers when a prediction column is named, the domain
classifier, data quality, and realized performance when the target is named too.
Each chunk is judged with the conditions that raise a monitor's alerts.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from setpoint.data import io
from setpoint.data._batch import to_table
from setpoint.data.kinds import Kind, is_text, kind_of
from setpoint.errors import UsageError
from setpoint.models import _training_data as training_data
from setpoint.models.evaluation import evaluate
from setpoint.monitoring.chunks import Chunk, ChunkSize, Period, cut, parse_chunk
from setpoint.monitoring.comparison import Comparison
from setpoint.monitoring.conditions import judge
from setpoint.monitoring.engine import Baseline, Engine, EngineSettings
from setpoint.monitoring.reference import PREDICTION, SAMPLE_ROWS
from setpoint.monitoring.settings import DriftSettings
from setpoint.monitoring.summary import ReferenceSummary
from setpoint.monitoring.thresholds import MIN_CHUNKS, TimeThresholds, learn_from_time
from setpoint.monitoring.thresholds import MIN_ROWS as LEARN_MIN_ROWS

Progress = Callable[[int, int], None]


def compare(
    reference: Any,
    current: Any,
    *,
    time_column: str | None = None,
    chunk: str | int | None = None,
    features: Sequence[str] | None = None,
    target: str | None = None,
    prediction: str | None = None,
    drift: DriftSettings | Mapping[str, Any] | None = None,
    multivariate: bool = True,
    learn_thresholds: bool = True,
    min_labels: int = 100,
    performance_drop: float = 0.05,
    progress: Progress | None = None,
    names: tuple[str, str] | None = None,
) -> Comparison:
    """Compare ``current`` with ``reference``, chunk by chunk.

    Both are tables (pandas or Polars DataFrames, Arrow tables) or paths to CSV or
    Parquet files. ``time_column`` orders the rows and, with a period ``chunk``
    (``1d``, ``1w``, ``1M``, ``1q``, ``1y``), cuts ``current`` at calendar boundaries;
    a number ``chunk`` (``10000``) cuts it every that many rows; without either it is
    one chunk. ``features`` default to every column but the time, target and
    prediction columns (free text and times left out). ``prediction`` names the
    model's answer (its drift is judged apart from the inputs); with ``target`` too,
    realized performance is measured where labels are present. ``drift``,
    ``multivariate``, ``learn_thresholds``, ``min_labels`` and ``performance_drop``
    are a monitor's settings of the same names. ``progress(done, total)`` is called
    after each chunk; ``names`` name the two tables (default: their file names, or
    "reference" and "current")."""
    settings = _settings(drift, multivariate, learn_thresholds, min_labels, performance_drop)
    size = None if chunk is None else parse_chunk(chunk)
    ref, ref_source = read_table(reference, "reference")
    cur, cur_source = read_table(current, "current")
    if names is not None:
        ref_source, cur_source = names
    notes: list[str] = []
    _check_named(ref, cur, time_column=time_column, target=target, prediction=prediction)
    kinds = _features(ref, features, {time_column, target, prediction} - {None}, notes)
    missing = [name for name in kinds if name not in cur.column_names]
    if missing:
        raise UsageError(
            f"the current data lacks the reference's feature(s) {', '.join(missing)}; "
            "add them, or compare only the columns both have (features=[...], --features)"
        )
    task, classes, outputs = _outputs(ref, target, prediction, notes)
    with_outputs = ref.select(list(kinds))
    if prediction is not None:
        with_outputs = with_outputs.append_column(
            PREDICTION, _answers(ref.column(prediction), outputs[PREDICTION])
        )
    summary = ReferenceSummary.build(with_outputs, {**kinds, **outputs})
    performance = _reference_performance(ref, target, prediction, task, classes)
    if target is not None and target not in cur.column_names:
        notes.append(f"the current data has no {target!r} column: no realized performance")
    if learn_thresholds and ref.num_rows < LEARN_MIN_ROWS:
        notes.append(
            f"the reference has {ref.num_rows:,} rows, too few to learn thresholds from its "
            f"noise ({LEARN_MIN_ROWS} needed): the static thresholds are used"
        )
    learned = None
    if learn_thresholds and time_column is not None:
        learned = _learn_from_time(
            with_outputs.append_column(time_column, ref.column(time_column))
            if time_column in ref.column_names
            else with_outputs,
            summary,
            settings,
            time_column=time_column,
            size=size,
            kinds=kinds,
            labels=None
            if target is None or prediction is None or task is None
            else (ref.column(target), ref.column(prediction), task, classes),
            performance=performance,
            notes=notes,
        )
    engine = Engine(
        Baseline(
            summary=summary,
            features=kinds,
            outputs=outputs,
            name=ref_source,
            task=task,
            classes=classes,
            performance=performance,
            learned=learned,
        ),
        settings,
        sample=_sample(ref.select(list(kinds))),
    )
    chunks, untimed = cut(cur, time_column=time_column, chunk=size)
    if untimed:
        notes.append(f"{untimed:,} current row(s) have no {time_column!r} value and were left out")
    measured = []
    for done, part in enumerate(chunks, 1):
        measured.append(_measure(engine, cur, part, kinds, target, prediction, performance_drop))
        if progress is not None:
            progress(done, len(chunks))
    small = sum(not c.get("judged", True) for c in measured)
    if small:
        notes.append(
            f"{small} of {len(measured)} chunk(s) had fewer than {settings.drift.min_rows:,} "
            "rows and were not judged; cut longer chunks"
        )
    return Comparison(
        reference={
            "source": ref_source,
            "rows": ref.num_rows,
            "features": dict(kinds),
            "outputs": dict(outputs),
            "task": task,
            "performance": performance,
            "learned_from_time": None if learned is None else learned.to_dict(),
        },
        current={"source": cur_source, "rows": cur.num_rows},
        time_column=time_column,
        chunk=None if size is None else str(size),
        by_period=isinstance(size, Period),
        target=target,
        prediction=prediction,
        settings={
            "drift": settings.drift.to_dict(),
            "multivariate": multivariate,
            "learn_thresholds": learn_thresholds,
            "min_labels": min_labels,
            "performance_drop": performance_drop,
        },
        chunks=measured,
        notes=notes,
    )


def read_table(data: Any, what: str) -> tuple[pa.Table, str]:
    """``data`` as an Arrow table with plain types, and how to name it."""
    if isinstance(data, str | os.PathLike):
        path = Path(data)
        if path.suffix.lower() not in io.FORMATS and "@" in str(data):
            raise UsageError(
                f"{data}: the {what} is not a file; for a dataset of a workspace pass "
                "workspace.load_dataset(NAME@VERSION) (the CLI takes NAME@VERSION itself)"
            )
        return io.normalise(io.read_file(path)), path.name
    return io.normalise(to_table(data)), what


def _settings(
    drift: DriftSettings | Mapping[str, Any] | None,
    multivariate: bool,
    learn_thresholds: bool,
    min_labels: int,
    performance_drop: float,
) -> EngineSettings:
    if drift is None:
        drift = DriftSettings()
    elif not isinstance(drift, DriftSettings):
        drift = DriftSettings.from_dict(drift)
    if min_labels < 1:
        raise UsageError(f"min_labels must be 1 or more, not {min_labels}")
    if not performance_drop >= 0:
        raise UsageError(f"performance_drop must be 0 or more, not {performance_drop}")
    return EngineSettings(
        drift=drift,
        multivariate=multivariate,
        learn_thresholds=learn_thresholds,
        min_labels=min_labels,
    )


def _check_named(
    ref: pa.Table,
    cur: pa.Table,
    *,
    time_column: str | None,
    target: str | None,
    prediction: str | None,
) -> None:
    if time_column is not None and time_column not in cur.column_names:
        raise UsageError(
            f"time column {time_column!r} is not a column of the current data; its columns "
            f"are {', '.join(cur.column_names)}"
        )
    named = [("time column", time_column), ("target", target), ("prediction", prediction)]
    for role, name in named:
        if name is not None and name not in ref.column_names:
            if role == "time column" and name in cur.column_names:
                continue  # the reference may have no time: it is then not learned from
            raise UsageError(
                f"{role} {name!r} is not a column of the reference; its columns are "
                f"{', '.join(ref.column_names)}"
            )
    for role, name in (("prediction", prediction),):
        if name is not None and name not in cur.column_names:
            raise UsageError(
                f"{role} {name!r} is not a column of the current data; its columns are "
                f"{', '.join(cur.column_names)}"
            )
    if target is not None and target == prediction:
        raise UsageError("target and prediction name the same column; name the model's answer")


def _features(
    ref: pa.Table, names: Sequence[str] | None, reserved: set[str | None], notes: list[str]
) -> dict[str, str]:
    """Each feature's kind, inferred from the reference as ``data add`` does."""
    if names is not None:
        if isinstance(names, str):
            names = [names]
        unknown = [n for n in names if n not in ref.column_names]
        if unknown:
            raise UsageError(
                f"feature(s) {', '.join(unknown)} are not columns of the reference; its "
                f"columns are {', '.join(ref.column_names)}"
            )
        clash = [n for n in names if n in reserved]
        if clash:
            raise UsageError(
                f"{', '.join(clash)} cannot be a feature: it is the time, target or "
                "prediction column"
            )
    chosen = list(dict.fromkeys(names)) if names is not None else None
    kinds: dict[str, str] = {}
    for name in chosen if chosen is not None else ref.column_names:
        if name in reserved:
            continue
        kind = _kind(ref.column(name))
        if kind == "datetime":
            if chosen is not None:
                raise UsageError(
                    f"feature {name!r} holds dates or times, which are not compared; name it "
                    "as the time column, or leave it out of the features"
                )
            notes.append(f"{name} holds dates or times and is not compared")
            continue
        if kind == "string" and chosen is None:
            notes.append(
                f"{name} is free text or identifiers and is not compared; name it among the "
                "features to compare it anyway"
            )
            continue
        kinds[name] = kind
    if not kinds:
        raise UsageError("no feature is left to compare; name the features to compare")
    return kinds


def _kind(column: pa.ChunkedArray) -> Kind:
    distinct = None
    if is_text(column.type):
        distinct = int(pc.count_distinct(column, mode="only_valid").as_py())
    return kind_of(column.type, distinct=distinct)


def _outputs(
    ref: pa.Table, target: str | None, prediction: str | None, notes: list[str]
) -> tuple[str | None, list[Any] | None, dict[str, str]]:
    """The task, the classes and the output column's kind, from the reference."""
    if prediction is None:
        if target is not None:
            notes.append(f"no prediction column is named: {target!r} alone gives no performance")
        return None, None, {}
    named = target if target is not None else prediction
    column = _present(ref.column(named))
    values = training_data.target_values(column)
    if not len(values):
        raise UsageError(f"{named!r} has no values in the reference")
    task = training_data.infer_task(named, values, _kind(column), [])
    notes.append(f"the model is read as a {task} model from the values of {named!r}")
    classes: list[Any] | None = None
    if task == "classification":
        seen = training_data.target_values(_present(ref.column(prediction))).tolist()
        if target is not None:
            seen += values.tolist()
        classes = sorted(set(seen), key=lambda v: (str(type(v)), v))
    return task, classes, {PREDICTION: "categorical" if task == "classification" else "numeric"}


def _has(column: pa.ChunkedArray) -> Any:
    """Which rows hold a value: not null, nor NaN."""
    valid = pc.is_valid(column)
    if pa.types.is_floating(column.type):
        valid = pc.and_(valid, pc.invert(pc.fill_null(pc.is_nan(column), True)))
    return valid


def _present(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """The values that are there: not null, nor NaN."""
    return column.filter(_has(column))


def _answers(column: pa.ChunkedArray, kind: str) -> pa.ChunkedArray:
    return column.cast(pa.float64()) if kind == "numeric" else column.cast(pa.string())


def _reference_performance(
    ref: pa.Table,
    target: str | None,
    prediction: str | None,
    task: str | None,
    classes: list[Any] | None,
) -> dict[str, float | None]:
    """The model's figures on the reference rows that have a label."""
    if target is None or prediction is None or task is None:
        return {}
    both = ref.filter(pc.and_(_has(ref.column(target)), _has(ref.column(prediction))))
    truth = training_data.target_values(both.column(target))
    answered = training_data.target_values(both.column(prediction))
    try:
        return evaluate(truth, answered, None, task=task, classes=classes)
    except (ValueError, TypeError) as exc:
        raise UsageError(
            f"the prediction column {prediction!r} cannot be compared with the target "
            f"{target!r} ({exc}); name the column of the model's answers, of the target's "
            "kind (labels for a classifier, not scores)"
        ) from None


def _learn_from_time(
    reference: pa.Table,
    summary: ReferenceSummary,
    settings: EngineSettings,
    *,
    time_column: str,
    size: ChunkSize | None,
    kinds: Mapping[str, str],
    labels: tuple[pa.ChunkedArray, pa.ChunkedArray, str, list[Any] | None] | None,
    performance: Mapping[str, float | None],
    notes: list[str],
) -> TimeThresholds | None:
    """Thresholds from the reference's own chunks, cut as the current data is."""
    if time_column not in reference.column_names:
        notes.append(
            f"the reference has no {time_column!r} column: thresholds are not learned from its time"
        )
        return None
    if size is None:
        notes.append(
            "the current data is one chunk: thresholds are learned from the reference's "
            "time only for chunks of a length (give a chunk)"
        )
        return None
    chunks, _ = cut(reference, time_column=time_column, chunk=size)
    learned = learn_from_time(
        reference,
        summary,
        [c.rows for c in chunks],
        settings=settings.drift,
        features=cast(dict[str, Kind], kinds) if settings.multivariate else None,
        labels=labels,
        performance=performance,
        min_labels=settings.min_labels,
    )
    if learned is None:
        notes.append(
            f"the reference has fewer than {MIN_CHUNKS} chunks of {size} with "
            f"{settings.drift.min_rows} rows or more: thresholds are not learned from its time"
        )
    else:
        notes.append(
            f"thresholds are also learned from {learned.chunks} chunks of {size} of the "
            "reference's own time"
        )
    return learned


def _sample(features: pa.Table) -> pa.Table:
    """The reference rows the domain classifier and the thresholds learn from (as a
    monitor keeps them)."""
    rng = np.random.default_rng(0)
    n = features.num_rows
    rows = np.sort(rng.choice(n, size=min(SAMPLE_ROWS, n), replace=False))
    return features.take(pa.array(rows))


def _measure(
    engine: Engine,
    cur: pa.Table,
    part: Chunk,
    kinds: Mapping[str, str],
    target: str | None,
    prediction: str | None,
    performance_drop: float,
) -> dict[str, Any]:
    rows = pa.array(part.rows)
    inputs = cur.select(list(kinds)).take(rows)
    predictions = None if prediction is None else cur.column(prediction).take(rows)
    labels = None
    if target is not None and target in cur.column_names and prediction is not None:
        labels = cur.column(target).take(rows).combine_chunks()
    results = engine.measure(
        inputs,
        predictions=None if predictions is None else predictions.combine_chunks(),
        labels=labels,
    )
    held = judge(
        results,
        part.label,
        outputs=engine.baseline.outputs,
        performance_drop=performance_drop,
        min_labels=engine.settings.min_labels,
    )
    return {
        "label": part.label,
        "start": None if part.start is None else part.start.isoformat(),
        "end": None if part.end is None else part.end.isoformat(),
        "n_rows": part.n_rows,
        **results,
        "alerts": [
            {"key": key, "severity": holding[0], "message": holding[1]}
            for key, holding in held.items()
            if holding is not None
        ],
    }
