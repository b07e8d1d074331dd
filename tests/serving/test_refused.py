"""Refused rows read back: the table a person exports, and ``setpoint monitor refused``."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from setpoint.cli.main import app
from setpoint.errors import InvalidDataError
from setpoint.serving.log import RecordLog, compact
from setpoint.serving.refused import read_refused, top_reasons
from setpoint.workspace import Workspace

T0 = datetime(2026, 6, 1, 9, tzinfo=UTC)


def refusal(i: int, inputs: dict[str, Any], *reasons: tuple[str, str, Any]) -> dict[str, Any]:
    return {
        "request_id": f"req-{i}",
        "ts": T0 + timedelta(hours=i),
        "endpoint": "credit",
        "row": i % 2,
        "model": "credit-risk",
        "version": 1,
        "inputs": inputs,
        "reasons": [{"column": c, "rule": r, "value": v} for c, r, v in reasons],
    }


@pytest.fixture
def refused(served: Workspace) -> Workspace:
    """Three refused rows of endpoint credit, one of them compacted already."""
    with RecordLog(served.root, kind="refused") as log:
        log.append([refusal(0, {"income": "lots", "age": "***"}, ("income", "type", "lots"))])
    compact(served.root, kind="refused")
    with RecordLog(served.root, kind="refused") as log:
        log.append(
            [
                refusal(1, {"income": 9e9, "age": "***"}, ("income", "max", "9000000000")),
                refusal(
                    2,
                    {"age": "***", "colour": "blue"},
                    ("income", "missing_column", None),
                    ("colour", "unknown_column", None),
                ),
            ]
        )
    return served


def test_the_table_has_the_inputs_where_each_row_came_from_and_why(refused: Workspace) -> None:
    table = read_refused(refused.root, "credit")
    assert table.column_names == [
        "_ts",
        "_request_id",
        "_row",
        "_model",
        "_version",
        "income",
        "age",
        "colour",
        "_reasons",
    ]
    assert table.column("income").to_pylist() == ["lots", "9000000000.0", None]  # as text
    assert table.column("age").to_pylist() == ["***"] * 3
    assert json.loads(table.column("_reasons")[2].as_py())[1] == {
        "column": "colour",
        "rule": "unknown_column",
        "value": None,
    }
    assert top_reasons(table)[0] == ("income", "type", 1)
    assert read_refused(refused.root, "credit", since=T0 + timedelta(hours=1)).num_rows == 2
    assert read_refused(refused.root, "other").num_rows == 0


def test_an_input_named_like_a_table_column_is_an_error(served: Workspace) -> None:
    with RecordLog(served.root, kind="refused") as log:
        log.append([refusal(0, {"_row": 1}, ("_row", "unknown_column", None))])
    with pytest.raises(InvalidDataError, match="_row"):
        read_refused(served.root, "credit")


def run(ws: Workspace, *args: str, code: int = 0) -> Any:
    runner = CliRunner(env={"COLUMNS": "80"})
    result = runner.invoke(app, ["-w", str(ws.root), *args], catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result


def test_the_command_lists_the_latest_in_80_columns(refused: Workspace) -> None:
    out = run(refused, "monitor", "refused", "credit", "--limit", "2").stdout
    assert "credit: 3 refused rows." in out
    assert "Most frequent reasons" in out
    assert "missing_column" in out
    assert "type lots" not in out  # only the latest two are listed
    assert max(len(line) for line in out.splitlines()) <= 80, out

    listed = json.loads(run(refused, "monitor", "refused", "credit", "--json").stdout)
    assert listed["rows"] == 3
    assert [r["request_id"] for r in listed["latest"]] == [f"req-{i}" for i in range(3)]
    assert listed["latest"][1]["inputs"] == {"income": "9000000000.0", "age": "***", "colour": None}
    assert listed["latest"][1]["reasons"] == [
        {"column": "income", "rule": "max", "value": "9000000000"}
    ]


def test_values_a_client_sent_are_shown_as_they_are(served: Workspace) -> None:
    # Square brackets are markup to the terminal library: shown as text, not parsed.
    with RecordLog(served.root, kind="refused") as log:
        log.append([refusal(0, {"income": "[/x]"}, ("[b]income", "type", "[/x]"))])
    out = run(served, "monitor", "refused", "credit").stdout
    assert "[b]income type [/x]" in " ".join(out.split())


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_the_command_exports_every_row(refused: Workspace, tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"refused{suffix}"
    written = json.loads(
        run(refused, "monitor", "refused", "credit", "-o", str(path), "--json").stdout
    )
    assert written == {"endpoint": "credit", "rows": 3, "output": str(path)}
    back = pa_csv.read_csv(path) if suffix == ".csv" else pq.read_table(path)
    assert back.column("_request_id").to_pylist() == [f"req-{i}" for i in range(3)]
    assert "_reasons" in back.column_names


def test_mistakes_are_named(refused: Workspace, tmp_path: Path) -> None:
    missing = run(refused, "monitor", "refused", "nope", code=3)
    assert "no endpoint 'nope' (known endpoints: credit)" in " ".join(missing.output.split())
    wrong = run(refused, "monitor", "refused", "credit", "-o", str(tmp_path / "x.txt"), code=2)
    assert ".csv or .parquet" in " ".join(wrong.output.split())
