"""Implicit feedback: one row per request and event (edited, copied, …), attributed to the request.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "implicit_feedback",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("request_id", sa.String(128), nullable=False),
        sa.Column("event", sa.String(32), nullable=False),
        sa.Column("value", sa.Float, nullable=True),
        sa.Column("config_key", sa.String(63), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("variation", sa.String(16), nullable=False),
        sa.Column("segment", sa.String(63), nullable=False),
        sa.Column("served_at", TS, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=True),
        sa.UniqueConstraint("request_id", "event", name="uq_implicit_request_event"),
    )
    op.create_index("ix_implicit_key_version_served", "implicit_feedback",
                    ["config_key", "version", "served_at"])


def downgrade() -> None:
    op.drop_index("ix_implicit_key_version_served", table_name="implicit_feedback")
    op.drop_table("implicit_feedback")
