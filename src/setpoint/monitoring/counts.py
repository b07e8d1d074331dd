"""Per-window counts of one column on the reference's bins; two windows' counts add up.

A monitor never keeps rows: each window of traffic is reduced to counts on the bins
its reference summary fixed (:mod:`setpoint.monitoring.summary`), per numeric feature
:class:`NumericCounts` on the quantile edges, per categorical feature
:class:`CategoricalCounts` on the most frequent categories. Memory is features x bins
whatever the number of rows, two windows' counts add up (so windows can be computed
in parallel, or hour by hour and merged into a day) and subtract (the reference
without one of its chunks is its counts minus the chunk's), and every statistic in
``stats.py`` reads these counts.

Conventions, shared with the rest of setpoint:

* NaN is missing, like a null (the contract and profiles treat it so); ``+/-inf`` are
  counted apart as ``non_finite`` and stay out of the bins, means and ranges, since no
  distance to them is meaningful.
* Numeric bins close on the right: bin ``i`` holds ``e[i-1] < x <= e[i]``, bin 0
  everything up to ``e[0]``, the last bin everything above the largest edge. The
  cumulative count at bin ``i`` is then exactly the empirical CDF at ``e[i]``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeAlias

import numpy as np
import numpy.typing as npt

from setpoint.errors import InvalidDataError, UsageError

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

MAX_UNSEEN = 50


def _add_optional(a: float | None, b: float | None, pick: Any) -> float | None:
    if a is None:
        return b
    if b is None:
        return a
    return float(pick(a, b))


@dataclass(frozen=True, eq=False)
class NumericCounts:
    """One numeric column over one window: counts and value sums per reference bin,
    plus the moments and range of its finite values."""

    counts: IntArray
    sums: FloatArray
    nulls: int = 0
    non_finite: int = 0
    count: int = 0  # finite values, i.e. counts.sum()
    sum: float = 0.0
    sum_squares: float = 0.0
    min: float | None = None
    max: float | None = None

    kind: ClassVar[str] = "numeric"

    @property
    def mean(self) -> float | None:
        return self.sum / self.count if self.count else None

    @property
    def std(self) -> float | None:
        """Population standard deviation from the running sums (fine for effect sizes;
        the reference stores one computed from the values)."""
        if not self.count:
            return None
        mean = self.sum / self.count
        return float(np.sqrt(max(self.sum_squares / self.count - mean * mean, 0.0)))

    @classmethod
    def empty(cls, n_bins: int, *, nulls: int = 0) -> NumericCounts:
        return cls(np.zeros(n_bins, np.int64), np.zeros(n_bins), nulls=nulls)

    def __add__(self, other: NumericCounts) -> NumericCounts:
        if not isinstance(other, NumericCounts) or other.counts.size != self.counts.size:
            raise UsageError("only counts over the same reference bins can be merged")
        return NumericCounts(
            self.counts + other.counts,
            self.sums + other.sums,
            nulls=self.nulls + other.nulls,
            non_finite=self.non_finite + other.non_finite,
            count=self.count + other.count,
            sum=self.sum + other.sum,
            sum_squares=self.sum_squares + other.sum_squares,
            min=_add_optional(self.min, other.min, min),
            max=_add_optional(self.max, other.max, max),
        )

    def __sub__(self, part: NumericCounts) -> NumericCounts:
        """These counts without ``part`` (rows counted in them). The range cannot be
        taken apart: it stays this one's, an outer bound of the rest's."""
        if not isinstance(part, NumericCounts) or part.counts.size != self.counts.size:
            raise UsageError("only counts over the same reference bins can be subtracted")
        counts = self.counts - part.counts
        if (counts < 0).any() or part.nulls > self.nulls or part.non_finite > self.non_finite:
            raise UsageError("cannot subtract counts that are not part of these")
        return NumericCounts(
            counts,
            np.where(counts > 0, self.sums - part.sums, 0.0),
            nulls=self.nulls - part.nulls,
            non_finite=self.non_finite - part.non_finite,
            count=self.count - part.count,
            sum=self.sum - part.sum,
            sum_squares=max(self.sum_squares - part.sum_squares, 0.0),
            min=self.min if self.count > part.count else None,
            max=self.max if self.count > part.count else None,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "counts": self.counts.tolist(),
            "sums": self.sums.tolist(),
            "nulls": self.nulls,
            "non_finite": self.non_finite,
            "count": self.count,
            "sum": self.sum,
            "sum_squares": self.sum_squares,
            "min": self.min,
            "max": self.max,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> NumericCounts:
        try:
            counts = np.asarray(data["counts"], dtype=np.int64)
            sums = np.asarray(data["sums"], dtype=np.float64)
            if counts.shape != sums.shape or counts.ndim != 1:
                raise ValueError("counts and sums differ in length")
            return cls(
                counts,
                sums,
                nulls=int(data["nulls"]),
                non_finite=int(data["non_finite"]),
                count=int(data["count"]),
                sum=float(data["sum"]),
                sum_squares=float(data["sum_squares"]),
                min=None if data["min"] is None else float(data["min"]),
                max=None if data["max"] is None else float(data["max"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidDataError(f"not a numeric counts document: {exc}") from exc


@dataclass(frozen=True, eq=False)
class CategoricalCounts:
    """One categorical column over one window: counts per reference category, the last
    entry being "other" (every value not among them), and the most frequent of those
    unseen values by name.

    ``unseen`` keeps at most ``MAX_UNSEEN`` names (the most frequent, ties by name),
    so it is exact while a window has fewer distinct unseen values than that and an
    approximate top list beyond; the "other" count is always exact.
    """

    counts: IntArray
    nulls: int = 0
    unseen: dict[str, int] = field(default_factory=dict)

    kind: ClassVar[str] = "categorical"

    @property
    def count(self) -> int:
        return int(self.counts.sum())

    @classmethod
    def empty(cls, n_categories: int, *, nulls: int = 0) -> CategoricalCounts:
        return cls(np.zeros(n_categories + 1, np.int64), nulls=nulls)

    def __add__(self, other: CategoricalCounts) -> CategoricalCounts:
        if not isinstance(other, CategoricalCounts) or other.counts.size != self.counts.size:
            raise UsageError("only counts over the same reference categories can be merged")
        unseen = dict(self.unseen)
        for name, n in other.unseen.items():
            unseen[name] = unseen.get(name, 0) + n
        return CategoricalCounts(
            self.counts + other.counts, self.nulls + other.nulls, _top(unseen, MAX_UNSEEN)
        )

    def __sub__(self, part: CategoricalCounts) -> CategoricalCounts:
        """These counts without ``part`` (rows counted in them); unseen names are
        taken off as far as both lists name them."""
        if not isinstance(part, CategoricalCounts) or part.counts.size != self.counts.size:
            raise UsageError("only counts over the same reference categories can be subtracted")
        counts = self.counts - part.counts
        if (counts < 0).any() or part.nulls > self.nulls:
            raise UsageError("cannot subtract counts that are not part of these")
        unseen = {name: n - part.unseen.get(name, 0) for name, n in self.unseen.items()}
        return CategoricalCounts(counts, self.nulls - part.nulls, _top(unseen, MAX_UNSEEN, 1))

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "counts": self.counts.tolist(),
            "nulls": self.nulls,
            "unseen": [[name, n] for name, n in self.unseen.items()],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CategoricalCounts:
        try:
            counts = np.asarray(data["counts"], dtype=np.int64)
            if counts.ndim != 1 or counts.size < 1:
                raise ValueError("counts must be a non-empty list")
            unseen = {str(name): int(n) for name, n in data["unseen"]}
            return cls(counts, int(data["nulls"]), unseen)
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidDataError(f"not a categorical counts document: {exc}") from exc


ColumnCounts: TypeAlias = NumericCounts | CategoricalCounts


def counts_from_dict(data: Mapping[str, Any]) -> ColumnCounts:
    """Read either kind of column counts back from ``to_dict()``."""
    kind = data.get("kind") if isinstance(data, Mapping) else None
    if kind == NumericCounts.kind:
        return NumericCounts.from_dict(data)
    if kind == CategoricalCounts.kind:
        return CategoricalCounts.from_dict(data)
    raise InvalidDataError(f"not a column counts document (kind {kind!r})")


def _top(counts: dict[str, int], limit: int, least: int = 0) -> dict[str, int]:
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return {name: n for name, n in ranked[:limit] if n >= least}


__all__ = [
    "MAX_UNSEEN",
    "CategoricalCounts",
    "ColumnCounts",
    "NumericCounts",
    "counts_from_dict",
]
