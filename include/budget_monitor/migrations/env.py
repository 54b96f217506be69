"""Alembic environment: migrations run on the connection store.upgrade() hands in.

Run from the command line too: ``alembic -c include/budget_monitor/alembic.ini upgrade head``
with ``BUDGET_MONITOR_DB_URL`` set.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from budget_monitor.store import default_db_url, metadata, normalise_url

config = context.config
target_metadata = metadata


def run_migrations_offline() -> None:
    context.configure(
        url=normalise_url(default_db_url()), target_metadata=target_metadata, literal_binds=True, render_as_batch=True
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = create_engine(normalise_url(default_db_url()))
    with engine.begin() as conn:
        context.configure(connection=conn, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
