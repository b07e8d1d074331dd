"""Turning predict input into frames and matrices: every container, every kind, and
an error (never a raw library exception) for anything else."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import math
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from setpoint.data.kinds import KINDS, Kind
from setpoint.errors import ModelInputError, UsageError
from setpoint.models.inputs import MatrixEncoder, encode_categories, to_frame, to_matrix

FEATURES = ["price", "rooms", "garden", "city", "note", "built"]
KINDS_: dict[str, Kind] = {
    "price": "numeric",
    "rooms": "integer",
    "garden": "boolean",
    "city": "categorical",
    "note": "string",
    "built": "datetime",
}
CATEGORIES = {"city": ["Lyon", "Paris"], "note": ["new", "old"]}
RECORDS: list[dict[str, Any]] = [
    {
        "price": 1.5,
        "rooms": 3,
        "garden": True,
        "city": "Paris",
        "note": "old",
        "built": "2001-02-03",
        "extra": "ignored",
    },
    {"price": None, "rooms": None, "garden": None, "city": None, "note": None, "built": None},
    {"price": 2, "rooms": 1, "garden": False, "city": "Nice", "note": "new", "built": None},
]


def containers() -> dict[str, Any]:
    frame = pd.DataFrame(RECORDS)
    return {
        "records": RECORDS,
        "frame": frame,
        "arrow": pa.Table.from_pylist(RECORDS),
        "record batch": pa.RecordBatch.from_pylist(RECORDS),
        "dict of lists": {k: [r.get(k) for r in RECORDS] for k in FEATURES},
    }


@pytest.mark.parametrize("container", sorted(containers()))
def test_to_frame_types_every_kind(container: str) -> None:
    frame = to_frame(containers()[container], FEATURES, KINDS_)
    assert list(frame.columns) == FEATURES
    assert [str(t) for t in frame.dtypes[:3]] == ["float64"] * 3
    assert frame["city"].dtype == object
    assert frame["note"].dtype == object
    assert pd.api.types.is_datetime64_any_dtype(frame["built"])
    assert frame["price"].tolist()[::2] == [1.5, 2.0]
    assert math.isnan(frame["price"][1])
    assert frame["garden"].tolist()[::2] == [1.0, 0.0]
    assert frame["city"].tolist() == ["Paris", None, "Nice"]
    assert frame["built"][0] == pd.Timestamp("2001-02-03")
    assert frame["built"][1:].isna().all()


@pytest.mark.parametrize("container", sorted(containers()))
def test_to_matrix_encodes_categories_by_index(container: str) -> None:
    matrix = to_matrix(containers()[container], FEATURES, KINDS_, CATEGORIES)
    assert matrix.dtype == np.float64
    assert matrix.shape == (3, len(FEATURES))
    built = pd.Timestamp("2001-02-03").timestamp()
    np.testing.assert_array_equal(matrix[0], [1.5, 3.0, 1.0, 1.0, 1.0, built])
    assert np.isnan(matrix[1]).all()
    np.testing.assert_array_equal(matrix[2, :5], [2.0, 1.0, 0.0, np.nan, 0.0])  # Nice: unseen


def test_the_fast_path_agrees_with_the_general_one() -> None:
    features = FEATURES[:5]
    encoder = MatrixEncoder(features, KINDS_, CATEGORIES)
    rows = [{k: v for k, v in r.items() if k != "built"} for r in RECORDS]
    fast = encoder(rows)
    np.testing.assert_array_equal(fast, encoder(pd.DataFrame(rows)))
    np.testing.assert_array_equal(encoder(rows[0]), fast[:1])
    # A record missing a key is a missing value, like an explicit None.
    partial = encoder([{"price": 1.0}, *rows])
    np.testing.assert_array_equal(partial[0], [1.0] + [np.nan] * 4)
    np.testing.assert_array_equal(partial[1:], fast)


def test_a_numpy_array_is_columns_in_feature_order() -> None:
    kinds: dict[str, Kind] = {"a": "numeric", "b": "boolean"}
    array = np.array([[1.0, 0.0], [np.nan, 1.0]])
    np.testing.assert_array_equal(to_matrix(array, ["a", "b"], kinds, {}), array)
    assert to_frame(array, ["a", "b"], kinds)["b"].tolist() == [0.0, 1.0]
    with pytest.raises(ModelInputError, match=r"reshape\(1, -1\)"):
        to_frame(np.array([1.0, 0.0]), ["a", "b"], kinds)
    with pytest.raises(ModelInputError, match="all numbers"):
        to_frame(np.array([["x"]]), ["city"], KINDS_)


def test_nullable_and_arrow_number_types_become_floats() -> None:
    frame = pd.DataFrame(
        {
            "price": pd.array([1, None], dtype="Int64"),
            "rooms": pd.array([2.5, None], dtype="Float64"),
            "garden": pd.array([True, None], dtype="boolean"),
        }
    )
    features = ["price", "rooms", "garden"]
    expected = [[1.0, 2.5, 1.0], [np.nan, np.nan, np.nan]]
    np.testing.assert_array_equal(to_matrix(frame, features, KINDS_, {}), expected)
    table = pa.table(
        {"price": pa.array([1, None], pa.int8()), "rooms": [2.5, None], "garden": [True, None]}
    )
    np.testing.assert_array_equal(to_matrix(table, features, KINDS_, {}), expected)


def test_arrow_integers_beyond_a_float_mantissa_become_the_nearest_float() -> None:
    # A value past a contract's bound is scored now (a soft rule), so an integer the
    # float cannot hold exactly must not fail the batch.
    table = pa.table({"price": pa.array([2**55 + 1, 3], pa.int64())})
    frame = to_frame(table, ["price"], KINDS_)
    assert frame["price"].tolist() == [float(2**55), 3.0]


def test_text_accepts_whole_numbers_and_pandas_categoricals() -> None:
    frame = pd.DataFrame({"city": pd.Categorical(["Paris", None]), "note": [7, np.nan]})
    converted = to_frame(frame, ["city", "note"], KINDS_)
    assert converted["city"].tolist() == ["Paris", None]
    assert converted["note"].tolist() == ["7", None]


def test_encode_categories_sorts_distinct_text_values() -> None:
    assert encode_categories(RECORDS, FEATURES, KINDS_) == {
        "city": ["Nice", "Paris"],
        "note": ["new", "old"],
    }
    assert encode_categories(RECORDS, ["price"], KINDS_) == {}


def test_numbers_and_booleans_written_as_text_are_read_as_the_contract_reads_them() -> None:
    rows = [{"price": " 1.5e3", "garden": "Yes"}, {"price": "+2", "garden": "0"}]
    frame = to_frame(rows, ["price", "garden"], KINDS_)
    assert frame["price"].tolist() == [1500.0, 2.0]
    assert frame["garden"].tolist() == [1.0, 0.0]
    with pytest.raises(ModelInputError):
        to_frame([{"price": "1_000"}], ["price"], KINDS_)  # Python reads it; the contract does not


def test_every_problem_is_listed_with_column_and_example() -> None:
    rows = [
        {"price": "cheap", "rooms": float("inf"), "garden": 2, "city": ["x"], "built": 12},
        {"price": 1.0, "rooms": 1, "garden": "maybe", "city": "Lyon", "built": "not a date"},
    ]
    with pytest.raises(ModelInputError) as caught:
        to_frame(rows, ["price", "rooms", "garden", "city", "built"], KINDS_)
    details = caught.value.details
    assert [d["column"] for d in details] == ["price", "rooms", "garden", "city", "built"]
    assert [d["example"] for d in details] == ["cheap", "inf", 2, "['x']", 12]
    assert "2 value(s) are not booleans" in caught.value.message
    json.dumps(caught.value.to_dict())


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ([], "no rows"),
        (pd.DataFrame({"price": [], "rooms": []}), "no rows"),
        ({"price": [], "rooms": []}, "no rows"),
        ([{"rooms": 1}], "missing column.*'price'"),
        (pd.DataFrame({"rooms": [1]}), "missing column.*'price'"),
        (pa.table({"rooms": [1]}), "missing column.*'price'"),
        ({"price": [1, 2], "rooms": [1]}, "different lengths"),
        ({"price": [1, 2], "rooms": 1}, "hold a single value"),
        ([{"price": 1, "rooms": 1}, 5], "must hold records"),
        ("price=1", "cannot predict on a str"),
        (42, "cannot predict on a int"),
        ({"price": 1, "rooms": 1}.keys(), "cannot predict on a dict_keys"),
        (pd.DataFrame([[1, 2, 3]], columns=["price", "price", "rooms"]), "more than once"),
    ],
)
def test_unreadable_input_is_a_model_input_error(data: Any, match: str) -> None:
    with pytest.raises(ModelInputError, match=match):
        to_frame(data, ["price", "rooms"], KINDS_)
    with pytest.raises(ModelInputError, match=match):
        to_matrix(data, ["price", "rooms"], KINDS_, {})


def test_missing_categories_are_a_usage_error() -> None:
    with pytest.raises(UsageError, match="city"):
        MatrixEncoder(["city"], KINDS_, {})


# -- property: anything in, the right shape or a ModelInputError out -------------------

_JUNK = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=8)
    | st.decimals()
    | st.datetimes()
    | st.datetimes(timezones=st.timezones())
    | st.dates()
    | st.sampled_from(["2024-01-01", "1.5", "nan", "Paris", "", float("nan"), pd.NA]),
    lambda inner: st.lists(inner, max_size=2) | st.dictionaries(st.text(max_size=2), inner),
    max_leaves=4,
)
_FIELDS = st.sampled_from(["a", "b", "c", "other"])
_RECORDS = st.lists(st.dictionaries(_FIELDS, _JUNK, max_size=4), max_size=5)
_KINDS = st.fixed_dictionaries({name: st.sampled_from(KINDS) for name in ["a", "b", "c"]})


@settings(max_examples=300, deadline=None)
@given(records=_RECORDS, kinds=_KINDS, container=st.sampled_from(["records", "columns", "frame"]))
def test_any_records_give_the_right_shape_or_a_model_input_error(
    records: list[dict[str, Any]], kinds: dict[str, Kind], container: str
) -> None:
    features = ["a", "b", "c"]
    data: Any = records
    if container == "columns":
        data = {name: [r.get(name) for r in records] for name in features if records}
    elif container == "frame":
        data = pd.DataFrame(records)
    categories = {name: ["Paris", "1"] for name in features}
    frame: pd.DataFrame | None = None
    with contextlib.suppress(ModelInputError):
        frame = to_frame(data, features, kinds)
    if frame is not None:
        assert list(frame.columns) == features
        assert len(frame) == len(records)
    try:
        matrix = to_matrix(data, features, kinds, categories)
    except ModelInputError:
        assert frame is None, "to_matrix refused what to_frame took"
    else:
        assert frame is not None, "to_matrix took what to_frame refused"
        assert matrix.shape == (len(records), 3)
        assert matrix.dtype == np.float64
        assert not np.isinf(matrix).any()


_PLAIN = st.none() | st.booleans() | st.integers() | st.floats() | st.sampled_from(["Paris", "x"])


@settings(max_examples=300, deadline=None)
@given(
    records=st.lists(st.dictionaries(_FIELDS, _PLAIN | _JUNK, max_size=4), max_size=40),
    kinds=_KINDS,
)
def test_the_record_fast_paths_agree_with_the_general_path(
    records: list[dict[str, Any]], kinds: dict[str, Kind]
) -> None:
    """Records (row by row up to 16, column by column above) against the same data as a
    dict of columns, which always takes the general path."""
    features = ["a", "b", "c"]
    categories = {name: ["Paris", "1"] for name in features}
    # A column absent from every record is missing; absent from some, it is null there.
    present = [name for name in features if any(name in r for r in records)]
    columns = {name: [r.get(name) for r in records] for name in present}
    try:
        expected = to_matrix(columns, features, kinds, categories)
    except ModelInputError:
        with pytest.raises(ModelInputError):
            to_matrix(records, features, kinds, categories)
        return
    np.testing.assert_array_equal(to_matrix(records, features, kinds, categories), expected)


@settings(max_examples=100, deadline=None)
@given(
    values=st.lists(
        st.one_of(st.none(), st.floats(allow_infinity=False), st.integers(-(2**53), 2**53)),
        min_size=1,
        max_size=6,
    )
)
def test_numbers_survive_every_container(values: list[Any]) -> None:
    kinds: dict[str, Kind] = {"a": "numeric"}
    expected = np.array([np.nan if v is None else float(v) for v in values]).reshape(-1, 1)
    records = [{"a": v} for v in values]
    for data in (records, {"a": values}, pd.DataFrame(records), pa.Table.from_pylist(records)):
        np.testing.assert_array_equal(to_matrix(data, ["a"], kinds, {}), expected)
        np.testing.assert_array_equal(to_frame(data, ["a"], kinds).to_numpy(), expected)


def test_datetime_arrays_and_arrow_timestamps_are_read() -> None:
    stamps = np.array(["2020-01-02T03:00", "NaT"], dtype="datetime64[ns]")
    kinds: dict[str, Kind] = {"t": "datetime"}
    for data in ({"t": stamps}, pa.table({"t": pa.array(stamps)})):
        frame = to_frame(data, ["t"], kinds)
        assert frame["t"][0] == pd.Timestamp("2020-01-02 03:00")
        assert pd.isna(frame["t"][1])


def test_decimal_and_datetime_objects_are_read() -> None:
    kinds: dict[str, Kind] = {"a": "numeric", "t": "datetime"}
    rows = [{"a": Decimal("1.25"), "t": dt.datetime(2020, 1, 2, 3)}]
    frame = to_frame(rows, ["a", "t"], kinds)
    assert frame["a"][0] == 1.25
    assert frame["t"][0] == pd.Timestamp("2020-01-02 03:00")
