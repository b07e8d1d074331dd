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
        if kind == "csv":
            return pa_csv.read_csv(path)
        return pq.read_table(path)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError) as exc:
        raise InvalidDataError(f"{path}: cannot read it as {kind.upper()}: {exc}") from None


def normalise(table: pa.Table) -> pa.Table:
    return table.replace_schema_metadata(None).combine_chunks()


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
