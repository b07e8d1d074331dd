"""Mergeable summaries: the reference once, each window in one streaming pass.

A monitor never keeps rows. The reference is reduced once to, per numeric feature,
up to ``bins`` quantile edges and its own counts on them, and per categorical feature
the most frequent categories; each window of traffic is reduced to counts on those
same bins (:class:`~setpoint.monitoring.counts.NumericCounts`,
:class:`~setpoint.monitoring.counts.CategoricalCounts`, whose module gives the
conventions for NaN, infinities and right-closed bins). Memory is features x bins
whatever the number of rows, and two windows' summaries add up.

Booleans are numbers (0 and 1); categorical values are compared as text.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeAlias

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.types as pat

from setpoint.data.kinds import KINDS
from setpoint.errors import InvalidDataError, UsageError
from setpoint.monitoring.counts import (
    MAX_UNSEEN,
    CategoricalCounts,
    ColumnCounts,
    FloatArray,
    IntArray,
    NumericCounts,
    counts_from_dict,
)

NUMERIC_KINDS = frozenset({"numeric", "integer", "boolean"})
CATEGORICAL_KINDS = frozenset({"categorical", "string"})
FORMAT_VERSION = 1

Data: TypeAlias = pa.Table | pa.RecordBatch | Iterable[pa.RecordBatch]


@dataclass(frozen=True, eq=False)
class NumericReference:
    """The reference side of a numeric feature: bin edges and its own counts on them.

    ``exact`` says every distinct finite reference value is an edge, so each reference
    bin holds a single value (a discrete feature) and KS and Wasserstein are exact
    against any window whose values are reference values too.
    """

    kind: str
    edges: FloatArray
    counts: NumericCounts
    mean: float | None
    std: float | None  # population standard deviation of the finite values
    exact: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "edges": self.edges.tolist(),
            "mean": self.mean,
            "std": self.std,
            "exact": self.exact,
            "counts": self.counts.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> NumericReference:
        try:
            edges = np.asarray(data["edges"], dtype=np.float64)
            counts = NumericCounts.from_dict(data["counts"])
            if counts.counts.size != edges.size + 1:
                raise ValueError("counts do not match the edges")
            return cls(
                str(data["kind"]),
                edges,
                counts,
                None if data["mean"] is None else float(data["mean"]),
                None if data["std"] is None else float(data["std"]),
                bool(data["exact"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidDataError(f"not a numeric reference document: {exc}") from exc


@dataclass(frozen=True, eq=False)
class CategoricalReference:
    """The reference side of a categorical feature: its most frequent categories, and
    its own counts on them (the rest as "other")."""

    kind: str
    categories: tuple[str, ...]
    counts: CategoricalCounts

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "categories": list(self.categories),
            "counts": self.counts.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CategoricalReference:
        try:
            categories = tuple(str(c) for c in data["categories"])
            counts = CategoricalCounts.from_dict(data["counts"])
            if counts.counts.size != len(categories) + 1:
                raise ValueError("counts do not match the categories")
            return cls(str(data["kind"]), categories, counts)
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidDataError(f"not a categorical reference document: {exc}") from exc


ColumnReference: TypeAlias = NumericReference | CategoricalReference


@dataclass(frozen=True, eq=False)
class ReferenceSummary:
    """Everything a monitor keeps of its reference data; built once, stored as JSON."""

    columns: dict[str, ColumnReference]
    n_rows: int

    @classmethod
    def build(
        cls,
        data: Data,
        kinds: Mapping[str, str],
        *,
        bins: int = 1000,
        max_categories: int = 200,
    ) -> ReferenceSummary:
        """Summarize ``data`` (a table, or record batches) for the columns in ``kinds``.

        Numeric columns (``numeric``, ``integer``, ``boolean``) get up to ``bins``
        edges at equal-mass quantiles of their finite values, always taken among
        values that occur, so a column with at most ``bins`` distinct values gets each
        as an edge. Categorical columns (``categorical``, ``string``) keep their
        ``max_categories`` most frequent values. ``datetime`` columns are skipped.
        """
        if bins < 2:
            raise UsageError(f"bins must be at least 2, not {bins}")
        if max_categories < 1:
            raise UsageError(f"max_categories must be at least 1, not {max_categories}")
        table = _as_table(data)
        columns: dict[str, ColumnReference] = {}
        for name, kind in kinds.items():
            if kind not in KINDS:
                raise UsageError(f"column {name!r} has unknown kind {kind!r}; one of {KINDS}")
            if kind == "datetime":
                continue
            if name not in table.column_names:
                raise InvalidDataError(f"column {name!r} is not in the reference data")
            column = table.column(name)
            if kind in NUMERIC_KINDS:
                columns[name] = _numeric_reference(name, kind, column, bins)
            else:
                columns[name] = _categorical_reference(name, kind, column, max_categories)
        return cls(columns, table.num_rows)

    def without(self, part: WindowSummary) -> ReferenceSummary:
        """The reference without some of its own rows, ``part`` (counted on its bins):
        the same edges and categories, the counts subtracted, mean and spread from
        what is left. No row is read again."""
        if part.columns.keys() != self.columns.keys():
            raise UsageError("only a summary of the reference's own columns can be taken out")
        columns: dict[str, ColumnReference] = {}
        for name, ref in self.columns.items():
            counts = part.columns[name]
            if isinstance(ref, NumericReference) and isinstance(counts, NumericCounts):
                rest = ref.counts - counts
                columns[name] = NumericReference(
                    ref.kind, ref.edges, rest, rest.mean, rest.std, ref.exact
                )
            elif isinstance(ref, CategoricalReference) and isinstance(counts, CategoricalCounts):
                columns[name] = CategoricalReference(ref.kind, ref.categories, ref.counts - counts)
            else:
                raise UsageError(f"column {name!r} is counted as another kind in the part")
        return ReferenceSummary(columns, self.n_rows - part.n_rows)

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": FORMAT_VERSION,
            "n_rows": self.n_rows,
            "columns": {name: ref.to_dict() for name, ref in self.columns.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReferenceSummary:
        if not isinstance(data, Mapping) or data.get("version") != FORMAT_VERSION:
            raise InvalidDataError(f"not a reference summary of format version {FORMAT_VERSION}")
        columns: dict[str, ColumnReference] = {}
        for name, column in data["columns"].items():
            if column.get("kind") in CATEGORICAL_KINDS:
                columns[name] = CategoricalReference.from_dict(column)
            else:
                columns[name] = NumericReference.from_dict(column)
        return cls(columns, int(data["n_rows"]))


@dataclass(frozen=True, eq=False)
class WindowSummary:
    """Counts of every reference column over one window of rows; windows add up."""

    columns: dict[str, ColumnCounts]
    n_rows: int

    def __add__(self, other: WindowSummary) -> WindowSummary:
        if not isinstance(other, WindowSummary) or other.columns.keys() != self.columns.keys():
            raise UsageError("only summaries of the same columns can be merged")
        merged = {
            name: _merge(counts, other.columns[name]) for name, counts in self.columns.items()
        }
        return WindowSummary(merged, self.n_rows + other.n_rows)

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": FORMAT_VERSION,
            "n_rows": self.n_rows,
            "columns": {name: counts.to_dict() for name, counts in self.columns.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> WindowSummary:
        if not isinstance(data, Mapping) or data.get("version") != FORMAT_VERSION:
            raise InvalidDataError(f"not a window summary of format version {FORMAT_VERSION}")
        columns = {name: counts_from_dict(c) for name, c in data["columns"].items()}
        return cls(columns, int(data["n_rows"]))


def summarize(data: Data, reference: ReferenceSummary) -> WindowSummary:
    """Count a window on the reference's bins, one record batch at a time.

    Memory is bounded by the reference's bins, not by rows: each batch is reduced
    to counts and dropped, and the working memory is a sorted copy of one column of
    one batch. A reference column absent from a batch counts as all null.
    """
    columns: dict[str, ColumnCounts] = {
        name: _empty_counts(ref) for name, ref in reference.columns.items()
    }
    n_rows = 0
    categories = {
        name: pa.array(ref.categories, pa.string())
        for name, ref in reference.columns.items()
        if isinstance(ref, CategoricalReference)
    }
    for batch in _batches(data):
        n_rows += batch.num_rows
        for name, ref in reference.columns.items():
            index = batch.schema.get_field_index(name)
            part: ColumnCounts
            if index < 0:
                part = _empty_counts(ref, nulls=batch.num_rows)
            elif isinstance(ref, NumericReference):
                part = _count_numeric(_as_float(name, batch.column(index)), ref.edges)
            else:
                part = _count_categorical(name, batch.column(index), categories[name])
            columns[name] = _merge(columns[name], part)
    return WindowSummary(columns, n_rows)


def _merge(a: ColumnCounts, b: ColumnCounts) -> ColumnCounts:
    if isinstance(a, NumericCounts) and isinstance(b, NumericCounts):
        return a + b
    if isinstance(a, CategoricalCounts) and isinstance(b, CategoricalCounts):
        return a + b
    raise UsageError("numeric and categorical counts cannot be merged")


def _empty_counts(ref: ColumnReference, *, nulls: int = 0) -> ColumnCounts:
    if isinstance(ref, NumericReference):
        return NumericCounts.empty(ref.edges.size + 1, nulls=nulls)
    return CategoricalCounts.empty(len(ref.categories), nulls=nulls)


# Reading Arrow data.


def _as_table(data: Data) -> pa.Table:
    if isinstance(data, pa.Table):
        return data
    batches = [data] if isinstance(data, pa.RecordBatch) else list(data)
    if not batches:
        raise InvalidDataError("the reference data has no record batches")
    return pa.Table.from_batches(batches)


def _batches(data: Data) -> Iterator[pa.RecordBatch]:
    if isinstance(data, pa.Table):
        yield from data.to_batches()
    elif isinstance(data, pa.RecordBatch):
        yield data
    else:
        for batch in data:
            if not isinstance(batch, pa.RecordBatch):
                raise UsageError(f"expected pyarrow record batches, got {type(batch).__name__}")
            yield batch


def _as_float(name: str, column: pa.Array | pa.ChunkedArray) -> FloatArray:
    """The column as float64 with nulls as NaN; zero-copy for a null-free float64."""
    type_ = column.type
    if not (
        pat.is_floating(type_)
        or pat.is_integer(type_)
        or pat.is_boolean(type_)
        or pat.is_decimal(type_)
        or pat.is_null(type_)
    ):
        raise InvalidDataError(f"column {name!r} is numeric in the reference but {type_} here")
    if not pat.is_float64(type_):
        column = pc.cast(column, pa.float64())
    values: FloatArray = np.asarray(column.to_numpy(zero_copy_only=False), dtype=np.float64)
    return values


def _as_text(name: str, column: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    if pat.is_string(column.type):
        return column
    try:
        return pc.cast(column, pa.string())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise InvalidDataError(f"column {name!r} cannot be read as categories: {exc}") from exc


# Numeric columns.


def _numeric_reference(
    name: str, kind: str, column: pa.ChunkedArray, bins: int
) -> NumericReference:
    finite, nulls, non_finite = _sorted_finite(_as_float(name, column))
    n = finite.size
    if n == 0:
        edges = np.empty(0)
        return NumericReference(
            kind, edges, _on_edges(finite, edges, nulls, non_finite), None, None, True
        )
    starts = np.flatnonzero(np.concatenate([[True], finite[1:] != finite[:-1]]))
    exact = starts.size <= bins
    if exact:
        edges = finite[starts]
    else:
        # Equal-mass levels 0, 1/(bins-1), ..., 1, each read as an order statistic so
        # every edge is a value that occurs; repeated values collapse to one edge.
        positions = np.round(np.linspace(0, n - 1, bins)).astype(np.int64)
        edges = np.unique(finite[positions])
    del starts
    own = _on_edges(finite, edges, nulls, non_finite)
    return NumericReference(kind, edges, own, own.sum / n, float(np.std(finite)), exact)


def _count_numeric(values: FloatArray, edges: FloatArray) -> NumericCounts:
    finite, nulls, non_finite = _sorted_finite(values)
    return _on_edges(finite, edges, nulls, non_finite)


def _sorted_finite(values: FloatArray) -> tuple[FloatArray, int, int]:
    """The finite values sorted (a new array), the NaN count and the +/-inf count.

    Sorting first makes binning cheap: the bin boundaries are then found with one
    binary search per edge rather than one per value, and each bin's sum is one
    contiguous segment (np.sort of a million floats is several times faster than
    searching each of them among a thousand edges).
    """
    finite_mask = np.isfinite(values)
    n_finite = int(np.count_nonzero(finite_mask))
    if n_finite == values.size:
        return np.sort(values), 0, 0
    nulls = int(np.count_nonzero(np.isnan(values)))
    finite = values[finite_mask]
    finite.sort()
    return finite, nulls, values.size - nulls - n_finite


def _on_edges(finite: FloatArray, edges: FloatArray, nulls: int, non_finite: int) -> NumericCounts:
    """Counts and sums of sorted finite values on the right-closed bins of ``edges``."""
    n = finite.size
    below = np.searchsorted(finite, edges, side="right")  # values <= each edge
    bin_starts = np.concatenate([[0], below])
    counts = np.diff(np.concatenate([bin_starts, [n]])).astype(np.int64)
    sums = np.zeros(counts.size)
    nonempty = np.flatnonzero(counts)
    if nonempty.size:
        # Starts of the non-empty bins are strictly increasing and below n, so each
        # reduceat segment runs to the next non-empty bin: exactly this bin's values.
        sums[nonempty] = np.add.reduceat(finite, bin_starts[nonempty])
    return NumericCounts(
        counts,
        sums,
        nulls=nulls,
        non_finite=non_finite,
        count=n,
        sum=float(finite.sum()),
        sum_squares=float(np.dot(finite, finite)),
        min=float(finite[0]) if n else None,
        max=float(finite[-1]) if n else None,
    )


# Categorical columns.


def _value_counts(name: str, column: pa.Array | pa.ChunkedArray) -> tuple[pa.Array, IntArray, int]:
    """Distinct non-null values (as text), their counts, and the null count."""
    text = _as_text(name, column)
    counted = pc.value_counts(text)
    values = counted.field("values")
    counts = np.asarray(counted.field("counts").to_numpy(), dtype=np.int64)
    valid = np.asarray(values.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    return values.filter(pa.array(valid)), counts[valid], int(text.null_count)


def _ranked(values: pa.Array, counts: IntArray, limit: int) -> tuple[list[str], list[int]]:
    """The ``limit`` most frequent values, ties broken by value so results are stable."""
    ranked = pa.table({"value": values, "count": counts})
    order = pc.sort_indices(ranked, sort_keys=[("count", "descending"), ("value", "ascending")])
    top = ranked.take(order[:limit])
    return top.column("value").to_pylist(), top.column("count").to_pylist()


def _categorical_reference(
    name: str, kind: str, column: pa.ChunkedArray, max_categories: int
) -> CategoricalReference:
    values, counts, nulls = _value_counts(name, column)
    names, top_counts = _ranked(values, counts, max_categories + MAX_UNSEEN)
    categories, kept = names[:max_categories], top_counts[:max_categories]
    # The reference counts itself like a window: the rest as "other", the most
    # frequent of them by name.
    unseen = dict(zip(names[max_categories:], top_counts[max_categories:], strict=True))
    other = int(counts.sum()) - sum(kept)
    own = CategoricalCounts(np.asarray([*kept, other], dtype=np.int64), nulls, unseen)
    return CategoricalReference(kind, tuple(categories), own)


def _count_categorical(
    name: str, column: pa.Array | pa.ChunkedArray, categories: pa.Array
) -> CategoricalCounts:
    values, counts, nulls = _value_counts(name, column)
    k = len(categories)
    found = pc.index_in(values, value_set=categories)
    index = np.asarray(pc.fill_null(found, k).to_numpy(zero_copy_only=False), dtype=np.int64)
    per_category = np.bincount(index, weights=counts, minlength=k + 1).astype(np.int64)
    unseen_mask = index == k
    unseen: dict[str, int] = {}
    if unseen_mask.any():
        names, unseen_counts = _ranked(
            values.filter(pa.array(unseen_mask)), counts[unseen_mask], MAX_UNSEEN
        )
        unseen = dict(zip(names, unseen_counts, strict=True))
    return CategoricalCounts(per_category, nulls, unseen)


__all__ = [
    "CategoricalReference",
    "ColumnReference",
    "NumericReference",
    "ReferenceSummary",
    "WindowSummary",
    "summarize",
]
