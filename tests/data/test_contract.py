from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import jsonschema
import pyarrow as pa
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from setpoint.data._batch import to_table
from setpoint.data.contract import ColumnRule, Contract
from setpoint.data.profile import profile_table
from setpoint.data.validation import ValidationReport
from setpoint.errors import InvalidSpecError


@pytest.fixture
def contract() -> Contract:
    reference = pa.table(
        {
            "age": [20, 40, 60, None],
            "income": [1000.0, 2000.0, 3000.0, 4000.0],
            "grade": ["A", "B", "C", "A"],
            "owner": [True, False, True, False],
            "signed": pa.array([0, 1, 2, 3], pa.timestamp("s")),
        }
    )
    return Contract.infer(profile_table(reference), range_tolerance=0.1)


def test_inference_reads_the_reference(contract: Contract) -> None:
    assert contract.columns["age"] == ColumnRule(kind="integer", nullable=True, min=16, max=64)
    assert contract.columns["income"] == ColumnRule(
        kind="numeric", nullable=False, min=700.0, max=4300.0
    )
    assert contract.columns["grade"].categories == ("A", "B", "C")
    assert contract.columns["owner"].kind == "boolean"
    assert contract.columns["signed"].kind == "datetime"
    assert contract.unknown_columns == "reject"


def test_widened_ranges_do_not_cross_zero_for_non_negative_columns() -> None:
    reference = pa.table({"amount": [0.5, 100.0], "delta": [-1.0, 9.0]})
    contract = Contract.infer(profile_table(reference), range_tolerance=0.5)
    assert (contract.columns["amount"].min, contract.columns["amount"].max) == (
        0.0,
        149.8,
    )  # 149.75 up
    assert contract.columns["delta"].min == -6.0


def test_yaml_round_trip_keeps_every_rule(contract: Contract) -> None:
    text = contract.to_yaml()
    assert text.startswith("# setpoint data contract")
    assert Contract.from_yaml(text) == contract


def test_a_person_can_edit_the_yaml(contract: Contract) -> None:
    edited = contract.to_yaml().replace("- C\n", "- C\n    - D\n")
    assert Contract.from_yaml(edited).columns["grade"].categories == ("A", "B", "C", "D")


def test_a_file_with_many_errors_reports_every_error_in_one_go(contract: Contract) -> None:
    batch = to_table(
        [
            {"age": 30, "income": 1500.0, "grade": "A", "owner": True, "signed": "2024-01-01"},
            {"age": "old", "income": None, "grade": "Z", "owner": "maybe", "signed": "never"},
            {"age": 99, "income": float("inf"), "grade": "B", "owner": False, "signed": None},
            {"age": 2.5, "income": -5.0, "grade": None, "owner": 1, "signed": "2024-02-30"},
        ]
    )
    report = contract.validate(batch)
    found = {(v["row"], v["column"], v["rule"]) for v in report.to_details(limit=None)}
    assert found == {
        (1, "age", "type"),
        (1, "income", "not_null"),
        (1, "grade", "category"),
        (1, "owner", "type"),
        (1, "signed", "type"),
        (2, "age", "max"),
        (2, "income", "not_finite"),
        (2, "signed", "not_null"),
        (3, "age", "type"),
        (3, "income", "min"),
        (3, "grade", "not_null"),
    }
    assert report.invalid_rows.tolist() == [1, 2, 3]
    by_rule = {(s["column"], s["rule"]): s for s in report.summary()}
    assert by_rule[("age", "type")]["count"] == 2
    assert by_rule[("grade", "category")]["example"] == "Z"


def test_missing_and_unknown_columns_fail_the_whole_batch(contract: Contract) -> None:
    batch = pa.table(
        {"age": [30], "income": [1.0e3], "grade": ["A"], "owner": [True], "extra": [1]}
    )
    report = contract.validate(batch)
    rules = {(v["column"], v["rule"], v["row"]) for v in report.to_details()}
    assert rules == {("signed", "missing_column", None), ("extra", "unknown_column", None)}
    assert report.accepted(batch).num_rows == 0


def test_unknown_column_policies(contract: Contract) -> None:
    row = {"age": 30, "income": 1.0e3, "grade": "A", "owner": True, "signed": "2024-01-01"}
    batch = to_table([{**row, "extra": 1}])
    dropping = Contract(columns=contract.columns, unknown_columns="drop")
    assert dropping.validate(batch).ok
    assert "extra" not in dropping.validate(batch).accepted(batch).column_names
    allowing = Contract(columns=contract.columns, unknown_columns="allow")
    assert "extra" in allowing.validate(batch).accepted(batch).column_names


def test_optional_columns_may_be_absent(contract: Contract) -> None:
    columns = dict(contract.columns)
    columns["signed"] = ColumnRule(kind="datetime", required=False)
    batch = pa.table({"age": [30], "income": [1.0e3], "grade": ["A"], "owner": [True]})
    assert Contract(columns=columns).validate(batch).ok


@pytest.mark.parametrize("beyond", [-(2**63) - 1, 2**63, 10**30])
def test_an_integer_beyond_64_bits_is_refused_for_an_integer_column(beyond: int) -> None:
    """As JSON sends it: -2**63 - 1 would pass as a float (it rounds to -2**63)."""
    contract = Contract(columns={"age": ColumnRule(kind="integer")})
    report = contract.validate(to_table({"age": [beyond, 30]}))
    assert [d["row"] for d in report.to_details()] == [0]


def test_text_that_holds_good_values_is_accepted(contract: Contract) -> None:
    # What a CSV or JSON client sends: numbers and booleans as text.
    batch = to_table(
        {
            "age": [" 30", "+41"],
            "income": ["1.5e3", "2000"],
            "grade": ["A", "C"],
            "owner": ["true", "No"],
            "signed": ["2024-01-01T10:00:00Z", "2024-01-01 10:00"],
        }
    )
    assert contract.validate(batch).to_details() == []


def test_pii_columns_keep_no_values(contract: Contract) -> None:
    masked = contract.without_values(["grade", "income"])
    assert masked.columns["grade"] == ColumnRule(kind="categorical", nullable=False, pii=True)
    assert masked.columns["income"].min is None
    assert masked.columns["age"] == contract.columns["age"]


def test_restrict_keeps_the_named_columns_in_order(contract: Contract) -> None:
    assert list(contract.restrict(["grade", "age"]).columns) == ["grade", "age"]


def test_invalid_yaml_lists_every_problem_by_path() -> None:
    text = """
unknown_columns: sometimes
colour: blue
columns:
  age: {kind: integr, min: ten}
  grade: {kind: categorical, categories: [], nullable: maybe}
  income: {kind: numeric, min: 5, max: 1, frobnicate: 1}
  name: just text
"""
    with pytest.raises(InvalidSpecError) as caught:
        Contract.from_yaml(text)
    # Each problem leads with where it is in the text (<text>:LINE:COLUMN), then its path.
    problems = [re.sub(r"^<text>:\d+:\d+: ", "", p) for p in caught.value.details]
    assert len(problems) == len([p for p in caught.value.details if p.startswith("<text>:")])
    assert any(p.startswith("unknown_columns:") for p in problems)
    assert any(p.startswith("colour: unknown key") for p in problems)
    assert any(p.startswith("columns.age.kind:") for p in problems)
    assert any(p.startswith("columns.age.min:") for p in problems)
    assert any(p.startswith("columns.grade.categories:") for p in problems)
    assert any(p.startswith("columns.grade.nullable:") for p in problems)
    assert any("min 5 is greater than max 1" in p for p in problems)
    assert any(p.startswith("columns.income.frobnicate:") for p in problems)
    assert any(p.startswith("columns.name:") for p in problems)
    assert len(problems) == 9


@pytest.mark.parametrize("text", ["columns: [", "- a list", ""])
def test_text_that_is_not_a_contract(text: str) -> None:
    with pytest.raises(InvalidSpecError):
        Contract.from_yaml(text)


def test_enforce_is_parsed_and_written_only_when_not_the_default() -> None:
    text = """
columns:
  age: {kind: integer, min: 18, max: 90, enforce: reject}
  grade: {kind: categorical, categories: [A, B]}
"""
    contract = Contract.from_yaml(text)
    assert contract.columns["age"].enforce == "reject"
    assert contract.columns["grade"].enforce == "score"
    assert contract.enforced == frozenset({"age"})
    written = contract.to_dict()["columns"]
    assert written["age"]["enforce"] == "reject"
    assert "enforce" not in written["grade"]
    assert Contract.from_yaml(contract.to_yaml()) == contract
    assert "enforce:" in contract.to_yaml().split("unknown_columns")[0]  # the header says it


def test_an_enforce_that_is_not_score_or_reject_is_named_by_path() -> None:
    with pytest.raises(InvalidSpecError) as caught:
        Contract.from_yaml("columns:\n  age: {kind: integer, enforce: always}\n")
    assert caught.value.details == [
        "<text>:2:24: columns.age.enforce: 'always' is not one of score, reject (score: "
        "answer a row outside min/max/categories with a warning; reject: refuse it)"
    ]


def test_masking_and_restricting_keep_enforce(contract: Contract) -> None:
    columns = {
        **contract.columns,
        "income": contract.columns["income"].model_copy(update={"enforce": "reject"}),
    }
    enforced = Contract(columns=columns)
    assert enforced.without_values(["income"]).columns["income"].enforce == "reject"
    assert enforced.restrict(["income"]).enforced == frozenset({"income"})


def test_the_report_tells_which_violations_refuse_at_serving(contract: Contract) -> None:
    columns = {
        **contract.columns,
        "grade": contract.columns["grade"].model_copy(update={"enforce": "reject"}),
    }
    enforced = Contract(columns=columns)
    batch = to_table(
        [
            {"age": 99, "income": 1500.0, "grade": "Z", "owner": True, "signed": "2024-01-01"},
            {"age": "old", "income": 9e9, "grade": "A", "owner": True, "signed": "2024-01-01"},
            {"age": 30, "income": -1.0, "grade": "B", "owner": True, "signed": "2024-01-01"},
        ]
    )
    report = enforced.validate(batch)
    refusing, scored = report.split()
    # hard rules refuse, and so does the soft rule of the enforced column
    assert violations(refusing) == {(0, "grade", "category"), (1, "age", "type")}
    assert violations(scored) == {(0, "age", "max"), (1, "income", "max"), (2, "income", "min")}
    assert report.refuses.tolist() == [
        (v["column"], v["rule"]) in {("grade", "category"), ("age", "type")}
        for v in report.to_details(limit=None)
    ]
    assert refusing.invalid_rows.tolist() == [0, 1]
    # batch validation is unchanged: every rule is a violation
    assert report.invalid_rows.tolist() == [0, 1, 2]
    plain = contract.validate(batch)
    assert plain.refuses.tolist() == [v["rule"] == "type" for v in plain.to_details(limit=None)]


def violations(report: ValidationReport) -> set[tuple[int | None, str, str]]:
    return {(v["row"], v["column"], v["rule"]) for v in report.to_details(limit=None)}


def _significant(value: float) -> int:
    digits = Decimal(repr(value)).normalize().as_tuple().digits
    return 0 if value == 0 else len(digits)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.floats(min_value=-1e9, max_value=1e9, allow_nan=False, allow_subnormal=False),
        min_size=2,
        max_size=30,
    ),
    st.sampled_from([0.0, 0.01, 0.1]),
)
def test_inferred_bounds_hold_every_value_with_few_digits(
    values: list[float], tolerance: float
) -> None:
    contract = Contract.infer(profile_table(pa.table({"x": values})), range_tolerance=tolerance)
    rule = contract.columns["x"]
    assert rule.min is not None
    assert rule.max is not None
    assert rule.min <= min(values)
    assert max(values) <= rule.max
    assert contract.validate(pa.table({"x": values})).ok
    spread, largest = max(values) - min(values), max(abs(v) for v in values)
    if spread >= largest / 10:  # a narrow range far from zero keeps the digits it needs
        assert _significant(rule.min) <= 4, rule
        assert _significant(rule.max) <= 4, rule


def test_inferred_bounds_drop_float_noise_and_integers_stay_integers() -> None:
    reference = pa.table({"rooms": [1.1, 44.620000000000005], "floors": [1, 7]})
    contract = Contract.infer(profile_table(reference))
    assert (contract.columns["rooms"].min, contract.columns["rooms"].max) == (1.1, 44.63)
    floors = contract.columns["floors"]
    assert (floors.min, floors.max) == (1, 7)
    assert isinstance(floors.min, int)
    assert isinstance(floors.max, int)
    assert "44.620000000000005" not in contract.to_yaml()


# -- the contract as a document: its reader and its JSON Schema agree ----------------


def variants(contract: Contract) -> list[Contract]:
    """The inferred contract, and with each form a person may write: pii true (hash)
    and drop, enforce: reject, categories edited, a column not required."""
    columns = contract.columns
    return [
        contract,
        contract.without_values(["income"]),
        contract.model_copy(
            update={
                "unknown_columns": "allow",
                "columns": {
                    **columns,
                    "age": columns["age"].model_copy(update={"enforce": "reject"}),
                    "grade": columns["grade"].model_copy(
                        update={"categories": ("A", "B", "C", "D"), "enforce": "reject"}
                    ),
                    "owner": columns["owner"].model_copy(update={"pii": "drop"}),
                    "signed": columns["signed"].model_copy(update={"pii": True, "required": False}),
                },
            }
        ),
    ]


def test_a_contract_reads_back_equal_from_its_dict(contract: Contract) -> None:
    for each in variants(contract):
        assert Contract.read(each.to_dict()) == each
        assert Contract.from_dict(each.to_dict()) == each
    dropped = variants(contract)[2]
    assert dropped.to_dict()["columns"]["owner"]["pii"] == "drop"
    assert dropped.to_dict()["columns"]["signed"]["pii"] is True
    assert Contract.read(dropped.to_dict()).columns["owner"].pii_mode == "drop"


def test_the_schema_accepts_every_contract_setpoint_writes(contract: Contract) -> None:
    schema = Contract.model_json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    for each in variants(contract):
        validator.validate(each.to_dict())
        validator.validate(yaml.safe_load(each.to_yaml()))


@pytest.mark.parametrize(
    "rule",
    [
        {"kind": "integr"},
        {"kind": "string", "min": 1},
        {"kind": "numeric", "categories": ["a"]},
        {"kind": "categorical", "categories": []},
        {"kind": "integer", "max": "ten"},
        {"kind": "integer", "max": True},
        {"kind": "string", "pii": "mask"},
        {"kind": "string", "enforce": "always"},
        {"kind": "string", "nullable": "yes"},
        {"kind": "integer", "maxx": 3},
        {"nullable": True},
    ],
)
def test_the_schema_and_the_reader_refuse_the_same_rules(rule: dict[str, Any]) -> None:
    document = {"columns": {"age": rule}}
    validator = jsonschema.Draft202012Validator(Contract.model_json_schema())
    assert not validator.is_valid(document)
    with pytest.raises(InvalidSpecError) as caught:
        Contract.read(document)
    assert all(line.startswith("columns.age") for line in caught.value.details)


def test_a_misspelled_key_is_named_with_the_key_meant() -> None:
    with pytest.raises(InvalidSpecError) as caught:
        Contract.from_yaml("columns:\n  age: {kind: integer, maxx: 90}\n")
    [problem] = caught.value.details
    assert problem.startswith("<text>:2:24: columns.age.maxx: unknown key; did you mean 'max'?")
    assert "valid keys are kind, nullable, required, min, max" in problem


def test_the_enforced_columns_are_worked_out_once_and_again_for_a_copy(
    contract: Contract,
) -> None:
    assert contract.enforced == frozenset()
    assert contract.enforced is contract.enforced  # cached on the frozen model
    rejecting = contract.model_copy(
        update={
            "columns": {
                **contract.columns,
                "age": contract.columns["age"].model_copy(update={"enforce": "reject"}),
            }
        }
    )
    assert rejecting.enforced == frozenset({"age"})
    assert rejecting.restrict(["age", "grade"]).enforced == frozenset({"age"})
    assert rejecting == Contract.read(rejecting.to_dict())  # the cache is not compared
