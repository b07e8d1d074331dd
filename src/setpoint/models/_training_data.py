"""What a spec trains on: the rows, the feature columns and their kinds, the task,
and the split into training and validation rows.

Everything here reads the table and the spec only; mistakes are named by spec path
(``target``, ``split.time_column``) with the dataset's actual columns, and every
choice made for the user (a column left out, the inferred task) becomes a note in
the result.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
from sklearn.model_selection import train_test_split

from setpoint.data.kinds import Kind, is_text, kind_of
from setpoint.errors import InvalidSpecError, UsageError
from setpoint.models.evaluation import METRICS
from setpoint.models.predictor import Task
from setpoint.models.spec import TrainSpec

Array = npt.NDArray[Any]

MIN_ROWS = 10
# An integer (or whole-number) target with at most this many values is read as classes.
MAX_INFERRED_CLASSES = 20


# -- columns, rows and kinds --------------------------------------------------------------


def check_columns(spec: TrainSpec, table: pa.Table) -> None:
    named: list[tuple[str, str]] = [("target", spec.target)]
    named += [("features", c) for c in spec.features or ()]
    named += [("exclude", c) for c in spec.exclude]
    named += [("segments", c) for c in spec.segments]
    named += [("fairness.sensitive", c) for c in (spec.fairness.sensitive if spec.fairness else ())]
    if spec.split.time_column:
        named.append(("split.time_column", spec.split.time_column))
    present = set(table.column_names)
    missing = [(path, column) for path, column in named if column not in present]
    if missing:
        names = ", ".join(dict.fromkeys(column for _, column in missing))
        raise InvalidSpecError(
            f"column(s) {names} named in the spec are not in {spec.dataset}; "
            f"its columns are {', '.join(table.column_names)}",
            details=[
                f"{path}: {column!r} is not a column of the dataset" for path, column in missing
            ],
        )


def rows_to_use(spec: TrainSpec, table: pa.Table, notes: list[str]) -> pa.Table:
    """The rows with a target value (and a time, for a time split)."""
    kept = table.filter(_present(table.column(spec.target)))
    if table.num_rows > kept.num_rows:
        notes.append(
            f"{table.num_rows - kept.num_rows} row(s) without a target value were left out"
        )
    if spec.split.method == "time" and spec.split.time_column:
        before = kept.num_rows
        kept = kept.filter(_present(kept.column(spec.split.time_column)))
        if before > kept.num_rows:
            notes.append(
                f"{before - kept.num_rows} row(s) without a {spec.split.time_column} value "
                "were left out: the time split cannot place them"
            )
    if kept.num_rows < MIN_ROWS:
        raise UsageError(
            f"only {kept.num_rows} usable row(s) have a {spec.target!r} value; training needs "
            f"at least {MIN_ROWS}"
        )
    return kept


def _present(column: pa.ChunkedArray) -> Any:
    valid = pc.is_valid(column)
    if pa.types.is_floating(column.type):  # NaN is as missing as null
        valid = pc.and_(valid, pc.invert(pc.is_nan(column)))
    return valid


def column_kinds(table: pa.Table, given: Mapping[str, Kind] | None) -> dict[str, Kind]:
    out: dict[str, Kind] = {}
    for name in table.column_names:
        if given and name in given:
            out[name] = given[name]
            continue
        column = table.column(name)
        distinct = None
        if is_text(column.type) and not pa.types.is_dictionary(column.type):
            distinct = int(pc.count_distinct(column).as_py())
        out[name] = kind_of(column.type, distinct=distinct)
    return out


def choose_features(
    spec: TrainSpec, table: pa.Table, kinds: Mapping[str, Kind], notes: list[str]
) -> list[str]:
    if spec.features is not None:
        dates = [f for f in spec.features if kinds[f] == "datetime"]
        if dates:
            raise InvalidSpecError(
                f"feature(s) {', '.join(dates)} are dates or times, which models cannot take "
                "directly; derive numbers from them (age, day of week) and list those instead",
                details=[f"features: {f} is a datetime column" for f in dates],
            )
        for name in spec.features:
            if kinds[name] == "string":
                notes.append(f"{name} has many distinct values; it is encoded as a category")
        return list(spec.features)
    # Sensitive columns are read for measuring fairness, and learnt from only if listed.
    left_out = {spec.target, *spec.exclude, *(spec.fairness.sensitive if spec.fairness else ())}
    if spec.split.time_column:
        left_out.add(spec.split.time_column)
    features = []
    for name in table.column_names:
        if name in left_out:
            continue
        if kinds[name] in ("string", "datetime"):
            why = "free text or identifiers" if kinds[name] == "string" else "dates or times"
            notes.append(
                f"{name} is not used as a feature: its values are {why}; list it under "
                "features to use it anyway, or add it to exclude to silence this note"
            )
            continue
        features.append(name)
    if not features:
        raise InvalidSpecError(
            "no feature columns are left; list them under features",
            details=["features: no usable column"],
        )
    return features


# -- target and task ------------------------------------------------------------------------


def target_values(column: pa.ChunkedArray) -> Array:
    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    return np.asarray(column.to_numpy(zero_copy_only=False))


def infer_task(target: str, y: Array, kind: Kind, notes: list[str]) -> Task:
    if kind == "datetime":
        raise UsageError(f"the target {target!r} holds dates or times; a model cannot predict them")
    task: Task
    if kind in ("numeric", "integer"):
        whole = kind == "integer" or bool(np.all(np.mod(y.astype(np.float64), 1) == 0))
        distinct = len(np.unique(y))
        if whole and distinct <= MAX_INFERRED_CLASSES:
            task, why = "classification", f"{distinct} distinct whole-number values"
        else:
            task, why = "regression", f"{distinct} distinct numbers"
    else:
        task, why = "classification", f"{kind} values"
    notes.append(f"task inferred as {task} ({target!r} has {why}); set task to override")
    return task


def class_labels(target: str, y: Array, task: Task) -> list[Any] | None:
    if task == "regression":
        if not np.issubdtype(y.dtype, np.number) or y.dtype == np.bool_:
            raise UsageError(
                f"task is regression but the target {target!r} is not numeric ({y.dtype}); "
                "set task: classification or pick a numeric target"
            )
        return None
    classes: list[Any] = np.unique(y).tolist()
    if len(classes) < 2:
        raise UsageError(
            f"the target {target!r} has one class only ({classes[0]!r}); a classifier needs two"
        )
    return classes


def check_fairness_task(spec: TrainSpec, task: Task) -> None:
    """The fairness metrics the spec lists apply to ``task`` (inferred, if not given)."""
    other = spec.fairness.wrong_task(task) if spec.fairness else []
    if other:
        raise InvalidSpecError(
            f"fairness.metrics: {', '.join(other)} do not apply to {task} (the task of this "
            "target); leave metrics out for those of the task",
            details=[f"fairness.metrics: {m} is not a {task} metric" for m in other],
        )


def metric_names(spec: TrainSpec, task: Task, notes: list[str]) -> list[str] | None:
    if spec.metrics is None:
        return None
    fitting = [m for m in spec.metrics if METRICS[m].task == task]
    skipped = [m for m in spec.metrics if METRICS[m].task != task]
    if not fitting:
        raise InvalidSpecError(
            f"metrics: none of {', '.join(spec.metrics)} apply to {task} (the task of this "
            f"target); set task, or list {task} metrics",
            details=[f"metrics: not {task} metrics"],
        )
    if skipped:
        notes.append(f"metric(s) {', '.join(skipped)} do not apply to {task} and were skipped")
    return fitting


# -- split ------------------------------------------------------------------------------------


def split_rows(
    spec: TrainSpec, table: pa.Table, y: Array, task: Task, notes: list[str]
) -> tuple[Array, Array]:
    """Row indices of the training and validation sets, each in table order; every
    class of a classification target has at least one training row."""
    train, valid = _split(spec, table, y, task, notes)
    if task == "classification":
        train, valid = _cover_classes(train, valid, y, notes)
    return train, valid


def holdout(spec: TrainSpec, table: pa.Table, task: Task) -> tuple[pa.Table, Array]:
    """The validation rows a training run with ``spec`` held out of ``table`` (same
    rows, same split, same seed) and their target values: what a trained model is
    judged on again later (its monitor's calibration, a retraining's gates)."""
    return split(spec, table, task)[1]


def split(
    spec: TrainSpec, table: pa.Table, task: Task
) -> tuple[tuple[pa.Table, Array], tuple[pa.Table, Array]]:
    """The (rows, target values) a training run with ``spec`` trained on and held out
    of ``table``: what a model derived from a trained one (``models/optimize.py``)
    learns from and is judged on."""
    notes: list[str] = []
    kept = rows_to_use(spec, table, notes)
    y = target_values(kept.column(spec.target))
    train, valid = split_rows(spec, kept, y, task, notes)
    return (kept.take(pa.array(train)), y[train]), (kept.take(pa.array(valid)), y[valid])


def _cover_classes(train: Array, valid: Array, y: Array, notes: list[str]) -> tuple[Array, Array]:
    """Move the first validation row of each class the training rows lack into training:
    a model cannot learn, or be asked about, a class it never saw."""
    missing = [c for c in np.unique(y[valid]) if c not in set(np.unique(y[train]).tolist())]
    if not missing:
        return train, valid
    moved = np.array([valid[np.flatnonzero(y[valid] == c)[0]] for c in missing])
    notes.append(
        f"class(es) {', '.join(map(repr, missing))} had no training row; one row of each "
        "was moved from the hold-out into training"
    )
    keep = ~np.isin(valid, moved)
    return np.sort(np.concatenate([train, moved])), valid[keep]


def _split(
    spec: TrainSpec, table: pa.Table, y: Array, task: Task, notes: list[str]
) -> tuple[Array, Array]:
    if spec.split.method == "time":
        assert spec.split.time_column is not None
        return _time_split(table.column(spec.split.time_column), spec.split.test_size)
    stratify = None
    if task == "classification" and spec.split.stratify:
        _, counts = np.unique(y, return_counts=True)
        if counts.min() >= 2:
            stratify = y
        else:
            notes.append("the split is not stratified: a class has a single row")
    try:
        train, valid = train_test_split(
            np.arange(table.num_rows),
            test_size=spec.split.test_size,
            random_state=spec.seed,
            stratify=stratify,
        )
    except ValueError as exc:
        raise UsageError(
            f"cannot split {table.num_rows} rows as asked ({exc}); change split.test_size"
        ) from None
    return np.sort(train), np.sort(valid)


def _time_split(times: pa.ChunkedArray, test_size: float) -> tuple[Array, Array]:
    """The earliest rows train, the latest ``test_size`` share validate; rows sharing a
    time stay on one side, so validation is strictly later than training."""
    cut = round(len(times) * (1 - test_size))
    last = np.asarray(pc.rank(times, tiebreaker="max"))  # 1-based position of a tie's end
    train = last <= cut
    if not train.any():  # the time at the cut starts the data: keep its rows in training
        first = np.asarray(pc.rank(times, tiebreaker="min"))
        train = first <= cut
    if train.all() or not train.any():
        raise UsageError(
            "the time split leaves no rows on one side (too few distinct times); "
            "change split.test_size or use split.method: random"
        )
    rows = np.arange(len(times))
    return rows[train], rows[~train]
