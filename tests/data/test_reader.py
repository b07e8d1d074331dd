"""Reading files batch by batch: clear errors for bad files, types of the whole file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest

from setpoint.data import io
from setpoint.data.reader import read_batches
from setpoint.errors import InvalidDataError


def table_of(path: Path, block_size: int | None = None) -> pa.Table:
    return read_batches(path, lambda s, b: pa.Table.from_batches(list(b), s), block_size=block_size)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (b"a,a,b\n1,2,3\n", "column name 'a' appears 2 times (columns 1, 2)"),
        (b"a, a,b\n1,2,3\n", "column name ' a' / 'a' appears 2 times"),
        (b"a,,b\n1,2,3\n", "column 2 has no name"),
        (b"a,  ,b\n1,2,3\n", "column 2 has no name"),
        (b"a,b\x00c\n1,2\n", "has a NUL byte in its name"),
        (b"a,b\n", "has a header but no rows"),
        (b"", "the file is empty"),
        (b"a,b\n1,2\n3\n", "every row needs as many fields as the header"),
        (b"a,\xff\xfe\n1,2\n", "the header is not UTF-8"),
        (b"a,b\n1,\xe9t\xe9\n", "not UTF-8"),
    ],
)
def test_a_bad_csv_is_a_clear_error(tmp_path: Path, text: bytes, message: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(text)
    with pytest.raises(InvalidDataError) as error:
        table_of(path)
    assert message in error.value.message


def test_duplicate_names_name_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "dup.csv"
    path.write_text("a,a,b,b\n1,2,3,4\n")
    with pytest.raises(InvalidDataError, match="rename the duplicates") as error:
        table_of(path)
    assert "'b'" in error.value.message


def test_a_parquet_file_with_duplicate_names_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "dup.parquet"
    pq.write_table(pa.table([[1], [2]], names=["x", "x"]), path)
    with pytest.raises(InvalidDataError, match="column name 'x' appears 2 times"):
        table_of(path)


def test_a_parquet_file_without_rows_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "empty.parquet"
    pq.write_table(pa.table({"x": pa.array([], pa.int64())}), path)
    with pytest.raises(InvalidDataError, match="no rows"):
        table_of(path)


def test_a_bom_is_not_part_of_the_first_name(tmp_path: Path) -> None:
    path = tmp_path / "bom.csv"
    path.write_bytes(b"\xef\xbb\xbfa,b\n1,2\n")
    assert table_of(path).column_names == ["a", "b"]


def test_a_column_whose_later_rows_change_type_is_widened(tmp_path: Path) -> None:
    """Arrow infers types from the first block; later rows that do not fit widen the
    column (null -> int -> float -> text) instead of failing."""
    rows = "".join(f"{i},,{i}\n" for i in range(2000))
    path = tmp_path / "late.csv"
    path.write_text("a,b,c\n" + rows + "1.5,3,x\n2,4.5,y\n")
    table = table_of(path, block_size=1024)
    assert table.schema.types == [pa.float64(), pa.float64(), pa.string()]
    assert table.slice(2000).to_pylist() == [
        {"a": 1.5, "b": 3.0, "c": "x"},
        {"a": 2.0, "b": 4.5, "c": "y"},
    ]
    # The same types as one block holding the whole file.
    assert table.schema == table_of(path, block_size=1 << 20).schema


def test_read_file_is_the_streamed_reader(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("a,b\n1,x\n2,y\n")
    assert io.read_file(path).to_pylist() == [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}]


def counting(path: Path, block_size: int | None = None) -> tuple[pa.Table, int]:
    """The table read from ``path`` and how many times the consumer was started."""
    starts: list[int] = []

    def consume(schema: pa.Schema, batches: Iterator[pa.RecordBatch]) -> pa.Table:
        starts.append(1)
        return pa.Table.from_batches(list(batches), schema)

    return read_batches(path, consume, block_size=block_size), len(starts)


def test_many_widened_columns_cost_one_more_pass(tmp_path: Path) -> None:
    """70 columns empty in the first block and integers after: each used to cost a
    re-read from the start, and past 64 the file was refused."""
    columns = 70
    path = tmp_path / "late.csv"
    path.write_text(
        ",".join(f"c{i}" for i in range(columns))
        + "\n"
        + ("," * (columns - 1) + "\n") * 2000
        + "".join(",".join(str(r * i) for i in range(columns)) + "\n" for r in range(5))
    )
    table, starts = counting(path, block_size=4096)
    assert starts == 2
    assert table.schema == pa_csv.read_csv(path).schema
    assert set(table.schema.types) == {pa.int64()}
    assert table.slice(2000).equals(pa_csv.read_csv(path).slice(2000))


def test_every_kind_of_widening_is_learned_in_one_scan(tmp_path: Path) -> None:
    """null -> int, null -> float, null -> text, int -> float, int -> text, float ->
    text, all met after the first block: one re-read, the whole file's types."""
    head = "".join(f",,,{i},{i},{i}.5,{i}\n" for i in range(2000))
    tail = "7,1.5,x,1e3,?,y,8\n8,2,z,2,3,4,9\n"
    path = tmp_path / "late.csv"
    path.write_text("a,b,c,d,e,f,g\n" + head + tail)
    table, starts = counting(path, block_size=1024)
    assert starts == 2
    assert table.schema.types == [
        pa.int64(), pa.float64(), pa.string(), pa.float64(), pa.string(), pa.string(), pa.int64()
    ]  # fmt: skip
    assert table.schema == table_of(path, block_size=1 << 20).schema
    assert table.slice(2000).to_pylist()[0] == {
        "a": 7, "b": 1.5, "c": "x", "d": 1000.0, "e": "?", "f": "y", "g": 8
    }  # fmt: skip


def test_a_file_that_needs_no_widening_is_read_once(tmp_path: Path) -> None:
    path = tmp_path / "plain.csv"
    path.write_text("a,b\n" + "".join(f"{i},{i}.5\n" for i in range(2000)))
    assert counting(path, block_size=1024)[1] == 1


def test_a_type_the_scan_cannot_check_is_widened_by_the_next_pass(tmp_path: Path) -> None:
    """Arrow cannot cast text to a time of day, so the scan takes a time column to
    hold; when the converter then refuses a value, that pass widens it (one more)."""
    rows = [f"{i},10:00:00\n" for i in range(4000)]
    rows[2000] = "x,10:00:00\n"
    rows[3999] = "1,25:61:00\n"
    path = tmp_path / "times.csv"
    path.write_text("a,t\n" + "".join(rows))
    table, starts = counting(path, block_size=1024)
    assert starts == 3
    assert table.schema.types == [pa.string(), pa.string()]
    assert table.schema == table_of(path, block_size=1 << 20).schema
