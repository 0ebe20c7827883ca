"""The serving state records which rollout owns the exposure; exposure changes compare-and-set it.

Existing exposures are given to the rollout that applied them (``updated_source`` is its workflow id).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("serving_state") as batch:
        batch.add_column(sa.Column("owner", sa.String(length=255), nullable=True))
    op.execute(
        "UPDATE serving_state SET owner = updated_source "
        "WHERE stage_kind <> 'none' AND updated_source LIKE 'rollout-%'"
    )


def downgrade() -> None:
    with op.batch_alter_table("serving_state") as batch:
        batch.drop_column("owner")
