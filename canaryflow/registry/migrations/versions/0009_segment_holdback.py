"""A segments stage may keep a share of its segments' users on stable (``holdback``).

Existing exposures hold nobody back (0.0), as before.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("serving_state") as batch:
        batch.add_column(sa.Column("holdback", sa.Float(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("serving_state") as batch:
        batch.drop_column("holdback")
