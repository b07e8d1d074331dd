"""A window's rows against the data contract: counted by column and rule, and the
refused rows' inputs added to the window's feature counts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import orjson
import pyarrow as pa

from setpoint.monitoring.contract_counts import contract_quality, refused_in, with_refused
from setpoint.monitoring.counts import CategoricalCounts, NumericCounts
from setpoint.monitoring.reference import Reference
from setpoint.monitoring.summary import ReferenceSummary, summarize
from setpoint.monitoring.traffic import Refused, Traffic

T0 = datetime(2026, 6, 1, tzinfo=UTC)
STAMP = pa.timestamp("us", tz="UTC")


def json_texts(rows: list[Any]) -> pa.Array:
    return pa.array([None if r is None else orjson.dumps(r).decode() for r in rows], pa.string())


def traffic(marks: list[Any], refused: Refused | None = None) -> Traffic:
    n = len(marks)
    inputs = pa.table({"x": pa.array(np.arange(n, dtype=float)), "c": pa.array(["a"] * n)})
    return Traffic(
        log=pa.table({"ts": pa.array([T0 + timedelta(minutes=i) for i in range(n)], STAMP)}),
        inputs=inputs,
        predictions=pa.array([0] * n),
        probabilities=None,
        violations=json_texts(marks),
        refused=refused,
    )


def refusals(inputs: list[dict[str, Any]], reasons: list[list[tuple[str, str]]]) -> Refused:
    return Refused(
        pa.array([T0 + timedelta(minutes=i) for i in range(len(inputs))], STAMP),
        pa.table({"x": [r.get("x") for r in inputs], "c": [r.get("c") for r in inputs]}),
        json_texts([[{"column": c, "rule": r, "value": None} for c, r in row] for row in reasons]),
    )


def test_rows_are_counted_by_column_and_rule_most_first() -> None:
    marks = [
        None,
        [{"column": "x", "rule": "max"}],
        [{"column": "x", "rule": "max"}, {"column": "c", "rule": "category"}],
        None,
    ]
    refused = refusals(
        [{"x": 1.0, "c": "a"}, {"x": None, "c": "a"}],
        [[("x", "type")], [("x", "not_null"), ("c", "category")]],
    )
    window = traffic(marks, refused)
    found = contract_quality(window, pa.array(range(4)), refused)
    assert found["rejected"] == 2
    assert found["contract"] == {
        "scored": 2,
        "refused": 2,
        "rules": [
            {"column": "c", "rule": "category", "scored": 1, "refused": 1},
            {"column": "x", "rule": "max", "scored": 2, "refused": 0},
            {"column": "x", "rule": "not_null", "scored": 0, "refused": 1},
            {"column": "x", "rule": "type", "scored": 0, "refused": 1},
        ],
    }
    # Only the window's own answered rows count.
    assert contract_quality(window, pa.array([0, 3]), refused)["contract"]["scored"] == 0


def test_traffic_without_marks_or_refusals_counts_zero() -> None:
    plain = Traffic(
        log=pa.table({"ts": pa.array([T0], STAMP)}),
        inputs=pa.table({"x": [1.0], "c": ["a"]}),
        predictions=pa.array([0]),
        probabilities=None,
    )
    refused = refused_in(plain, T0, T0 + timedelta(days=1))
    assert refused.num_rows == 0
    assert refused.inputs.column_names == ["x", "c"]
    assert contract_quality(plain, pa.array([0]), refused) == {
        "contract": {"scored": 0, "refused": 0, "rules": []},
        "rejected": 0,
    }


def test_refused_inputs_join_the_feature_counts_but_not_the_outputs() -> None:
    rng = np.random.default_rng(0)
    table = pa.table(
        {
            "x": rng.normal(size=500),
            "c": rng.choice(["a", "b"], 500),
            "__prediction__": rng.choice(["0", "1"], 500),
        }
    )
    summary = ReferenceSummary.build(
        table, {"x": "numeric", "c": "categorical", "__prediction__": "categorical"}
    )
    ref = Reference(
        model="m@1",
        dataset="d@1",
        task="classification",
        classes=["0", "1"],
        features={"x": "numeric", "c": "categorical"},
        summary=summary,
        sample="",
        calibration=None,
        performance={},
        n_rows=500,
    )
    answered = summarize(table.slice(0, 100), summary)
    refused = refusals([{"x": 50.0, "c": "z"}] * 3 + [{"x": None, "c": "a"}], [[("x", "max")]] * 4)

    merged = with_refused(answered, refused, ref)

    assert merged.n_rows == 104
    x, c = merged.columns["x"], merged.columns["c"]
    assert isinstance(x, NumericCounts)
    assert isinstance(c, CategoricalCounts)
    assert (x.count, x.nulls, x.max) == (103, 1, 50.0)  # past every reference edge
    assert c.unseen == {"z": 3}
    assert merged.columns["__prediction__"] is answered.columns["__prediction__"]
    assert with_refused(answered, refusals([], []), ref) is answered
