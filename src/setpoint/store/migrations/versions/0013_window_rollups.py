"""Monitors get daily rollups: each day's window digests merged into one
(monitoring/rollups.py), so that a year of hourly windows draws from 365 digests
instead of 8,760.

Existing windows are rolled up here, a monitor at a time and a batch of windows at a
time (their digests only, never their results unless a digest is missing).

Revision ID: 0013
Revises: 0012
"""

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

from setpoint.monitoring.digest import digest, merge

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

_BATCH = 2000
_windows = sa.table(
    "monitor_windows",
    sa.column("id", sa.Integer),
    sa.column("monitor_id", sa.Integer),
    sa.column("start", sa.DateTime(timezone=True)),
    sa.column("n_rows", sa.Integer),
    sa.column("results", sa.JSON),
    sa.column("digest", sa.JSON),
)
_monitors = sa.table("monitors", sa.column("id", sa.Integer))


def upgrade() -> None:
    rollups = op.create_table(
        "monitor_rollups",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("monitor_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.DateTime(timezone=True), nullable=False),
        sa.Column("n_windows", sa.Integer(), nullable=False),
        sa.Column("n_rows", sa.Integer(), nullable=False),
        sa.Column("digest", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["monitor_id"], ["monitors.id"], name=op.f("fk_monitor_rollups_monitor_id_monitors")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_monitor_rollups")),
        sa.UniqueConstraint("monitor_id", "day", name=op.f("uq_monitor_rollups_monitor_id_day")),
    )
    assert rollups is not None
    conn = op.get_bind()
    for monitor_id in list(conn.execute(sa.select(_monitors.c.id)).scalars()):
        _backfill(conn, rollups, monitor_id)


def _backfill(conn: sa.Connection, rollups: sa.Table, monitor_id: int) -> None:
    """Roll up one monitor's windows, read in order of start a batch at a time."""
    w = _windows.c
    day: datetime | None = None
    found: list[tuple[int, dict[str, Any]]] = []
    after: datetime | None = None
    while True:
        query = sa.select(w.id, w.start, w.n_rows, w.digest).where(w.monitor_id == monitor_id)
        if after is not None:
            query = query.where(w.start > after)
        rows = conn.execute(query.order_by(w.start).limit(_BATCH)).all()
        if not rows:
            break
        done = []
        for r in rows:
            start = r.start if r.start.tzinfo else r.start.replace(tzinfo=UTC)
            midnight = start.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
            if day is not None and midnight != day:
                done.append(_rollup(monitor_id, day, found))
                found = []
            day = midnight
            found.append((r.n_rows, r.digest if r.digest is not None else _digest(conn, r.id)))
        if done:
            conn.execute(sa.insert(rollups), done)
        after = rows[-1].start
    if day is not None:
        conn.execute(sa.insert(rollups), [_rollup(monitor_id, day, found)])


def _digest(conn: sa.Connection, window_id: int) -> dict[str, Any]:
    """The digest of a window a writer before 0012 left without one."""
    w = _windows.c
    row = conn.execute(sa.select(w.n_rows, w.results).where(w.id == window_id)).one()
    return digest(row.results or {}, row.n_rows)


def _rollup(
    monitor_id: int, day: datetime, found: list[tuple[int, dict[str, Any]]]
) -> dict[str, Any]:
    return {
        "monitor_id": monitor_id,
        "day": day,
        "n_windows": len(found),
        "n_rows": sum(n for n, _ in found),
        "digest": merge([d for _, d in found]),
    }


def downgrade() -> None:
    op.drop_table("monitor_rollups")
