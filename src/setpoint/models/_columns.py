"""Reading feature columns out of any accepted container, kind by kind.

The machinery behind :mod:`setpoint.models.inputs`: find the columns (or say which
are missing), convert each to what its kind needs, and collect every problem on the
way so that one error lists them all.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from datetime import date
from decimal import Decimal
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.types as pat

from setpoint.data.kinds import BOOLEAN_TEXT, FLOAT_TEXT, NUMBER_KINDS, TRUE_TEXT, Kind
from setpoint.errors import ModelInputError

FloatArray = npt.NDArray[np.float64]
ObjectArray = npt.NDArray[np.object_]
Problem = dict[str, Any]

_FLOAT_TEXT = re.compile(FLOAT_TEXT)
_BOOLEAN_TEXT = re.compile(BOOLEAN_TEXT)
_TRUE_TEXT = re.compile(TRUE_TEXT)

_NAN = math.nan
_COLUMN_TYPES = (list, tuple, range, np.ndarray, pa.Array, pa.ChunkedArray, pd.Series)
_ACCEPTED = (
    "pass a pandas DataFrame, an Arrow table or record batch, a dict of columns, "
    "one record (a dict), a list of records, or a 2-D numpy array for all-numeric models"
)


# -- containers -----------------------------------------------------------------------


def read_columns(
    data: Any, features: Sequence[str], kinds: Mapping[str, Kind]
) -> tuple[dict[str, Any], int]:
    """The feature columns of ``data`` (each a list, array, Series or Arrow array)
    and the row count; raises for a container or shape that cannot be read."""
    if isinstance(data, pd.DataFrame):
        columns, rows = _from_frame(data, features)
    elif isinstance(data, pa.Table | pa.RecordBatch):
        columns, rows = _from_arrow(data, features)
    elif isinstance(data, np.ndarray):
        columns, rows = _from_array(data, features, kinds)
    elif isinstance(data, Mapping):
        columns, rows = _from_mapping(data, features)
    elif isinstance(data, Sequence) and not isinstance(data, str | bytes):
        columns, rows = _from_records(data, features)
    else:
        raise ModelInputError(
            f"cannot predict on a {type(data).__name__}; {_ACCEPTED}",
            details=[{"column": None, "problem": "unsupported input type", "example": None}],
        )
    if rows == 0:
        raise ModelInputError(
            "the input has no rows; pass at least one row to predict on",
            details=[{"column": None, "problem": "empty input", "example": None}],
        )
    return columns, rows


def _missing(names: Sequence[str], features: Sequence[str]) -> None:
    if names:
        raise ModelInputError(
            f"missing column(s) {', '.join(map(repr, names))}; the model needs "
            f"{', '.join(map(repr, features))} (other columns are ignored)",
            details=[{"column": n, "problem": "missing column", "example": None} for n in names],
        )


def _from_frame(frame: pd.DataFrame, features: Sequence[str]) -> tuple[dict[str, Any], int]:
    present = set(frame.columns)
    _missing([n for n in features if n not in present], features)
    duplicated = [n for n in features if isinstance(frame[n], pd.DataFrame)]
    if duplicated:
        raise ModelInputError(
            f"column(s) {', '.join(map(repr, duplicated))} appear more than once; keep one of each",
            details=[
                {"column": n, "problem": "duplicate column", "example": None} for n in duplicated
            ],
        )
    return {n: frame[n] for n in features}, len(frame)


def _from_arrow(
    table: pa.Table | pa.RecordBatch, features: Sequence[str]
) -> tuple[dict[str, Any], int]:
    names = table.schema.names
    _missing([n for n in features if n not in names], features)
    duplicated = [n for n in features if names.count(n) > 1]
    if duplicated:
        raise ModelInputError(
            f"column(s) {', '.join(map(repr, duplicated))} appear more than once; keep one of each",
            details=[
                {"column": n, "problem": "duplicate column", "example": None} for n in duplicated
            ],
        )
    return {n: table.column(n) for n in features}, table.num_rows


def _from_array(
    array: npt.NDArray[Any], features: Sequence[str], kinds: Mapping[str, Kind]
) -> tuple[dict[str, Any], int]:
    not_numbers = [n for n in features if kinds.get(n, "numeric") not in (*NUMBER_KINDS, "boolean")]
    if not_numbers:
        raise ModelInputError(
            "a numpy array can only be passed to a model whose features are all numbers; "
            f"{', '.join(map(repr, not_numbers))} are not, so pass a DataFrame, a dict of "
            "columns or records instead",
            details=[
                {"column": n, "problem": "not a number column", "example": None}
                for n in not_numbers
            ],
        )
    if array.ndim != 2 or array.shape[1] != len(features):
        raise ModelInputError(
            f"a numpy array must be 2-D with {len(features)} columns in feature order "
            f"({', '.join(features)}); got shape {array.shape}"
            + ("; use array.reshape(1, -1) for one row" if array.ndim == 1 else ""),
            details=[{"column": None, "problem": "wrong array shape", "example": str(array.shape)}],
        )
    return {n: array[:, j] for j, n in enumerate(features)}, array.shape[0]


def _from_mapping(
    mapping: Mapping[Any, Any], features: Sequence[str]
) -> tuple[dict[str, Any], int]:
    _missing([n for n in features if n not in mapping], features)
    listed = [n for n in features if isinstance(mapping[n], _COLUMN_TYPES)]
    if not listed:  # one record: every value a scalar
        return {n: [mapping[n]] for n in features}, 1
    scalars = [n for n in features if n not in listed]
    if scalars:
        raise ModelInputError(
            f"column(s) {', '.join(map(repr, scalars))} hold a single value while others hold "
            "lists; pass either one record (all scalars) or a dict of equally long lists",
            details=[
                {"column": n, "problem": "not a list", "example": _example(mapping[n])}
                for n in scalars
            ],
        )
    lengths = {n: len(mapping[n]) for n in features}
    if len(set(lengths.values())) > 1:
        raise ModelInputError(
            "columns have different lengths ("
            + ", ".join(f"{n}: {k}" for n, k in lengths.items())
            + "); every column needs one value per row",
            details=[
                {"column": n, "problem": "length differs", "example": k} for n, k in lengths.items()
            ],
        )
    return {n: mapping[n] for n in features}, next(iter(lengths.values()), 0)


def _from_records(records: Sequence[Any], features: Sequence[str]) -> tuple[dict[str, Any], int]:
    bad = [i for i, record in enumerate(records) if not isinstance(record, Mapping)]
    if bad:
        raise ModelInputError(
            f"a list passed to predict must hold records (dicts); item(s) at "
            f"{', '.join(map(str, bad[:5]))}{' ...' if len(bad) > 5 else ''} are not "
            f"(first is a {type(records[bad[0]]).__name__}); {_ACCEPTED}",
            details=[
                {"column": None, "problem": "not a record", "example": _example(records[i])}
                for i in bad[:20]
            ],
        )
    if records:
        _missing([n for n in features if not any(n in r for r in records)], features)
    return {n: [r.get(n) for r in records] for n in features}, len(records)


# -- columns --------------------------------------------------------------------------


def numbers(name: str, kind: Kind, column: Any, problems: list[Problem]) -> FloatArray:
    """A numeric, integer or boolean column as float64, NaN for missing."""
    boolean = kind == "boolean"
    values = _as_float(column)
    if values is None:
        values = _elementwise_floats(name, boolean, _as_objects(column), problems)
    elif boolean:
        _check_booleans(name, values, problems)
    infinite = np.isinf(values)
    if infinite.any():
        problems.append(
            _problem(name, f"{int(infinite.sum())} infinite value(s)", float(values[infinite][0]))
        )
    return values


def _as_float(column: Any) -> FloatArray | None:
    """The column as float64 when it is stored as numbers; None to go value by value."""
    if isinstance(column, pa.Array | pa.ChunkedArray):
        if (
            pat.is_integer(column.type)
            or pat.is_floating(column.type)
            or pat.is_boolean(column.type)
        ):
            # Unsafe: an integer beyond 2**53 becomes the nearest float, as numpy does,
            # rather than failing the batch.
            cast = pc.cast(column, pa.float64(), safe=False)
            return np.asarray(cast.to_numpy(zero_copy_only=False), dtype=np.float64)
        return None
    if isinstance(column, pd.Series):
        if column.dtype != object and (
            pd.api.types.is_numeric_dtype(column.dtype) or pd.api.types.is_bool_dtype(column.dtype)
        ):
            return column.to_numpy(dtype=np.float64, na_value=_NAN)
        return None
    try:
        array = np.asarray(column)
    except (ValueError, TypeError, OverflowError):  # ragged or odd values: go one by one
        return None
    if array.ndim == 1 and array.dtype.kind in "fiub":
        return array.astype(np.float64)
    return None


def _as_objects(column: Any) -> list[Any]:
    """The column's values one by one (numpy scalars stay numpy scalars: ``tolist``
    would turn nanosecond datetimes into ints)."""
    if isinstance(column, pa.Array | pa.ChunkedArray):
        values: list[Any] = column.to_pylist()
        return values
    return list(column)


def _elementwise_floats(
    name: str, boolean: bool, values: list[Any], problems: list[Problem]
) -> FloatArray:
    out = np.empty(len(values), dtype=np.float64)
    bad: list[Any] = []
    for i, value in enumerate(values):
        number = _boolean(value) if boolean else _number(value)
        if number is None:
            bad.append(value)
            number = _NAN
        out[i] = number
    if bad:
        what = "booleans (true/false or 0/1)" if boolean else "numbers"
        problems.append(_problem(name, f"{len(bad)} value(s) are not {what}", bad[0]))
    return out


def _number(value: Any) -> float | None:
    if value is None or value is pd.NA:
        return _NAN
    if isinstance(value, str):  # "1.5" as a CSV file or JSON client sends it
        return float(value) if _FLOAT_TEXT.match(value) else None
    if isinstance(value, int | float | np.integer | np.floating | np.bool_ | Decimal):
        try:
            return float(value)
        except (OverflowError, ValueError):  # huge ints, Decimal("sNaN")
            return None
    return None


def _boolean(value: Any) -> float | None:
    if isinstance(value, str):
        if not _BOOLEAN_TEXT.match(value):
            return None
        return 1.0 if _TRUE_TEXT.match(value) else 0.0
    number = _number(value)
    if number is None or math.isnan(number) or number in (0.0, 1.0):
        return number
    return None


def _check_booleans(name: str, values: FloatArray, problems: list[Problem]) -> None:
    bad = ~(np.isnan(values) | (values == 0.0) | (values == 1.0))
    if bad.any():
        problems.append(
            _problem(
                name,
                f"{int(bad.sum())} value(s) are not booleans (true/false or 0/1)",
                float(values[bad][0]),
            )
        )


def texts(name: str, column: Any, problems: list[Problem]) -> ObjectArray:
    """A categorical or string column as object, None for missing.

    Whole numbers are accepted as their decimal text: codes often arrive as ints, or
    as floats once pandas has met a missing value. Anything else that is not text is
    a problem.
    """
    values = _as_objects(column)
    out = np.empty(len(values), dtype=object)
    bad: list[Any] = []
    for i, value in enumerate(values):
        if isinstance(value, str):
            out[i] = str(value)
        elif _is_missing(value):
            out[i] = None
        elif _is_whole(value):
            out[i] = str(int(value))
        else:
            bad.append(value)
            out[i] = None
    if bad:
        problems.append(_problem(name, f"{len(bad)} value(s) are not text", bad[0]))
    return out


def datetimes(name: str, column: Any, problems: list[Problem]) -> pd.Series[Any]:
    if isinstance(column, pd.Series) and pd.api.types.is_datetime64_any_dtype(column.dtype):
        return column.reset_index(drop=True)
    if isinstance(column, np.ndarray) and column.dtype.kind == "M":
        return pd.Series(column)
    values = _as_objects(column)
    bad = [
        v
        for v in values
        if not (_is_missing(v) or isinstance(v, str | date | np.datetime64 | pd.Timestamp))
    ]
    if bad:
        problems.append(_problem(name, f"{len(bad)} value(s) are not dates or times", bad[0]))
        return pd.Series(pd.NaT, index=pd.RangeIndex(len(values)), dtype="datetime64[ns]")
    cleaned = pd.Series([None if _is_missing(v) else v for v in values], dtype=object)
    try:
        parsed = pd.to_datetime(cleaned, errors="coerce", format="mixed")
    except (ValueError, TypeError, OverflowError) as exc:  # e.g. mixed time zones
        problems.append(_problem(name, f"cannot read as dates or times ({exc})", cleaned[0]))
        return pd.Series(pd.NaT, index=pd.RangeIndex(len(values)), dtype="datetime64[ns]")
    unread = cleaned[parsed.isna() & cleaned.notna()]
    if len(unread):
        problems.append(
            _problem(name, f"{len(unread)} value(s) are not dates or times", unread.iloc[0])
        )
    return parsed


def epoch_seconds(values: pd.Series[Any]) -> FloatArray:
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        values = values.dt.tz_convert(None)
    stamps = values.to_numpy(dtype="datetime64[us]")
    seconds = stamps.astype(np.int64).astype(np.float64) / 1e6
    seconds[np.isnat(stamps)] = _NAN
    return seconds


def _is_whole(value: Any) -> bool:
    if isinstance(value, bool | np.bool_):
        return False
    if isinstance(value, int | np.integer):
        return True
    return isinstance(value, float | np.floating) and float(value).is_integer()


def _is_missing(value: Any) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, float | np.floating) and math.isnan(value)


# -- problems -------------------------------------------------------------------------


def _problem(column: str, problem: str, example: Any) -> Problem:
    return {"column": column, "problem": problem, "example": _example(example)}


def _example(value: Any) -> str | int | float | bool | None:
    """A JSON-safe stand-in for an offending value (long or odd values as short text)."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int) and abs(value) < 2**53:
        return value
    if isinstance(value, float) and math.isfinite(value):
        return value
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def raise_if(problems: list[Problem]) -> None:
    if not problems:
        return
    listed = "; ".join(
        f"column {p['column']!r}: {p['problem']} (e.g. {p['example']!r})" for p in problems
    )
    raise ModelInputError(
        f"cannot predict on this input: {listed}. Fix or drop these values and retry.",
        details=problems,
    )
