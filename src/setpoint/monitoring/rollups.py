"""Daily rollups: a day of a monitor's windows merged into one digest.

A year of hourly windows is 8,760 digests, and parsing them is most of the time the
dashboard takes to draw a year (bench/ui.py). Each day's windows are merged
(``digest.merge``) into a row of ``monitor_rollups`` (migration 0013), kept in the same
transaction as the windows: whatever stores, updates or deletes a window refreshes its
day here. A long range then reads 365 rows instead.

A day is the UTC day a window starts in. Rollups only help monitors whose window is
shorter than a day; the caller decides when to read them.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from setpoint.monitoring.digest import merge
from setpoint.monitoring.series import WindowDigest, paused_gc, read_series
from setpoint.monitoring.window import aware
from setpoint.store.schema import monitor_rollups

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

DAY = timedelta(days=1)


def day_of(start: datetime) -> datetime:
    """The UTC midnight of the day ``start`` falls in."""
    return aware(start).astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def refresh(conn: Connection, monitor_id: int, days: Iterable[datetime]) -> None:
    """Merge again the windows of each of ``days`` (UTC midnights) and store the result,
    or drop the day's rollup when it has no window left. Call it in the transaction
    that changed the windows, so the two never disagree."""
    rows = []
    for day in sorted(set(days)):
        windows = read_series(conn, monitor_id, since=day, until=day + DAY)
        if windows:
            rows.append(_row(monitor_id, day, windows))
        else:
            r = monitor_rollups.c
            conn.execute(
                sa.delete(monitor_rollups).where((r.monitor_id == monitor_id) & (r.day == day))
            )
    if rows:
        _upsert(conn, rows)


def rebuild(conn: Connection, monitor_id: int) -> int:
    """Every rollup of monitor ``monitor_id`` made again from its windows (for loaders
    that insert windows in bulk); the number of days."""
    conn.execute(sa.delete(monitor_rollups).where(monitor_rollups.c.monitor_id == monitor_id))
    by_day: dict[datetime, list[WindowDigest]] = {}
    for window in read_series(conn, monitor_id):
        by_day.setdefault(day_of(window.start), []).append(window)
    rows = [_row(monitor_id, day, windows) for day, windows in by_day.items()]
    for i in range(0, len(rows), 500):
        conn.execute(sa.insert(monitor_rollups), rows[i : i + 500])
    return len(rows)


def read_daily(
    conn: Connection,
    monitor_id: int,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[WindowDigest]:
    """The days holding windows that start in [``since``, ``until``), oldest first, each
    as ``WindowDigest(day, day + 1 day, rows, merged digest)``; a day cut by ``since``
    comes whole."""
    r = monitor_rollups.c
    text = sa.cast(r.digest, sa.Text).label("digest")
    query = sa.select(r.day, r.n_rows, text).where(r.monitor_id == monitor_id)
    if since is not None:
        query = query.where(r.day >= day_of(since))
    if until is not None:
        query = query.where(r.day < until)
    rows = conn.execute(query.order_by(r.day)).all()
    with paused_gc():
        return [
            WindowDigest(aware(row.day), aware(row.day) + DAY, row.n_rows, orjson.loads(row.digest))
            for row in rows
        ]


def _row(monitor_id: int, day: datetime, windows: list[WindowDigest]) -> dict[str, Any]:
    merged = merge([w.digest for w in windows])
    return {
        "monitor_id": monitor_id,
        "day": day,
        "n_windows": len(windows),
        "n_rows": sum(w.n_rows for w in windows),
        "digest": merged,
    }


def _upsert(conn: Connection, rows: list[dict[str, Any]]) -> None:
    insert = sqlite_insert if conn.dialect.name == "sqlite" else postgresql_insert
    statement = insert(monitor_rollups)
    conn.execute(
        statement.on_conflict_do_update(
            index_elements=["monitor_id", "day"],
            set_={
                "n_windows": statement.excluded.n_windows,
                "n_rows": statement.excluded.n_rows,
                "digest": statement.excluded.digest,
            },
        ),
        rows,
    )
