"""Turning whatever a caller passes as a batch into one Arrow table.

Accepted: a pandas DataFrame, an Arrow table or record batch, anything that exports
the Arrow C stream interface (a Polars DataFrame, a DuckDB relation: read without
importing their library), a dict of columns, or a list of records (dicts). Anything
else, and anything Arrow cannot hold, is an :class:`~setpoint.errors.SetpointError`
naming the problem, never a raw library error.

A column whose values do not share one type (``[1, "x"]``, as JSON requests often
have) is kept as text instead of failing the whole batch, so that the contract can
report the offending rows one by one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa

from setpoint.errors import InvalidDataError, UsageError

_ARROW_ERRORS = (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OverflowError)


def to_table(batch: Any) -> pa.Table:
    """``batch`` as an Arrow table with string, unique column names."""
    if isinstance(batch, pa.Table):
        table = batch
    elif isinstance(batch, pa.RecordBatch):
        table = pa.Table.from_batches([batch])
    elif _is_dataframe(batch):
        table = _from_pandas(batch)
    elif hasattr(batch, "__arrow_c_stream__"):
        table = _from_stream(batch)
    elif isinstance(batch, Mapping):
        table = _from_columns(batch)
    elif isinstance(batch, Sequence) and not isinstance(batch, str | bytes):
        table = _from_records(batch)
    else:
        raise UsageError(
            f"cannot read a batch from a {type(batch).__name__}; pass a pandas DataFrame, "
            "a Polars DataFrame, an Arrow table, a dict of columns or a list of records"
            + (" (collect a lazy frame first)" if hasattr(batch, "collect") else "")
        )
    _check_names(table.column_names)
    return table


def _is_dataframe(obj: Any) -> bool:
    return type(obj).__name__ == "DataFrame" and type(obj).__module__.startswith("pandas")


def _from_pandas(frame: Any) -> pa.Table:
    names = list(frame.columns)
    _check_names(names)
    try:
        return pa.Table.from_pandas(frame, preserve_index=False)
    except _ARROW_ERRORS:
        pass
    columns = {}
    for name in names:
        values = frame[name]
        try:
            columns[name] = pa.Array.from_pandas(values)
        except _ARROW_ERRORS:
            columns[name] = _as_text(values.tolist())
    return pa.table(columns)


def _from_stream(data: Any) -> pa.Table:
    try:
        return pa.table(data)
    except _ARROW_ERRORS as exc:
        raise InvalidDataError(
            f"cannot read the {type(data).__name__} as an Arrow table: {exc}"
        ) from None


def _from_columns(columns: Mapping[Any, Any]) -> pa.Table:
    _check_names(list(columns))
    arrays = {}
    lengths = set()
    for name, values in columns.items():
        if isinstance(values, pa.Array | pa.ChunkedArray):
            arrays[name] = values
        else:
            if isinstance(values, str | bytes) or not hasattr(values, "__len__"):
                raise InvalidDataError(
                    f"column {name!r} must be a list of values, got {type(values).__name__}",
                    details=[{"column": name, "problem": "not a list"}],
                )
            try:
                arrays[name] = pa.array(values, from_pandas=True)
            except _ARROW_ERRORS:
                arrays[name] = _as_text(list(values))
        lengths.add(len(arrays[name]))
    if len(lengths) > 1:
        raise InvalidDataError(
            "the columns have different lengths: "
            + ", ".join(f"{n}={len(a)}" for n, a in arrays.items()),
            details=[{"column": n, "length": len(a)} for n, a in arrays.items()],
        )
    return pa.table(arrays)


def _from_records(records: Sequence[Any]) -> pa.Table:
    bad = next((i for i, r in enumerate(records) if not isinstance(r, Mapping)), None)
    if bad is not None:
        raise InvalidDataError(
            f"record {bad} is a {type(records[bad]).__name__}, not an object of "
            "column: value pairs",
            details=[{"row": bad, "problem": "not a record"}],
        )
    names: dict[Any, None] = {}
    for record in records:
        names.update(dict.fromkeys(record))
    if records and not names:
        raise InvalidDataError(
            "the records have no fields; send each record as an object of column: value pairs"
        )
    return _from_columns({name: [r.get(name) for r in records] for name in names})


def _as_text(values: list[Any]) -> pa.Array:
    """Mixed values as strings (nulls kept), for the contract to judge row by row."""
    return pa.array([None if _is_null(v) else str(v) for v in values], type=pa.string())


def _is_null(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value)


def _check_names(names: list[Any]) -> None:
    not_text = [n for n in names if not isinstance(n, str)]
    if not_text:
        raise InvalidDataError(
            f"column names must be text; got {', '.join(map(repr, not_text[:5]))}",
            details=[{"column": repr(n), "problem": "name is not text"} for n in not_text],
        )
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise InvalidDataError(
            f"column name(s) {', '.join(twice)} appear more than once",
            details=[{"column": n, "problem": "duplicate name"} for n in twice],
        )
