"""Cutting a table into chunks: every row once, in time order, on calendar boundaries."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from setpoint.errors import InvalidDataError, UsageError
from setpoint.monitoring.chunks import Period, Rows, cut, parse_chunk

PERIODS = st.builds(
    Period, count=st.integers(1, 5), unit=st.sampled_from(["h", "d", "w", "M", "q", "y"])
)
TIMES = st.lists(
    st.datetimes(min_value=datetime(1950, 1, 1), max_value=datetime(2090, 1, 1)),
    min_size=1,
    max_size=200,
)


def aligned(start: datetime, period: Period) -> bool:
    """Whether ``start`` is where a calendar period of that unit begins."""
    midnight = (start.hour, start.minute, start.second, start.microsecond) == (0, 0, 0, 0)
    if period.unit == "h":
        return (start.minute, start.second, start.microsecond) == (0, 0, 0)
    if period.unit == "d":
        return midnight
    if period.unit == "w":
        return midnight and start.weekday() == 0
    if period.unit == "M":
        return midnight and start.day == 1
    if period.unit == "q":
        return midnight and start.day == 1 and start.month in (1, 4, 7, 10)
    return midnight and (start.month, start.day) == (1, 1)


@settings(max_examples=150, deadline=None)
@given(times=TIMES, period=PERIODS, nulls=st.lists(st.booleans(), max_size=200))
def test_periods_hold_every_timed_row_once_in_time_order_on_calendar_bounds(
    times: list[datetime], period: Period, nulls: list[bool]
) -> None:
    missing = [i < len(nulls) and nulls[i] for i in range(len(times))]
    column = pa.array([None if m else t for t, m in zip(times, missing, strict=True)])
    chunks, untimed = cut(pa.table({"t": column}), time_column="t", chunk=period)
    assert untimed == sum(missing)
    rows = np.concatenate([c.rows for c in chunks]) if chunks else np.array([], np.int64)
    # Every row with a time is in exactly one chunk.
    assert sorted(rows.tolist()) == [i for i, m in enumerate(missing) if not m]
    previous_end = None
    for c in chunks:
        assert c.n_rows > 0
        assert c.start is not None
        assert c.end is not None
        assert c.start.tzinfo is UTC
        assert aligned(c.start, period)
        assert aligned(c.end, period)
        assert c.end > c.start
        inside = [times[i].replace(tzinfo=UTC) for i in c.rows]
        assert all(c.start <= t < c.end for t in inside)
        assert inside == sorted(inside)  # rows in time order within a chunk
        assert previous_end is None or previous_end <= c.start  # chunks in time order
        previous_end = c.end


@settings(max_examples=100, deadline=None)
@given(times=TIMES, size=st.integers(1, 50))
def test_runs_of_rows_follow_the_time_column(times: list[datetime], size: int) -> None:
    chunks, _ = cut(pa.table({"t": pa.array(times)}), time_column="t", chunk=Rows(size))
    rows = np.concatenate([c.rows for c in chunks])
    assert sorted(rows.tolist()) == list(range(len(times)))
    assert [times[i] for i in rows] == sorted(times)
    assert all(c.n_rows == size for c in chunks[:-1])
    assert 0 < chunks[-1].n_rows <= size


def test_months_start_on_the_first_and_are_named_by_month() -> None:
    times = [datetime(2024, 1, 31, 23, 59), datetime(2024, 2, 1), datetime(2024, 4, 15)]
    chunks, _ = cut(pa.table({"t": times}), time_column="t", chunk=parse_chunk("1M"))
    assert [c.label for c in chunks] == ["2024-01", "2024-02", "2024-04"]  # no empty March
    assert chunks[1].start == datetime(2024, 2, 1, tzinfo=UTC)
    assert chunks[1].end == datetime(2024, 3, 1, tzinfo=UTC)
    quarters, _ = cut(pa.table({"t": times}), time_column="t", chunk=parse_chunk("1q"))
    assert [c.label for c in quarters] == ["2024-Q1", "2024-Q2"]


def test_times_come_as_dates_text_or_zoned_timestamps() -> None:
    dates, _ = cut(
        pa.table({"t": [date(2024, 3, 2), date(2024, 3, 9)]}), time_column="t", chunk=Period(1, "w")
    )
    assert [c.label for c in dates] == ["2024-02-26", "2024-03-04"]  # weeks from Monday
    text, _ = cut(
        pa.table({"t": ["2024-03-01T23:30:00+00:00", "2024-03-02T00:30:00+02:00"]}),
        time_column="t",
        chunk=Period(1, "d"),
    )
    assert [c.n_rows for c in text] == [2]  # 2024-03-01 in UTC, both
    zoned = pa.array([datetime(2024, 3, 2, 1, tzinfo=UTC)], pa.timestamp("ns", "Europe/Paris"))
    [day], _ = cut(pa.table({"t": zoned}), time_column="t", chunk=Period(1, "d"))
    assert day.start == datetime(2024, 3, 2, tzinfo=UTC)


def test_without_a_time_column_rows_are_cut_in_table_order() -> None:
    table = pa.table({"x": list(range(25))})
    [whole], _ = cut(table)
    assert whole.rows.tolist() == list(range(25))
    assert whole.start is None
    chunks, _ = cut(table, chunk=Rows(10))
    assert [c.label for c in chunks] == ["rows 1-10", "rows 11-20", "rows 21-25"]


def test_chunk_sizes_are_parsed_or_named_as_mistakes() -> None:
    assert parse_chunk("1M") == Period(1, "M")
    assert parse_chunk(" 2 w ") == Period(2, "w")
    assert parse_chunk("10_000") == Rows(10_000)
    assert parse_chunk(500) == Rows(500)
    for bad, says in [
        ("1m", "write M for months"),
        ("3x", "unknown unit 'x'"),
        ("0d", "is empty"),
        ("0", "holds no rows"),
        ("monthly", "not a chunk size"),
    ]:
        with pytest.raises(UsageError, match=says):
            parse_chunk(bad)


def test_time_columns_that_are_not_times_are_named() -> None:
    with pytest.raises(UsageError, match="'t' holds int64 values, not times"):
        cut(pa.table({"t": [1, 2]}), time_column="t", chunk=Period(1, "d"))
    with pytest.raises(InvalidDataError, match=r"not a time \(e.g. 'soon'\)"):
        cut(pa.table({"t": ["2024-01-01", "soon"]}), time_column="t")
    with pytest.raises(UsageError, match="time column 'when' is not in the data"):
        cut(pa.table({"t": [1]}), time_column="when")
    with pytest.raises(UsageError, match="name the time column"):
        cut(pa.table({"t": [1]}), chunk=Period(1, "d"))
    start = datetime(2024, 1, 1)
    hours = pa.table({"t": [start + timedelta(hours=i) for i in range(2_000)]})
    with pytest.raises(UsageError, match="choose a longer period"):
        cut(hours, time_column="t", chunk=Period(1, "h"))
