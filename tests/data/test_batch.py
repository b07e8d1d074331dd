from __future__ import annotations

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

from setpoint.data._batch import to_table
from setpoint.errors import InvalidDataError, UsageError


@pytest.mark.parametrize(
    "batch",
    [
        pd.DataFrame({"a": [1, 2], "b": ["x", "y"]}),
        pa.table({"a": [1, 2], "b": ["x", "y"]}),
        pa.record_batch({"a": [1, 2], "b": ["x", "y"]}),
        {"a": [1, 2], "b": ["x", "y"]},
        {"a": np.array([1, 2]), "b": ["x", "y"]},
        [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}],
        pl.DataFrame({"a": [1, 2], "b": ["x", "y"]}),
    ],
    ids=["pandas", "arrow", "record_batch", "columns", "numpy_columns", "records", "polars"],
)
def test_every_accepted_form_gives_the_same_table(batch: object) -> None:
    table = to_table(batch)
    assert table.column_names == ["a", "b"]
    assert table.column("a").to_pylist() == [1, 2]
    assert table.column("b").to_pylist() == ["x", "y"]


def test_mixed_values_become_text_for_the_contract_to_judge() -> None:
    table = to_table([{"a": 1}, {"a": "x"}, {"a": None}])
    assert table.column("a").to_pylist() == ["1", "x", None]


def test_records_may_lack_columns() -> None:
    table = to_table([{"a": 1}, {"b": 2}])
    assert table.to_pylist() == [{"a": 1, "b": None}, {"a": None, "b": 2}]


@pytest.mark.parametrize(
    ("batch", "message"),
    [
        ({"a": [1, 2], "b": [1]}, "different lengths"),
        ({"a": 3}, "must be a list"),
        ([{"a": 1}, 5], "record 1 is a int"),
        ({1: [1]}, "column names must be text"),
        (pd.DataFrame([[1, 2]], columns=["a", "a"]), "more than once"),
    ],
)
def test_malformed_batches_are_named(batch: object, message: str) -> None:
    with pytest.raises(InvalidDataError, match=message):
        to_table(batch)


def test_unsupported_containers_say_what_is_accepted() -> None:
    with pytest.raises(UsageError, match="pass a pandas DataFrame"):
        to_table("a,b\n1,2")


def test_a_lazy_polars_frame_is_told_to_collect() -> None:
    with pytest.raises(UsageError, match="collect a lazy frame first"):
        to_table(pl.DataFrame({"a": [1]}).lazy())
