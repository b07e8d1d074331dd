"""A lane on its own: which rows of a batch it answers, marks and refuses.

The batch function (``Lane._run``) is called directly, as the micro-batcher's worker
thread would, with a stand-in model that returns one number per row; the answers and
the records they carry for the logs are what is checked.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from serving_support import MemoryLog

from setpoint.data._batch import to_table
from setpoint.data.contract import ColumnRule, Contract
from setpoint.data.validation import HARD_RULES
from setpoint.errors import ContractViolationError, StoreError
from setpoint.models.registry import ModelVersion
from setpoint.serving.lane import Answer, Lane, LoadedModel, PredictRequest

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
CONTRACT = Contract(
    columns={
        "x": ColumnRule(kind="numeric", nullable=False, min=0.0, max=10.0),
        "grade": ColumnRule(kind="categorical", categories=("A", "B")),
        "age": ColumnRule(kind="integer", min=18, max=90, pii=True),
    }
)
CLEAN = {"x": 5.0, "grade": "A", "age": 40}


class Doubler:
    """A stand-in regressor: twice ``x``, as a model would answer, for any batch."""

    task = "regression"
    flavor = "pyfunc"
    classes = None

    def predict(self, rows: Any) -> np.ndarray:
        values = rows.column("x") if isinstance(rows, pa.Table) else pa.array(rows["x"])
        return np.asarray(values.to_pylist(), dtype=float) * 2

    def predict_proba(self, rows: Any) -> None:
        return None


def version() -> ModelVersion:
    return ModelVersion(
        id=1,
        name="doubler",
        version=3,
        flavor="pyfunc",
        task="regression",
        artifacts={},
        flavor_metadata={},
        contract=CONTRACT.to_dict(),
        spec=None,
        evaluation={},
        lineage={},
        description="",
        created_by="test",
        created_at=NOW,
    )


def make_lane(
    contract: Contract = CONTRACT, on_error: str = "reject", refused_log: Any = None
) -> Lane:
    model = LoadedModel(version(), Doubler(), contract)  # type: ignore[arg-type]
    return Lane(
        "e",
        model,
        MemoryLog(),
        max_batch_size=1_000,
        max_wait_ms=0,
        on_error=on_error,
        clock=lambda: NOW,
        refused_log=refused_log,
    )


@pytest.fixture
def lane() -> Iterator[Lane]:
    made = make_lane()
    yield made
    made.batcher.close()


def request(*rows: dict[str, Any]) -> PredictRequest:
    names = list(dict.fromkeys(n for r in rows for n in r))
    return PredictRequest({n: [r.get(n) for r in rows] for n in names}, len(rows))


def marks(answer: Answer) -> list[tuple[int, str, str]]:
    return [(w["row"], w["column"], w["rule"]) for w in answer.warnings]


def test_rows_with_only_soft_violations_are_answered_and_marked(lane: Lane) -> None:
    first = request(CLEAN, {**CLEAN, "x": 12.0}, {**CLEAN, "grade": "Z", "x": -1.0})
    second = request({**CLEAN, "x": 1.0})
    answers = lane._run([first, second])
    assert [a.error for a in answers] == [None, None]
    assert answers[0].predictions == [10.0, 24.0, -2.0]  # every row scored
    assert answers[0].errors == []
    assert marks(answers[0]) == [(1, "x", "max"), (2, "x", "min"), (2, "grade", "category")]
    assert answers[0].warnings[0]["value"] == "12"
    assert not answers[1].warnings
    # The log marks exactly the marked rows, by column and rule.
    logged = {r["row"]: r.get("violations") for r in answers[0].records}
    assert logged == {
        0: None,
        1: [{"column": "x", "rule": "max"}],
        2: [{"column": "x", "rule": "min"}, {"column": "grade", "rule": "category"}],
    }
    assert "violations" not in answers[1].records[0]


def test_values_far_past_the_range_are_scored_without_numpy_warnings(lane: Lane) -> None:
    # Warnings are errors here, as they are in the whole test suite.
    far = request({**CLEAN, "x": 1.7e308}, {**CLEAN, "x": -1.7e308})
    (answer,) = lane._run([far])
    assert answer.error is None
    assert answer.predictions == [math.inf, -math.inf]
    assert marks(answer) == [(0, "x", "max"), (1, "x", "min")]


def test_a_hard_violation_refuses_its_request_with_every_violation(lane: Lane) -> None:
    bad = request({**CLEAN, "x": 20.0}, {**CLEAN, "x": "lots"})
    good = request({**CLEAN, "grade": "Z"})
    refused, answered = lane._run([bad, good])
    assert isinstance(refused.error, ContractViolationError)
    assert {(v["row"], v["column"], v["rule"]) for v in refused.errors} == {
        (0, "x", "max"),
        (1, "x", "type"),
    }
    assert refused.records == []
    assert answered.error is None
    assert marks(answered) == [(0, "grade", "category")]


def test_per_row_answers_soft_rows_and_refuses_hard_ones() -> None:
    lane = make_lane(on_error="per_row")
    try:
        (answer,) = lane._run([request(CLEAN, {**CLEAN, "x": None}, {**CLEAN, "x": 11.0})])
    finally:
        lane.batcher.close()
    assert answer.error is None
    assert answer.predictions == [10.0, None, 22.0]
    assert [(v["row"], v["rule"]) for v in answer.errors] == [(1, "not_null")]
    assert marks(answer) == [(2, "x", "max")]
    assert [r["row"] for r in answer.records] == [0, 2]


def test_an_enforced_column_refuses_what_it_would_otherwise_mark() -> None:
    columns = dict(CONTRACT.columns)
    columns["x"] = ColumnRule(kind="numeric", nullable=False, min=0.0, max=10.0, enforce="reject")
    lane = make_lane(Contract(columns=columns))
    try:
        refused, marked = lane._run([request({**CLEAN, "x": 12.0}), request({**CLEAN, "age": 95})])
    finally:
        lane.batcher.close()
    assert isinstance(refused.error, ContractViolationError)
    assert marked.error is None
    assert marks(marked) == [(0, "age", "max")]


class Picky(Doubler):
    """A model that cannot take a category it never saw (as a one-hot encoder that
    raises on unknown values): any such row fails the whole call."""

    def predict(self, rows: Any) -> np.ndarray:
        grades = rows.column("grade").to_pylist() if isinstance(rows, pa.Table) else rows["grade"]
        if set(grades) - {"A", "B", None}:
            raise ValueError("Found unknown categories ['Z'] in column 0 during transform")
        return super().predict(rows)


@pytest.mark.parametrize("on_error", ["reject", "per_row"])
def test_a_model_that_cannot_take_an_unseen_category_costs_only_that_row(on_error: str) -> None:
    lane = make_lane(on_error=on_error)
    lane.model = LoadedModel(version(), Picky(), CONTRACT)  # type: ignore[arg-type]
    odd = request({**CLEAN, "grade": "Z"}, {**CLEAN, "x": 1.0})
    others = request({**CLEAN, "x": 12.0})
    try:
        # It returns answers: the batch did not fail, so the breaker hears no failure.
        first, second = lane._run([odd, others])
    finally:
        lane.batcher.close()
    # The other caller's row outside the range is still scored and marked.
    assert second.error is None
    assert second.predictions == [24.0]
    assert marks(second) == [(0, "x", "max")]
    # The row the model could not take is refused, kept with its reason.
    assert [(r["row"], r["reasons"]) for r in first.refused] == [
        (0, [{"column": "grade", "rule": "category", "value": "Z"}])
    ]
    if on_error == "reject":
        assert isinstance(first.error, ContractViolationError)
    else:
        assert first.error is None
        assert first.predictions == [None, 2.0]
        assert [(v["row"], v["rule"]) for v in first.errors] == [(0, "category")]


def test_a_model_that_fails_on_clean_rows_still_fails_the_batch() -> None:
    # A "Z" the contract lets through (it lists no categories): nothing to refuse it for,
    # and the row past the range is not what failed the model.
    lenient = Contract(columns={**CONTRACT.columns, "grade": ColumnRule(kind="categorical")})
    lane = make_lane(lenient)
    lane.model = LoadedModel(version(), Picky(), lenient)  # type: ignore[arg-type]
    batch = [request({**CLEAN, "grade": "Z"}), request({**CLEAN, "x": 11.0})]
    try:
        with pytest.raises(ValueError, match="unknown categories"):
            lane._run(batch)
    finally:
        lane.batcher.close()


def test_a_pii_column_is_masked_in_warnings_and_hashed_in_records(lane: Lane) -> None:
    (answer,) = lane._run([request({**CLEAN, "age": 95})])
    assert answer.warnings == [{"row": 0, "column": "age", "rule": "max", "value": "***"}]
    assert answer.records[0]["inputs"]["age"] == lane.model.pii.hash(95)
    assert answer.records[0]["violations"] == [{"column": "age", "rule": "max"}]


# -- refused rows are kept -----------------------------------------------------------------


def test_rows_refused_for_their_values_are_kept_with_the_reasons(lane: Lane) -> None:
    bad = request({**CLEAN, "x": 20.0}, {**CLEAN, "x": "lots", "age": 100}, CLEAN)
    (answer,) = lane._run([bad])
    assert isinstance(answer.error, ContractViolationError)
    # Only the row refused for its values: the others went down with their request.
    assert answer.refused == [
        {
            "request_id": bad.request_id,
            "ts": NOW,
            "endpoint": "e",
            "row": 1,
            "model": "doubler",
            "version": 3,
            "inputs": {"x": "lots", "grade": "A", "age": lane.model.pii.hash(100)},
            "reasons": [{"column": "x", "rule": "type", "value": "lots"}],
        }
    ]


def test_per_row_keeps_the_refused_rows_and_answers_the_rest() -> None:
    lane = make_lane(on_error="per_row")
    try:
        (answer,) = lane._run([request(CLEAN, {**CLEAN, "grade": 7, "x": None})])
    finally:
        lane.batcher.close()
    assert answer.predictions == [10.0, None]
    (kept,) = answer.refused
    assert kept["row"] == 1
    assert kept["reasons"] == [{"column": "x", "rule": "not_null", "value": None}]


def test_a_shadow_copy_refused_keeps_nothing(lane: Lane) -> None:
    copy = request({**CLEAN, "x": "lots"})
    copy.route = "shadow"
    (answer,) = lane._run([copy])
    assert answer.error is not None
    assert not answer.refused


class FailingLog(MemoryLog):
    async def append_async(self, records: Any, *, checked: bool = False) -> None:
        raise StoreError("the disk is full")


def test_a_refusal_is_durable_before_it_is_answered() -> None:
    refused_log = MemoryLog()

    async def ask(lane: Lane) -> tuple[Answer, list[Any]]:
        answer = await lane.predict(request({**CLEAN, "x": "lots"}))
        return answer, list(refused_log.records)  # what was stored when the answer came

    lane = make_lane(refused_log=refused_log)
    try:
        answer, stored = asyncio.run(ask(lane))
    finally:
        lane.batcher.close()
    assert answer.error is not None
    assert [r["reasons"][0]["rule"] for r in stored] == ["type"]

    failing = make_lane(refused_log=FailingLog())
    try:
        with pytest.raises(StoreError, match="disk is full"):  # no 422 without the record
            asyncio.run(ask(failing))
    finally:
        failing.batcher.close()


# -- property: what refuses is exactly the hard and enforced violations ------------------

VALUES = {
    "x": st.one_of(st.none(), st.floats(-5, 15), st.sampled_from(["lots", "7"])),
    "grade": st.one_of(st.none(), st.sampled_from(["A", "B", "Z"]), st.integers(0, 2)),
    "age": st.one_of(st.none(), st.integers(0, 120), st.just("old")),
}


@settings(max_examples=150, deadline=None)
@given(
    batch=st.lists(
        st.lists(st.fixed_dictionaries(VALUES), min_size=1, max_size=4), min_size=1, max_size=4
    ),
    enforced=st.sets(st.sampled_from(list(CONTRACT.columns))),
    on_error=st.sampled_from(["reject", "per_row"]),
)
def test_what_serving_refuses_is_exactly_the_hard_or_enforced_violations(
    batch: list[list[dict[str, Any]]], enforced: set[str], on_error: str
) -> None:
    contract = Contract(
        columns={
            n: r.model_copy(update={"enforce": "reject" if n in enforced else "score"})
            for n, r in CONTRACT.columns.items()
        }
    )
    lane = make_lane(contract, on_error)
    try:
        answers = lane._run([request(*rows) for rows in batch])
    finally:
        lane.batcher.close()
    # The oracle: the contract's violations in the whole batch, by request.
    every = [row for rows in batch for row in rows]
    table = to_table({n: [r.get(n) for r in every] for n in CONTRACT.columns})
    starts = np.cumsum([0] + [len(rows) for rows in batch])
    by_request: list[list[tuple[int, str, str]]] = [[] for _ in batch]
    for v in contract.validate(table).to_details(limit=None):
        index = int(np.searchsorted(starts, v["row"], side="right") - 1)
        by_request[index].append((v["row"] - int(starts[index]), v["column"], v["rule"]))

    for rows, found, answer in zip(batch, by_request, answers, strict=True):
        refused = {row for row, column, rule in found if rule in HARD_RULES or column in enforced}
        if refused and on_error == "reject":
            assert isinstance(answer.error, ContractViolationError)
            assert _key(answer.errors) == sorted(found)  # every violation, soft ones too
            assert sorted(r["row"] for r in answer.refused) == sorted(refused)
            continue
        assert answer.error is None
        answered = [i for i in range(len(rows)) if i not in refused]
        assert [i for i, p in enumerate(answer.predictions) if p is not None] == answered
        assert _key(answer.errors) == sorted(v for v in found if v[0] in refused)
        soft = sorted(v for v in found if v[0] not in refused)
        assert _key(answer.warnings) == soft
        assert all(rule not in HARD_RULES and column not in enforced for _, column, rule in soft)
        assert [r["row"] for r in answer.records] == answered
        assert sorted(r["row"] for r in answer.refused) == sorted(refused)
        for kept in answer.refused:  # the reasons are the violations that refused the row
            assert sorted((kept["row"], w["column"], w["rule"]) for w in kept["reasons"]) == sorted(
                v for v in found if v[0] == kept["row"] and (v[2] in HARD_RULES or v[1] in enforced)
            )
        marked = sorted(
            (r["row"], m["column"], m["rule"])
            for r in answer.records
            for m in r.get("violations", [])
        )
        assert marked == soft


def marks_of(record: dict[str, Any]) -> list[dict[str, str]]:
    return list(record.get("violations", []))


def _key(violations: Any) -> list[tuple[Any, ...]]:
    return sorted((v["row"], v["column"], v["rule"]) for v in violations)


def test_a_pii_column_to_drop_is_left_out_of_every_record() -> None:
    columns = dict(CONTRACT.columns)
    columns["age"] = ColumnRule(kind="integer", min=18, max=90, pii="drop")
    lane = make_lane(Contract(columns=columns))
    try:
        kept, refused = lane._run([request(CLEAN), request({**CLEAN, "x": "lots"})])
    finally:
        lane.batcher.close()
    assert kept.records[0]["inputs"] == {"x": 5.0, "grade": "A"}
    assert refused.refused[0]["inputs"] == {"x": "lots", "grade": "A"}
