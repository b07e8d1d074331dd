"""Datasets, contracts and the quarantine through the workspace, on every backend.

The tests marked ``every_store`` also run with the dataset versions and quarantined
rows in an S3 bucket on loopback (tests/conftest.py): adding a version (staged,
moved in by its hash), adding the same content again, reading a version back whole
and in batches (a contract checked against it), and validating with quarantine.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from setpoint.data.contract import Contract
from setpoint.errors import ContractViolationError, NotFoundError, SetpointError, UsageError
from setpoint.store.schema import metadata
from setpoint.workspace import Workspace


def loans(n: int = 50, shift: int = 0) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "age": [20 + (i + shift) % 50 for i in range(n)],
            "income": [1000.0 + 10 * i for i in range(n)],
            "grade": [("A", "B", "C")[i % 3] for i in range(n)],
        }
    )


@pytest.mark.every_store
def test_same_content_twice_is_one_version(workspace: Workspace, tmp_path: Path) -> None:
    path = tmp_path / "loans.csv"
    loans().to_csv(path, index=False)
    first = workspace.add_dataset("loans", path)
    again = workspace.add_dataset("loans", path)
    assert (first.version, first.created) == (1, True)
    assert (again.id, again.version, again.created) == (first.id, 1, False)
    assert len(workspace.datasets.list("loans")) == 1


@pytest.mark.every_store
def test_changed_content_is_a_new_version(workspace: Workspace, tmp_path: Path) -> None:
    path = tmp_path / "loans.csv"
    loans().to_csv(path, index=False)
    first = workspace.add_dataset("loans", path)
    loans(shift=1).to_csv(path, index=False)
    second = workspace.add_dataset("loans", path, description="fixed ages")
    assert second.version == 2
    assert second.content_hash != first.content_hash
    assert workspace.dataset("loans").ref == "loans@2"
    assert workspace.dataset("loans@latest").ref == "loans@2"
    assert workspace.dataset("loans@1").content_hash == first.content_hash


@pytest.mark.every_store
def test_a_dataframe_and_its_arrow_table_are_the_same_content(workspace: Workspace) -> None:
    frame = loans()
    first = workspace.add_dataset("loans", frame)
    assert not workspace.add_dataset(
        "loans", pa.Table.from_pandas(frame, preserve_index=False)
    ).created
    assert workspace.load_dataset(first.ref).to_pandas().equals(frame)


def test_a_version_keeps_its_facts_and_profile(workspace: Workspace) -> None:
    version = workspace.add_dataset(
        "loans",
        loans(),
        description="Loan book",
        owner="risk-team",
        tags={"region": "eu"},
        source="warehouse",
    )
    again = workspace.dataset(version.ref)
    assert (again.owner, again.description, again.tags, again.source) == (
        "risk-team",
        "Loan book",
        {"region": "eu"},
        "warehouse",
    )
    assert again.row_count == 50
    assert again.profile.column("income").mean == pytest.approx(1245.0)
    assert [e.action for e in workspace.audit(entity=version.ref)] == ["dataset.add"]


def test_pii_columns_keep_no_values_in_the_metadata(workspace: Workspace) -> None:
    version = workspace.add_dataset("loans", loans(), pii_columns=["age"])
    age = version.profile.column("age")
    assert (age.min, age.max, age.mean, age.quantiles) == (None, None, None, None)
    assert workspace.contract(version.ref).columns["age"].pii
    assert workspace.contract(version.ref).columns["age"].min is None
    with pytest.raises(UsageError, match="PII column"):
        workspace.add_dataset("loans", loans(), pii_columns=["ssn"])


def test_unknown_datasets_and_versions_say_what_exists(workspace: Workspace) -> None:
    with pytest.raises(NotFoundError, match="the workspace has none yet"):
        workspace.dataset("loans")
    workspace.add_dataset("loans", loans())
    with pytest.raises(NotFoundError, match="known datasets: loans"):
        workspace.dataset("lons")
    with pytest.raises(NotFoundError, match="loans has versions 1"):
        workspace.dataset("loans@7")
    with pytest.raises(UsageError):
        workspace.dataset("loans@seven")


def test_an_edited_contract_is_a_new_revision(workspace: Workspace) -> None:
    version = workspace.add_dataset("loans", loans())
    text = workspace.contract(version.ref).to_yaml().replace("- C\n", "- C\n    - D\n")
    assert workspace.attach_contract(version.ref, text, note="grade D launched") == 2
    assert workspace.attach_contract(version.ref, text) == 2  # unchanged: no new revision
    assert workspace.contract(version.ref).columns["grade"].categories == ("A", "B", "C", "D")
    assert [e.action for e in workspace.audit(entity=version.ref)] == [
        "contract.edit",
        "dataset.add",
    ]


def bad_batch() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "age": [30, 200, 40, None],
            "income": [1200.0, 1300.0, -5.0, 1100.0],
            "grade": ["A", "B", "Z", "C"],
        }
    )


def test_reject_mode_lists_every_violation(workspace: Workspace) -> None:
    version = workspace.add_dataset("loans", loans())
    with pytest.raises(ContractViolationError) as caught:
        workspace.validate(version.ref, bad_batch(), mode="reject")
    violations = {(v["row"], v["column"], v["rule"]) for v in caught.value.details["violations"]}
    assert violations == {
        (1, "age", "max"),
        (2, "income", "min"),
        (2, "grade", "category"),
        (3, "age", "not_null"),
    }
    assert workspace.quarantine.list() == []


@pytest.mark.every_store
def test_quarantine_mode_keeps_every_rejected_row_with_its_reasons(
    workspace: Workspace, tmp_path: Path
) -> None:
    version = workspace.add_dataset("loans", loans())
    outcome = workspace.validate(version.ref, bad_batch(), mode="quarantine", source="batch-7")
    assert outcome.accepted.to_pylist() == [{"age": 30, "income": 1200.0, "grade": "A"}]
    kept = outcome.quarantine
    assert kept is not None
    assert (kept.n_rows, kept.n_rejected, kept.source) == (4, 3, "batch-7")
    assert [b.id for b in workspace.quarantine.list("loans")] == [kept.id]
    rows = workspace.quarantine.rows(kept.id).to_pylist()
    assert [r["_row"] for r in rows] == [1, 2, 3]
    reasons = {r["_row"]: {x["rule"] for x in json.loads(r["_reasons"])} for r in rows}
    assert reasons == {1: {"max"}, 2: {"min", "category"}, 3: {"not_null"}}
    assert rows[1]["grade"] == "Z"  # the row is kept as it came
    assert workspace.audit(entity="loans@1")[0].action == "quarantine.add"


def test_keep_soft_lets_rows_outside_ranges_and_categories_pass(workspace: Workspace) -> None:
    version = workspace.add_dataset("loans", loans())
    outcome = workspace.validate(version.ref, bad_batch(), mode="quarantine", keep_soft=True)
    assert outcome.accepted.column("grade").to_pylist() == ["A", "B", "Z"]
    assert outcome.report.n_violations == 4  # the report still lists every violation
    assert outcome.quarantine is not None
    assert workspace.quarantine.rows(outcome.quarantine.id).column("_row").to_pylist() == [3]
    with pytest.raises(ContractViolationError):
        workspace.validate(version.ref, bad_batch(), mode="reject", keep_soft=True)
    soft_only = bad_batch().iloc[:3]
    passed = workspace.validate(version.ref, soft_only, mode="reject", keep_soft=True)
    assert passed.accepted.num_rows == 3


def test_warn_mode_passes_every_row(workspace: Workspace) -> None:
    version = workspace.add_dataset("loans", loans())
    outcome = workspace.validate(version.ref, bad_batch(), mode="warn")
    assert outcome.accepted.num_rows == 4
    assert outcome.report.n_violations == 4


@pytest.mark.every_store
def test_validate_reads_files(workspace: Workspace, tmp_path: Path) -> None:
    version = workspace.add_dataset("loans", loans())
    path = tmp_path / "batch.csv"
    bad_batch().to_csv(path, index=False)
    outcome = workspace.validate(version.ref, path, mode="quarantine")
    assert outcome.quarantine is not None
    assert outcome.quarantine.source == str(path.resolve())
    with pytest.raises(UsageError, match="unsupported file type"):
        workspace.validate(version.ref, tmp_path / "batch.xlsx")
    with pytest.raises(UsageError, match="mode"):
        workspace.validate(version.ref, path, mode="ignore")  # type: ignore[arg-type]


cells = st.one_of(
    st.none(),
    st.integers(-1000, 1000),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["A", "B", "Z", "", "12", "x"]),
    st.booleans(),
)


@pytest.fixture(scope="module")
def sqlite_workspace(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    ws = Workspace.init(tmp_path_factory.mktemp("prop") / "ws", actor="tester")
    ws.add_dataset("loans", loans())
    return ws


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(
        st.fixed_dictionaries({"age": cells, "income": cells, "grade": cells}),
        min_size=1,
        max_size=20,
    )
)
def test_every_row_is_accepted_or_quarantined_with_a_reason(
    sqlite_workspace: Workspace, rows: list[dict[str, Any]]
) -> None:
    try:
        outcome = sqlite_workspace.validate("loans@1", rows, mode="quarantine")
    except SetpointError:
        return  # refused whole, with our error: nothing was accepted, nothing lost
    rejected = (
        sqlite_workspace.quarantine.rows(outcome.quarantine.id) if outcome.quarantine else None
    )
    n_rejected = 0 if rejected is None else rejected.num_rows
    assert outcome.accepted.num_rows + n_rejected == len(rows)
    if rejected is not None:
        assert all(json.loads(r) for r in rejected.column("_reasons").to_pylist())


def test_violations_never_show_pii_values(workspace: Workspace) -> None:
    version = workspace.add_dataset("loans", loans(), pii_columns=["age"])
    outcome = workspace.validate(version.ref, bad_batch(), mode="quarantine")
    assert outcome.quarantine is not None
    age = [s for s in outcome.quarantine.summary if s["column"] == "age"]
    assert age
    assert {s["example"] for s in age} == {"***"}
    assert all(v["value"] == "***" for v in outcome.report.to_details() if v["column"] == "age")


def test_a_batch_using_the_quarantine_column_names_is_refused_whole(workspace: Workspace) -> None:
    version = workspace.add_dataset("loans", loans())
    batch = bad_batch().assign(_reasons="mine")
    with pytest.raises(SetpointError, match="_reasons"):
        workspace.validate(version.ref, batch, mode="quarantine")
    assert workspace.quarantine.list() == []


def test_a_csv_and_its_dataframe_are_the_same_content(workspace: Workspace, tmp_path: Path) -> None:
    path = tmp_path / "loans.csv"
    loans().to_csv(path, index=False)
    first = workspace.add_dataset("loans", path)
    assert not workspace.add_dataset("loans", pd.read_csv(path)).created
    assert workspace.dataset("loans").version == first.version


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"\xff\xfe,b\n1,2\n", "header is not UTF-8"), (b"a,b\ncaf\xe9,2\n", "not UTF-8")],
)
def test_files_that_are_not_utf8_are_refused(
    workspace: Workspace, tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "latin.csv"
    path.write_bytes(content)
    with pytest.raises(SetpointError, match=message):
        workspace.add_dataset("loans", path)


def test_a_pii_mark_added_by_a_contract_edit_masks_the_profile_and_history(
    workspace: Workspace,
) -> None:
    frame = pd.DataFrame({"city": ["Oslo", "Rome", "Oslo"], "income": [1.5, 2.5, 3.5]})
    workspace.add_dataset("people", frame)
    first = workspace.contract("people@1")
    workspace.attach_contract("people@1", first.model_copy(update={"unknown_columns": "allow"}))
    marked = {**first.columns, "city": first.columns["city"].model_copy(update={"pii": True})}
    workspace.attach_contract("people@1", first.model_copy(update={"columns": marked}))

    column = workspace.dataset("people@1").profile.column("city")
    assert (column.top, column.min, column.max) == (None, None, None)
    assert workspace.dataset("people@1").pii_columns == ["city"]
    assert workspace.contract("people@1").columns["city"].categories is None
    with workspace.db.read() as conn:
        for table in metadata.sorted_tables:
            rows = json.dumps([list(r) for r in conn.execute(sa.select(table))], default=str)
            assert "Oslo" not in rows, table.name


def test_quarantine_mode_gives_the_accepted_rows(workspace: Workspace) -> None:
    version = workspace.add_dataset("loans", loans())
    outcome = workspace.validate(version.ref, bad_batch(), mode="quarantine")
    frame = outcome.to_pandas()
    assert frame.to_dict("records") == [{"age": 30, "income": 1200.0, "grade": "A"}]
    assert outcome.to_dict()["n_accepted"] == len(frame) == 1


def test_an_undeclared_column_refuses_the_batch_once_not_every_row(workspace: Workspace) -> None:
    version = workspace.add_dataset("loans", loans())
    batch = bad_batch().assign(branch="north")
    with pytest.raises(ContractViolationError, match="branch") as caught:
        workspace.validate(version.ref, batch, mode="quarantine")
    assert [(p["column"], p["rule"]) for p in caught.value.details["problems"]] == [
        ("branch", "unknown_column")
    ]
    assert all(v["row"] is not None for v in caught.value.details["violations"])
    assert workspace.quarantine.list() == []
    warned = workspace.validate(version.ref, batch, mode="warn")
    assert [p["column"] for p in warned.problems] == ["branch"]
    assert warned.to_dict()["problems"] == warned.problems


def capped_age(workspace: Workspace, ref: str, most: int) -> Contract:
    contract = workspace.contract(ref)
    age = contract.columns["age"].model_copy(update={"max": most})
    return contract.model_copy(update={"columns": {**contract.columns, "age": age}})


@pytest.mark.every_store
def test_attach_contract_refuses_a_contract_the_data_breaks(workspace: Workspace) -> None:
    version = workspace.add_dataset("loans", loans())  # age 20 .. 69
    tight = capped_age(workspace, version.ref, 60)
    with pytest.raises(ContractViolationError, match=r"9 violation\(s\) in 9 of 50") as caught:
        workspace.attach_contract(version.ref, tight)
    first = caught.value.details["violations"][0]
    assert (first["row"], first["column"], first["rule"], first["value"]) == (
        41,
        "age",
        "max",
        "61",
    )
    assert caught.value.details["summary"][0]["count"] == 9
    assert "--force" in caught.value.message
    assert workspace.datasets.contract(version)[1] == 1  # nothing attached
    assert workspace.attach_contract(version.ref, tight, note="cap age", force=True) == 2
    [event] = workspace.audit(entity=version.ref, action="contract.edit")
    assert event.after["forced"] == {"violations": 9, "rows": 9}
    assert "forced" in event.after["note"]


@pytest.mark.every_store
def test_attach_contract_reads_the_version_in_batches(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    version = workspace.add_dataset("loans", loans(200))

    def whole(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("read the whole version")

    monkeypatch.setattr(pq, "read_table", whole)
    monkeypatch.setattr("setpoint.data.io.from_parquet", whole)
    monkeypatch.setattr("setpoint.data.filecheck.STORED_BATCH_ROWS", 16)
    tight = capped_age(workspace, version.ref, 60)
    with pytest.raises(ContractViolationError) as caught:
        workspace.attach_contract(version.ref, tight)
    assert caught.value.details["summary"][0]["count"] == 36  # every batch was checked
