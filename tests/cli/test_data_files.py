"""``data add`` and ``data validate`` on whatever file a user points them at: the
data, or a clear message and a non-zero exit, never a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest
import yaml
from cli_support import Cli
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from setpoint.cli.main import app

# The command line, not the stores (their own tests run on both databases): the
# workspace on SQLite only (conftest.py).
pytestmark = pytest.mark.one_database

BAD_FILES = [
    (b"a,a,b\n1,2,3\n", "column name 'a' appears 2 times"),
    (b"a,b\n", "has a header but no rows"),
    (b"a,,b\n1,2,3\n", "column 2 has no name"),
    (b"a,b\x00\n1,2\n", "NUL byte in its name"),
    (b"a,b\n1,x\x00y\n", "column 'b' holds a NUL byte in row 1"),
    (b"", "the file is empty"),
    (b"a,b\n1,2\n3\n", "every row needs as many fields"),
]


@pytest.mark.parametrize(("text", "message"), BAD_FILES)
def test_data_add_refuses_a_bad_csv_with_a_clear_message(
    cli: Cli, tmp_path: Path, text: bytes, message: str
) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(text)
    cli.fails("data", "add", "loans", str(path), code=5, message=message)
    assert cli.json("data", "list") == []


@pytest.mark.parametrize(("text", "message"), BAD_FILES[:4])
def test_data_validate_refuses_a_bad_csv_with_a_clear_message(
    cli: Cli, tmp_path: Path, text: bytes, message: str
) -> None:
    good = tmp_path / "good.csv"
    good.write_text("a,b\n1,2\n")
    cli("data", "add", "loans", str(good))
    path = tmp_path / "bad.csv"
    path.write_bytes(text)
    cli.fails("data", "validate", "loans@1", str(path), code=5, message=message)


def test_a_parquet_file_with_duplicate_names_is_refused(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "dup.parquet"
    pq.write_table(pa.table([[1], [2]], names=["x", "x"]), path)
    cli.fails("data", "add", "loans", str(path), code=5, message="rename the duplicates")


def test_data_add_and_validate_stream_the_file(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Neither command reads a whole file into memory: the whole-file readers are
    unavailable, and a file of many blocks still goes through, batch by batch."""

    def whole(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("read the whole file")

    monkeypatch.setattr(pa_csv, "read_csv", whole)
    monkeypatch.setattr(pq, "read_table", whole)
    monkeypatch.setattr("setpoint.data.reader.BLOCK_SIZE", 1024)
    opened: list[int] = []
    real_open = pa_csv.open_csv

    def open_csv(*args: object, **kwargs: object) -> object:
        opened.append(kwargs["read_options"].block_size)  # type: ignore[union-attr]
        return real_open(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(pa_csv, "open_csv", open_csv)
    path = tmp_path / "loans.csv"
    path.write_text("age,grade\n" + "".join(f"{20 + i % 50},{'AB'[i % 2]}\n" for i in range(5000)))
    added = cli.json("data", "add", "loans", str(path))
    assert added["row_count"] == 5000
    checked = cli.json("data", "validate", "loans@1", str(path))
    assert (checked["ok"], checked["n_rows"]) == (True, 5000)
    assert opened == [1024, 1024]


def test_validate_quarantines_rows_of_a_streamed_file_with_their_file_row_numbers(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("setpoint.data.reader.BLOCK_SIZE", 512)
    good = tmp_path / "good.csv"
    good.write_text("age,grade\n" + "".join(f"{20 + i % 50},{'AB'[i % 2]}\n" for i in range(3000)))
    cli("data", "add", "loans", str(good))
    bad_rows = {5, 1700, 2999}
    rows = [f"{20 + i % 50},{'Z' if i in bad_rows else 'A'}\n" for i in range(3000)]
    path = tmp_path / "batch.csv"
    path.write_text("age,grade\n" + "".join(rows))
    out = cli.json("data", "validate", "loans@1", str(path), "--mode", "quarantine")
    assert (out["n_rows"], out["n_accepted"], out["n_violations"]) == (3000, 2997, 3)
    assert [v["row"] for v in out["violations"]] == sorted(bad_rows)
    assert out["summary"] == [{"column": "grade", "rule": "category", "count": 3, "example": "Z"}]
    exported = tmp_path / "rejected.csv"
    cli("data", "quarantine", "export", str(out["quarantine"]["id"]), "-o", str(exported))
    kept = pa_csv.read_csv(exported)
    assert kept.column("_row").to_pylist() == sorted(bad_rows)
    assert json.loads(kept.column("_reasons")[0].as_py())[0]["rule"] == "category"


def test_validate_reject_mode_counts_every_violation_of_a_streamed_file(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("setpoint.data.reader.BLOCK_SIZE", 512)
    good = tmp_path / "good.csv"
    good.write_text("age\n" + "".join(f"{20 + i % 50}\n" for i in range(100)))
    cli("data", "add", "loans", str(good))
    path = tmp_path / "batch.csv"
    path.write_text("age,extra\n" + "".join(f"{500 + i},1\n" for i in range(2000)))
    result = cli("data", "validate", "loans@1", str(path), "--mode", "reject", code=5)
    # one problem of the file (the undeclared column), however many batches, said
    # apart from the rows' own violations
    assert "column 'extra' is not in the contract" in result.stderr
    assert "2000 violation(s) in 2000 of 2000 row(s)" in result.stderr
    error = cli.json("data", "validate", "loans@1", str(path), "--mode", "reject", code=5)
    assert len(error["error"]["details"]["problems"]) == 1


csv_bytes = st.one_of(
    st.binary(max_size=200),
    st.lists(
        st.lists(
            st.one_of(
                st.text(max_size=6),
                st.sampled_from(["", " ", "a", "1", "1.5", "x", '"', "\x00", "\ufeff"]),
            ),
            min_size=1,
            max_size=4,
        ),
        max_size=5,
    ).map(lambda rows: "\n".join(",".join(r) for r in rows).encode("utf-8", "surrogatepass")),
)


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace with dataset ``ref`` (one example's commands do not change what the
    next one finds: a new version of ``fuzz`` at most)."""
    root = tmp_path_factory.mktemp("fuzz")
    runner = CliRunner()
    assert runner.invoke(app, ["init", str(root / "ws")]).exit_code == 0
    good = root / "good.csv"
    good.write_text("a,b\n1,x\n")
    assert (
        runner.invoke(app, ["-w", str(root / "ws"), "data", "add", "ref", str(good)]).exit_code == 0
    )
    return root


@settings(max_examples=60, deadline=None)
@given(data=csv_bytes)
def test_no_csv_makes_a_traceback(fuzzed: Path, data: bytes) -> None:
    root = fuzzed
    runner = CliRunner()
    path = root / "fuzz.csv"
    path.write_bytes(data)
    for command in (["data", "add", "fuzz", str(path)], ["data", "validate", "ref@1", str(path)]):
        result = runner.invoke(app, ["-w", str(root / "ws"), *command])
        assert result.exception is None or isinstance(result.exception, SystemExit), result.output
        assert "Traceback" not in result.output
        assert result.exit_code in (0, 5, 2), result.output


def test_a_csv_whose_many_columns_start_empty_is_added(cli: Cli, tmp_path: Path) -> None:
    """70 columns empty for the first 50,000 rows, integers after: Arrow reads it
    whole, so ``data add`` takes it too (each widened column used to cost a re-read,
    and past 64 the file was refused)."""
    columns = 70
    path = tmp_path / "late.csv"
    with path.open("w") as out:
        out.write(",".join(f"c{i}" for i in range(columns)) + "\n")
        out.write(("," * (columns - 1) + "\n") * 50_000)
        out.write("".join(",".join(str(r + i) for i in range(columns)) + "\n" for r in range(3)))
    added = cli.json("data", "add", "wide", str(path))
    assert added["row_count"] == 50_003
    profile = cli.json("data", "show", "wide@1")["profile"]["columns"]
    assert [c["arrow_type"] for c in profile] == ["int64"] * columns


def _patients(cli: Cli, tmp_path: Path) -> Path:
    """A reference of 40 patients (bp 90 .. 129) and a batch of them with 4 bad rows:
    age missing in two, bp past its max in two."""
    reference = tmp_path / "patients.csv"
    reference.write_text("age,bp\n" + "".join(f"{20 + i},{90 + i}\n" for i in range(40)))
    cli("data", "add", "patients", str(reference))
    rows = [
        f"{'' if i in (3, 17) else 20 + i},{500 if i in (8, 30) else 90 + i}\n" for i in range(40)
    ]
    batch = tmp_path / "batch.csv"
    batch.write_text("age,bp\n" + "".join(rows))
    return batch


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_validate_writes_the_accepted_rows(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, suffix: str
) -> None:
    monkeypatch.setattr("setpoint.data.reader.BLOCK_SIZE", 64)
    batch = _patients(cli, tmp_path)
    output = tmp_path / f"accepted{suffix}"
    args = ("data", "validate", "patients", str(batch), "--mode", "quarantine", "-o", str(output))
    out = cli.json(*args)
    assert (out["n_accepted"], out["quarantine"]["n_rejected"], out["output"]) == (
        36,
        4,
        str(output),
    )
    written = pa_csv.read_csv(output) if suffix == ".csv" else pq.read_table(output)
    assert written.num_rows == 36
    expected = pa_csv.read_csv(batch).to_pylist()
    assert written.to_pylist() == [r for i, r in enumerate(expected) if i not in (3, 8, 17, 30)]
    assert f"Wrote the 36 accepted rows to {output}" in cli(*args).stdout


def test_validate_says_where_the_accepted_rows_can_go(cli: Cli, tmp_path: Path) -> None:
    batch = _patients(cli, tmp_path)
    said = cli("data", "validate", "patients", str(batch), "--mode", "quarantine").stdout
    assert "36 rows accepted" in said
    assert "-o accepted.csv" in said


def test_an_undeclared_column_is_one_problem_not_a_reason_on_every_row(
    cli: Cli, tmp_path: Path
) -> None:
    batch = _patients(cli, tmp_path)
    extra = tmp_path / "extra.csv"
    lines = batch.read_text().splitlines()
    extra.write_text("\n".join([lines[0] + ",ward", *(f"{line},east" for line in lines[1:])]))
    args = ("data", "validate", "patients", str(extra), "--mode", "quarantine")
    error = cli.json(*args, code=5)["error"]
    assert [(p["column"], p["rule"]) for p in error["details"]["problems"]] == [
        ("ward", "unknown_column")
    ]
    assert {(s["column"], s["rule"]) for s in error["details"]["summary"]} == {
        ("age", "not_null"),
        ("bp", "max"),
    }
    said = cli(*args, code=5).stderr
    assert "ward" in said
    assert "unknown_columns: drop" in said
    assert "Traceback" not in said
    assert cli.json("data", "quarantine", "list") == []


def test_quarantine_list_shows_the_commonest_reason(cli: Cli, tmp_path: Path) -> None:
    _patients(cli, tmp_path)
    rows = [f"{'' if i < 30 else 20 + i},{500 if i in (33, 35) else 90 + i}\n" for i in range(40)]
    batch = tmp_path / "mostly-missing.csv"
    batch.write_text("age,bp\n" + "".join(rows))
    cli("data", "validate", "patients", str(batch), "--mode", "quarantine")
    [listed] = cli.json("data", "quarantine", "list")
    assert listed["top_reason"] == {"column": "age", "rule": "not_null", "count": 30}
    assert "age: not_null (30)" in cli("data", "quarantine", "list").stdout


def test_attach_contract_refuses_a_contract_the_data_breaks(cli: Cli, tmp_path: Path) -> None:
    _patients(cli, tmp_path)
    contract = tmp_path / "contract.yaml"
    cli("data", "contract", "patients@1", "-o", str(contract))
    body = yaml.safe_load(contract.read_text())
    body["columns"]["bp"]["max"] = 120  # the data reaches 129
    contract.write_text(yaml.safe_dump(body))
    args = ("data", "attach-contract", "patients@1", str(contract))
    error = cli.json(*args, code=5)["error"]
    assert error["code"] == "contract_violation"
    assert "9 violation(s) in 9 of 40 row(s)" in error["message"]
    first = error["details"]["violations"][0]
    assert (first["row"], first["column"], first["rule"], first["value"]) == (
        31,
        "bp",
        "max",
        "121",
    )
    said = cli(*args, code=5).stderr
    assert "--force" in said
    assert "bp" in said
    assert "121" in said
    assert cli.json("data", "show", "patients@1")["contract"]["revision"] == 1
    forced = cli.json(*args, "--force", "--note", "cap bp")
    assert forced == {
        "dataset": "patients@1",
        "revision": 2,
        "forced": {"violations": 9, "rows": 9},
    }
    [event] = cli.json("audit", "--action", "contract.edit")
    assert event["after"]["forced"] == {"violations": 9, "rows": 9}
