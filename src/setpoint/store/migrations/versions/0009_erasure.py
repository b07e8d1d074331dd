"""Dataset versions can be erased: when, how many rows, and the version without them.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("dataset_versions") as batch:
        batch.add_column(sa.Column("erased_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("erased_rows", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("replaced_by", sa.String(length=300), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("dataset_versions") as batch:
        batch.drop_column("replaced_by")
        batch.drop_column("erased_rows")
        batch.drop_column("erased_at")
