"""``Workspace.validate_file``: a file checked as it streams, its accepted rows written
out, problems of the whole file reported once, the quarantine's reasons counted right."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest

from setpoint.errors import ContractViolationError, UsageError
from setpoint.workspace import Workspace


def patients(n: int = 40) -> pd.DataFrame:
    return pd.DataFrame({"age": [20 + i % 50 for i in range(n)], "bp": [90 + i for i in range(n)]})


def batch_with_four_bad_rows() -> pd.DataFrame:
    batch = patients()
    batch["age"] = batch["age"].astype("Int64")
    batch.loc[[3, 17], "age"] = None  # age is never missing in the reference
    batch.loc[[8, 30], "bp"] = 500  # past the reference's max
    return batch


def read(path: Path) -> pa.Table:
    return pa_csv.read_csv(path) if path.suffix == ".csv" else pq.read_table(path)


@pytest.fixture
def checked(workspace: Workspace, tmp_path: Path) -> tuple[Workspace, Path]:
    workspace.add_dataset("patients", patients())
    path = tmp_path / "batch.csv"
    batch_with_four_bad_rows().to_csv(path, index=False)
    return workspace, path


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_quarantine_mode_writes_the_accepted_rows(
    checked: tuple[Workspace, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    suffix: str,
) -> None:
    monkeypatch.setattr("setpoint.data.reader.BLOCK_SIZE", 64)  # many batches
    workspace, path = checked
    output = tmp_path / f"accepted{suffix}"
    outcome = workspace.validate_file("patients", path, mode="quarantine", output=output)
    assert (outcome.n_rows, outcome.n_accepted) == (40, 36)
    written = read(output)
    assert written.num_rows == outcome.n_accepted
    expected = batch_with_four_bad_rows().drop(index=[3, 8, 17, 30]).reset_index(drop=True)
    assert written.to_pandas().astype("int64").equals(expected.astype("int64"))
    assert outcome.output == output


def test_warn_and_reject_modes_write_the_rows_that_passed(
    workspace: Workspace, tmp_path: Path
) -> None:
    workspace.add_dataset("patients", patients())
    good = tmp_path / "good.csv"
    patients().to_csv(good, index=False)
    output = tmp_path / "passed.parquet"
    assert workspace.validate_file("patients", good, mode="reject", output=output).ok
    assert read(output).num_rows == 40
    bad = tmp_path / "bad.csv"
    batch_with_four_bad_rows().to_csv(bad, index=False)
    refused = tmp_path / "refused.csv"
    with pytest.raises(ContractViolationError):
        workspace.validate_file("patients", bad, mode="reject", output=refused)
    assert not refused.exists()  # a refused file leaves no half-written output
    assert not [p.name for p in tmp_path.iterdir() if "refused" in p.name]
    warned = workspace.validate_file("patients", bad, mode="warn", output=refused)
    assert read(refused).num_rows == warned.n_accepted == 40


def test_an_output_of_another_type_is_refused_before_reading(
    checked: tuple[Workspace, Path], tmp_path: Path
) -> None:
    workspace, path = checked
    with pytest.raises(UsageError, match=r"\.csv or \.parquet"):
        workspace.validate_file("patients", path, mode="quarantine", output=tmp_path / "a.xlsx")
    assert workspace.quarantine.list() == []


def test_quarantine_counts_the_top_reasons_across_rows(
    workspace: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("setpoint.data.reader.BLOCK_SIZE", 64)
    workspace.add_dataset("patients", patients())
    batch = patients()
    batch["age"] = batch["age"].astype("Int64")
    batch.loc[range(30), "age"] = None  # most rows: age missing
    batch.loc[[33, 35], "bp"] = 500  # a few: bp past its max
    path = tmp_path / "batch.csv"
    batch.to_csv(path, index=False)
    outcome = workspace.validate_file("patients", path, mode="quarantine", keep_soft=False)
    assert outcome.quarantine is not None
    [kept] = workspace.quarantine.list("patients")
    assert kept.summary[0] | {"example": None} == {
        "column": "age",
        "rule": "not_null",
        "count": 30,
        "example": None,
    }
    assert [(s["column"], s["rule"], s["count"]) for s in kept.summary] == [
        ("age", "not_null", 30),
        ("bp", "max", 2),
    ]


def test_the_quarantine_summary_counts_only_the_quarantined_rows(
    workspace: Workspace, tmp_path: Path
) -> None:
    """With keep_soft, rows past a bound are accepted: they are not the quarantine's
    reasons, however many they are."""
    workspace.add_dataset("patients", patients())
    batch = patients()
    batch["age"] = batch["age"].astype("Int64")
    batch.loc[[0, 1], "age"] = None
    batch.loc[range(10, 40), "bp"] = 500
    path = tmp_path / "batch.csv"
    batch.to_csv(path, index=False)
    outcome = workspace.validate_file("patients", path, mode="quarantine", keep_soft=True)
    assert outcome.quarantine is not None
    assert [(s["column"], s["rule"], s["count"]) for s in outcome.quarantine.summary] == [
        ("age", "not_null", 2)
    ]


def test_an_undeclared_column_is_one_problem_of_the_file(
    workspace: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("setpoint.data.reader.BLOCK_SIZE", 64)
    workspace.add_dataset("patients", patients())
    path = tmp_path / "batch.csv"
    batch_with_four_bad_rows().assign(ward="east").to_csv(path, index=False)
    output = tmp_path / "accepted.csv"
    with pytest.raises(ContractViolationError) as caught:
        workspace.validate_file("patients", path, mode="quarantine", output=output)
    message = caught.value.message
    assert "ward" in message
    assert "unknown_columns: drop" in message
    assert caught.value.details["problems"] == [
        {
            "column": "ward",
            "rule": "unknown_column",
            "value": None,
            "message": caught.value.details["problems"][0]["message"],
        }
    ]
    # the rows' own violations are still listed, without the file's problem in each
    rules = {(s["column"], s["rule"]): s["count"] for s in caught.value.details["summary"]}
    assert rules == {("age", "not_null"): 2, ("bp", "max"): 2}
    assert workspace.quarantine.list() == []  # nothing quarantined row by row
    assert not output.exists()
    warned = workspace.validate_file("patients", path, mode="warn")
    assert [p["column"] for p in warned.problems] == ["ward"]
    assert warned.n_violations == 5  # 4 row violations, 1 problem of the file


def test_an_undeclared_column_is_dropped_with_a_warning_when_the_contract_says_so(
    workspace: Workspace, tmp_path: Path
) -> None:
    workspace.add_dataset("patients", patients())
    contract = workspace.contract("patients")
    workspace.attach_contract(
        "patients", contract.to_yaml().replace("unknown_columns: reject", "unknown_columns: drop")
    )
    path = tmp_path / "batch.csv"
    batch_with_four_bad_rows().assign(ward="east").to_csv(path, index=False)
    output = tmp_path / "accepted.parquet"
    outcome = workspace.validate_file("patients", path, mode="quarantine", output=output)
    assert outcome.problems == []
    assert [(w["column"], w["rule"]) for w in outcome.warnings] == [("ward", "unknown_column")]
    assert read(output).column_names == ["age", "bp"]
    assert outcome.quarantine is not None
    assert outcome.quarantine.n_rejected == 4


def test_a_column_of_the_wrong_type_is_one_problem_of_the_file(
    workspace: Workspace, tmp_path: Path
) -> None:
    workspace.add_dataset("patients", patients())
    path = tmp_path / "batch.parquet"
    pq.write_table(pa.table({"age": [True] * 40, "bp": list(range(90, 130))}), path)
    with pytest.raises(ContractViolationError) as caught:
        workspace.validate_file("patients", path, mode="quarantine")
    [problem] = caught.value.details["problems"]
    assert (problem["column"], problem["rule"], problem["value"]) == ("age", "type", "bool")
    assert "integer" in caught.value.message
    assert caught.value.details["violations"] == []
