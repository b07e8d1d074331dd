"""Rows written, batch by batch, to a .csv or .parquet file a user named.

``data validate -o`` writes the accepted rows as the file streams: one batch held at
a time. They go to a hidden file beside the target, which takes the target's name
only when the validation is done (``commit``): a refused file, or a failure half-way,
leaves no output that looks whole.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from setpoint.errors import UsageError

SUFFIXES = (".csv", ".parquet", ".pq")

# Parquet compression codecs a writer takes (``none``: stored as they are).
COMPRESSIONS = ("snappy", "zstd", "lz4", "none")
# ``setpoint predict``'s: its output is mostly floats (the input's features, the
# probabilities), which barely compress, so zstd cost twice the CPU of snappy to
# write 1M rows x 23 columns (0.26 against 0.13 CPU-s, bench/batch.py) for a file 4 %
# smaller (168.7 against 176.3 MB); snappy gives up on pages it cannot shrink and
# still shrinks text (1M unique row ids: 7.3 MB, zstd 3.7, none 22.1). lz4 measured
# as snappy, none 0.01 s less.
PREDICT_COMPRESSION = "snappy"


class Rows(Protocol):
    """Where a check writes the rows it accepts: a :class:`RowSink`, or batch
    scoring's pool that writes them scored (``batch/score.py``)."""

    def write(self, rows: pa.Table) -> None: ...


def check_output(path: Path) -> None:
    """Refuse an output the sink cannot write, before any reading starts."""
    if path.suffix.lower() not in SUFFIXES:
        raise UsageError(f"{path}: write the accepted rows to a .csv or .parquet file")
    if not path.parent.is_dir():
        raise UsageError(f"cannot write {path}: its folder {path.parent} does not exist")


def check_compression(compression: str) -> None:
    if compression not in COMPRESSIONS:
        raise UsageError(f"compression {compression!r}: use one of {', '.join(COMPRESSIONS)}")


def parquet_writer(where: Any, schema: pa.Schema, compression: str = "zstd") -> pq.ParquetWriter:
    """A Parquet writer (zstd unless told) that dictionary-encodes only the columns
    that are not floating point: measured values rarely repeat, and trying a
    dictionary on each float column first cost 1.1 of the 1.5 CPU-seconds of writing
    1M rows x 23 columns (``bench/batch.py``), for a file no smaller."""
    check_compression(compression)
    dictionary = [f.name for f in schema if not pa.types.is_floating(f.type)]
    return pq.ParquetWriter(where, schema, compression=compression, use_dictionary=dictionary)


class RowSink:
    """Rows written to ``path`` (Parquet with ``compression``, or CSV)."""

    def __init__(self, path: Path, compression: str = "zstd") -> None:
        check_output(path)
        check_compression(compression)
        self.path = path
        self.compression = compression
        self.rows = 0
        try:
            fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
        except OSError as exc:
            raise UsageError(f"cannot write {path} ({exc.strerror})") from None
        os.close(fd)
        self._partial = Path(name)
        self._writer: pq.ParquetWriter | pa_csv.CSVWriter | None = None
        self._schema: pa.Schema | None = None

    def write(self, rows: pa.Table) -> None:
        """Append ``rows`` (the first call fixes the columns; the file gets its header
        even when no row is accepted)."""
        if self._writer is None or self._schema is None:
            self._schema = rows.schema
            if self.path.suffix.lower() == ".csv":
                self._writer = pa_csv.CSVWriter(self._partial, rows.schema)
            else:
                self._writer = parquet_writer(self._partial, rows.schema, self.compression)
        self._writer.write_table(rows.cast(self._schema))
        self.rows += rows.num_rows

    def commit(self) -> None:
        """Give the rows written the target's name."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        os.replace(self._partial, self.path)

    def discard(self) -> None:
        """Remove what was written, unless committed."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        self._partial.unlink(missing_ok=True)
