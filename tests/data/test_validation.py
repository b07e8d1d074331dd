"""Property tests: whatever the batch, validation splits it without losing a row."""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa
from hypothesis import example, given, settings
from hypothesis import strategies as st

from setpoint.data._batch import to_table
from setpoint.data.contract import ColumnRule, Contract
from setpoint.data.validation import HARD_RULES, SOFT_RULES
from setpoint.errors import SetpointError

CONTRACT = Contract(
    columns={
        "n": ColumnRule(kind="numeric", nullable=False, min=0.0, max=100.0),
        "k": ColumnRule(kind="integer", min=-5, max=5),
        "c": ColumnRule(kind="categorical", categories=("a", "b")),
        "b": ColumnRule(kind="boolean", required=False),
    }
)

values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=5),
    st.sampled_from(["a", "b", "1", "2.5", "true"]),
    st.lists(st.integers(), max_size=2),
)
records = st.lists(
    st.dictionaries(st.sampled_from(["n", "k", "c", "b", "zz"]), values, max_size=5),
    min_size=1,
    max_size=30,
)


@settings(max_examples=300, deadline=None)
@given(records)
@example(rows=[{"n": 2**53 + 1}])  # an integer a float bound cannot be compared with by casting
def test_every_row_is_either_accepted_or_rejected_with_reasons(rows: list[dict[str, Any]]) -> None:
    try:
        batch = to_table(rows)
    except SetpointError:
        return  # a batch Arrow cannot hold at all is refused with our error; nothing else
    report = CONTRACT.validate(batch)
    accepted = report.accepted(batch)
    rejected = report.rejected(batch)
    assert accepted.num_rows + rejected.num_rows == batch.num_rows
    assert sorted(rejected.column("_row").to_pylist()) == report.invalid_rows.tolist()
    for reasons in rejected.column("_reasons").to_pylist():
        assert json.loads(reasons), "a rejected row has at least one reason"
    if accepted.num_rows:  # what was accepted validates cleanly on its own
        again = CONTRACT.validate(accepted)
        assert again.ok, again.to_details()


def test_a_valid_batch_passes_whole() -> None:
    batch = pa.table({"n": [1.0, 99.0], "k": [0, 5], "c": ["a", "b"], "b": [True, None]})
    report = CONTRACT.validate(batch)
    assert report.ok
    assert report.accepted(batch) == batch
    assert report.rejected(batch).num_rows == 0
    assert report.summary() == []


@settings(max_examples=200, deadline=None)
@given(records, st.sets(st.sampled_from(["n", "k", "c", "b"])))
def test_what_refuses_is_exactly_the_hard_rules_and_the_enforced_columns(
    rows: list[dict[str, Any]], enforced: set[str]
) -> None:
    try:
        batch = to_table(rows)
    except SetpointError:
        return
    columns = {
        n: r.model_copy(update={"enforce": "reject" if n in enforced else "score"})
        for n, r in CONTRACT.columns.items()
    }
    report = Contract(columns=columns, unknown_columns=CONTRACT.unknown_columns).validate(batch)
    details = report.to_details(limit=None)
    assert report.refuses.tolist() == [
        v["rule"] in HARD_RULES or v["column"] in enforced for v in details
    ]
    refusing, scored = report.split()
    assert refusing.n_violations + scored.n_violations == report.n_violations
    assert all(v["rule"] in SOFT_RULES for v in scored.to_details(limit=None))
    assert all(v["column"] not in enforced for v in scored.to_details(limit=None))
