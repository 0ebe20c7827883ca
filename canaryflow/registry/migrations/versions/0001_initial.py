"""Initial schema: configs, versions, segments, counters, serving state, audit, traffic log, feedback.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "configs",
        sa.Column("key", sa.String(63), primary_key=True),
        sa.Column("latest_version", sa.Integer(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_table(
        "config_versions",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("config_key", sa.String(63), sa.ForeignKey("configs.key"), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("author", sa.String(), nullable=True),
        sa.Column("rationale", sa.String(), nullable=True),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.UniqueConstraint("config_key", "version", name="uq_config_versions_key_version"),
        sa.UniqueConstraint("config_key", "content_hash", name="uq_config_versions_key_hash"),
    )
    op.create_table(
        "segments",
        sa.Column("name", sa.String(63), primary_key=True),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("updated_by", sa.String(), nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_table(
        "counters",
        sa.Column("name", sa.String(63), primary_key=True),
        sa.Column("value", sa.Integer(), nullable=False),
    )
    op.create_table(
        "serving_state",
        sa.Column("config_key", sa.String(63), sa.ForeignKey("configs.key"), primary_key=True),
        sa.Column("stable_version", sa.Integer(), nullable=True),
        sa.Column("candidate_version", sa.Integer(), nullable=True),
        sa.Column("stage", sa.String(), nullable=True),
        sa.Column("stage_kind", sa.String(), nullable=False),
        sa.Column("exposed_segments", sa.JSON(), nullable=False),
        sa.Column("percent", sa.Float(), nullable=False),
        sa.Column("shadow_fraction", sa.Float(), nullable=False),
        sa.Column("salt", sa.String(), nullable=False),
        sa.Column("pins", sa.JSON(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("updated_by", sa.String(), nullable=False),
        sa.Column("updated_reason", sa.String(), nullable=False),
        sa.Column("updated_source", sa.String(), nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_table(
        "audit_events",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("at", TS, nullable=False),
        sa.Column("config_key", sa.String(63), nullable=True),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("actor", sa.String(), nullable=False),
        sa.Column("source", sa.String(), nullable=False),
        sa.Column("reason", sa.String(), nullable=False),
        sa.Column("before", sa.JSON(), nullable=False),
        sa.Column("after", sa.JSON(), nullable=False),
    )
    op.create_table(
        "traffic_log",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("request_id", sa.String(128), nullable=False),
        sa.Column("config_key", sa.String(63), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("variation", sa.String(16), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("request_json", sa.JSON(), nullable=False),
        sa.Column("response_json", sa.JSON(), nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=True),
        sa.Column("error_type", sa.String(32), nullable=True),
        sa.Column("input_tokens", sa.Integer(), nullable=True),
        sa.Column("output_tokens", sa.Integer(), nullable=True),
        sa.Column("cost_usd", sa.Float(), nullable=True),
    )
    op.create_index("ix_traffic_log_request_id", "traffic_log", ["request_id"])
    op.create_table(
        "feedback",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("request_id", sa.String(128), nullable=False),
        sa.Column("config_key", sa.String(63), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("variation", sa.String(16), nullable=False),
        sa.Column("sentiment", sa.String(16), nullable=False),
        sa.Column("comment", sa.String(), nullable=True),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_index("ix_feedback_request_id", "feedback", ["request_id"])


def downgrade() -> None:
    for table in ("feedback", "traffic_log", "audit_events", "serving_state", "counters", "segments",
                  "config_versions", "configs"):
        op.drop_table(table)
