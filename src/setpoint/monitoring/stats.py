"""Two-sample statistics computed from histograms, never from rows.

A monitor keeps, per feature, counts over one fixed set of bins (the reference's
quantile edges, see ``summary.py``), so every statistic here takes two count vectors
over the same bins: the reference first, the current window second. Working on counts
is what keeps monitoring memory bounded by features x bins and lets windows merge.

Each function equals scipy's result on the raw data whenever the histogram resolves
every distinct value. Where it does not, the functions that depend on positions
inside a bin (KS, Wasserstein) return a proven bound on the error, so a caller can
tell a real difference from an artefact of binning.

Numeric bin layout (shared with ``summary.py``): for sorted edges ``e[0] < ... <
e[k-1]`` there are ``k + 1`` bins; bin ``i`` holds the values ``x`` with
``e[i-1] < x <= e[i]`` (bin 0 is everything ``<= e[0]``, bin ``k`` everything
``> e[k-1]``). Closing bins on the right makes the cumulative count at bin ``i``
exactly the empirical CDF at ``e[i]``, which is what KS reads.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import special
from scipy import stats as sps

from setpoint.errors import InvalidDataError, UsageError

FloatArray = npt.NDArray[np.float64]
Counts = npt.ArrayLike

PSI_EPSILON = 1e-4
# A KS p-value is reported exactly only above this; below it, a cheap upper bound.
NEGLIGIBLE_P_VALUE = 1e-10


@dataclass(frozen=True)
class KSResult:
    """Two-sided two-sample Kolmogorov-Smirnov on binned data.

    ``statistic`` is the largest CDF difference at the bin edges; the true statistic on
    the raw data lies in ``[statistic, statistic + bound]``.
    """

    statistic: float
    p_value: float
    bound: float


@dataclass(frozen=True)
class ChiSquareResult:
    statistic: float
    p_value: float
    dof: int


@dataclass(frozen=True)
class WassersteinResult:
    """1-Wasserstein distance on binned data; the raw-data distance is within
    ``distance +/- bound``."""

    distance: float
    bound: float


def _counts(values: Counts, name: str) -> FloatArray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise UsageError(f"{name} must be a one-dimensional vector of counts")
    if array.size and not (np.all(np.isfinite(array)) and array.min() >= 0):
        raise InvalidDataError(f"{name} must hold finite, non-negative counts")
    return array


def _pair(reference_counts: Counts, current_counts: Counts) -> tuple[FloatArray, FloatArray]:
    """Both count vectors, checked: same bins, and neither side empty."""
    ref = _counts(reference_counts, "reference_counts")
    cur = _counts(current_counts, "current_counts")
    if ref.shape != cur.shape:
        raise UsageError(
            f"reference and current counts must cover the same bins "
            f"({ref.size} and {cur.size} given)"
        )
    for name, array in (("reference", ref), ("current", cur)):
        if array.sum() <= 0:
            raise InvalidDataError(f"the {name} sample is empty: a statistic needs values")
    return ref, cur


def _proportions(ref: FloatArray, cur: FloatArray) -> tuple[FloatArray, FloatArray]:
    return ref / ref.sum(), cur / cur.sum()


def ks(reference_counts: Counts, current_counts: Counts) -> KSResult:
    """Two-sided two-sample KS from counts per ordered bin.

    The p-value is scipy's ``ks_2samp(method="asymp")`` for the same statistic and
    sample sizes: the survival function of the one-sample KS distribution
    (``kstwo``) at ``D`` with ``n = round(n1 n2 / (n1 + n2))``. (For one value
    against one value that ``n`` rounds to 0 and scipy answers NaN; here ``n`` is at
    least 1.) One shortcut: when Massart's bound ``2 exp(-2 n D^2)`` on that tail is
    below ``NEGLIGIBLE_P_VALUE`` (1e-10), the bound itself is returned, because scipy's
    exact tail costs time linear in ``n``; it differs from scipy's value by less than
    1e-10 and errs on the side of a larger p-value.

    Bound. Let ``R, C`` be the two empirical CDFs and ``r_i, c_i`` the fractions of
    each sample in bin ``i``. Inside bin ``i`` (between edges ``e[i-1]`` and
    ``e[i]``), ``R(x)`` lies in ``[R(e[i-1]), R(e[i])]`` and likewise ``C(x)``, so
    ``R(x) - C(x) <= R(e[i]) - C(e[i-1]) = (R - C)(e[i]) + c_i`` and also
    ``<= (R - C)(e[i-1]) + r_i``; the same holds for ``C - R``. Hence
    ``0 <= D_true - D_binned <= max_i min(r_i, c_i)``, which is ``bound``. It is at
    most the largest single-bin mass of either side. When every distinct value of
    both samples sits on an edge (a discrete feature) the binned ``D`` is exact,
    though ``bound`` cannot tell and still reports the worst case. The p-value is
    that of the binned ``D``, so at most the raw data's when ``bound`` is positive.
    """
    ref, cur = _pair(reference_counts, current_counts)
    n1, n2 = ref.sum(), cur.sum()
    # Cumulative integer counts divided once, as scipy does, so discrete data give
    # bit-identical CDF values.
    diff = np.cumsum(ref) / n1 - np.cumsum(cur) / n2
    statistic = float(np.clip(np.max(np.abs(diff)), 0.0, 1.0))
    m, n = sorted((float(n1), float(n2)), reverse=True)
    effective = max(float(np.round(m * n / (m + n))), 1.0)
    # Massart's form of the DKW inequality bounds the two-sided tail for every n:
    # P(D_n >= d) <= 2 exp(-2 n d^2). Where that is already negligible, scipy's exact
    # tail (a sum over n terms, about a second at n = 10^6) changes nothing.
    massart = 2.0 * math.exp(-2.0 * effective * statistic * statistic)
    if massart <= NEGLIGIBLE_P_VALUE:
        p_value = massart
    else:
        p_value = float(np.clip(sps.kstwo.sf(statistic, effective), 0.0, 1.0))
    bound = float(np.max(np.minimum(ref / n1, cur / n2)))
    return KSResult(statistic, p_value, bound)


def chi_square(reference_counts: Counts, current_counts: Counts) -> ChiSquareResult:
    """Pearson's chi-square test of homogeneity on a 2 x k table of category counts.

    Equal to ``scipy.stats.chi2_contingency([ref, cur], correction=False)`` once the
    categories empty on both sides (which carry no information and would divide by
    zero) are dropped. With fewer than two categories left there is nothing to
    compare: statistic 0, p-value 1, 0 degrees of freedom.
    """
    ref, cur = _pair(reference_counts, current_counts)
    keep = (ref + cur) > 0
    if np.count_nonzero(keep) < 2:
        return ChiSquareResult(0.0, 1.0, 0)
    observed = np.vstack([ref[keep], cur[keep]])
    expected = np.outer(observed.sum(axis=1), observed.sum(axis=0)) / observed.sum()
    statistic = float(np.sum((observed - expected) ** 2 / expected))
    dof = int(observed.shape[1] - 1)
    return ChiSquareResult(statistic, float(sps.chi2.sf(statistic, dof)), dof)


def psi(reference_counts: Counts, current_counts: Counts, *, epsilon: float = PSI_EPSILON) -> float:
    """Population stability index ``sum_i (q_i - p_i) ln(q_i / p_i)``.

    ``p`` and ``q`` are the reference and current proportions. An empty bin on one
    side would make the index infinite, so every proportion is floored at
    ``epsilon`` (1e-4 by default, the usual choice) before the sum; bins empty on
    both sides then contribute exactly 0. The result is symmetric and non-negative.
    """
    if not epsilon > 0:
        raise UsageError(f"epsilon must be positive, not {epsilon}")
    p, q = _proportions(*_pair(reference_counts, current_counts))
    p, q = np.maximum(p, epsilon), np.maximum(q, epsilon)
    return float(np.sum((q - p) * np.log(q / p)))


def jensen_shannon(reference_counts: Counts, current_counts: Counts) -> float:
    """Jensen-Shannon distance (the square root of the divergence), base 2, in [0, 1].

    Equal to ``scipy.spatial.distance.jensenshannon(p, q, base=2)`` of the proportions.
    """
    p, q = _proportions(*_pair(reference_counts, current_counts))
    m = (p + q) / 2.0
    divergence = (np.sum(special.rel_entr(p, m)) + np.sum(special.rel_entr(q, m))) / 2.0
    return float(math.sqrt(max(float(divergence) / math.log(2.0), 0.0)))


def total_variation(reference_counts: Counts, current_counts: Counts) -> float:
    """Total variation distance ``0.5 * sum_i |p_i - q_i|``, in [0, 1]."""
    p, q = _proportions(*_pair(reference_counts, current_counts))
    return float(0.5 * np.sum(np.abs(p - q)))


def wasserstein(
    edges: Counts,
    reference_counts: Counts,
    reference_sums: Counts,
    current_counts: Counts,
    current_sums: Counts,
    *,
    minimum: float,
    maximum: float,
) -> WassersteinResult:
    """1-Wasserstein distance between two binned samples.

    Inputs: the ``k`` edges, and per side the ``k + 1`` bin counts and bin sums (the
    sum of the values in each bin), plus the smallest and largest value of the two
    samples together (the outer bins are open-ended otherwise).

    Each bin's mass is placed at its mean (sum / count) and the distance between the
    two resulting discrete distributions is computed exactly, as the integral of
    ``|F - G|``. When each bin holds one distinct value (a discrete feature whose
    values are all edges), the means are the values themselves and the result equals
    ``scipy.stats.wasserstein_distance(x, y)``.

    Bound. Moving a bin's mass ``w`` to its mean ``m`` costs at most ``w`` times the
    largest mean absolute deviation a distribution on the bin's interval ``[lo, hi]``
    with mean ``m`` can have, ``2 (m - lo)(hi - m) / (hi - lo)`` (reached by putting
    all mass at the two ends). By the triangle inequality the distance on the raw
    data is within the sum of those costs over every bin of both sides, which is
    ``bound``. It is 0 for a bin whose values all sit on its right edge.
    """
    e = _counts_or_values(edges, "edges")
    if e.size and np.any(np.diff(e) <= 0):
        raise UsageError("edges must be strictly increasing")
    ref, cur = _pair(reference_counts, current_counts)
    ref_sums = _values(reference_sums, "reference_sums", ref.size)
    cur_sums = _values(current_sums, "current_sums", cur.size)
    if ref.size != e.size + 1:
        raise UsageError(f"{e.size} edges make {e.size + 1} bins, but {ref.size} counts given")
    if not (math.isfinite(minimum) and math.isfinite(maximum)) or minimum > maximum:
        raise UsageError(f"minimum and maximum must be finite and ordered ({minimum}, {maximum})")
    lows = np.concatenate([[min(minimum, e[0] if e.size else minimum)], e])
    highs = np.concatenate([e, [max(maximum, e[-1] if e.size else maximum)]])

    ref_means, ref_slack = _bin_means(ref, ref_sums, lows, highs)
    cur_means, cur_slack = _bin_means(cur, cur_sums, lows, highs)
    n1, n2 = ref.sum(), cur.sum()
    bound = float(ref_slack / n1 + cur_slack / n2)

    # The CDFs of the two collapsed distributions are step functions; integrate
    # |F - G| over the merged, sorted support points.
    points = np.concatenate([ref_means[ref > 0], cur_means[cur > 0]])
    weights_ref = np.concatenate([ref[ref > 0] / n1, np.zeros(np.count_nonzero(cur))])
    weights_cur = np.concatenate([np.zeros(np.count_nonzero(ref)), cur[cur > 0] / n2])
    order = np.argsort(points, kind="stable")
    points = points[order]
    gaps = np.diff(points)
    cdf_gap = np.cumsum(weights_ref[order] - weights_cur[order])[:-1]
    distance = float(np.sum(np.abs(cdf_gap) * gaps))
    return WassersteinResult(distance, bound)


def _counts_or_values(values: Counts, name: str) -> FloatArray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1 or not np.all(np.isfinite(array)):
        raise UsageError(f"{name} must be a one-dimensional vector of finite numbers")
    return array


def _values(values: Counts, name: str, size: int) -> FloatArray:
    array = _counts_or_values(values, name)
    if array.size != size:
        raise UsageError(f"{name} must have one value per bin ({size}), not {array.size}")
    return array


def _bin_means(
    counts: FloatArray, sums: FloatArray, lows: FloatArray, highs: FloatArray
) -> tuple[FloatArray, float]:
    """Each bin's mean (clipped into its interval against rounding) and the total
    worst-case cost, in count-weighted distance, of collapsing each bin to it."""
    with np.errstate(divide="ignore", invalid="ignore"):
        means = np.where(counts > 0, sums / np.where(counts > 0, counts, 1.0), highs)
    means = np.clip(means, lows, highs)
    width = highs - lows
    with np.errstate(divide="ignore", invalid="ignore"):
        spread = np.where(width > 0, 2.0 * (means - lows) * (highs - means) / width, 0.0)
    return means, float(np.sum(counts * spread))


def null_rate_test(ref_nulls: int, ref_n: int, cur_nulls: int, cur_n: int) -> float:
    """Two-sided p-value of the pooled two-proportion z-test on the null rates.

    ``z = (x1/n1 - x2/n2) / sqrt(p (1 - p) (1/n1 + 1/n2))`` with the pooled rate
    ``p = (x1 + x2) / (n1 + n2)``, and ``p_value = 2 * Phi(-|z|)``; ``z**2`` is
    Pearson's chi-square on the 2 x 2 table, so the two agree. When ``p`` is 0 or 1
    both samples are all-null or null-free alike, so there is no evidence of a
    change: the p-value is 1 (instead of 0/0).
    """
    for name, nulls, n in (("reference", ref_nulls, ref_n), ("current", cur_nulls, cur_n)):
        if n <= 0:
            raise InvalidDataError(f"the {name} sample is empty: a null rate needs rows")
        if not 0 <= nulls <= n:
            raise UsageError(f"{name} nulls must be between 0 and {n}, not {nulls}")
    pooled = (ref_nulls + cur_nulls) / (ref_n + cur_n)
    variance = pooled * (1.0 - pooled) * (1.0 / ref_n + 1.0 / cur_n)
    if variance <= 0:
        return 1.0
    z = (ref_nulls / ref_n - cur_nulls / cur_n) / math.sqrt(variance)
    return float(min(1.0, 2.0 * sps.norm.sf(abs(z))))


def benjamini_hochberg(p_values: Any) -> FloatArray:
    """Benjamini-Hochberg adjusted p-values, in the input order.

    ``p_adj_(i) = min_{j >= i} p_(j) m / j`` over the sorted p-values, capped at 1;
    equal to ``scipy.stats.false_discovery_control(p, method="bh")``. A test is
    significant at false discovery rate ``alpha`` when its adjusted p-value is
    ``<= alpha``.
    """
    p = np.asarray(p_values, dtype=np.float64)
    if p.ndim != 1:
        raise UsageError("p_values must be a one-dimensional sequence")
    if p.size == 0:
        return p.copy()
    if not np.all((p >= 0) & (p <= 1)):
        raise UsageError("p-values must lie in [0, 1]")
    order = np.argsort(p, kind="stable")
    m = p.size
    scaled = p[order] * m / np.arange(1, m + 1)
    adjusted = np.minimum.accumulate(scaled[::-1])[::-1]
    out = np.empty(m)
    out[order] = np.minimum(adjusted, 1.0)
    return out
