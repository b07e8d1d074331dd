"""``data add`` and ``data validate`` on whatever file a user points them at: the
data, or a clear message and a non-zero exit, never a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest
from cli_support import Cli
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from setpoint.cli.main import app

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
    # one batch-level violation (the undeclared column), however many batches
    assert "2001 contract violation(s) in 2000 of 2000 row(s)" in result.stderr


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


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=csv_bytes)
def test_no_csv_makes_a_traceback(tmp_path_factory: pytest.TempPathFactory, data: bytes) -> None:
    root = tmp_path_factory.mktemp("ws")
    runner = CliRunner()
    assert runner.invoke(app, ["init", str(root / "ws")]).exit_code == 0
    good = root / "good.csv"
    good.write_text("a,b\n1,x\n")
    assert (
        runner.invoke(app, ["-w", str(root / "ws"), "data", "add", "ref", str(good)]).exit_code == 0
    )
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
