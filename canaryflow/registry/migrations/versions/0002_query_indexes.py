"""Indexes for the queries that grow with history: audit trail per config, traffic samples per version,
feedback per version.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_audit_events_key_id", "audit_events", ["config_key", "id"])
    op.create_index("ix_traffic_log_key_version_created", "traffic_log",
                    ["config_key", "version", "created_at"])
    op.create_index("ix_feedback_key_version", "feedback", ["config_key", "version"])


def downgrade() -> None:
    op.drop_index("ix_feedback_key_version", table_name="feedback")
    op.drop_index("ix_traffic_log_key_version_created", table_name="traffic_log")
    op.drop_index("ix_audit_events_key_id", table_name="audit_events")
