"""Column profiles: computed once per dataset version, reused as the reference.

A profile holds, per column, what a person wants to see in a catalog and what a
monitor compares live traffic with: the kind, counts, nulls, distinct values, the
range, mean and spread, quantiles, and the most frequent values.

A :class:`Profiler` takes the rows batch by batch, so a file larger than memory is
profiled as it streams (``data/ingest.py``); ``profile_table`` feeds it a table in
the same batches (``io.HASH_ROWS`` rows each), so a table and the same rows streamed
from a file get the same profile. Counts, nulls, min, max and the text statistics
merge exactly; mean and standard deviation merge by Chan's formulas (exact up to
floating-point rounding); quantiles of more than 16,384 values, distinct counts of
more than 65,536 values (or 4 MiB of them) and the commonest values of a text column
with more than 98,304 distinct values come from bounded summaries whose error and
memory are stated in ``data/_sketch.py``; a text value longer than 48 bytes is
counted among the commonest by a bounded key, and shown in full only while the
column's distinct values are held exactly. Per batch, everything is an Arrow or NumPy
kernel, except the DataSketches updates, one call per value (distinct counts beyond
the exact set) or per distinct value of the batch (commonest text values).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.types as pat

from setpoint._display import count, listing, short_repr
from setpoint.data._sketch import DistinctCount, QuantileSketch, TopCounts
from setpoint.data.kinds import Kind, is_text, kind_of

QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
TOP_K = 20


@dataclass(frozen=True)
class ColumnProfile:
    name: str
    arrow_type: str
    kind: Kind
    count: int  # non-null values
    nulls: int
    null_fraction: float
    distinct: int
    min: Any = None  # a number, or ISO text for datetimes, or text for strings
    max: Any = None
    mean: float | None = None
    std: float | None = None
    quantiles: dict[str, float] | None = None  # "p50" -> value
    top: list[tuple[Any, int]] | None = field(default=None)  # most frequent values


@dataclass(frozen=True)
class Profile:
    n_rows: int
    columns: tuple[ColumnProfile, ...]

    def column(self, name: str) -> ColumnProfile:
        for column in self.columns:
            if column.name == name:
                return column
        raise KeyError(name)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def __repr__(self) -> str:
        facts = [listing(self.names)]
        return short_repr(
            "Profile", f"{count(self.n_rows)} rows x {len(self.columns)} columns", facts
        )

    def to_dict(self) -> dict[str, Any]:
        columns = []
        for column in self.columns:
            data = asdict(column)
            data["top"] = None if column.top is None else [list(t) for t in column.top]
            columns.append(data)
        return {"n_rows": self.n_rows, "columns": columns}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Profile:
        columns = []
        for raw in data["columns"]:
            top = raw.get("top")
            columns.append(
                ColumnProfile(**{**raw, "top": None if top is None else [tuple(t) for t in top]})
            )
        return cls(n_rows=int(data["n_rows"]), columns=tuple(columns))


def profile_table(table: pa.Table, *, max_categories: int = 50) -> Profile:
    """The profile of every column of ``table``."""
    from setpoint.data.io import rechunk  # io imports nothing of this module's

    profiler = Profiler(table.schema, max_categories=max_categories)
    for batch in rechunk(table.to_batches(), table.schema):
        profiler.add(batch)
    return profiler.result()


class Profiler:
    """A profile built batch by batch in bounded memory (see the module docstring)."""

    def __init__(self, schema: pa.Schema, *, max_categories: int = 50) -> None:
        self.n_rows = 0
        self._max_categories = max_categories
        self._columns = [_Column(f.name, f.type) for f in schema]

    def add(self, batch: pa.RecordBatch) -> None:
        self.n_rows += batch.num_rows
        for column, values in zip(self._columns, batch.columns, strict=True):
            column.add(values)

    def result(self) -> Profile:
        return Profile(
            n_rows=self.n_rows,
            columns=tuple(c.result(self._max_categories) for c in self._columns),
        )


class _Column:
    """What one column's profile needs, merged over batches."""

    def __init__(self, name: str, type_: pa.DataType) -> None:
        self.name = name
        self.type = type_.value_type if pat.is_dictionary(type_) else type_
        self.n = 0
        self.nulls = 0
        self.distinct = DistinctCount()
        self.low: Any = None
        self.high: Any = None
        self.total = 0.0  # sum of values (booleans) or of lengths (text)
        self.moments: tuple[int, float, float] = (0, 0.0, 0.0)  # finite numbers: n, mean, M2
        self.sketch = QuantileSketch()
        self.top = TopCounts()

    def add(self, values: pa.Array) -> None:
        if pat.is_dictionary(values.type):
            values = values.cast(values.type.value_type)
        self.n += len(values)
        self.nulls += values.null_count
        if values.null_count == len(values):
            return
        self.distinct.add(values)
        type_ = self.type
        if pat.is_integer(type_) or pat.is_floating(type_) or pat.is_decimal(type_):
            self._add_numbers(values)
        elif pat.is_boolean(type_):
            self.total += pc.sum(values.cast(pa.int8())).as_py() or 0
        elif pat.is_timestamp(type_) or pat.is_date(type_) or is_text(type_):
            bounds = pc.min_max(values)
            self._bounds(bounds["min"].as_py(), bounds["max"].as_py())
            if is_text(type_):
                self.total += pc.sum(pc.utf8_length(values)).as_py() or 0
                self.top.add(values)

    def _add_numbers(self, values: pa.Array) -> None:
        floats = values.cast(pa.float64()) if not pat.is_floating(values.type) else values
        finite = floats.filter(pc.is_finite(floats)).to_numpy(zero_copy_only=False)
        if not len(finite):
            return
        finite = finite.astype(np.float64, copy=False)
        self._bounds(float(finite.min()), float(finite.max()))
        self.sketch.add(finite)
        # Chan et al.: the count, mean and sum of squared deviations of two parts merge.
        n_b, mean_b = len(finite), float(finite.mean())
        m2_b = float(np.square(finite - mean_b).sum())
        n_a, mean_a, m2_a = self.moments
        n = n_a + n_b
        delta = mean_b - mean_a
        self.moments = (n, mean_a + delta * n_b / n, m2_a + m2_b + delta**2 * n_a * n_b / n)

    def _bounds(self, low: Any, high: Any) -> None:
        if low is None:
            return
        self.low = low if self.low is None else min(self.low, low)
        self.high = high if self.high is None else max(self.high, high)

    def result(self, max_categories: int) -> ColumnProfile:
        type_ = self.type
        n, nulls = self.n, self.nulls
        distinct = self.distinct.value
        kind = kind_of(type_, distinct=distinct, max_categories=max_categories)
        base: dict[str, Any] = {
            "name": self.name,
            "arrow_type": str(type_),
            "kind": kind,
            "count": n - nulls,
            "nulls": nulls,
            "null_fraction": nulls / n if n else 0.0,
            "distinct": distinct,
        }
        if n - nulls == 0:
            return ColumnProfile(**base)
        if kind in ("numeric", "integer"):
            return ColumnProfile(**base, **self._numeric())
        if kind == "boolean":
            mean = _finite(self.total / (n - nulls))
            return ColumnProfile(**base, mean=mean, top=_top_booleans(self.total, n - nulls))
        if kind == "datetime":
            return ColumnProfile(**base, min=_iso(self.low), max=_iso(self.high))
        if is_text(type_):
            return ColumnProfile(
                **base,
                min=self.low,
                max=self.high,
                mean=_finite(self.total / (n - nulls)),  # mean length, for free text
                top=self.top.top(
                    max(TOP_K, max_categories) if kind == "categorical" else TOP_K,
                    self.distinct.exact_values,
                ),
            )
        return ColumnProfile(**base)

    def _numeric(self) -> dict[str, Any]:
        count, mean, m2 = self.moments
        if count == 0:
            return {}
        quantiles = self.sketch.quantiles(QUANTILES)
        return {
            "min": _number(self.low, self.type),
            "max": _number(self.high, self.type),
            "mean": _finite(mean),
            "std": _finite(math.sqrt(m2 / (count - 1))) if count > 1 else 0.0,
            "quantiles": {
                f"p{round(q * 100):02d}": float(v)
                for q, v in zip(QUANTILES, quantiles, strict=True)
            },
        }


def _top_booleans(trues: float, count: int) -> list[tuple[Any, int]]:
    """Both values by count, ties by value, as :meth:`TopCounts.top` orders text."""
    counted = sorted([(-int(trues), True), (int(trues) - count, False)])
    return [(value, -negative) for negative, value in counted if negative]


def _number(value: Any, type_: pa.DataType) -> float | int:
    return int(value) if pat.is_integer(type_) else float(value)


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def _iso(value: Any) -> str | None:
    return None if value is None else value.isoformat()
