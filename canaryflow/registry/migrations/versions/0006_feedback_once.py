"""Feedback once per request: one row per request id (a later feedback replaces it), attributed to the
request's segment and serving time; a settings table for the key that signs request ids.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    # earlier feedback could repeat a request id: keep the newest row of each before making it unique
    op.execute("DELETE FROM feedback WHERE id NOT IN (SELECT MAX(id) FROM feedback GROUP BY request_id)")
    op.drop_index("ix_feedback_request_id", table_name="feedback")
    with op.batch_alter_table("feedback") as batch:
        batch.add_column(sa.Column("segment", sa.String(63), nullable=False, server_default="none"))
        batch.add_column(sa.Column("served_at", TS, nullable=True))
        batch.add_column(sa.Column("updated_at", TS, nullable=True))
    op.create_index("ix_feedback_request_id", "feedback", ["request_id"], unique=True)
    op.create_index("ix_feedback_key_version_served", "feedback", ["config_key", "version", "served_at"])
    op.create_table(
        "settings",
        sa.Column("name", sa.String(63), primary_key=True),
        sa.Column("value", sa.String(256), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("settings")
    op.drop_index("ix_feedback_key_version_served", table_name="feedback")
    op.drop_index("ix_feedback_request_id", table_name="feedback")
    with op.batch_alter_table("feedback") as batch:
        batch.drop_column("updated_at")
        batch.drop_column("served_at")
        batch.drop_column("segment")
    op.create_index("ix_feedback_request_id", "feedback", ["request_id"])
