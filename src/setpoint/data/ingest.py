"""One pass over a dataset's rows: its hash, its profile and its Parquet file at once.

``data add`` streams a file through here batch by batch (``io.HASH_ROWS`` rows each),
so a file of any size is added in bounded memory: the content hash and the profile
are updated per batch and the batch is appended to a Parquet file in the artifact
store's staging area, which is moved into place by its hash once the version is
known to be new. A table already in memory goes through the same pass, so both give
the same hash and the same profile.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from setpoint.data import io
from setpoint.data.kinds import is_text
from setpoint.data.profile import Profile, Profiler
from setpoint.errors import InvalidDataError


@dataclass(frozen=True)
class Ingested:
    schema: pa.Schema
    n_rows: int
    content_hash: str
    profile: Profile


def ingest(schema: pa.Schema, batches: Iterator[pa.RecordBatch], parquet: Path) -> Ingested:
    """Hash, profile and write ``batches`` (of ``schema``, normalised) to ``parquet``."""
    digest = io.ContentHash(schema)
    profiler = Profiler(schema)
    rows = 0
    with pq.ParquetWriter(parquet, schema, compression="zstd") as writer:
        for batch in io.rechunk(batches, schema):
            check_values(batch, rows)
            digest.update(batch)
            profiler.add(batch)
            writer.write_batch(batch)
            rows += batch.num_rows
    if rows == 0:
        raise InvalidDataError("the data has columns but no rows; a dataset needs rows")
    return Ingested(schema, rows, digest.hexdigest(), profiler.result())


def check_values(batch: pa.RecordBatch, first_row: int = 0) -> None:
    """No NUL byte in a text value: it is what a binary file read as text looks like,
    and many tools downstream cut the text at it."""
    for name, values in zip(batch.schema.names, batch.columns, strict=True):
        if not is_text(values.type) or values.null_count == len(values):
            continue
        found = pc.match_substring(values, "\x00")
        if pc.any(found).as_py():
            row = first_row + int(pc.index(found, True).as_py()) + 1
            raise InvalidDataError(
                f"column {name!r} holds a NUL byte in row {row} (counting rows from 1, "
                "after the header): is it a binary file? Remove the NUL bytes and try again",
                details=[{"column": name, "row": row, "problem": "NUL byte"}],
            )
