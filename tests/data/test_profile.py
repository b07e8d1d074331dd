from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from setpoint.data.profile import Profile, profile_table


def test_numeric_profile_matches_numpy() -> None:
    values = np.random.default_rng(0).normal(10, 2, size=1000)
    column = profile_table(pa.table({"x": values})).column("x")
    assert column.kind == "numeric"
    assert column.count == 1000
    assert column.nulls == 0
    assert column.min == pytest.approx(values.min())
    assert column.max == pytest.approx(values.max())
    assert column.mean == pytest.approx(values.mean())
    assert column.std == pytest.approx(values.std(ddof=1))
    assert column.quantiles is not None
    assert column.quantiles["p50"] == pytest.approx(np.quantile(values, 0.5))
    assert column.quantiles["p99"] == pytest.approx(np.quantile(values, 0.99))


def test_nulls_nan_and_infinities_do_not_poison_the_statistics() -> None:
    column = profile_table(pa.table({"x": [1.0, None, float("inf"), 3.0]})).column("x")
    assert column.nulls == 1
    assert column.null_fraction == 0.25
    assert (column.min, column.max, column.mean) == (1.0, 3.0, 2.0)


def test_text_columns_are_categorical_up_to_the_limit() -> None:
    table = pa.table({"few": ["a", "b", "a", None], "many": ["u1", "u2", "u3", "u4"]})
    profile = profile_table(table, max_categories=3)
    few, many = profile.column("few"), profile.column("many")
    assert (few.kind, few.distinct, few.top) == ("categorical", 2, [("a", 2), ("b", 1)])
    assert many.kind == "string"


def test_other_kinds() -> None:
    table = pa.table(
        {
            "flag": [True, False, True],
            "n": pa.array([1, 2, 3], pa.int32()),
            "when": pa.array([0, 86_400, 172_800], pa.timestamp("s")),
            "empty": pa.nulls(3, pa.float64()),
        }
    )
    profile = profile_table(table)
    assert profile.column("flag").mean == pytest.approx(2 / 3)
    assert profile.column("n").kind == "integer"
    assert profile.column("n").min == 1
    assert profile.column("when").min == "1970-01-01T00:00:00"
    assert profile.column("empty").count == 0


def test_round_trips_through_its_dict_form() -> None:
    table = pa.table({"x": [1.0, 2.0], "c": ["a", "b"], "t": [True, None]})
    profile = profile_table(table)
    assert Profile.from_dict(profile.to_dict()) == profile
