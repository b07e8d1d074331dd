"""Monitor windows get a digest: the few hundred bytes of their results that the
dashboard's time series draw, so that a year of hourly windows is read without
parsing a year of 17 KB results documents (monitoring/digest.py).

Existing windows are digested here, in batches of rows (a batch's results in memory
at a time, not the table's). The digest module is pure and versioned (``"v"``); a
later change to its shape recomputes in a migration of its own.

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

from setpoint.monitoring.digest import digest

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

_BATCH = 500
_windows = sa.table(
    "monitor_windows",
    sa.column("id", sa.Integer),
    sa.column("n_rows", sa.Integer),
    sa.column("results", sa.JSON),
    sa.column("digest", sa.JSON),
)


def upgrade() -> None:
    conn = op.get_bind()
    column = sa.Column("digest", sa.JSON(), nullable=True)
    if conn.dialect.name == "sqlite":
        # SQLite reads a row's columns in order, and a column after a 17 KB results
        # document is reached through its overflow pages: the table is rebuilt with the
        # digest before the results, so a series reads about a page a window.
        # (PostgreSQL keeps large values out of line; adding the column is enough.)
        with op.batch_alter_table("monitor_windows", recreate="always") as batch:
            batch.add_column(column, insert_before="results")
    else:
        op.add_column("monitor_windows", column)
    last = 0
    while True:
        rows = conn.execute(
            sa.select(_windows.c.id, _windows.c.n_rows, _windows.c.results)
            .where((_windows.c.id > last) & _windows.c.digest.is_(None))
            .order_by(_windows.c.id)
            .limit(_BATCH)
        ).all()
        if not rows:
            return
        conn.execute(
            sa.update(_windows)
            .where(_windows.c.id == sa.bindparam("window_id"))
            .values(digest=sa.bindparam("window_digest", type_=sa.JSON)),
            [{"window_id": r.id, "window_digest": digest(r.results or {}, r.n_rows)} for r in rows],
        )
        last = rows[-1].id


def downgrade() -> None:
    op.drop_column("monitor_windows", "digest")
