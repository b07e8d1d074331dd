"""Bounded-memory summaries a profile merges batch by batch.

A file is profiled as it streams, so nothing here may grow with the number of rows:

- :class:`QuantileSketch`: a mergeable quantile sketch (a stack of compactors, the
  scheme KLL refines). Exact while it holds at most ``k`` values; beyond, each
  compaction at level ``h`` sorts the level and keeps every other value with twice the
  weight, which moves any rank by at most ``2**h``. With ``L`` levels the rank error
  is at most ``L / k`` of the rows: with ``k = 16384``, under 0.06% of 5 million rows
  (``L = 9``); alternating which half is kept makes the typical error far smaller.
- :class:`DistinctCount`: exact (the set of distinct values) up to ``cap`` values,
  then a HyperLogLog of 2**14 registers (standard error about 0.8%).
- :class:`TopCounts`: exact value counts while a column has at most ``cap`` distinct
  values; above that only the ``cap`` commonest so far are kept, so a count can be
  low by what the value gained while it was evicted (such a column is free text or an
  identifier, whose "commonest values" say little anyway).

Every summary is deterministic: the same batches in the same order give the same
result, which is what lets a streamed file and an in-memory table profile the same.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

SKETCH_K = 16_384
DISTINCT_CAP = 65_536
TOP_CAP = 65_536
_HLL_BITS = 14


class QuantileSketch:
    def __init__(self, k: int = SKETCH_K) -> None:
        self.k = k
        self.n = 0
        self._levels: list[list[np.ndarray]] = [[]]
        self._sizes = [0]
        self._flip = 0

    @property
    def exact(self) -> bool:
        return len(self._levels) == 1

    def add(self, values: np.ndarray) -> None:
        if not len(values):
            return
        self._levels[0].append(np.asarray(values, dtype=np.float64))
        self._sizes[0] += len(values)
        self.n += len(values)
        level = 0
        while level < len(self._levels):
            if self._sizes[level] > self.k:
                self._compact(level)
            level += 1

    def _compact(self, level: int) -> None:
        data = np.sort(np.concatenate(self._levels[level]))
        even = len(data) - len(data) % 2
        kept = data[self._flip : even : 2]
        self._flip ^= 1
        rest = data[even:]
        self._levels[level] = [rest] if len(rest) else []
        self._sizes[level] = len(rest)
        if level + 1 == len(self._levels):
            self._levels.append([])
            self._sizes.append(0)
        self._levels[level + 1].append(kept)
        self._sizes[level + 1] += len(kept)

    def quantiles(self, qs: tuple[float, ...]) -> list[float]:
        """Linear interpolation between ranks, as numpy and Arrow compute exactly."""
        if self.exact:
            values = np.concatenate(self._levels[0])
            return [float(v) for v in np.quantile(values, qs, method="linear")]
        parts = [(np.concatenate(p), 2.0**h) for h, p in enumerate(self._levels) if p]
        values = np.concatenate([v for v, _ in parts])
        weights = np.concatenate([np.full(len(v), w) for v, w in parts])
        order = np.argsort(values, kind="stable")
        values, weights = values[order], weights[order]
        # Each kept value stands for `weight` rows: place it at the middle of its run.
        centres = np.cumsum(weights) - (weights + 1) / 2
        return [float(v) for v in np.interp([q * (self.n - 1) for q in qs], centres, values)]


class DistinctCount:
    def __init__(self, cap: int = DISTINCT_CAP) -> None:
        self.cap = cap
        self._seen: pa.Array | None = None
        self._registers: np.ndarray | None = None

    def add(self, values: pa.Array) -> None:
        values = values.drop_null()
        if not len(values):
            return
        if self._registers is not None:
            self._hll(values)
            return
        merged = values if self._seen is None else pa.concat_arrays([self._seen, values])
        self._seen = pc.unique(merged)
        if len(self._seen) > self.cap:
            self._registers = np.zeros(1 << _HLL_BITS, dtype=np.uint8)
            self._hll(self._seen)
            self._seen = None

    def _hll(self, values: pa.Array) -> None:
        assert self._registers is not None
        hashes = pd.util.hash_array(values.to_numpy(zero_copy_only=False))
        index = (hashes >> np.uint64(64 - _HLL_BITS)).astype(np.int64)
        rest = hashes & np.uint64((1 << (64 - _HLL_BITS)) - 1)
        # Position of the leading one bit in the remaining 50 bits (1-based).
        bits = np.where(rest > 0, np.floor(np.log2(np.maximum(rest, 1).astype(np.float64))), -1)
        rank = (64 - _HLL_BITS - bits).astype(np.uint8)
        np.maximum.at(self._registers, index, rank)

    @property
    def value(self) -> int:
        if self._registers is None:
            return 0 if self._seen is None else len(self._seen)
        m = len(self._registers)
        estimate = 0.7213 / (1 + 1.079 / m) * m * m / np.sum(2.0 ** -self._registers.astype(float))
        zeros = int(np.count_nonzero(self._registers == 0))
        if estimate <= 2.5 * m and zeros:
            estimate = m * np.log(m / zeros)
        return round(float(estimate))


class TopCounts:
    def __init__(self, cap: int = TOP_CAP) -> None:
        self.cap = cap
        self._counts: pa.Table | None = None  # values, counts: in order of first appearance

    def add(self, values: pa.Array) -> None:
        counted = pc.value_counts(values.drop_null())
        part = pa.table({"values": counted.field("values"), "counts": counted.field("counts")})
        if self._counts is not None:
            merged = (
                pa.concat_tables([self._counts, part])
                .group_by("values", use_threads=False)
                .aggregate([("counts", "sum")])
            )
            part = pa.table({"values": merged["values"], "counts": merged["counts_sum"]})
        if part.num_rows > 2 * self.cap:
            # Keep the commonest, still in order of first appearance.
            part = part.take(np.sort(_descending(part)[: self.cap].to_numpy()))
        self._counts = part

    def top(self, k: int) -> list[tuple[Any, int]]:
        """The ``k`` commonest values, ties in order of first appearance."""
        if self._counts is None:
            return []
        rows = self._counts.take(_descending(self._counts)[:k]).to_pylist()
        return [(row["values"], int(row["counts"])) for row in rows]


def _descending(counts: pa.Table) -> pa.Array:
    return pc.array_sort_indices(counts.column("counts"), order="descending")
