"""Cutting a table into chunks: calendar periods of a time column, or runs of rows.

A chunk is given as a period, ``<n><unit>`` with unit ``h`` (hours), ``d`` (days),
``w`` (weeks, from Monday), ``M`` (months), ``q`` (quarters) or ``y`` (years), or as a
number of rows (``10000``). Periods are aligned to the calendar in UTC, the way a
person reads them: ``1M`` chunks start on the first of each month, ``1q`` in January,
April, July and October, ``1w`` on Mondays; several units (``2w``, ``6M``) count from
the Unix epoch (from its first Monday for weeks), so two tables cut the same way
agree on their boundaries. Periods that hold no row are left out.

Chunks of rows follow the time column when there is one (the earliest rows first),
else the table's order; the last chunk holds what is left. Every row with a time
falls in exactly one chunk; rows without a time cannot be placed and are counted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from setpoint.errors import InvalidDataError, UsageError

IntArray = npt.NDArray[np.int64]

MAX_CHUNKS = 1_000
_PERIOD = re.compile(r"^\s*(\d+)\s*([a-zA-Z]+)\s*$")
_ROWS = re.compile(r"^\s*\d[\d_,]*\s*$")
_UNITS = ("h", "d", "w", "M", "q", "y")
_SECONDS = {"h": 3600, "d": 86_400, "w": 7 * 86_400}
_MONTHS = {"M": 1, "q": 3, "y": 12}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_FIRST_MONDAY_US = 4 * 86_400 * 1_000_000  # 1970-01-05, a Monday
_HELP = "write a period such as 1d, 1w, 1M, 1q or 1y, or a number of rows such as 10000"


@dataclass(frozen=True)
class Period:
    """``count`` calendar units; ``unit`` is h, d, w, M, q or y, or ``s`` for a span
    of ``count`` seconds aligned to the epoch (a monitor's windows)."""

    count: int
    unit: str

    def __str__(self) -> str:
        return f"{self.count}{self.unit}"


@dataclass(frozen=True)
class Rows:
    """Chunks of ``count`` rows."""

    count: int

    def __str__(self) -> str:
        return str(self.count)


ChunkSize = Period | Rows


def parse_chunk(text: str | int) -> ChunkSize:
    """``1M`` -> months, ``10000`` -> rows; a UsageError saying what to write otherwise."""
    if isinstance(text, int) and not isinstance(text, bool):
        text = str(text)
    if not isinstance(text, str):
        raise UsageError(f"chunk {text!r} is not a chunk size; {_HELP}")
    if _ROWS.match(text):
        rows = int(re.sub(r"[\s_,]", "", text))
        if rows < 1:
            raise UsageError(f"chunk {text!r} holds no rows; {_HELP}")
        return Rows(rows)
    match = _PERIOD.match(text)
    if match is None:
        raise UsageError(f"chunk {text!r} is not a chunk size; {_HELP}")
    count, unit = int(match.group(1)), match.group(2)
    if unit == "m":
        raise UsageError(f"chunk {text!r}: write M for months (minutes are too short a chunk)")
    if unit not in _UNITS:
        raise UsageError(f"chunk {text!r}: unknown unit {unit!r}; {_HELP}")
    if count < 1:
        raise UsageError(f"chunk {text!r} is empty; {_HELP}")
    return Period(count, unit)


@dataclass(frozen=True)
class Chunk:
    """Rows of a table (indices, in time order when cut by time) and what they span:
    a period's start and end (exclusive), or a run of rows' first and last time."""

    rows: IntArray
    label: str
    start: datetime | None = None
    end: datetime | None = None

    @property
    def n_rows(self) -> int:
        return int(self.rows.size)


def times(table: pa.Table, column: str) -> tuple[IntArray, npt.NDArray[np.bool_]]:
    """The column as microseconds since the epoch in UTC, and which rows have one.

    Timestamps (naive ones are read as UTC), dates, and text in ISO 8601 form are
    times; anything else is an error naming the column."""
    if column not in table.column_names:
        raise UsageError(
            f"time column {column!r} is not in the data; its columns are "
            f"{', '.join(table.column_names)}"
        )
    values = table.column(column)
    type_ = values.type
    if pa.types.is_dictionary(type_):
        values = values.cast(type_.value_type)
        type_ = values.type
    if pa.types.is_null(type_):  # no row has a time
        stamps = pa.chunked_array([pa.nulls(len(values), pa.timestamp("us"))])
    elif pa.types.is_timestamp(type_):
        stamps = values
    elif pa.types.is_date(type_):
        stamps = values.cast(pa.timestamp("us"))
    elif pa.types.is_string(type_) or pa.types.is_large_string(type_):
        stamps = _parse_text(values, column)
    else:
        raise UsageError(
            f"time column {column!r} holds {type_} values, not times; name a column of "
            "dates or times (ISO 8601 text such as 2024-03-01 or 2024-03-01T12:00:00Z)"
        )
    valid = np.asarray(pc.is_valid(stamps).to_numpy(zero_copy_only=False), dtype=bool)
    ticks = np.asarray(pc.fill_null(stamps.cast(pa.int64()), 0).to_numpy(), dtype=np.int64)
    # To microseconds, rounding down (nanoseconds before 1970 included).
    unit = stamps.type.unit
    if unit == "ns":
        ticks = ticks // 1_000
    elif unit != "us":
        ticks = ticks * {"s": 1_000_000, "ms": 1_000}[unit]
    return ticks, valid


def _parse_text(values: pa.ChunkedArray, column: str) -> pa.ChunkedArray:
    text = values.cast(pa.string())
    for target in (pa.timestamp("us"), pa.timestamp("us", "UTC")):
        try:
            return text.cast(target)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            continue
    bad = next((v for v in text.to_pylist() if v is not None and not _is_time(v)), None)
    raise InvalidDataError(
        f"time column {column!r} holds text that is not a time (e.g. {bad!r}); write its "
        "times in ISO 8601, such as 2024-03-01 or 2024-03-01T12:00:00Z"
    )


def _is_time(text: str) -> bool:
    try:
        datetime.fromisoformat(text)
    except ValueError:
        return False
    return True


def cut(
    table: pa.Table, *, time_column: str | None = None, chunk: ChunkSize | None = None
) -> tuple[list[Chunk], int]:
    """The chunks of ``table`` in time order, and how many rows had no time (left out).

    Without ``chunk`` the table is one chunk; a period needs ``time_column``."""
    n = table.num_rows
    if time_column is None:
        if isinstance(chunk, Period):
            raise UsageError(
                f"chunk {chunk} is a period of time; name the time column to cut by "
                "(--time-column), or give a number of rows"
            )
        everything = np.arange(n, dtype=np.int64)
        if chunk is None:
            return [Chunk(everything, "all rows")], 0
        return _runs(everything, chunk.count, None), 0
    micros, valid = times(table, time_column)
    placed = np.flatnonzero(valid).astype(np.int64)
    order = placed[np.argsort(micros[placed], kind="stable")]
    untimed = n - placed.size
    if chunk is None:
        if not order.size:
            return [], untimed
        first, last = _at(micros[order[0]]), _at(micros[order[-1]])
        return [Chunk(order, "all rows", first, last)], untimed
    if isinstance(chunk, Rows):
        return _runs(order, chunk.count, micros), untimed
    return _periods(order, micros[order], chunk), untimed


def _runs(order: IntArray, size: int, micros: IntArray | None) -> list[Chunk]:
    count = -(-order.size // size)
    if count > MAX_CHUNKS:
        raise UsageError(
            f"chunks of {size:,} rows cut {order.size:,} rows into {count:,} chunks "
            f"(at most {MAX_CHUNKS:,}); give a larger number of rows"
        )
    chunks = []
    for i in range(count):
        rows = order[i * size : (i + 1) * size]
        label = f"rows {i * size + 1:,}-{i * size + rows.size:,}"
        if micros is None:
            chunks.append(Chunk(rows, label))
        else:
            chunks.append(Chunk(rows, label, _at(micros[rows[0]]), _at(micros[rows[-1]])))
    return chunks


def _periods(order: IntArray, sorted_micros: IntArray, period: Period) -> list[Chunk]:
    """Rows in time order cut at the period's boundaries."""
    keys = period_keys(sorted_micros, period)
    if not keys.size:
        return []
    starts = np.flatnonzero(np.concatenate([[True], keys[1:] != keys[:-1]]))
    if starts.size > MAX_CHUNKS:
        raise UsageError(
            f"chunk {period} cuts the data into {starts.size:,} chunks (at most "
            f"{MAX_CHUNKS:,}); choose a longer period"
        )
    bounds = np.append(starts, keys.size)
    chunks = []
    for i, at in enumerate(starts):
        key = int(keys[at])
        begin, end = period_start(key, period), period_start(key + 1, period)
        chunks.append(Chunk(order[at : bounds[i + 1]], _label(begin, period), begin, end))
    return chunks


def period_keys(micros: IntArray, period: Period) -> IntArray:
    """The number of the period each time falls in (consecutive periods, consecutive
    numbers; period 0 starts at the epoch, or its first Monday for weeks)."""
    if period.unit in _MONTHS:
        months = micros.astype("datetime64[us]").astype("datetime64[M]").astype(np.int64)
        return np.asarray(months // (period.count * _MONTHS[period.unit]), dtype=np.int64)
    span = period.count * _span_seconds(period) * 1_000_000
    origin = _FIRST_MONDAY_US if period.unit == "w" else 0
    return np.asarray((micros - origin) // span, dtype=np.int64)


def period_start(key: int, period: Period) -> datetime:
    """When period number ``key`` starts (UTC)."""
    if period.unit in _MONTHS:
        months = key * period.count * _MONTHS[period.unit]
        year, month = divmod(months, 12)
        return datetime(1970 + year, month + 1, 1, tzinfo=UTC)
    origin = _EPOCH + timedelta(microseconds=_FIRST_MONDAY_US if period.unit == "w" else 0)
    return origin + timedelta(seconds=key * period.count * _span_seconds(period))


def _span_seconds(period: Period) -> int:
    return 1 if period.unit == "s" else _SECONDS[period.unit]


def _label(start: datetime, period: Period) -> str:
    if period.unit == "y":
        return f"{start:%Y}"
    if period.unit == "q":
        return f"{start:%Y}-Q{(start.month - 1) // 3 + 1}"
    if period.unit == "M":
        return f"{start:%Y-%m}"
    if period.unit in ("d", "w"):
        return f"{start:%Y-%m-%d}"
    return f"{start:%Y-%m-%d %H:%M}"


def _at(micros: np.int64 | int) -> datetime:
    return _EPOCH + timedelta(microseconds=int(micros))
