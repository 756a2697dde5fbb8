"""``kiosk central backup`` and ``kiosk central restore`` (``central.backup`` does the work).

::

    kiosk central backup --db PATH|URL --out FILE       # while the service runs
    kiosk central restore --from FILE --db PATH|URL     # into a new file / an empty database

Each prints one line saying what the backup (or the restored database) holds: schema, records
and sales, to compare with ``kiosk central stats``. A backup or restore that cannot be done is
one line on stderr and exit 2 (``central.cli_common.UsageError``); nothing is overwritten.
"""

from __future__ import annotations

import argparse

from central import backup as bk
from central.cli_common import UsageError, db_arg


def backup_cmd(args: argparse.Namespace) -> int:
    db = db_arg(args)
    try:
        summary = bk.backup(db, args.out)
    except bk.BackupError as e:
        raise UsageError(str(e)) from e
    print(f"backup: {summary.line()}")
    return 0


def restore_cmd(args: argparse.Namespace) -> int:
    from central import migrate

    db = db_arg(args, what="a new SQLite file or an empty database's URL")
    try:
        summary = bk.restore(args.source, db)
    except bk.BackupError as e:
        raise UsageError(str(e)) from e
    print(f"restored: {summary.line()}")
    if set(summary.schema) != migrate.heads():
        # SQLite migrates when the service starts; PostgreSQL is an operator's step.
        print(
            "the schema is not this software's newest: run `kiosk central db upgrade` on it "
            "(a backup from an older version), or install the version that made the backup"
        )
    return 0


def add_cli(sub: argparse._SubParsersAction) -> None:
    """``backup`` and ``restore`` under ``kiosk central``."""
    b = sub.add_parser(
        "backup",
        help="back up the database while the service runs",
        description="Back up the centre's database (SQLite: online copy; PostgreSQL: pg_dump -Fc).",
    )
    b.set_defaults(handler=backup_cmd)
    b.add_argument("--db", default=argparse.SUPPRESS, help="SQLite file or postgresql:// URL")
    b.add_argument("--out", required=True, metavar="FILE", help="the new backup file")

    r = sub.add_parser(
        "restore",
        help="restore a backup into a new SQLite file or an empty PostgreSQL database",
        description="Restore a backup made by `kiosk central backup` (never over existing data).",
    )
    r.set_defaults(handler=restore_cmd)
    r.add_argument("--from", dest="source", required=True, metavar="FILE", help="the backup")
    r.add_argument(
        "--db", default=argparse.SUPPRESS, help="a new SQLite file or an empty database's URL"
    )
