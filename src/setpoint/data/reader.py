"""Reading a CSV or Parquet file batch by batch, with a clear error for a bad one.

``data add`` and ``data validate`` never hold a whole file: a CSV is read with Arrow's
streaming reader (``BLOCK_SIZE`` bytes at a time), a Parquet file one batch at a time.
Whatever a user points them at, the answer is the data or an
:class:`~setpoint.errors.InvalidDataError` naming the problem and the fix: an empty
file, a header without rows, a column with no name, a name used twice, a NUL byte in
a name, text that is not UTF-8, rows with a different number of fields.

Arrow's streaming CSV reader infers each column's type from the first block. When a
later row does not fit (an integer column meets ``1.5`` or ``n/a``), the file is read
again from the start with that column widened (null to a number or text, integer to
float, anything else to text), so the types are those of the whole file, whatever the
block size; the consumer starts over each time.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from setpoint.data import io
from setpoint.data.kinds import FLOAT_TEXT, INTEGER_TEXT
from setpoint.errors import InvalidDataError, UsageError

BLOCK_SIZE = 1 << 20  # bytes of CSV per batch; the reader holds some 40 times this
PARQUET_BATCH_ROWS = io.HASH_ROWS

T = TypeVar("T")
Consume = Callable[[pa.Schema, Iterator[pa.RecordBatch]], T]

_CONVERSION = re.compile(
    r"In CSV column #(\d+): (?:Row #\d+: )?CSV conversion error to (\w+): invalid value '(.*)'",
    re.DOTALL,
)
_BAD_UTF8 = re.compile(r"In CSV column #(\d+): .*invalid UTF8", re.DOTALL)
_ARROW_ERRORS = (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, OSError)


def read_batches(path: Path, consume: Consume[T], *, block_size: int | None = None) -> T:
    """``consume(schema, batches)`` over the file at ``path``, normalised batches of
    bounded size; called again from the start if a CSV column has to be widened."""
    kind = io.FORMATS.get(path.suffix.lower())
    if kind is None:
        raise UsageError(
            f"{path}: unsupported file type {path.suffix!r}; give a .csv or .parquet file",
        )
    if not path.is_file():
        raise UsageError(f"{path}: no such file")
    if kind == "parquet":
        return _parquet(path, consume)
    column_types: dict[str, pa.DataType] = {}
    for _ in range(64):
        try:
            return _csv(path, consume, column_types, block_size or BLOCK_SIZE)
        except _Widen as widen:
            column_types[widen.name] = widen.type
    raise InvalidDataError(f"{path}: the column types keep changing; save it with plain types")


class _Widen(Exception):
    """Not an error: a request to read the file again with one column wider."""

    def __init__(self, name: str, type_: pa.DataType) -> None:
        self.name, self.type = name, type_


def _csv(
    path: Path, consume: Consume[T], column_types: dict[str, pa.DataType], block_size: int
) -> T:
    try:
        reader = pa_csv.open_csv(
            path,
            read_options=pa_csv.ReadOptions(block_size=block_size),
            convert_options=pa_csv.ConvertOptions(column_types=column_types),
        )
        names = reader.schema.names  # decoding a non-UTF-8 header fails here
    except UnicodeDecodeError:
        raise InvalidDataError(f"{path}: the header is not UTF-8 text; save it as UTF-8") from None
    except _ARROW_ERRORS as exc:
        raise InvalidDataError(_csv_problem(path, exc)) from None
    check_names(names, where=f"{path}: ")
    schema = io.normalise_schema(reader.schema)
    _check_text(path, reader.schema)

    def batches() -> Iterator[pa.RecordBatch]:
        rows = 0
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                break
            except _ARROW_ERRORS as exc:
                raise _widen_or_fail(path, names, column_types, exc, rows) from None
            rows += batch.num_rows
            yield io.normalise_batch(batch, schema)
        if rows == 0:
            raise InvalidDataError(
                f"{path}: the file has a header but no rows; add rows, or check the file "
                "is the one you meant"
            )

    return consume(schema, batches())


def _parquet(path: Path, consume: Consume[T]) -> T:
    try:
        file = pq.ParquetFile(path)
        arrow_schema = file.schema_arrow
    except _ARROW_ERRORS as exc:
        raise InvalidDataError(f"{path}: cannot read it as Parquet: {exc}") from None
    check_names(arrow_schema.names, where=f"{path}: ")
    schema = io.normalise_schema(arrow_schema)

    def batches() -> Iterator[pa.RecordBatch]:
        rows = 0
        iterator = file.iter_batches(batch_size=PARQUET_BATCH_ROWS)
        while True:
            try:
                batch = next(iterator)
            except StopIteration:
                break
            except _ARROW_ERRORS as exc:
                raise InvalidDataError(f"{path}: cannot read it as Parquet: {exc}") from None
            rows += batch.num_rows
            yield io.normalise_batch(batch, schema)
        if rows == 0:
            raise InvalidDataError(f"{path}: the file has columns but no rows")

    return consume(schema, batches())


def check_names(names: list[Any], *, where: str = "") -> None:
    """Every column has a name of its own: not empty, no NUL byte, not used twice (also
    not by two names that differ only in spaces around them)."""
    problems: list[str] = []
    details: list[dict[str, Any]] = []
    for position, name in enumerate(names, start=1):
        if not isinstance(name, str):
            continue  # _batch._check_names says so for in-memory data
        if not name.strip():
            problems.append(f"column {position} has no name")
            details.append({"column": name, "position": position, "problem": "no name"})
        elif "\x00" in name:
            problems.append(f"column {position} ({name!r}) has a NUL byte in its name")
            details.append({"column": name, "position": position, "problem": "NUL in name"})
    seen: dict[str, list[int]] = {}
    for position, name in enumerate(names, start=1):
        if isinstance(name, str) and name.strip():
            seen.setdefault(name.strip(), []).append(position)
    for stripped, positions in seen.items():
        if len(positions) > 1:
            spelled = sorted({repr(names[p - 1]) for p in positions})
            problems.append(
                f"column name {' / '.join(spelled)} appears {len(positions)} times "
                f"(columns {', '.join(map(str, positions))})"
            )
            details.append({"column": stripped, "positions": positions, "problem": "duplicate"})
    if problems:
        raise InvalidDataError(
            f"{where}{'; '.join(problems)}: give every column a unique, non-empty name "
            "(rename the duplicates) in the header row and try again",
            details=details,
        )


def _check_text(path: Path, schema: pa.Schema) -> None:
    undecoded = [f.name for f in schema if pa.types.is_binary(f.type)]
    if undecoded:
        raise InvalidDataError(
            f"{path}: column(s) {', '.join(undecoded)} hold text that is not UTF-8 "
            "(perhaps Latin-1 or Windows-1252); save the file as UTF-8",
            details=[{"column": n, "problem": "not UTF-8"} for n in undecoded],
        )


def _widen_or_fail(
    path: Path,
    names: list[str],
    column_types: dict[str, pa.DataType],
    exc: Exception,
    rows: int,
) -> Exception:
    """A request to read again with a wider column type, or the error to show."""
    message = str(exc)
    bad_text = _BAD_UTF8.search(message)
    if bad_text:
        name = names[int(bad_text.group(1))]
        return InvalidDataError(
            f"{path}: column {name!r} holds text that is not UTF-8 after row {rows} "
            "(perhaps Latin-1 or Windows-1252); save the file as UTF-8",
            details=[{"column": name, "problem": "not UTF-8"}],
        )
    match = _CONVERSION.search(message)
    if match:
        name = names[int(match.group(1))]
        wider = _wider(match.group(2), match.group(3))
        if name not in column_types or column_types[name] != wider:
            return _Widen(name, wider)
    return InvalidDataError(_csv_problem(path, exc))


def _wider(type_name: str, value: str) -> pa.DataType:
    """The type that holds what a column held so far and ``value``."""
    if type_name == "null" and re.fullmatch(INTEGER_TEXT, value):
        return pa.int64()
    if type_name in ("null", "int64") and re.fullmatch(FLOAT_TEXT, value):
        return pa.float64()
    return pa.string()


def _csv_problem(path: Path, exc: BaseException) -> str:
    message = str(exc)
    if "Empty CSV file" in message:
        return f"{path}: the file is empty; a CSV file needs a header row and rows"
    if "Expected" in message and "columns" in message:
        return (
            f"{path}: {message.removeprefix('CSV parse error: ')}: every row needs as many "
            "fields as the header (quote fields that hold commas)"
        )
    return f"{path}: cannot read it as CSV: {message}"
