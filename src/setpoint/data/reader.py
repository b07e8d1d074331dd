"""Reading a CSV or Parquet file batch by batch, with a clear error for a bad one.

``data add`` and ``data validate`` never hold a whole file: a CSV is read with Arrow's
streaming reader (``BLOCK_SIZE`` bytes at a time), a Parquet file one batch at a time.
Whatever a user points them at, the answer is the data or an
:class:`~setpoint.errors.InvalidDataError` naming the problem and the fix: an empty
file, a header without rows, a column with no name, a name used twice, a NUL byte in
a name, text that is not UTF-8, rows with a different number of fields.

Arrow's streaming CSV reader infers each column's type from the first block. When a
later row does not fit (an integer column meets ``1.5`` or ``x``), the pass stops and a
type-only scan reads the whole file as text, keeping per column just the widest type
seen so far (null to a number or text, integer to float, anything else to text), so
the types are those of the whole file, whatever the block size; then the consumer
starts over once, with every widened type given. A file that needs no widening is
read once; one that does, three times (the failed pass, the scan, the real pass),
however many of its columns widen. Each widened column used to cost a re-read, and a
file with more than 64 of them was refused.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import IO, Any, TypeVar

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from setpoint.data import io
from setpoint.errors import InvalidDataError, UsageError

BLOCK_SIZE = 1 << 20  # bytes of CSV per batch; the reader holds some 40 times this
PARQUET_BATCH_ROWS = io.HASH_ROWS

# The first pass, the pass after the scan, and one more in case the scan judged a
# value fit where Arrow's converter does not (the scan's check is Arrow's cast, which
# parses numbers and dates as the CSV converter does, but not every type).
_PASSES = 3

T = TypeVar("T")
Consume = Callable[[pa.Schema, Iterator[pa.RecordBatch]], T]
Opener = Callable[[], IO[bytes]]  # a fresh binary stream of the file, seekable

# "to int64: invalid value 'x'", "to time32[s]: ...", "to timestamp[s]: expected no
# zone offset in '...'": any type, and the value last.
_CONVERSION = re.compile(
    r"In CSV column #(\d+): (?:Row #\d+: )?CSV conversion error to [^:]+: [^']*'(.*)'",
    re.DOTALL,
)
_BAD_UTF8 = re.compile(r"In CSV column #(\d+): .*invalid UTF8", re.DOTALL)
_ARROW_ERRORS = (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, OSError)


def read_batches(
    path: Path | str,
    consume: Consume[T],
    *,
    block_size: int | None = None,
    opener: Opener | None = None,
) -> T:
    """``consume(schema, batches)`` over the file at ``path``, normalised batches of
    bounded size; called again from the start, once, if CSV columns have to be widened
    (twice if Arrow's converter refuses a value the type scan let through). With
    ``opener`` (a file elsewhere: an fsspec URI), the file is read from the streams it
    opens, and ``path`` only names it."""
    suffix = Path(path).suffix
    kind = io.FORMATS.get(suffix.lower())
    if kind is None:
        raise UsageError(
            f"{path}: unsupported file type {suffix!r}; give a .csv or .parquet file",
        )
    if opener is None and not Path(path).is_file():
        raise UsageError(f"{path}: no such file")
    if kind == "parquet":
        return _parquet(path, consume, opener)
    column_types: dict[str, pa.DataType] = {}
    for _ in range(_PASSES):
        try:
            return _csv(path, consume, column_types, block_size or BLOCK_SIZE, opener)
        except _Widen as widen:
            column_types = widened_types(path, widen.types, block_size or BLOCK_SIZE, opener)
    raise InvalidDataError(f"{path}: the column types keep changing; save it with plain types")


class _Widen(Exception):
    """Not an error: a request to learn the whole file's types and read it again.

    ``types`` are the types the failed pass read with, the failing column already
    widened past the value that did not fit."""

    def __init__(self, types: dict[str, pa.DataType]) -> None:
        self.types = types


def _csv(
    path: Path | str,
    consume: Consume[T],
    column_types: dict[str, pa.DataType],
    block_size: int,
    opener: Opener | None,
) -> T:
    # A local file by its path: Arrow reads it natively, without the GIL.
    with ExitStack() as stack:
        stream = path if opener is None else stack.enter_context(opener())
        return _csv_from(path, stream, consume, column_types, block_size)


def _csv_from(
    path: Path | str,
    stream: Path | str | IO[bytes],
    consume: Consume[T],
    column_types: dict[str, pa.DataType],
    block_size: int,
) -> T:
    try:
        reader = pa_csv.open_csv(
            stream,
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
                raise _widen_or_fail(path, reader.schema, exc, rows) from None
            rows += batch.num_rows
            yield io.normalise_batch(batch, schema)
        if rows == 0:
            raise InvalidDataError(
                f"{path}: the file has a header but no rows; add rows, or check the file "
                "is the one you meant"
            )

    return consume(schema, batches())


def _parquet(path: Path | str, consume: Consume[T], opener: Opener | None) -> T:
    with ExitStack() as stack:
        stream = path if opener is None else stack.enter_context(opener())
        return _parquet_from(path, stream, consume)


def _parquet_from(path: Path | str, stream: Path | str | IO[bytes], consume: Consume[T]) -> T:
    try:
        # pre_buffer (pyarrow's default) reads ahead whole row groups and holds them:
        # 1.2 GB of resident memory for a 5M x 20 file read batch by batch, against
        # 210 MB without it (bench/batch.py), so memory would grow with the file.
        file = pq.ParquetFile(stream, pre_buffer=False)
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


def _check_text(path: Path | str, schema: pa.Schema) -> None:
    undecoded = [f.name for f in schema if pa.types.is_binary(f.type)]
    if undecoded:
        raise InvalidDataError(
            f"{path}: column(s) {', '.join(undecoded)} hold text that is not UTF-8 "
            "(perhaps Latin-1 or Windows-1252); save the file as UTF-8",
            details=[{"column": n, "problem": "not UTF-8"} for n in undecoded],
        )


def _widen_or_fail(path: Path | str, schema: pa.Schema, exc: Exception, rows: int) -> Exception:
    """A request to learn the file's types and read it again, or the error to show."""
    match = _CONVERSION.search(str(exc))
    if match:
        field = schema.field(int(match.group(1)))
        wider = _wider(field.type, pa.array([match.group(2)]))
        if wider == field.type:  # the scan's check holds it, Arrow's converter does not
            wider = pa.string()
        return _Widen({**dict(zip(schema.names, schema.types, strict=True)), field.name: wider})
    return _read_error(path, schema.names, exc, rows)


def _read_error(path: Path | str, names: list[str], exc: Exception, rows: int) -> InvalidDataError:
    """What to tell the user about a CSV file Arrow could not read past row ``rows``."""
    bad_text = _BAD_UTF8.search(str(exc))
    if bad_text:
        name = names[int(bad_text.group(1))]
        return InvalidDataError(
            f"{path}: column {name!r} holds text that is not UTF-8 after row {rows} "
            "(perhaps Latin-1 or Windows-1252); save the file as UTF-8",
            details=[{"column": name, "problem": "not UTF-8"}],
        )
    return InvalidDataError(_csv_problem(path, exc))


def widened_types(
    path: Path | str, types: dict[str, pa.DataType], block_size: int, opener: Opener | None = None
) -> dict[str, pa.DataType]:
    """Every column's type for the whole file, from ``types`` (what a pass read with)
    widened by every value of the file: one read of the file as text, in blocks,
    holding one block and a type per column."""
    with ExitStack() as stack:
        stream = path if opener is None else stack.enter_context(opener())
        return _widened(path, stream, types, block_size)


def _widened(
    path: Path | str, stream: Path | str | IO[bytes], types: dict[str, pa.DataType], block_size: int
) -> dict[str, pa.DataType]:
    types = dict(types)
    rows = 0
    try:
        reader = pa_csv.open_csv(
            stream,
            read_options=pa_csv.ReadOptions(block_size=block_size),
            # Text with the nulls a typed column has: the same cells are missing.
            convert_options=pa_csv.ConvertOptions(
                column_types=dict.fromkeys(types, pa.string()), strings_can_be_null=True
            ),
        )
        for batch in reader:
            open_ = [name for name, type_ in types.items() if type_ != pa.string()]
            if not open_:
                break  # text holds anything: nothing left to learn
            for name in open_:
                values = batch.column(name)
                if not _holds(types[name], values):
                    types[name] = _wider(types[name], values)
            rows += batch.num_rows
    except _ARROW_ERRORS as exc:
        raise _read_error(path, list(types), exc, rows) from None
    return types


def _wider(type_: pa.DataType, values: pa.Array) -> pa.DataType:
    """The type that holds what a column of ``type_`` held so far and ``values``: null
    widens to a number or text, integer to float, anything else to text. Each step
    holds every value the narrower type held, so earlier rows need no second look."""
    steps = {pa.null(): (pa.int64(), pa.float64()), pa.int64(): (pa.float64(),)}
    for wider in steps.get(type_, ()):
        if _holds(wider, values):
            return wider
    return pa.string()


def _holds(type_: pa.DataType, values: pa.Array) -> bool:
    """Whether Arrow's CSV converter reads every one of ``values`` (text, nulls where
    the cell is missing) as ``type_``. Numbers and dates are parsed by Arrow's cast
    after trimming spaces and tabs, as the converter does; booleans are the reader's
    true and false words. A type the cast cannot check is taken to hold: if it does
    not, the next pass says so and widens that column."""
    present = values.drop_null()
    if not len(present) or type_ == pa.string():
        return True
    if type_ == pa.null():
        return False
    if pa.types.is_boolean(type_):
        options = pa_csv.ConvertOptions()
        words = pa.array([*options.true_values, *options.false_values])
        return bool(pc.all(pc.is_in(present, words)).as_py())
    try:
        pc.cast(pc.utf8_trim(present, " \t"), type_)
    except (pa.ArrowInvalid, OverflowError):
        return False
    except (pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return True
    return True


def _csv_problem(path: Path | str, exc: BaseException) -> str:
    message = str(exc)
    if "Empty CSV file" in message:
        return f"{path}: the file is empty; a CSV file needs a header row and rows"
    if "Expected" in message and "columns" in message:
        return (
            f"{path}: {message.removeprefix('CSV parse error: ')}: every row needs as many "
            "fields as the header (quote fields that hold commas)"
        )
    return f"{path}: cannot read it as CSV: {message}"
