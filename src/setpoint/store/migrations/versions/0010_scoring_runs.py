"""Batch scoring runs: which model version scored which inputs, and how it ended.

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "scoring_runs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("model", sa.String(length=100), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("endpoint", sa.String(length=100), nullable=True),
        sa.Column("engine", sa.String(length=20), nullable=False),
        sa.Column("inputs", sa.JSON(), nullable=False),
        sa.Column("output", sa.Text(), nullable=False),
        sa.Column("n_rows", sa.Integer(), nullable=False),
        sa.Column("n_scored", sa.Integer(), nullable=False),
        sa.Column("n_quarantined", sa.Integer(), nullable=False),
        sa.Column("quarantine", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("runner", sa.String(length=300), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scoring_runs")),
    )
    op.create_index(op.f("ix_scoring_runs_model_version"), "scoring_runs", ["model", "version"])
    op.create_index(op.f("ix_scoring_runs_endpoint"), "scoring_runs", ["endpoint"])


def downgrade() -> None:
    op.drop_index(op.f("ix_scoring_runs_endpoint"), table_name="scoring_runs")
    op.drop_index(op.f("ix_scoring_runs_model_version"), table_name="scoring_runs")
    op.drop_table("scoring_runs")
