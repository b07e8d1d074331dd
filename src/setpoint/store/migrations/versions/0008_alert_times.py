"""Alerts keep the data's time apart from the clock's: noticed_at.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("alerts", sa.Column("noticed_at", sa.DateTime(timezone=True), nullable=True))
    # Alerts opened before this revision were stamped with one clock for both.
    op.execute("UPDATE alerts SET noticed_at = first_seen WHERE noticed_at IS NULL")


def downgrade() -> None:
    op.drop_column("alerts", "noticed_at")
