"""The bounded summaries a profile merges: exact while small, within the stated error
beyond, and the same every time for the same rows."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timedelta

import numpy as np
import pyarrow as pa
import pytest

from setpoint.data._sketch import (
    DISTINCT_BYTES,
    DISTINCT_CAP,
    SKETCH_K,
    TOP_KEY_BYTES,
    DistinctCount,
    QuantileSketch,
    TopCounts,
)
from setpoint.data.profile import profile_table

HLL_TWO_SIGMA = 0.0131  # hll_sketch.get_rel_err(True, False, 14, 2), rounded up


def test_sketched_quantiles_stay_within_the_stated_rank_error() -> None:
    rng = np.random.default_rng(0)
    values = rng.lognormal(0, 1, 400_000)
    sketch = QuantileSketch(k=2048)
    for part in np.array_split(values, 50):
        sketch.add(part)
    assert not sketch.exact
    qs = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
    ordered = np.sort(values)
    levels = int(np.ceil(np.log2(len(values) / 2048))) + 1
    for q, estimate in zip(qs, sketch.quantiles(qs), strict=True):
        rank = np.searchsorted(ordered, estimate) / len(values)
        assert abs(rank - q) <= levels / 2048


def test_quantiles_are_exact_while_the_sketch_holds_every_value() -> None:
    values = np.random.default_rng(1).normal(size=1000)
    sketch = QuantileSketch()
    sketch.add(values)
    assert sketch.exact
    assert sketch.quantiles((0.5, 0.99)) == pytest.approx(list(np.quantile(values, [0.5, 0.99])))


def distinct(values: pa.Array, batch: int = 10_000) -> int:
    count = DistinctCount()
    for start in range(0, len(values), batch):
        count.add(values.slice(start, batch))
    return count.value


def test_distinct_is_exact_up_to_the_cap() -> None:
    values = pa.array(np.arange(DISTINCT_CAP).repeat(2))
    assert distinct(values) == DISTINCT_CAP


start = datetime(2024, 1, 1)


@pytest.mark.parametrize(
    "values",
    [
        pa.array(np.arange(200_000) * 7),
        pa.array(np.arange(200_000, dtype=np.uint64) + np.uint64(2**63)),
        pa.array(np.random.default_rng(2).random(200_000)),
        pa.array([f"C{i:010d}" for i in range(200_000)]),
        pa.array([start + timedelta(seconds=i) for i in range(200_000)]),
        pa.array([start.date() + timedelta(days=i) for i in range(200_000)], pa.date32()),
    ],
    ids=["int64", "uint64", "float64", "string", "timestamp", "date32"],
)
def test_distinct_beyond_the_cap_is_within_the_stated_error(values: pa.Array) -> None:
    assert abs(distinct(values) - 200_000) <= HLL_TWO_SIGMA * 200_000


def test_distinct_beyond_the_cap_is_the_same_in_every_process() -> None:
    # The hash is seeded, so a stored profile does not change between runs.
    assert distinct(pa.array(np.arange(100_000))) == 99_823


def test_top_counts_are_exact_below_the_capacity_with_ties_by_value() -> None:
    top = TopCounts()
    top.add(pa.array(["b", "a", None, "c", "b"]))
    top.add(pa.array(["c", "d"]))
    assert top.top(3) == [("b", 2), ("c", 2), ("a", 1)]


def test_top_counts_beyond_the_capacity_are_lower_bounds_within_the_stated_error() -> None:
    rng = np.random.default_rng(4)
    values = np.array([f"v{x}" for x in rng.zipf(1.2, 100_000)])
    top = TopCounts(lg_map_size=8)  # exact up to 192 distinct values; this has thousands
    for part in np.array_split(values, 10):
        top.add(pa.array(part))
    labels, counts = np.unique(values, return_counts=True)
    true = dict(zip(labels.tolist(), counts.tolist(), strict=True))
    found = top.top(10)
    assert [v for v, _ in found][:3] == ["v1", "v2", "v3"]
    for value, count in found:
        assert 0 <= true[value] - count <= 3.5 / 2**8 * len(values)


def test_the_same_rows_profile_the_same_beyond_every_exact_regime() -> None:
    rng = np.random.default_rng(5)
    n = 4 * max(SKETCH_K, DISTINCT_CAP)
    table = pa.table({"x": rng.lognormal(size=n), "c": [f"c{i}" for i in rng.integers(0, n, n)]})
    assert profile_table(table) == profile_table(table)


def long_texts(n: int, length: int = 10_000, seed: int = 6) -> pa.Array:
    """``n`` distinct free-text values of ``length`` characters."""
    rng = np.random.default_rng(seed)
    words = np.array(["lorem", "ipsum", "dolor", "amet", "élan", "naïve"])
    return pa.array(
        [f"{i}: " + " ".join(rng.choice(words, length // 5))[:length] for i in range(n)]
    )


def test_distinct_values_are_held_exactly_only_up_to_the_byte_cap() -> None:
    """Long free text: the exact set would hold every value; past DISTINCT_BYTES it is
    a HyperLogLog, whatever the number of values."""
    values = long_texts(1_000)
    assert values.nbytes > 2 * DISTINCT_BYTES
    count = DistinctCount()
    for start in range(0, len(values), 50):
        count.add(values.slice(start, 50))
        assert count.nbytes <= DISTINCT_BYTES
    assert abs(count.value - 1_000) <= HLL_TWO_SIGMA * 1_000


def test_top_counts_hold_long_values_by_a_bounded_key() -> None:
    """The frequent-items map holds a long value by its first TOP_KEY_BYTES bytes and a
    hash: bounded by the map's size, not by the values' length."""
    values = long_texts(1_000)
    top, small = TopCounts(), TopCounts(lg_map_size=8)  # small: at most 192 keys
    for start in range(0, len(values), 50):
        top.add(values.slice(start, 50))
        small.add(values.slice(start, 50))
    top.add(values.slice(0, 3))
    longest = TOP_KEY_BYTES + len("…".encode()) + 16
    assert top.nbytes <= 32 + 1_000 * (8 + 4 + longest)  # not the values' 10 MB
    assert small.nbytes <= small.max_nbytes == 32 + 192 * (8 + 4 + longest)
    found = top.top(3)
    assert [count for _, count in found] == [2, 2, 2]
    assert all(
        value.endswith("…") and len(value.encode()) <= TOP_KEY_BYTES + 3 for value, _ in found
    )
    assert [value[:-1] for value, _ in found] == [
        v[: len(value) - 1]
        for v, (value, _) in zip(values.slice(0, 3).to_pylist(), found, strict=True)
    ]


def test_long_values_are_given_in_full_while_the_distinct_set_is_exact() -> None:
    """A category with a long label is still that label (a contract's categories come
    from the top values): the exact distinct set gives each key its value back."""
    labels = [f"{c}: " + "a long product description " * 20 for c in "XYZ"]
    table = pa.table({"c": [labels[i % 3] for i in range(1000)] + [labels[0]]})
    column = profile_table(table).column("c")
    assert column.kind == "categorical"
    assert column.top == [(labels[0], 335), (labels[1], 333), (labels[2], 333)]


def test_long_free_text_profiles_the_same_every_time() -> None:
    table = pa.table({"t": long_texts(1_000)})
    first = profile_table(table).column("t")
    assert first == profile_table(table).column("t")
    assert first.kind == "string"
    assert first.top is not None
    assert all(v.endswith("…") for v, _ in first.top)


def test_the_sketches_do_not_import_pandas() -> None:
    code = "import sys, setpoint.data._sketch; sys.exit('pandas' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
