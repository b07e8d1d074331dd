"""Reading user files and writing the canonical form of a dataset.

A dataset version's identity is its content: the sha256 of the table as an Arrow IPC
stream of record batches of exactly ``HASH_ROWS`` rows (the last one holds the rest),
after the table is normalised (plain string types, no schema metadata), so that the
same rows and columns hash the same whether they came from a CSV file, a Parquet file
or a DataFrame, and whether they were streamed from a file batch by batch or held in
memory. A table of at most ``HASH_ROWS`` rows hashes as it did when the whole table
was one batch. What is stored is Parquet (zstd), read back with pyarrow, pandas or
DuckDB.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterable, Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}

# Rows per hashed batch: a multiple of 64, so every batch but the last starts on a
# byte boundary of the validity bitmaps and two ways of slicing agree byte for byte.
HASH_ROWS = 1 << 16


def read_file(path: Path) -> pa.Table:
    """A CSV or Parquet file as an Arrow table; a clear error for anything else.

    Read with the same streaming reader as ``data add`` (``data/reader.py``), so that
    the types a file is read with do not depend on whether it is streamed or loaded.
    """
    from setpoint.data.reader import read_batches  # the reader uses this module

    return read_batches(path, lambda schema, batches: pa.Table.from_batches(list(batches), schema))


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


def normalise_batch(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """``batch`` with the plain types of ``normalise_schema``."""
    arrays = []
    for array, field in zip(batch.columns, schema, strict=True):
        arrays.append(array if array.type == field.type else array.cast(field.type))
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def normalise_schema(schema: pa.Schema) -> pa.Schema:
    """Dictionaries as their values, large and view strings as plain, no metadata."""
    fields = []
    for field in schema:
        type_ = field.type
        if pa.types.is_dictionary(type_):
            type_ = type_.value_type
        fields.append(pa.field(field.name, _PLAIN.get(type_, type_)))
    return pa.schema(fields)


def rechunk(
    batches: Iterable[pa.RecordBatch], schema: pa.Schema, rows: int | None = None
) -> Iterator[pa.RecordBatch]:
    """``batches`` again as batches of exactly ``rows`` (``HASH_ROWS``) rows, the last
    holding the rest, each in fresh buffers: the output does not depend on how the
    input was cut."""
    rows = rows or HASH_ROWS
    pending: list[pa.RecordBatch] = []
    held = 0
    for batch in batches:
        if not batch.num_rows:
            continue
        pending.append(batch)
        held += batch.num_rows
        if held < rows:
            continue
        table = pa.Table.from_batches(pending, schema)
        start = 0
        while held - start >= rows:
            yield _compact(table.slice(start, rows), schema)
            start += rows
        rest = table.slice(start)
        pending = rest.to_batches() if rest.num_rows else []
        held = rest.num_rows
    if held:
        yield _compact(pa.Table.from_batches(pending, schema), schema)


def _compact(table: pa.Table, schema: pa.Schema) -> pa.RecordBatch:
    arrays = [
        pa.concat_arrays([pa.array([], field.type), *column.chunks])
        for column, field in zip(table.columns, schema, strict=True)
    ]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


class ContentHash:
    """The content hash of a table fed as ``rechunk`` batches, in order."""

    def __init__(self, schema: pa.Schema) -> None:
        self._sha = hashlib.sha256()
        self._sink = pa.PythonFile(_Digest(self._sha), mode="w")
        self._writer = pa.ipc.new_stream(self._sink, schema)

    def update(self, batch: pa.RecordBatch) -> None:
        self._writer.write_batch(batch)

    def hexdigest(self) -> str:
        self._writer.close()
        return self._sha.hexdigest()


class _Digest:
    """A write-only file that feeds what is written to a hash (never held in memory)."""

    closed = False

    def __init__(self, sha: hashlib._Hash) -> None:
        self._sha = sha

    def write(self, data: bytes) -> int:
        self._sha.update(data)
        return len(data)

    def flush(self) -> None:
        pass


def content_hash(table: pa.Table) -> str:
    """The identity of ``table``'s content (see the module docstring)."""
    schema = normalise_schema(table.schema)
    digest = ContentHash(schema)
    for batch in rechunk(normalise(table).to_batches(), schema):
        digest.update(batch)
    return digest.hexdigest()


def to_parquet(table: pa.Table) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="zstd")
    return buffer.getvalue()


def from_parquet(data: bytes) -> pa.Table:
    return pq.read_table(pa.BufferReader(data))
