"""Column profiles: computed once per dataset version, reused as the reference.

A profile holds, per column, what a person wants to see in a catalog and what a
monitor compares live traffic with: the kind, counts, nulls, distinct values, the
range, mean and spread, quantiles, and the most frequent values. Everything is
computed with Arrow kernels, so profiling a million rows takes well under a second.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.types as pat

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
    return Profile(
        n_rows=table.num_rows,
        columns=tuple(
            _profile_column(name, table.column(name), max_categories) for name in table.column_names
        ),
    )


def _profile_column(name: str, column: pa.ChunkedArray, max_categories: int) -> ColumnProfile:
    type_ = column.type
    if pat.is_dictionary(type_):
        column = column.cast(type_.value_type)
    n = len(column)
    nulls = column.null_count
    distinct = int(pc.count_distinct(column, mode="only_valid").as_py()) if n else 0
    kind = kind_of(type_, distinct=distinct, max_categories=max_categories)
    base: dict[str, Any] = {
        "name": name,
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
        return ColumnProfile(**base, **_numeric(column))
    if kind == "boolean":
        return ColumnProfile(
            **base, mean=_float(pc.mean(column.cast(pa.int8()))), top=_top(column, 2)
        )
    if kind == "datetime":
        bounds = pc.min_max(column)
        return ColumnProfile(
            **base, min=_iso(bounds["min"].as_py()), max=_iso(bounds["max"].as_py())
        )
    if is_text(type_):
        lengths = pc.utf8_length(column)
        bounds = pc.min_max(column)
        return ColumnProfile(
            **base,
            min=bounds["min"].as_py(),
            max=bounds["max"].as_py(),
            mean=_float(pc.mean(lengths)),  # mean length, for free text
            top=_top(column, max(TOP_K, max_categories) if kind == "categorical" else TOP_K),
        )
    return ColumnProfile(**base)


def _numeric(column: pa.ChunkedArray) -> dict[str, Any]:
    values = column.cast(pa.float64()) if not pat.is_floating(column.type) else column
    finite = values.filter(pc.is_finite(values))
    if len(finite) == 0:
        return {}
    bounds = pc.min_max(finite)
    quantiles = pc.quantile(finite, q=list(QUANTILES), interpolation="linear").to_pylist()
    return {
        "min": _number(bounds["min"].as_py(), column.type),
        "max": _number(bounds["max"].as_py(), column.type),
        "mean": _float(pc.mean(finite)),
        "std": _float(pc.stddev(finite, ddof=1)) if len(finite) > 1 else 0.0,
        "quantiles": {
            f"p{round(q * 100):02d}": float(v) for q, v in zip(QUANTILES, quantiles, strict=True)
        },
    }


def _top(column: pa.ChunkedArray, k: int) -> list[tuple[Any, int]]:
    counts = pc.value_counts(column.drop_null())
    order = pc.array_sort_indices(counts.field("counts"), order="descending")
    top = counts.take(order[:k]).to_pylist()
    return [(item["values"], int(item["counts"])) for item in top]


def _number(value: Any, type_: pa.DataType) -> float | int:
    return int(value) if pat.is_integer(type_) else float(value)


def _float(scalar: pa.Scalar) -> float | None:
    value = scalar.as_py()
    return None if value is None or not math.isfinite(value) else float(value)


def _iso(value: Any) -> str | None:
    return None if value is None else value.isoformat()
