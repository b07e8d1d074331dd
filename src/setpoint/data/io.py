"""Reading user files and writing the canonical form of a dataset.

A dataset version's identity is its content: the sha256 of the table in Arrow IPC
form, after the table is normalised (one chunk per column, no schema metadata), so
that the same rows and columns hash the same whether they came from a CSV file, a
Parquet file or a DataFrame. What is stored is Parquet (zstd), read back with pyarrow,
pandas or DuckDB.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from setpoint.errors import InvalidDataError, UsageError

FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}


def read_file(path: Path) -> pa.Table:
    """A CSV or Parquet file as an Arrow table; a clear error for anything else."""
    kind = FORMATS.get(path.suffix.lower())
    if kind is None:
        raise UsageError(
            f"{path}: unsupported file type {path.suffix!r}; give a .csv or .parquet file",
        )
    if not path.is_file():
        raise UsageError(f"{path}: no such file")
    try:
        table = pa_csv.read_csv(path) if kind == "csv" else pq.read_table(path)
        names = table.column_names  # decoding a non-UTF-8 header fails here
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError) as exc:
        raise InvalidDataError(f"{path}: cannot read it as {kind.upper()}: {exc}") from None
    except UnicodeDecodeError:
        raise InvalidDataError(f"{path}: the header is not UTF-8 text; save it as UTF-8") from None
    undecoded = [n for n in names if pa.types.is_binary(table.column(n).type)]
    if kind == "csv" and undecoded:
        raise InvalidDataError(
            f"{path}: column(s) {', '.join(undecoded)} hold text that is not UTF-8 "
            "(perhaps Latin-1 or Windows-1252); save the file as UTF-8"
        )
    return table


# Types that hold the same values as a plainer type: the hash must not depend on
# which one a reader chose (pandas gives large_string where a CSV reader gives string).
_PLAIN = {
    pa.large_string(): pa.string(),
    pa.string_view(): pa.string(),
    pa.large_binary(): pa.binary(),
}


def normalise(table: pa.Table) -> pa.Table:
    """One chunk per column, no schema metadata, plain string types."""
    columns = []
    for column in table.columns:
        type_ = column.type
        if pa.types.is_dictionary(type_):
            column = column.cast(type_.value_type)
            type_ = column.type
        if type_ in _PLAIN:
            column = column.cast(_PLAIN[type_])
        columns.append(column)
    return pa.table(columns, names=table.column_names).combine_chunks()


def content_hash(table: pa.Table) -> str:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return hashlib.sha256(sink.getvalue().to_pybytes()).hexdigest()


def to_parquet(table: pa.Table) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="zstd")
    return buffer.getvalue()


def from_parquet(data: bytes) -> pa.Table:
    return pq.read_table(pa.BufferReader(data))
