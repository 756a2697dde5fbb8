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
    command.upgrade(config(db), "heads")


def heads() -> set[str]:
    """The newest revision of each branch (one, once branches are merged)."""
    return set(ScriptDirectory.from_config(config("")).get_heads())


def head() -> str | None:
    """The newest revision when there is one head, else None."""
    h = heads()
    return next(iter(h)) if len(h) == 1 else None


def current_heads(db: str | Path) -> set[str]:
    """The database's schema revisions (one per branch); empty when never migrated."""
    engine = engine_for(db, pool_size=1)
    try:
        with engine.connect() as conn:
            return set(MigrationContext.configure(conn).get_current_heads())
    finally:
        engine.dispose()


def current(db: str | Path) -> str | None:
    """The database's schema revision; None when it was never migrated (or is on branches)."""
    h = current_heads(db)
    return next(iter(h)) if len(h) == 1 else None


def at_head(db: str | Path) -> bool:
    return current_heads(db) == heads()
