"""Summaries: bounded, mergeable, stored exactly, and exact on discrete data."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import stats as sps

from setpoint.errors import InvalidDataError, UsageError
from setpoint.monitoring import stats
from setpoint.monitoring.counts import (
    MAX_UNSEEN,
    CategoricalCounts,
    NumericCounts,
    counts_from_dict,
)
from setpoint.monitoring.summary import (
    CategoricalReference,
    NumericReference,
    ReferenceSummary,
    WindowSummary,
    summarize,
)

KINDS = {"x": "numeric", "k": "integer", "b": "boolean", "c": "categorical", "t": "datetime"}

numbers = st.one_of(
    st.none(),
    st.floats(-1e6, 1e6, allow_subnormal=False),
    st.sampled_from([float("nan"), float("inf"), -float("inf"), 0.0, 1.5]),
)
labels = st.one_of(st.none(), st.sampled_from(["a", "b", "c", "d", "e", "new", ""]))


def table(rows: list[tuple[Any, ...]]) -> pa.Table:
    columns = list(zip(*rows, strict=True)) if rows else [(), (), (), ()]
    return pa.table(
        {
            "x": pa.array(columns[0], pa.float64()),
            "k": pa.array(columns[1], pa.int64()),
            "b": pa.array(columns[2], pa.bool_()),
            "c": pa.array(columns[3], pa.string()),
        }
    )


row = st.tuples(
    numbers, st.one_of(st.none(), st.integers(-5, 5)), st.none() | st.booleans(), labels
)


def reference() -> ReferenceSummary:
    rng = np.random.default_rng(0)
    data = pa.table(
        {
            "x": rng.normal(size=500),
            "k": rng.integers(-3, 3, 500),
            "b": rng.random(500) < 0.3,
            "c": pa.array(rng.choice(["a", "b", "c", "d"], 500, p=[0.5, 0.3, 0.15, 0.05])),
            "t": pa.array(np.arange(500).astype("datetime64[s]")),
        }
    )
    return ReferenceSummary.build(data, KINDS, bins=20, max_categories=3)


REFERENCE = reference()


def assert_same(a: WindowSummary, b: WindowSummary) -> None:
    """Equal counts exactly; equal sums up to the order of floating-point additions."""
    assert a.n_rows == b.n_rows
    assert a.columns.keys() == b.columns.keys()
    for name, left in a.columns.items():
        right = b.columns[name]
        da, db = left.to_dict(), right.to_dict()
        for key in ("sums", "sum", "sum_squares"):
            if key in da:
                np.testing.assert_allclose(da.pop(key), db.pop(key), rtol=1e-9, atol=1e-6)
        assert da == db, name


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.lists(row, max_size=40), data=st.data())
def test_merging_two_windows_equals_summarizing_both_at_once(
    rows: list[tuple[Any, ...]], data: st.DataObject
) -> None:
    cut = data.draw(st.integers(0, len(rows)))
    first, second = table(rows[:cut]), table(rows[cut:])
    whole = summarize(pa.concat_tables([first, second]), REFERENCE)
    assert_same(summarize(first, REFERENCE) + summarize(second, REFERENCE), whole)
    # Batches one at a time (an iterator) give the same as the table.
    assert_same(summarize(iter(table(rows).to_batches(max_chunksize=3)), REFERENCE), whole)


@settings(max_examples=100, deadline=None)
@given(rows=st.lists(row, max_size=30))
def test_a_window_round_trips_through_json_exactly(rows: list[tuple[Any, ...]]) -> None:
    window = summarize(table(rows), REFERENCE)
    stored = json.loads(json.dumps(window.to_dict(), allow_nan=False))
    assert WindowSummary.from_dict(stored).to_dict() == window.to_dict()


@settings(max_examples=100, deadline=None)
@given(rows=st.lists(row, min_size=1, max_size=60), bins=st.integers(2, 8))
def test_a_reference_round_trips_and_counts_itself_like_a_window(
    rows: list[tuple[Any, ...]], bins: int
) -> None:
    data = table(rows)
    kinds = {"x": "numeric", "k": "integer", "b": "boolean", "c": "string"}
    ref = ReferenceSummary.build(data, kinds, bins=bins, max_categories=2)
    stored = json.loads(json.dumps(ref.to_dict(), allow_nan=False))
    assert ReferenceSummary.from_dict(stored).to_dict() == ref.to_dict()
    own = WindowSummary({name: c.counts for name, c in ref.columns.items()}, ref.n_rows)
    assert_same(own, summarize(data, ref))
    for column in ref.columns.values():
        if isinstance(column, NumericReference):
            assert column.edges.size <= bins
            assert np.all(np.diff(column.edges) > 0)


def test_edges_are_values_of_the_data_and_resolve_a_discrete_feature() -> None:
    rng = np.random.default_rng(1)
    values = rng.normal(size=10_000)
    discrete = rng.permutation(np.repeat([0.5, 2.0, 7.0, 1e9], [9_000, 995, 4, 1]))
    ref = ReferenceSummary.build(
        pa.table({"v": values, "d": discrete}), {"v": "numeric", "d": "numeric"}, bins=100
    )
    v, d = ref.columns["v"], ref.columns["d"]
    assert isinstance(v, NumericReference)
    assert isinstance(d, NumericReference)
    assert not v.exact
    assert d.exact
    assert np.isin(v.edges, values).all()
    assert 90 <= v.edges.size <= 100
    assert v.edges[0] == values.min()
    assert v.edges[-1] == values.max()
    # Equal mass: no bin holds much more than 1/99 of the reference.
    assert v.counts.counts.max() <= 10_000 / 99 + 2
    # Even the rarest discrete value gets its own edge.
    assert d.edges.tolist() == [0.5, 2.0, 7.0, 1e9]
    assert math.isclose(v.std or 0, float(np.std(values)), rel_tol=1e-12)


@settings(max_examples=150, deadline=None)
@given(
    x=st.lists(st.integers(-4, 4), min_size=1, max_size=200),
    data=st.data(),
)
def test_discrete_data_through_the_summaries_equals_scipy_on_the_raw_values(
    x: list[int], data: st.DataObject
) -> None:
    y = data.draw(st.lists(st.sampled_from(sorted(set(x))), min_size=1, max_size=200))
    xs, ys = np.asarray(x, float), np.asarray(y, float)
    ref = ReferenceSummary.build(pa.table({"v": pa.array(x)}), {"v": "integer"})
    window = summarize(pa.table({"v": pa.array(y)}), ref)
    column, counts = ref.columns["v"], window.columns["v"]
    assert isinstance(column, NumericReference)
    assert isinstance(counts, NumericCounts)

    result = stats.ks(column.counts.counts, counts.counts)
    with np.errstate(divide="ignore"):  # scipy divides by 0 for one value vs one
        expected = sps.ks_2samp(xs, ys, method="asymp")
    assert result.statistic == float(expected.statistic)
    if xs.size > 1 or ys.size > 1:
        assert math.isclose(result.p_value, float(expected.pvalue), rel_tol=1e-9, abs_tol=1e-12)

    distance = stats.wasserstein(
        column.edges,
        column.counts.counts,
        column.counts.sums,
        counts.counts,
        counts.sums,
        minimum=float(xs.min()),
        maximum=float(xs.max()),
    )
    assert math.isclose(distance.distance, sps.wasserstein_distance(xs, ys), abs_tol=1e-9)
    assert distance.bound <= 1e-9


@settings(max_examples=100, deadline=None)
@given(
    x=st.lists(st.floats(-100, 100, allow_subnormal=False), min_size=1, max_size=150),
    y=st.lists(st.floats(-150, 150, allow_subnormal=False), min_size=1, max_size=150),
    bins=st.integers(2, 12),
)
def test_continuous_data_through_the_summaries_stays_within_the_bounds(
    x: list[float], y: list[float], bins: int
) -> None:
    xs, ys = np.asarray(x), np.asarray(y)
    ref = ReferenceSummary.build(pa.table({"v": xs}), {"v": "numeric"}, bins=bins)
    column, counts = ref.columns["v"], summarize(pa.table({"v": ys}), ref).columns["v"]
    assert isinstance(column, NumericReference)
    assert isinstance(counts, NumericCounts)
    result = stats.ks(column.counts.counts, counts.counts)
    with np.errstate(divide="ignore"):  # scipy divides by 0 for one value vs one
        true_d = float(sps.ks_2samp(xs, ys, method="asymp").statistic)
    assert result.statistic <= true_d + 1e-12
    assert true_d <= result.statistic + result.bound + 1e-12
    both = np.concatenate([xs, ys])
    distance = stats.wasserstein(
        column.edges,
        column.counts.counts,
        column.counts.sums,
        counts.counts,
        counts.sums,
        minimum=float(both.min()),
        maximum=float(both.max()),
    )
    assert abs(distance.distance - sps.wasserstein_distance(xs, ys)) <= distance.bound + 1e-9


def test_nan_is_missing_and_infinity_is_counted_apart() -> None:
    window = summarize(
        pa.table({"x": pa.array([1.0, None, float("nan"), float("inf"), -float("inf"), 2.0])}),
        REFERENCE,
    )
    x = window.columns["x"]
    assert isinstance(x, NumericCounts)
    assert (x.nulls, x.non_finite, x.count, x.min, x.max) == (2, 2, 2, 1.0, 2.0)
    assert int(x.counts.sum()) == 2
    assert x.sum == 3.0
    assert window.n_rows == 6


def test_a_value_on_an_edge_falls_in_the_bin_that_ends_there() -> None:
    ref = ReferenceSummary.build(pa.table({"v": [1.0, 2.0, 3.0]}), {"v": "numeric"})
    window = summarize(pa.table({"v": [0.0, 1.0, 1.5, 2.0, 3.0, 9.0]}), ref)
    counts = window.columns["v"]
    assert isinstance(counts, NumericCounts)
    # Bins: (-inf, 1], (1, 2], (2, 3], (3, inf)
    assert counts.counts.tolist() == [2, 2, 1, 1]
    assert counts.sums.tolist() == [1.0, 3.5, 3.0, 9.0]


def test_a_missing_column_counts_as_all_null() -> None:
    window = summarize(pa.table({"x": [1.0, 2.0]}), REFERENCE)
    assert window.columns.keys() == {"x", "k", "b", "c"}  # datetime is skipped
    assert window.columns["k"].nulls == 2
    assert window.columns["k"].count == 0
    assert window.columns["c"].nulls == 2
    assert window.columns["c"].count == 0


def test_categories_keep_the_most_frequent_and_name_unseen_values() -> None:
    c = REFERENCE.columns["c"]
    assert isinstance(c, CategoricalReference)
    assert c.categories == ("a", "b", "c")
    assert int(c.counts.counts[-1]) > 0  # "d" counted as other
    window = summarize(
        pa.table({"c": pa.array(["a", "d", "zz", "zz", None], pa.large_string())}), REFERENCE
    )
    counts = window.columns["c"]
    assert isinstance(counts, CategoricalCounts)
    assert counts.counts.tolist() == [1, 0, 0, 3]
    assert counts.unseen == {"zz": 2, "d": 1}
    assert counts.nulls == 1


def test_unseen_names_are_bounded_and_other_stays_exact() -> None:
    names = [f"new_{i:03d}" for i in range(3 * MAX_UNSEEN)]
    window = summarize(pa.table({"c": pa.array(names + names[:5])}), REFERENCE)
    counts = window.columns["c"]
    assert isinstance(counts, CategoricalCounts)
    assert len(counts.unseen) == MAX_UNSEEN
    assert set(names[:5]) <= counts.unseen.keys()
    assert int(counts.counts[-1]) == len(names) + 5


def test_dictionary_columns_are_read_as_text() -> None:
    column = pa.array(["a", "b", "a", None]).dictionary_encode()
    counts = summarize(pa.table({"c": column}), REFERENCE).columns["c"]
    assert counts.counts.tolist() == [2, 1, 0, 0]


def test_bad_input_fails_clearly() -> None:
    with pytest.raises(InvalidDataError, match="'x' is numeric in the reference but string"):
        summarize(pa.table({"x": ["1"]}), REFERENCE)
    with pytest.raises(InvalidDataError, match="'y' is not in the reference data"):
        ReferenceSummary.build(pa.table({"x": [1.0]}), {"y": "numeric"})
    with pytest.raises(UsageError, match="unknown kind"):
        ReferenceSummary.build(pa.table({"x": [1.0]}), {"x": "float"})
    with pytest.raises(UsageError, match="bins must be at least 2"):
        ReferenceSummary.build(pa.table({"x": [1.0]}), {"x": "numeric"}, bins=1)
    with pytest.raises(InvalidDataError, match="no record batches"):
        ReferenceSummary.build(iter([]), {"x": "numeric"})
    with pytest.raises(UsageError, match="same reference bins"):
        _ = NumericCounts.empty(3) + NumericCounts.empty(4)
    with pytest.raises(InvalidDataError, match="format version"):
        ReferenceSummary.from_dict({"version": 99})
    with pytest.raises(InvalidDataError, match="not a column counts document"):
        counts_from_dict({"kind": "other"})
    with pytest.raises(InvalidDataError, match="numeric counts"):
        counts_from_dict({"kind": "numeric", "counts": [1]})


def test_a_column_with_no_finite_values_still_summarizes() -> None:
    ref = ReferenceSummary.build(
        pa.table({"v": pa.array([None, float("nan")], pa.float64())}), {"v": "numeric"}
    )
    column = ref.columns["v"]
    assert isinstance(column, NumericReference)
    assert column.edges.size == 0
    assert column.counts.nulls == 2
    assert column.mean is None
    window = summarize(pa.table({"v": [1.0, 2.0]}), ref)
    assert window.columns["v"].counts.tolist() == [2]
    stored = json.loads(json.dumps(ref.to_dict(), allow_nan=False))
    assert ReferenceSummary.from_dict(stored).to_dict() == ref.to_dict()
