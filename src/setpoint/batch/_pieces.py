"""The pieces a Ray run cuts its inputs into, and how a piece's rows are read
(``batch/ray_engine.py``).

A CSV file is one piece: Arrow cannot start a CSV part-way, and its column types are
widened over the whole file. A Parquet file is cut every ``PIECE_BATCHES`` reader
batches, where the local engine's batches are cut, so that both engines give a model
the same rows at a time, and so the same values to the bit (a linear model's BLAS
sums in another order for another batch). A piece reads only the row groups holding
its rows. A piece's files are named by its index, so a retried piece replaces them.

A piece names its input as the run does (``Source.uri``): a local path, read by
Arrow itself, or an fsspec URI (``s3://...``), which the actor opens through fsspec
(``opener``) as the local engine opens a remote input; the driver's plan reads a
Parquet file's row count from its footer either way.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import pyarrow as pa
import pyarrow.parquet as pq

from setpoint.batch.sources import Source, filesystem, is_uri, talking_to
from setpoint.data import io, reader
from setpoint.errors import UsageError

PIECE_BATCHES = 2  # reader batches (of 65,536 rows) in a piece of a Parquet file


@dataclass(frozen=True)
class Piece:
    """A part of one input that one task scores."""

    index: int  # its place in the run: its output part is named after it
    path: str  # its input's path, or URI (``Source.uri``)
    first_row: int  # its first row's number in the file
    stop: int | None  # the row after its last (Parquet); None: to the end (CSV)
    batch_rows: int  # the reader's batch, so that the batches are the local engine's
    weight: float  # the bytes of input it stands for (progress)
    file: int = 0  # its input's place among the run's inputs (the log's request ids)


def plan(files: Sequence[Source]) -> list[Piece]:
    """The pieces of ``files``, in input order: a CSV file whole, a Parquet file cut
    every ``PIECE_BATCHES`` reader batches (the batches the local engine scores, so
    that both engines give a model the same rows at a time, and so the same values)."""
    batch_rows = reader.PARQUET_BATCH_ROWS
    piece_rows = PIECE_BATCHES * batch_rows
    pieces: list[Piece] = []
    for number, source in enumerate(files):
        size = max(source.size, 1)
        if source.suffix == ".csv":
            pieces.append(Piece(len(pieces), source.uri, 0, None, batch_rows, size, number))
            continue
        rows = _rows(source)
        for first in range(0, rows, piece_rows):
            stop = min(first + piece_rows, rows)
            weight = size * (stop - first) / rows
            pieces.append(Piece(len(pieces), source.uri, first, stop, batch_rows, weight, number))
    return pieces


def _rows(source: Source) -> int:
    """A Parquet file's row count, from its footer (a remote file: a ranged read)."""
    if source.local:
        return int(pq.ParquetFile(source.path).metadata.num_rows)
    with talking_to(source.uri), source.open() as file:
        return int(pq.ParquetFile(file).metadata.num_rows)


def opener(uri: str) -> reader.Opener | None:
    """How an actor opens the input ``uri``: None for a local path (Arrow reads it
    itself), else a function giving a fresh stream of it through fsspec; an input
    gone since the run started is said by its URI, a store's failure as one."""
    if not is_uri(uri):
        return None
    fs, path = filesystem(uri)

    def open_() -> IO[bytes]:
        with talking_to(uri):
            try:
                stream: IO[bytes] = fs.open(path, "rb")
            except FileNotFoundError:
                gone = f"{uri}: no such file (it was there when the run started)"
                raise UsageError(gone) from None
        return stream

    return open_


def part_name(index: int) -> str:
    return f"part-{index:06d}.parquet"


def log_name(index: int) -> str:
    return f"log-{index:06d}.jsonl"


def rejected_name(index: int) -> str:
    return f"rejected-{index:06d}.parquet"


def piece_rows(
    path: Path | str | IO[bytes], start: int, stop: int, batch_rows: int
) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
    """Rows ``start`` to ``stop`` of a Parquet file (a path, or a stream the caller
    keeps open while the batches are read), as the reader gives the whole file:
    normalised batches of ``batch_rows`` rows counted from the file's start (``start``
    is a multiple of ``batch_rows``). Only the row groups holding them are read."""
    file = pq.ParquetFile(path, pre_buffer=False)  # see data/reader.py
    schema = io.normalise_schema(file.schema_arrow)
    groups: list[int] = []
    offset = position = 0
    for group in range(file.metadata.num_row_groups):
        rows = file.metadata.row_group(group).num_rows
        if offset < stop and offset + rows > start:
            position = offset if not groups else position
            groups.append(group)
        offset += rows

    def sliced() -> Iterator[pa.RecordBatch]:
        at = position
        for batch in file.iter_batches(batch_size=batch_rows, row_groups=groups):
            low, high = max(start - at, 0), min(stop - at, batch.num_rows)
            at += batch.num_rows
            if high > low:
                yield io.normalise_batch(batch.slice(low, high - low), schema)

    return schema, io.rechunk(sliced(), schema, batch_rows)
