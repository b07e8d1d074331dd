"""Model versions get notes: what a person knows about a version after training
(a review's outcome, a caveat found in production), set without retraining.

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("model_versions", sa.Column("notes", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("model_versions", "notes")
