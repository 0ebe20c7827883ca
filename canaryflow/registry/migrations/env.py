"""Alembic environment: runs on the connection :func:`canaryflow.registry.db.migrate` passes in.

No alembic.ini is needed. To run the alembic CLI by hand instead, pass ``-x url=...``.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

config = context.config
connection = config.attributes.get("connection")

if connection is None:  # alembic CLI: alembic -x url=sqlite:///canaryflow.db upgrade head
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option("sqlalchemy.url")
    engine = sa.create_engine(str(url))
    with engine.begin() as conn:
        context.configure(connection=conn, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
else:
    context.configure(connection=connection, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
