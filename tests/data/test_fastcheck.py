"""The quick check may only ever say "clean" where the contract finds nothing wrong."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from setpoint.data._batch import to_table
from setpoint.data._fastcheck import FastCheck, _compile, _compile_column
from setpoint.data.contract import ColumnRule, Contract
from setpoint.data.profile import profile_table
from setpoint.demo import lending

bounds = st.one_of(st.none(), st.integers(-1000, 1000), st.floats(-1e6, 1e6))


@st.composite
def rules(draw: st.DrawFn) -> ColumnRule:
    kind = draw(st.sampled_from(["numeric", "integer", "boolean", "categorical", "string"]))
    low, high = draw(bounds), draw(bounds)
    if low is not None and high is not None and low > high:
        low, high = high, low
    number = kind in ("numeric", "integer")
    categories = (
        tuple(draw(st.lists(st.text(max_size=3), min_size=1, max_size=4, unique=True)))
        if kind == "categorical" and draw(st.booleans())
        else None
    )
    return ColumnRule(
        kind=kind,
        nullable=draw(st.booleans()),
        min=low if number else None,
        max=high if number else None,
        categories=categories,
    )


values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.integers(-1200, 1200),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(-2000, 2000),
    st.text(max_size=4),
    st.sampled_from(["1", " 2.5 ", "true", "1e3", "x", "", "a", "b"]),
    st.lists(st.integers(), max_size=2),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), n_columns=st.integers(1, 3), n_rows=st.integers(1, 6))
def test_whatever_the_quick_check_passes_the_contract_passes(
    data: st.DataObject, n_columns: int, n_rows: int
) -> None:
    contract = Contract(columns={f"c{i}": data.draw(rules()) for i in range(n_columns)})
    columns = {
        name: data.draw(st.lists(values, min_size=n_rows, max_size=n_rows))
        for name in contract.columns
    }
    if not FastCheck(contract).clean(columns):
        return
    report = contract.validate(to_table(columns))
    assert report.ok, (columns, contract, report.violations.to_pylist())


def test_clean_json_traffic_takes_the_quick_path() -> None:
    reference = lending.applications(2000, start=datetime(2026, 1, 1, tzinfo=UTC), seed=5)
    features = reference.drop(columns=[lending.TARGET, lending.TIME_COLUMN])
    contract = Contract.infer(profile_table(to_table(features)))
    records: list[dict[str, Any]] = [  # as a JSON client sends them: NaN as null
        {k: (None if isinstance(v, float) and v != v else v) for k, v in row.items()}
        for row in features.head(200).to_dict(orient="records")
    ]
    columns = {name: [r[name] for r in records] for name in contract.columns}
    assert contract.validate(to_table(columns)).ok
    assert FastCheck(contract).clean(columns)


def test_anything_unusual_is_left_to_the_contract() -> None:
    contract = Contract(
        columns={
            "n": ColumnRule(kind="numeric", nullable=False, min=0, max=10),
            "c": ColumnRule(kind="categorical", categories=("a", "b")),
            "t": ColumnRule(kind="datetime"),
        }
    )
    check = FastCheck(Contract(columns={k: v for k, v in contract.columns.items() if k != "t"}))
    assert check.clean({"n": [1, 2.5], "c": ["a", None]})
    assert not check.clean({"n": [None], "c": ["a"]})  # not nullable
    assert not check.clean({"n": [11], "c": ["a"]})  # over max
    assert not check.clean({"n": ["3"], "c": ["a"]})  # a number as text: the contract reads it
    assert not check.clean({"n": [True], "c": ["a"]})  # a boolean is not a number here
    assert not check.clean({"n": [1], "c": ["z"]})  # outside the categories
    assert not check.clean({"n": [1]})  # a column missing
    assert not FastCheck(contract).clean({"n": [1], "c": ["a"], "t": ["2026-01-01"]})


homogeneous = st.one_of(
    st.lists(st.one_of(st.none(), st.integers(-(2**70), 2**70)), max_size=8),
    st.lists(st.one_of(st.none(), st.integers(-1200, 1200)), max_size=8),
    st.lists(st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True)), max_size=8),
    st.lists(st.one_of(st.none(), st.integers(-1200, 1200), st.floats(-2000, 2000)), max_size=8),
    st.lists(st.one_of(st.none(), st.booleans()), max_size=8),
    st.lists(st.one_of(st.none(), st.text(max_size=3)), max_size=8),
    st.just([10**400, 1.5]),  # an integer no float holds, beside a float
)


@settings(max_examples=600, deadline=None)
@given(rule=rules(), values=homogeneous)
def test_the_per_column_check_never_passes_what_the_per_value_check_fails(
    rule: ColumnRule, values: list[Any]
) -> None:
    """The whole-column shortcut (type set, min, max) agrees with the per-value rule."""
    if _compile_column(rule)(values):
        assert all(map(_compile(rule), values)), (rule, values)


def test_an_infinity_is_never_clean_even_without_bounds() -> None:
    contract = Contract(columns={"n": ColumnRule(kind="numeric")})
    for value in (math.inf, -math.inf):
        assert not FastCheck(contract).clean({"n": [1.0, value]})
        assert not contract.validate(to_table({"n": [1.0, value]})).ok
