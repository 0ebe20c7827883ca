"""Measurements: the full evidence of every gate measured during a rollout (the workflow keeps counters).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "measurements",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("rollout_id", sa.String(length=200), nullable=False),
        sa.Column("config_key", sa.String(length=63), nullable=False),
        sa.Column("candidate_version", sa.Integer(), nullable=False),
        sa.Column("stage", sa.String(length=63), nullable=False),
        sa.Column("gate", sa.String(length=128), nullable=False),
        sa.Column("verdict", sa.String(length=16), nullable=False),
        sa.Column("dry_run", sa.Boolean(), nullable=False),
        sa.Column("measured_at", TS, nullable=False),
        sa.Column("evidence", sa.JSON(), nullable=False),
        sa.Column("recorded_at", TS, nullable=False),
    )
    op.create_index("ix_measurements_rollout_stage_id", "measurements", ["rollout_id", "stage", "id"])
    op.create_index("ix_measurements_key_id", "measurements", ["config_key", "id"])


def downgrade() -> None:
    op.drop_index("ix_measurements_key_id", table_name="measurements")
    op.drop_index("ix_measurements_rollout_stage_id", table_name="measurements")
    op.drop_table("measurements")
