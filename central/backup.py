"""Back up the centre's database while the service runs, and restore it somewhere else.

``kiosk central backup --db URL --out FILE`` and ``kiosk central restore --from FILE --db URL``
(``central.backup_cli``) call :func:`backup` and :func:`restore`.

- **SQLite**: sqlite3's online backup API, all pages in one step: one read transaction, so the
  copy is the database as of one commit, and in WAL mode the service's writers go on meanwhile.
  The backup is itself a SQLite file (journal mode DELETE: one self-contained file), checked
  with ``PRAGMA quick_check`` before it is named ``--out``.
- **PostgreSQL**: ``pg_dump -Fc`` (custom format) under a snapshot exported by this module's
  own read-only transaction, so the counts it reports are those of the dump. A restore is
  ``pg_restore --single-transaction --exit-on-error --no-owner --no-privileges`` into an
  existing, EMPTY database (the platform team creates it, owned by the service's role).

Rules:

- Nothing is ever overwritten: ``--out`` must not exist; a SQLite restore target must not
  exist; a PostgreSQL restore target must hold no tables. A backup is written beside ``--out``
  and renamed when complete: a file at ``--out`` is a whole backup.
- A backup restores into the same backend (the file says which: SQLite's or pg_dump's magic).
- Passwords never go on a command line (``ps`` shows those): pg_dump and pg_restore get the
  URL without it and ``PGPASSWORD`` in their environment.
- The master key is not in the database and so not in a backup: keep it apart (docs/central.md).
- What the cabinets sent after the backup point is still on them (delivered records are kept
  ``prune_delivered_after_days``): resent, the restored centre stores what it lacks and counts
  the rest as duplicates, by record id (``Store.store_batches``).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa

if TYPE_CHECKING:  # imported where used: a SQLite backup needs no PostgreSQL driver
    import psycopg

SQLITE_MAGIC = b"SQLite format 3\x00"
PGDUMP_MAGIC = b"PGDMP"
# Where Debian's postgresql-15 puts the binaries when they are not on PATH (no pg_wrapper).
PG_BIN_DIRS = (Path("/usr/lib/postgresql/15/bin"),)
PG_TIMEOUT_S = 6 * 3600  # a large province's dump takes minutes, not hours; never forever


class BackupError(Exception):
    """The backup or restore cannot be done as asked (one line for the operator)."""


@dataclass(frozen=True)
class Summary:
    """What a backup holds, or what a restored database holds."""

    backend: str  # "sqlite" | "postgresql"
    path: str  # the backup file, or the restored database (its URL without password)
    schema: tuple[str, ...]  # Alembic revisions (one per branch)
    records: int
    sales: int
    size_bytes: int = 0  # the backup file's size (0 for a restored database)

    def line(self) -> str:
        schema = ",".join(self.schema) or "none"
        size = f", {self.size_bytes:,} bytes" if self.size_bytes else ""
        return (
            f"{self.backend} {self.path}: schema {schema}, "
            f"{self.records:,} records, {self.sales:,} sales{size}"
        )


def is_postgres(db: str | Path) -> bool:
    return isinstance(db, str) and db.split(":", 1)[0].split("+", 1)[0] in (
        "postgresql",
        "postgres",
    )


def sqlite_path(db: str | Path) -> Path:
    """A path or ``sqlite:///path`` -> the file."""
    text = str(db)
    if text.startswith("sqlite:"):
        database = sa.make_url(text).database
        if not database:
            raise BackupError(f"{text}: names no SQLite file")
        return Path(database)
    return Path(text)


# -- entry points -------------------------------------------------------------------------------
def backup(db: str | Path, out: str | Path) -> Summary:
    """Copy the database at ``db`` (in use or not) to the new file ``out``."""
    out = Path(out)
    if out.exists():
        raise BackupError(f"{out} exists: give a new name (a backup never replaces a file)")
    if not out.parent.is_dir():
        raise BackupError(f"{out.parent}: no such directory")
    if is_postgres(db):
        return _pg_backup(str(db), out)
    return _sqlite_backup(sqlite_path(db), out)


def restore(source: str | Path, db: str | Path) -> Summary:
    """Restore the backup file ``source`` into the new (SQLite) or empty (PostgreSQL) ``db``."""
    source = Path(source)
    try:
        with source.open("rb") as f:
            magic = f.read(len(SQLITE_MAGIC))
    except OSError as e:
        raise BackupError(f"{source}: cannot read: {e.strerror or e}") from e
    if magic.startswith(PGDUMP_MAGIC):
        if not is_postgres(db):
            raise BackupError(
                f"{source} is a PostgreSQL backup (pg_dump): restore it into a postgresql:// URL"
            )
        return _pg_restore(source, str(db))
    if magic == SQLITE_MAGIC:
        if is_postgres(db):
            raise BackupError(f"{source} is a SQLite backup: restore it into a SQLite file")
        return _sqlite_restore(source, sqlite_path(db))
    raise BackupError(f"{source} is not a backup of the centre (neither SQLite nor pg_dump -Fc)")


# -- SQLite -------------------------------------------------------------------------------------
@contextmanager
def _sqlite(path: Path, create: bool = False) -> Iterator[sqlite3.Connection]:
    """A plain connection; ``create=False`` opens an existing file only (never makes one)."""
    uri = f"file:{path}?mode={'rwc' if create else 'rw'}"
    try:
        conn = sqlite3.connect(uri, uri=True, timeout=30, isolation_level=None)
    except sqlite3.Error as e:
        raise BackupError(f"{path}: cannot open: {e}") from e
    try:
        yield conn
    finally:
        conn.close()


def _sqlite_copy(src_path: Path, dst_path: Path) -> None:
    """All pages in one step (one read transaction: a consistent copy as of one commit; WAL
    lets the service write meanwhile), then made one self-contained, checked file."""
    with _sqlite(src_path) as src, _sqlite(dst_path, create=True) as dst:
        try:
            src.backup(dst, pages=-1)
            dst.execute("PRAGMA journal_mode=DELETE")
            check = dst.execute("PRAGMA quick_check").fetchone()[0]
        except sqlite3.Error as e:
            raise BackupError(f"{src_path}: copy failed: {e}") from e
    if check != "ok":
        raise BackupError(f"{src_path}: the copy fails quick_check: {check}")


def _sqlite_summary(path: Path, shown: str, size: int = 0) -> Summary:
    with _sqlite(path) as conn:
        try:
            schema = tuple(
                sorted(r[0] for r in conn.execute("SELECT version_num FROM alembic_version"))
            )
            records = conn.execute("SELECT count(*) FROM records").fetchone()[0]
            sales = conn.execute("SELECT count(*) FROM sales").fetchone()[0]
        except sqlite3.Error as e:
            raise BackupError(f"{shown}: not a centre's database ({e})") from e
    return Summary("sqlite", shown, schema, int(records), int(sales), size)


def _sqlite_backup(src: Path, out: Path) -> Summary:
    if not src.is_file():
        raise BackupError(f"{src}: no such file")
    tmp = out.with_name(f".{out.name}.partial")
    tmp.unlink(missing_ok=True)
    try:
        _sqlite_copy(src, tmp)
        summary = _sqlite_summary(tmp, str(out), tmp.stat().st_size)
        _publish(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return summary


def _sqlite_restore(source: Path, target: Path) -> Summary:
    leftovers = [p for p in (target, *_sqlite_sidecars(target)) if p.exists()]
    if leftovers:
        raise BackupError(
            f"{leftovers[0]} exists: restore into a new file (a restore never replaces data)"
        )
    if not target.parent.is_dir():
        raise BackupError(f"{target.parent}: no such directory")
    tmp = target.with_name(f".{target.name}.partial")
    tmp.unlink(missing_ok=True)
    try:
        _sqlite_copy(source, tmp)
        _publish(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return _sqlite_summary(target, str(target))


def _sqlite_sidecars(path: Path) -> list[Path]:
    return [path.with_name(path.name + s) for s in ("-wal", "-shm", "-journal")]


def _publish(tmp: Path, final: Path) -> None:
    """Durably and without replacing anything: the file's bytes, then its name (a hard link
    fails on an existing name, where a rename would replace it); a crash leaves the whole file
    under its name or nothing there. The caller removes ``tmp``."""
    with tmp.open("rb") as f:
        os.fsync(f.fileno())
    try:
        os.link(tmp, final)
    except FileExistsError:
        raise BackupError(f"{final} appeared meanwhile: not replaced") from None
    except OSError as e:
        raise BackupError(f"{final}: {e.strerror or e}") from e
    fd = os.open(final.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# -- PostgreSQL ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Pg:
    """A postgresql:// URL split for libpq tools: the URL without password, and the env."""

    url: str  # libpq form, no password (what is shown and passed on command lines)
    env: dict[str, str]


def _pg(db: str) -> _Pg:
    try:
        u = sa.make_url(db)
    except sa.exc.ArgumentError as e:
        raise BackupError(f"{db!r} is not a database URL") from e
    # libpq knows neither SQLAlchemy's "+psycopg" driver suffix nor the password's absence.
    bare = sa.URL.create(
        "postgresql",
        username=u.username,
        host=u.host,
        port=u.port,
        database=u.database,
        query=u.query,
    )
    env = dict(os.environ)
    if u.password is not None:
        env["PGPASSWORD"] = str(u.password)
    return _Pg(bare.render_as_string(hide_password=False), env)


def pg_tool(name: str) -> str:
    """pg_dump / pg_restore: ``$KIOSK_PG_BIN``, else on PATH, else Debian's versioned folder."""
    env_dir = os.environ.get("KIOSK_PG_BIN")
    candidates = [Path(env_dir) / name] if env_dir else []
    found = shutil.which(name)
    if found:
        candidates.append(Path(found))
    candidates += [d / name for d in PG_BIN_DIRS]
    for c in candidates:
        if c.is_file() and os.access(c, os.X_OK):
            return str(c)
    raise BackupError(f"{name} not found: install postgresql-client-15 (or set KIOSK_PG_BIN)")


def _run(argv: list[str], env: dict[str, str], what: str) -> None:
    try:
        done = subprocess.run(
            argv, env=env, capture_output=True, text=True, timeout=PG_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        raise BackupError(f"{what}: {e}") from e
    if done.returncode != 0:
        lines = [ln for ln in (done.stderr or done.stdout).splitlines() if ln.strip()]
        raise BackupError(f"{what} failed: {lines[0] if lines else f'exit {done.returncode}'}")


def _connect(pg: _Pg) -> psycopg.Connection:
    import psycopg

    try:
        return psycopg.connect(
            pg.url, password=pg.env.get("PGPASSWORD"), connect_timeout=10, autocommit=True
        )
    except psycopg.Error as e:
        raise BackupError(f"{pg.url}: cannot connect: {str(e).strip().splitlines()[0]}") from e


def _pg_counts(cur: psycopg.Cursor) -> tuple[tuple[str, ...], int, int]:
    schema = tuple(sorted(r[0] for r in cur.execute("SELECT version_num FROM alembic_version")))
    records = cur.execute("SELECT count(*) FROM records").fetchone()[0]
    sales = cur.execute("SELECT count(*) FROM sales").fetchone()[0]
    return schema, int(records), int(sales)


def _pg_backup(db: str, out: Path) -> Summary:
    import psycopg

    pg = _pg(db)
    pg_dump = pg_tool("pg_dump")
    tmp = out.with_name(f".{out.name}.partial")
    tmp.unlink(missing_ok=True)
    try:
        with _connect(pg) as conn:
            # A snapshot of our own, held until pg_dump has taken it: the counts below and the
            # dump see the same commits, whatever the service writes meanwhile.
            conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            cur = conn.cursor()
            snapshot = cur.execute("SELECT pg_export_snapshot()").fetchone()[0]
            try:
                schema, records, sales = _pg_counts(cur)
            except psycopg.Error as e:
                raise BackupError(f"{pg.url}: not a centre's database ({e})") from e
            _run(
                [pg_dump, "-Fc", f"--snapshot={snapshot}", "-f", str(tmp), "-d", pg.url],
                pg.env,
                "pg_dump",
            )
            conn.execute("COMMIT")
        # pg_restore reads the archive's table of contents: a truncated file fails here.
        _run([pg_tool("pg_restore"), "--list", str(tmp)], pg.env, "pg_restore --list")
        size = tmp.stat().st_size
        _publish(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return Summary("postgresql", str(out), schema, records, sales, size)


def _pg_restore(source: Path, db: str) -> Summary:
    pg = _pg(db)
    with _connect(pg) as conn:
        tables = conn.execute(
            "SELECT count(*) FROM pg_catalog.pg_tables "
            "WHERE schemaname NOT IN ('pg_catalog', 'information_schema')"
        ).fetchone()[0]
    if tables:
        raise BackupError(
            f"{pg.url} holds {tables} table(s): restore into a new, empty database "
            "(createdb -O <the service's role> NAME)"
        )
    # --no-owner/--no-privileges: the objects belong to whoever restores (the service's role),
    # whatever role owned them where the backup was made. One transaction: all or nothing.
    _run(
        [
            pg_tool("pg_restore"),
            "--single-transaction",
            "--exit-on-error",
            "--no-owner",
            "--no-privileges",
            "-d",
            pg.url,
            str(source),
        ],
        pg.env,
        "pg_restore",
    )
    with _connect(pg) as conn:
        schema, records, sales = _pg_counts(conn.cursor())
    return Summary("postgresql", pg.url, schema, records, sales)
