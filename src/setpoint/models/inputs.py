"""Turning what a caller passes to ``predict`` into what a model takes.

Callers pass a pandas DataFrame, an Arrow table or record batch, a dict of columns,
one record (a dict of scalars), a list of records, or, when every feature is a
number, a 2-D numpy array with the columns in feature order. Models take either a
DataFrame (:func:`to_frame`, for scikit-learn and arbitrary objects) or a float
matrix (:func:`to_matrix`, for the native tree libraries).

Whatever is wrong with the input is one :class:`~setpoint.errors.ModelInputError`
listing every problem (column, problem, example value), never a raw pandas or numpy
exception: predict is called by services and people who need to know what to fix.

A key absent from some records is a missing value there (JSON clients drop nulls); a
column absent from every record, or from a table, is an error.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from operator import itemgetter
from typing import Any

import numpy as np
import pandas as pd

from setpoint.data.kinds import NUMBER_KINDS, TEXT_KINDS, Kind
from setpoint.errors import UsageError
from setpoint.models._columns import (
    FloatArray,
    Problem,
    datetimes,
    epoch_seconds,
    numbers,
    raise_if,
    read_columns,
    texts,
)

__all__ = ["MatrixEncoder", "encode_categories", "to_frame", "to_matrix"]

_NAN = math.nan
# Records up to this many rows are encoded row by row, larger ones column by column.
_ROW_WISE = 16
# The value types numbers and booleans take on the fast path (numpy reads None as NaN).
_FAST_TYPES: dict[int, set[type]] = {0: {float, int, type(None)}, 1: {bool, type(None)}}
_TEXT_TYPES: set[type] = {str, type(None)}


def to_frame(data: Any, features: Sequence[str], kinds: Mapping[str, Kind]) -> pd.DataFrame:
    """Exactly the ``features`` columns of ``data``, in order, typed by kind.

    Numbers (numeric, integer) and booleans (0/1) are float64 with NaN for missing,
    categorical and string columns are object with None for missing, datetimes are
    datetime64. Other columns of ``data`` are ignored.
    """
    columns, rows = read_columns(data, features, kinds)
    problems: list[Problem] = []
    frame: dict[str, Any] = {}
    for name in features:
        kind = kinds.get(name, "numeric")
        if kind in TEXT_KINDS:
            frame[name] = pd.Series(texts(name, columns[name], problems), dtype=object)
        elif kind == "datetime":
            frame[name] = datetimes(name, columns[name], problems)
        else:
            frame[name] = numbers(name, kind, columns[name], problems)
    raise_if(problems)
    return pd.DataFrame(frame, index=pd.RangeIndex(rows))


def to_matrix(
    data: Any,
    features: Sequence[str],
    kinds: Mapping[str, Kind],
    categories: Mapping[str, Sequence[str]],
) -> FloatArray:
    """``data`` as a float64 matrix: one column per feature, in order.

    Numbers are floats (NaN for missing), booleans 0/1, categorical and string
    columns the index of the value in ``categories[column]`` (NaN when missing or
    unseen in training), datetimes seconds since the epoch. Callers predicting
    repeatedly should keep a :class:`MatrixEncoder`, which indexes the categories once.
    """
    return MatrixEncoder(features, kinds, categories)(data)


def encode_categories(
    data: Any, features: Sequence[str], kinds: Mapping[str, Kind]
) -> dict[str, list[str]]:
    """The sorted distinct non-null values of each categorical or string feature.

    Training stores this with the model so that prediction encodes a value as the
    same index the model was fitted on.
    """
    text = [name for name in features if kinds.get(name) in TEXT_KINDS]
    if not text:
        return {}
    frame = to_frame(data, text, kinds)
    return {name: sorted({v for v in frame[name] if v is not None}) for name in text}


class MatrixEncoder:
    """:func:`to_matrix` with the category index built once, for serving.

    Records of plain Python values (one dict or a short list of dicts, what a JSON
    request decodes to) take a fast path of one dict lookup per value and no
    pandas; anything unusual in them falls back to the general path, which also
    produces the error listing every problem.
    """

    def __init__(
        self,
        features: Sequence[str],
        kinds: Mapping[str, Kind],
        categories: Mapping[str, Sequence[str]],
    ) -> None:
        self.features = list(features)
        self.kinds: dict[str, Kind] = {name: kinds.get(name, "numeric") for name in features}
        without = [n for n in features if self.kinds[n] in TEXT_KINDS and n not in categories]
        if without:
            raise UsageError(
                f"categorical feature(s) {', '.join(without)} have no categories; pass "
                "categories={column: [values seen in training]} (see encode_categories)"
            )
        self.categories = {
            name: [str(v) for v in categories[name]]
            for name in features
            if self.kinds[name] in TEXT_KINDS
        }
        self._codes = {
            name: {value: float(i) for i, value in enumerate(values)}
            for name, values in self.categories.items()
        }
        # (name, kind tag, codes): 0 number, 1 boolean, 2 text, 3 datetime.
        self._plan: list[tuple[str, int, dict[str, float] | None]] = [
            (name, _tag(self.kinds[name]), self._codes.get(name)) for name in self.features
        ]
        self._has_datetime = any(tag == 3 for _, tag, _ in self._plan)

    def __call__(self, data: Any) -> FloatArray:
        if not self._has_datetime:
            if type(data) is dict and data and type(next(iter(data.values()))) is list:
                fast = self._fast_columns(data)
            elif type(data) is dict:
                fast = self._fast((data,))
            elif type(data) is list and data and type(data[0]) is dict:
                fast = self._fast(data)
            else:
                fast = None
            if fast is not None:
                return fast
        return self._general(data)

    def __getstate__(self) -> dict[str, Any]:
        return {"features": self.features, "kinds": self.kinds, "categories": self.categories}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["features"], state["kinds"], state["categories"])  # type: ignore[misc]

    def _fast(self, records: Sequence[dict[str, Any]]) -> FloatArray | None:
        """The matrix of plain records, or None to take the general path."""
        try:
            if len(records) <= _ROW_WISE:
                matrix = self._row_wise(records)
            else:
                matrix = self._column_wise(records)
        except (KeyError, TypeError, ValueError, OverflowError):  # absent key, odd values
            return None
        if matrix is None or np.isinf(matrix).any():
            return None  # the general path names the problem
        return matrix

    def _fast_columns(self, columns: dict[str, list[Any]]) -> FloatArray | None:
        """The matrix of a dict of plain lists (what the server batches), or None."""
        try:
            picked = [columns[name] for name in self.features]
            n_rows = len(picked[0])
            if not n_rows or any(type(c) is not list or len(c) != n_rows for c in picked):
                return None
            matrix = self._encode_columns(picked, n_rows)
        except (KeyError, TypeError, ValueError, OverflowError):
            return None
        if matrix is None or np.isinf(matrix).any():
            return None
        return matrix

    def _row_wise(self, records: Sequence[dict[str, Any]]) -> FloatArray | None:
        # Cheapest for a handful of rows: one pass, no per-column setup.
        rows: list[list[float]] = []
        for record in records:
            row: list[float] = []
            for name, tag, codes in self._plan:
                value = record[name]
                kind = type(value)
                if value is None:
                    row.append(_NAN)
                elif tag == 0 and (kind is float or kind is int):
                    row.append(value)
                elif tag == 2 and kind is str:
                    row.append(codes.get(value, _NAN))  # type: ignore[union-attr]
                elif tag == 1 and kind is bool:
                    row.append(1.0 if value else 0.0)
                else:
                    return None
            rows.append(row)
        return np.array(rows, dtype=np.float64)

    def _column_wise(self, records: Sequence[dict[str, Any]]) -> FloatArray | None:
        # For many rows the per-value work must stay in C: itemgetter and zip to
        # transpose, numpy's own type discovery for numbers, dict.get for categories.
        if len(self._plan) == 1:
            columns: list[Sequence[Any]] = [[record[self.features[0]] for record in records]]
        else:
            columns = list(zip(*map(itemgetter(*self.features), records), strict=True))
        return self._encode_columns(columns, len(records))

    def _encode_columns(self, columns: Sequence[Sequence[Any]], n_rows: int) -> FloatArray | None:
        matrix = np.empty((n_rows, len(self._plan)), dtype=np.float64)
        for j, ((_, tag, codes), column) in enumerate(zip(self._plan, columns, strict=True)):
            if codes is not None:
                encoded = list(map(codes.get, column))
                # None is missing, unseen, or not text: only the last needs a look.
                if None in encoded and not set(map(type, column)) <= _TEXT_TYPES:
                    return None
                matrix[:, j] = encoded
                continue
            array = np.array(column)
            if array.dtype.kind not in "fiub":  # None, text, or odd values: check types
                if not set(map(type, column)) <= _FAST_TYPES[tag]:
                    return None
                array = np.array(column, dtype=np.float64)
            elif array.ndim != 1 or (tag == 1 and array.dtype.kind != "b"):
                return None  # nested values, or booleans as numbers: let the general path judge
            matrix[:, j] = array
        return matrix

    def _general(self, data: Any) -> FloatArray:
        columns, rows = read_columns(data, self.features, self.kinds)
        problems: list[Problem] = []
        matrix = np.empty((rows, len(self.features)), dtype=np.float64)
        for j, name in enumerate(self.features):
            kind = self.kinds[name]
            if kind in TEXT_KINDS:
                codes = self._codes[name]
                values = texts(name, columns[name], problems)
                matrix[:, j] = [_NAN if v is None else codes.get(v, _NAN) for v in values]
            elif kind == "datetime":
                matrix[:, j] = epoch_seconds(datetimes(name, columns[name], problems))
            else:
                matrix[:, j] = numbers(name, kind, columns[name], problems)
        raise_if(problems)
        return matrix


def _tag(kind: Kind) -> int:
    if kind in NUMBER_KINDS:
        return 0
    if kind == "boolean":
        return 1
    if kind in TEXT_KINDS:
        return 2
    return 3
