"""Schema migrations of the centre's database (Alembic, driven from code: no alembic.ini).

``kiosk central db upgrade`` calls :func:`upgrade`; the service refuses to start unless
:func:`at_head` (the Store itself never migrates).
"""

from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from central.store import engine_for

# Alembic's info lines ("Context impl SQLiteImpl.") would land before the service's one-line
# announcement on stdout, which the demo and tests read; ``db upgrade`` prints its own result.
logging.getLogger("alembic").setLevel(logging.WARNING)

# A package resource, not a file path: it works from a checkout and when installed.
SCRIPT_LOCATION = "central:migrations"


def config(db: str | Path) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", SCRIPT_LOCATION)
    # In attributes, not "sqlalchemy.url": a password with '%' would trip ConfigParser.
    cfg.attributes["db"] = str(db) if isinstance(db, Path) else db
    return cfg


def upgrade(db: str | Path) -> None:
    """Bring the database to the newest schema (creates it when empty)."""
    command.upgrade(config(db), "head")


def head() -> str | None:
    return ScriptDirectory.from_config(config("")).get_current_head()


def current(db: str | Path) -> str | None:
    """The database's schema revision; None when it was never migrated."""
    engine = engine_for(db, pool_size=1)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


def at_head(db: str | Path) -> bool:
    return current(db) == head()
