"""What every ``kiosk central`` subcommand shares: its one error, and opening the database.

The area modules (``auth_cli``, ``hooks_cli``, ``figures_cli``, ``backup_cli``) and
``central.cli`` all take ``--db PATH|URL`` and stop with one line and exit 2 on bad input
(``UsageError``, caught once in ``central.cli.main``).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from central.store import Store

CENTRE_DB = "the centre's SQLite file or postgresql:// URL"


class UsageError(Exception):
    """A command line that cannot be run as given (exit 2)."""


def db_arg(args: argparse.Namespace, must_exist: bool = False, what: str = CENTRE_DB) -> str:
    """``--db``: given, and with ``must_exist`` a SQLite file that is there."""
    db = getattr(args, "db", None)
    if not db:
        raise UsageError(f"give --db PATH|URL ({what})")
    if must_exist and "://" not in db and not Path(db).exists():
        raise UsageError(f"{db}: no such file")
    return str(db)


def open_store(args: argparse.Namespace, pool_size: int = 5) -> Store:
    """The centre's store for a command, as the service opens it: a SQLite file migrated, a
    PostgreSQL database at the newest schema, a server that does not answer one line."""
    from sqlalchemy.exc import SQLAlchemyError

    from central.service import ServiceError, prepare_database
    from central.store import Store

    db = db_arg(args, must_exist=True)
    try:
        prepare_database(db)
    except ServiceError as e:
        raise UsageError(str(e)) from e
    except SQLAlchemyError as e:  # a server that is down, a wrong password
        why = str(getattr(e, "orig", None) or e).strip().splitlines()[0]
        raise UsageError(f"cannot open the database: {why}") from e
    return Store(db, pool_size=pool_size)
