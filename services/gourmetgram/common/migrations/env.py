"""Alembic environment for the GourmetGram schema (run through gourmetgram.common.db.upgrade)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

from gourmetgram.common.db import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    engine = create_engine(config.get_main_option("sqlalchemy.url"), poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata)
        with context.begin_transaction():
            # Serialise concurrent upgrades (several services may start at once).
            connection.exec_driver_sql("SELECT pg_advisory_xact_lock(741852963)")
            context.run_migrations()


if context.is_offline_mode():
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=target_metadata)
    with context.begin_transaction():
        context.run_migrations()
else:
    run_migrations_online()
