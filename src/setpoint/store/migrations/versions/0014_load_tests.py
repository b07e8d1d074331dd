"""Load tests: what a server sustained with one model version (setpoint loadtest).

Revision ID: 0014
Revises: 0013
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "load_tests",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("endpoint", sa.String(length=100), nullable=False),
        sa.Column("model", sa.String(length=100), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("steps", sa.JSON(), nullable=False),
        sa.Column("sustainable_rps", sa.Float(), nullable=True),
        sa.Column("plan", sa.JSON(), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_load_tests")),
    )
    op.create_index(
        op.f("ix_load_tests_endpoint_started_at"), "load_tests", ["endpoint", "started_at"]
    )
    op.create_index(op.f("ix_load_tests_model_version"), "load_tests", ["model", "version"])


def downgrade() -> None:
    op.drop_index(op.f("ix_load_tests_model_version"), table_name="load_tests")
    op.drop_index(op.f("ix_load_tests_endpoint_started_at"), table_name="load_tests")
    op.drop_table("load_tests")
