"""Online evaluators' results: one row per answer and evaluator (score, passed, label, short reason).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "evaluations",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("request_id", sa.String(128), nullable=False),
        sa.Column("config_key", sa.String(63), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("variation", sa.String(16), nullable=False),
        sa.Column("segment", sa.String(63), nullable=False),
        sa.Column("evaluator", sa.String(63), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("score", sa.Float, nullable=False),
        sa.Column("passed", sa.Boolean, nullable=False),
        sa.Column("label", sa.String(63), nullable=False),
        sa.Column("reason", sa.String(160), nullable=False),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_index("ix_evaluations_key_version", "evaluations", ["config_key", "version", "evaluator"])
    op.create_index("ix_evaluations_request", "evaluations", ["request_id"])


def downgrade() -> None:
    op.drop_index("ix_evaluations_request", table_name="evaluations")
    op.drop_index("ix_evaluations_key_version", table_name="evaluations")
    op.drop_table("evaluations")
