"""Alembic environment: the database comes from ``config.attributes["db"]`` (a path or URL,
set by central/migrate.py) or an open ``config.attributes["connection"]``."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from central.schema import metadata
from central.store import engine_for


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        # SQLite alters a table by copying it: later revisions get that for free
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    config = context.config
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    db = config.attributes.get("db") or config.get_main_option("sqlalchemy.url")
    if not db:
        raise RuntimeError("no database: give central.migrate.upgrade(db) a path or URL")
    engine = engine_for(db, pool_size=1)
    try:
        with engine.connect() as conn:
            conn.execution_options(kiosk_write=True)  # SQLite: BEGIN IMMEDIATE
            _run(conn)
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise RuntimeError("offline (SQL script) migrations are not supported")
run_migrations_online()
