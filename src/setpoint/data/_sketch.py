"""Bounded-memory summaries a profile merges batch by batch.

A file is profiled as it streams, so nothing here may grow with the number of rows:

- :class:`QuantileSketch`: a mergeable quantile sketch (a stack of compactors, the
  scheme KLL refines). Exact while it holds at most ``k`` values; beyond, each
  compaction at level ``h`` sorts the level and keeps every other value with twice the
  weight, which moves any rank by at most ``2**h``. With ``L`` levels the rank error
  is at most ``L / k`` of the rows: with ``k = 16384``, under 0.06% of 5 million rows
  (``L = 9``); alternating which half is kept makes the typical error far smaller.
- :class:`DistinctCount`: exact (the set of distinct values) up to ``cap`` values and
  ``DISTINCT_BYTES`` (4 MiB) of them, then Apache DataSketches' HyperLogLog
  (``hll_sketch``, 2**14 registers of 8 bits, 16 KiB): relative standard error 0.65%,
  within 1.3% at two standard deviations (``hll_sketch.get_rel_err``). The byte cap is
  what bounds a column of long free text (1,000 reviews of 10 KB are 10 MB).
- :class:`TopCounts`: DataSketches' frequent-items sketch (``frequent_strings_sketch``,
  a map of 2**17 slots). Counts are exact while a column has at most 98,304 distinct
  values (three quarters of the map); beyond, each count is a lower bound at most
  ``3.5 / 2**17`` (0.0027%) of the rows below the true count. The map holds each value
  of more than ``TOP_KEY_BYTES`` (48) bytes of UTF-8 by a key of its first 48 bytes,
  ``…`` and a 64-bit hash of the whole value (so two values are still counted apart),
  at most 67 bytes: 98,304 keys take at most 7.8 MB as the sketch counts them
  (``max_nbytes``) whatever the values' length (the map's resident memory grew 11 MB
  for 98,000 distinct values of 208 bytes, 6 MB for 8-byte ones). A long value is
  shown in full while the column's distinct set is exact (a category with a long label
  stays that label), else as its first 48 bytes and ``…``.

Every summary is deterministic: the same batches in the same order give the same
result, which is what lets a streamed file and an in-memory table profile the same,
and a file profile the same on every run.

Why the quantiles are not DataSketches' ``kll_doubles_sketch``: measured with
datasketches 5.2, KLL picks the half a compaction keeps with a random bit drawn
from a generator seeded from the clock and thread id, and the Python package offers no way to
seed it. So once a column holds more than ``k`` values, the same rows give different
quantiles in two sketches of one process and in two runs (400,000 lognormal values,
k = 16384: p50 0.999701, 0.999698 and 0.999538 in three runs), which would make a stored
profile change between two ``data add`` of the same file and the streamed = in-memory
check fail. Below ``k`` it is deterministic but returns stored values, not the
interpolated quantiles numpy and Arrow give. See docs/benchmarks.md, "Streaming ingest".
"""

from __future__ import annotations

import hashlib
import heapq
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.types as pat
from datasketches import (
    frequent_items_error_type,
    frequent_strings_sketch,
    hll_sketch,
    tgt_hll_type,
)

SKETCH_K = 16_384
DISTINCT_CAP = 65_536
DISTINCT_BYTES = 4 << 20
HLL_LG_K = 14
TOP_LG_MAP = 17
TOP_KEY_BYTES = 48
_HASH_CHARS = 16  # a 64-bit hash in hex, the last characters of a long value's key
_ELLIPSIS = "…"


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
    def __init__(self, cap: int = DISTINCT_CAP, max_bytes: int = DISTINCT_BYTES) -> None:
        self.cap = cap
        self.max_bytes = max_bytes
        self._seen: pa.Array | None = None
        self._hll: hll_sketch | None = None

    def add(self, values: pa.Array) -> None:
        values = values.drop_null()
        if not len(values):
            return
        if self._hll is not None:
            self._update_hll(values)
            return
        merged = values if self._seen is None else pa.concat_arrays([self._seen, values])
        self._seen = pc.unique(merged)
        if len(self._seen) > self.cap or self._seen.nbytes > self.max_bytes:
            self._hll = hll_sketch(HLL_LG_K, tgt_hll_type.HLL_8)
            self._update_hll(self._seen)
            self._seen = None

    def _update_hll(self, values: pa.Array) -> None:
        assert self._hll is not None
        update = self._hll.update  # one call per value: the library has no array update
        for value in _hashable(values):
            update(value)

    @property
    def exact_values(self) -> pa.Array | None:
        """The distinct values while they are held exactly, else None."""
        return self._seen if self._hll is None else None

    @property
    def nbytes(self) -> int:
        """What the summary holds between batches: the exact set's Arrow buffers, or
        the HyperLogLog's bytes."""
        if self._hll is not None:
            size: int = self._hll.get_updatable_serialization_bytes()
            return size
        return 0 if self._seen is None else self._seen.nbytes

    @property
    def value(self) -> int:
        if self._hll is not None:
            estimate: float = self._hll.get_estimate()
            return round(estimate)
        return 0 if self._seen is None else len(self._seen)


def _hashable(values: pa.Array) -> list[Any]:
    """The values as ints, floats or text, the kinds ``hll_sketch.update`` hashes."""
    type_ = values.type
    if pat.is_temporal(type_):
        # The stored integer; a date32 or time32 is 32 bits wide, the rest 64.
        values = values.view(pa.int32() if type_.bit_width == 32 else pa.int64())
        type_ = values.type
    if pat.is_integer(type_):
        # Reinterpreting uint64 keeps distinct values distinct.
        return pc.cast(values, pa.int64(), safe=False).to_numpy().tolist()  # type: ignore[no-any-return]
    if pat.is_floating(type_):
        return values.cast(pa.float64()).to_numpy().tolist()  # type: ignore[no-any-return]
    if pat.is_string(type_) or pat.is_large_string(type_):
        return values.to_pylist()  # type: ignore[no-any-return]
    return [str(value) for value in values.to_pylist()]


class TopCounts:
    """The commonest text values (see the module docstring for the error and the keys
    of long values)."""

    def __init__(self, lg_map_size: int = TOP_LG_MAP) -> None:
        self.lg_map_size = lg_map_size
        self._sketch = frequent_strings_sketch(lg_map_size)

    def add(self, values: pa.Array) -> None:
        counted = pc.value_counts(values.drop_null())
        keys, counts = counted.field("values"), counted.field("counts")
        long = pc.greater(pc.binary_length(keys), TOP_KEY_BYTES)
        if pc.any(long).as_py():
            # Only long values go through Python; the rest stay as they are.
            keyed = [_key(v) for v in keys.filter(long).to_pylist()]
            keys = pa.concat_arrays([keys.filter(pc.invert(long)), pa.array(keyed, keys.type)])
            counts = pa.concat_arrays([counts.filter(pc.invert(long)), counts.filter(long)])
        update = self._sketch.update  # one call per distinct value of the batch
        for key, count in zip(keys.to_pylist(), counts.to_pylist(), strict=True):
            update(key, count)

    def top(self, k: int, values: pa.Array | None = None) -> list[tuple[str, int]]:
        """The ``k`` commonest values, by count (a lower bound), ties by key; a long
        value in full if it is among ``values`` (the column's exact distinct values),
        else its first bytes and ``…``."""
        items = self._sketch.get_frequent_items(frequent_items_error_type.NO_FALSE_NEGATIVES)
        commonest = heapq.nsmallest(k, ((-lower, key) for key, _, lower, _ in items if lower))
        long = {key for _, key in commonest if _is_key(key)}
        full = {}
        if long and values is not None:
            candidates = values.filter(pc.greater(pc.binary_length(values), TOP_KEY_BYTES))
            full = {_key(v): v for v in candidates.to_pylist() if _key(v) in long}
        return [
            (full.get(key, key[:-_HASH_CHARS]) if key in long else key, -negative)
            for negative, key in commonest
        ]

    @property
    def nbytes(self) -> int:
        """The bytes of the counts and keys held, as the sketch serialises them."""
        size: int = self._sketch.get_serialized_size_bytes()
        return size

    @property
    def max_nbytes(self) -> int:
        """The most :attr:`nbytes` can reach: a full map (three quarters of its slots) of
        the longest keys, each with its count and length, and the preamble."""
        longest = TOP_KEY_BYTES + len(_ELLIPSIS.encode()) + _HASH_CHARS
        return 32 + (3 << (self.lg_map_size - 2)) * (8 + 4 + longest)


def _key(value: str) -> str:
    """The key of a value of more than ``TOP_KEY_BYTES`` bytes: its first bytes (whole
    characters), an ellipsis and a hash of the whole value. Longer than any value
    kept as itself, so a key is never mistaken for a value."""
    data = value.encode()
    prefix = data[:TOP_KEY_BYTES].decode(errors="ignore")
    return prefix + _ELLIPSIS + hashlib.blake2b(data, digest_size=8).hexdigest()


def _is_key(text: str) -> bool:
    return len(text.encode()) > TOP_KEY_BYTES
