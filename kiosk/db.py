"""The cabinet's SQLite database: connection, migrations, transactions, outbox, export.

One file shared by the controller and the sync agent (WAL). Every connection gets the same
pragmas; every write that belongs together goes through ``with transaction(db):``. The
schema is documented in docs/internals.md; table and column names here are the contract.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from sqlite_utils import Database, Migrations

from kiosk.clock import now_iso
from kiosk.ids import uuid7

MIGRATION_SET = "kiosk"
BUSY_TIMEOUT_MS = 5000


class MigrationError(Exception):
    """A migration failed; it was rolled back and the previous schema is intact."""


# -- connection -------------------------------------------------------------------------------
def connect(path: str | Path) -> Database:
    """Open (creating if needed) the database with the pragmas every process relies on."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_MS / 1000)
    # journal_mode cannot change inside a transaction; a fresh connection has none open.
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    return Database(conn, execute_plugins=False)


@contextlib.contextmanager
def transaction(db: Database) -> Iterator[Database]:
    """A write transaction: ``BEGIN IMMEDIATE`` ... ``COMMIT``, ``ROLLBACK`` on any exception.

    IMMEDIATE takes the write lock up front, so a busy database waits (busy timeout) at the
    start instead of failing half way. Nested use becomes a savepoint, so helpers that open
    their own transaction (``apply_catalog``) compose with a caller's.
    """
    conn = db.conn
    if conn.in_transaction:
        name = f"sp_{secrets.token_hex(6)}"
        conn.execute(f"SAVEPOINT {name}")
        try:
            yield db
        except BaseException:
            if conn.in_transaction:
                conn.execute(f"ROLLBACK TO SAVEPOINT {name}")
                conn.execute(f"RELEASE SAVEPOINT {name}")
            raise
        conn.execute(f"RELEASE SAVEPOINT {name}")
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    try:
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


# -- schema -----------------------------------------------------------------------------------
CATALOG_SQL = """
CREATE TABLE categories (
    id TEXT PRIMARY KEY,
    zh TEXT NOT NULL,
    en TEXT NOT NULL
);
CREATE TABLE suppliers (
    id TEXT PRIMARY KEY,
    zh TEXT NOT NULL,
    kind TEXT NOT NULL,
    county TEXT NOT NULL,
    town TEXT NOT NULL,
    households INTEGER NOT NULL
);
CREATE TABLE catalog_versions (
    version INTEGER PRIMARY KEY,
    applied_at TEXT NOT NULL,
    source TEXT NOT NULL,
    note TEXT
);
CREATE TABLE products (
    sku TEXT PRIMARY KEY,
    zh TEXT NOT NULL,
    en TEXT NOT NULL,
    category TEXT NOT NULL REFERENCES categories(id),
    supplier TEXT NOT NULL REFERENCES suppliers(id),
    cert_no TEXT NOT NULL,
    price_fen INTEGER NOT NULL,
    unit_g NUMERIC NOT NULL,
    unit_sd_g NUMERIC NOT NULL,
    shelf_life_days INTEGER,
    fragile INTEGER NOT NULL DEFAULT 0,
    catalog_version INTEGER NOT NULL
);
CREATE TABLE price_history (
    id TEXT PRIMARY KEY,
    sku TEXT NOT NULL,
    price_fen INTEGER NOT NULL,
    catalog_version INTEGER,
    valid_from TEXT NOT NULL
);
CREATE INDEX price_history_sku ON price_history(sku, valid_from);
CREATE TABLE planogram (
    shelf TEXT NOT NULL,
    sku TEXT NOT NULL,
    door TEXT NOT NULL,
    low_stock INTEGER NOT NULL DEFAULT 1,
    PRIMARY KEY (shelf, sku)
);
CREATE TABLE inventory (
    shelf TEXT NOT NULL,
    sku TEXT NOT NULL,
    count INTEGER NOT NULL,
    expires_on TEXT,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (shelf, sku)
);
CREATE TABLE unit_weights (
    sku TEXT PRIMARY KEY,
    mean_g REAL NOT NULL,
    sd_g REAL NOT NULL,
    n INTEGER NOT NULL,
    updated_at TEXT NOT NULL
);
"""

JOURNAL_SQL = """
CREATE TABLE sessions (
    id TEXT PRIMARY KEY,
    door TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('sale', 'restock', 'maintenance')),
    method TEXT NOT NULL
        CHECK (method IN ('card', 'payment_code', 'scan_to_open', 'operator')),
    account TEXT,
    auth_id TEXT,
    hold_fen INTEGER,
    operator TEXT,
    state TEXT NOT NULL,
    started_at TEXT NOT NULL,
    unlocked_at TEXT,
    closed_at TEXT,
    finished_at TEXT,
    catalog_version INTEGER,
    baseline_json TEXT NOT NULL,
    verdict_json TEXT,
    outcome TEXT
);
CREATE INDEX sessions_state ON sessions(state);
CREATE TABLE sales (
    id TEXT PRIMARY KEY,
    session TEXT NOT NULL UNIQUE REFERENCES sessions(id),
    door TEXT NOT NULL,
    opened_at TEXT NOT NULL,
    closed_at TEXT NOT NULL,
    total_fen INTEGER NOT NULL,
    method TEXT NOT NULL,
    account TEXT,
    payment_status TEXT NOT NULL,
    confidence REAL NOT NULL,
    catalog_version INTEGER,
    review INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL
);
CREATE TABLE sale_items (
    sale TEXT NOT NULL REFERENCES sales(id),
    sku TEXT NOT NULL,
    qty INTEGER NOT NULL,
    unit_price_fen INTEGER NOT NULL,
    cert_no TEXT NOT NULL,
    supplier TEXT NOT NULL,
    PRIMARY KEY (sale, sku)
);
CREATE TABLE adjustments (
    id TEXT PRIMARY KEY,
    sale TEXT NOT NULL REFERENCES sales(id),
    amount_fen INTEGER NOT NULL,
    items_json TEXT NOT NULL,
    reason TEXT NOT NULL,
    actor TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    type TEXT NOT NULL,
    at TEXT NOT NULL,
    body TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'dead')),
    batch TEXT,
    delivered_at TEXT,
    why TEXT
);
CREATE INDEX outbox_state ON outbox(state, seq);
CREATE TABLE captures (
    auth_id TEXT PRIMARY KEY,
    session TEXT NOT NULL,
    amount_fen INTEGER NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'done')),
    tries INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    updated_at TEXT NOT NULL
);
CREATE TABLE inbound (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('catalog', 'config', 'accounts', 'cmd')),
    ref TEXT NOT NULL,
    received_at TEXT NOT NULL,
    payload TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'new'
        CHECK (status IN ('new', 'applied', 'rejected', 'done')),
    why TEXT,
    handled_at TEXT,
    UNIQUE (kind, ref)
);
CREATE TABLE events (
    id TEXT PRIMARY KEY,
    at TEXT NOT NULL,
    kind TEXT NOT NULL,
    severity TEXT NOT NULL CHECK (severity IN ('info', 'warning', 'alarm')),
    device TEXT,
    detail_json TEXT NOT NULL,
    alarm INTEGER NOT NULL DEFAULT 0,
    acked_at TEXT,
    acked_by TEXT
);
CREATE TABLE auth_attempts (
    id TEXT PRIMARY KEY,
    at TEXT NOT NULL,
    method TEXT NOT NULL,
    account TEXT,
    ok INTEGER NOT NULL,
    why TEXT,
    session TEXT
);
"""

PEOPLE_SQL = """
CREATE TABLE accounts (
    account TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('active', 'blocked')),
    offline_limit_fen INTEGER,
    version INTEGER NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE operators (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    card_account TEXT UNIQUE,
    pin_hash TEXT NOT NULL,
    failed INTEGER NOT NULL DEFAULT 0,
    locked_until TEXT,
    created_at TEXT NOT NULL
);
CREATE TABLE audit (
    id TEXT PRIMARY KEY,
    at TEXT NOT NULL,
    operator TEXT,
    action TEXT NOT NULL,
    detail_json TEXT NOT NULL
);
CREATE TABLE calibrations (
    id TEXT PRIMARY KEY,
    shelf TEXT NOT NULL,
    at TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('zero', 'gain')),
    known_g REAL,
    operator TEXT
);
CREATE TABLE settings (
    key TEXT PRIMARY KEY,
    value TEXT
);
"""


def _script(sql: str) -> Callable[[Database], None]:
    def run(db: Database) -> None:
        db.executescript(sql)

    return run


Step = tuple[str, Callable[[Database], None]]
# Append only: a step's name is its identity in _sqlite_migrations; never edit a shipped one.
STEPS: tuple[Step, ...] = (
    ("catalog", _script(CATALOG_SQL)),
    ("journal", _script(JOURNAL_SQL)),
    ("people", _script(PEOPLE_SQL)),
)
SCHEMA_VERSION = len(STEPS)


def _checked(name: str, fn: Callable[[Database], None]) -> Callable[[Database], None]:
    """Run a step, then refuse it (inside its transaction) if it broke a foreign key."""

    def step(db: Database) -> None:
        try:
            fn(db)
        except Exception as e:
            raise MigrationError(f"migration {name!r} failed: {e}") from e
        broken = db.execute("PRAGMA foreign_key_check").fetchall()
        if broken:
            tables = sorted({row[0] for row in broken})
            raise MigrationError(
                f"migration {name!r} leaves {len(broken)} broken foreign keys in "
                + ", ".join(tables)
            )

    step.__name__ = name
    return step


def migrations(steps: Sequence[Step] = STEPS) -> Migrations:
    m = Migrations(MIGRATION_SET)
    for name, fn in steps:
        m(name=name)(_checked(name, fn))
    return m


def migrate(db: Database, steps: Sequence[Step] = STEPS) -> int:
    """Apply pending migrations; return the schema version.

    Foreign keys are off while migrating (``transform()`` rebuilds tables that others
    reference) and checked with ``foreign_key_check`` before each step commits. Each step
    is its own transaction: a failing one is rolled back and the steps before it stay.
    """
    if db.conn.in_transaction:
        raise RuntimeError("migrate() cannot run inside a transaction")
    db.conn.execute("PRAGMA foreign_keys=OFF")  # a no-op inside a transaction, hence above
    try:
        migrations(steps).apply(db)
    finally:
        db.conn.execute("PRAGMA foreign_keys=ON")
    return schema_version(db)


def schema_version(db: Database) -> int:
    return len(Migrations(MIGRATION_SET).applied(db))


def open_db(path: str | Path) -> Database:
    """``connect`` + ``migrate``: what every process does at start."""
    db = connect(path)
    migrate(db)
    return db


# -- introspection ----------------------------------------------------------------------------
def user_tables(db: Database) -> list[str]:
    """Tables of the schema, without SQLite's and sqlite-utils' bookkeeping."""
    return [t for t in db.table_names() if not t.startswith("sqlite_") and not t.startswith("_")]


_SYNC_NAMES = {0: "off", 1: "normal", 2: "full", 3: "extra"}


def status(db: Database) -> dict[str, Any]:
    """What ``kiosk db status --json`` prints."""
    journal = db.execute("PRAGMA journal_mode").fetchone()[0]
    sync = db.execute("PRAGMA synchronous").fetchone()[0]
    return {
        "schema_version": schema_version(db),
        "journal_mode": journal,
        "synchronous": _SYNC_NAMES.get(sync, str(sync)),
        "foreign_keys": bool(db.execute("PRAGMA foreign_keys").fetchone()[0]),
        "busy_timeout_ms": db.execute("PRAGMA busy_timeout").fetchone()[0],
        "tables": {
            t: db.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in user_tables(db)
        },
    }


# -- outbox and settings ----------------------------------------------------------------------
_OUTBOX_INSERT = "INSERT INTO outbox (id, type, at, body) VALUES (?, ?, ?, ?)"


def dump_body(body: dict[str, Any]) -> str:
    """The outbox body text: compact, keys sorted, UTF-8 kept (Chinese names stay readable)."""
    return json.dumps(body, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def outbox_append(
    db: Database, type: str, body: dict[str, Any], at: str | None = None
) -> tuple[str, int]:
    """Add a record to send up, inside the caller's transaction; return ``(id, seq)``.

    ``seq`` comes from AUTOINCREMENT in the same transaction, so a rollback takes the number
    back with the row and the sequence has no gaps.
    """
    if not db.conn.in_transaction:
        raise RuntimeError("outbox_append() belongs inside `with transaction(db):`")
    rid = uuid7()
    cur = db.conn.execute(_OUTBOX_INSERT, (rid, type, at or now_iso(), dump_body(body)))
    seq = cur.lastrowid
    assert seq is not None
    return rid, seq


def get_setting(db: Database, key: str, default: str | None = None) -> str | None:
    row = db.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
    return default if row is None else row[0]


def set_setting(db: Database, key: str, value: str | None) -> None:
    db.execute(
        "INSERT INTO settings (key, value) VALUES (?, ?)"
        " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        (key, value),
    )


LAST_CONTACT = "last_contact"  # settings key: when the centre last answered (the sync screen)


def note_contact(db: Database, at: str) -> None:
    """The centre answered (the sync agent, or the controller's payment port) at ``at``."""
    set_setting(db, LAST_CONTACT, at)


# -- init from a configuration ----------------------------------------------------------------
SEEDED_KEY = "lanes_seeded_at"


def init(db: Database, cfg: Any | None = None) -> bool:
    """Create the schema; with a ``kiosk.config.Config``, record the cabinet's identity and
    seed planogram and inventory from its lanes the first time only (afterwards the
    database wins: restocks and planogram edits live here). Returns True when it seeded.
    """
    migrate(db)
    if cfg is None:
        return False
    with transaction(db):
        set_setting(db, "cabinet_id", cfg.cabinet.id)
        set_setting(db, "timezone", cfg.cabinet.timezone)
        key_file = cfg.central.key_file
        set_setting(db, "key_file", str(key_file) if key_file else None)
        if get_setting(db, SEEDED_KEY) is not None:
            return False
        at = now_iso()
        for shelf in cfg.shelves:
            for lane in shelf.lanes:
                db.conn.execute(
                    "INSERT INTO planogram (shelf, sku, door, low_stock) VALUES (?, ?, ?, ?)",
                    (shelf.id, lane.sku, shelf.door, lane.low_stock),
                )
                db.conn.execute(
                    "INSERT INTO inventory (shelf, sku, count, updated_at) VALUES (?, ?, ?, ?)",
                    (shelf.id, lane.sku, lane.count, at),
                )
        set_setting(db, SEEDED_KEY, at)
    return True


# -- CSV export / import ----------------------------------------------------------------------
# RFC 4180 CSV that spreadsheets open, with one addition so a round trip is exact: an empty
# unquoted cell is NULL and ``""`` is the empty string (the csv module cannot tell them apart).
def _cell(value: Any) -> str:
    if value is None:
        return ""
    text = str(value)
    if text == "" or any(ch in text for ch in ',"\r\n'):
        return '"' + text.replace('"', '""') + '"'
    return text


def _parse_csv(text: str) -> list[list[str | None]]:
    rows: list[list[str | None]] = []
    row: list[str | None] = []
    buf: list[str] = []
    quoted = in_quotes = False
    i, n = 0, len(text)

    def end_field() -> None:
        nonlocal quoted
        row.append("".join(buf) if buf or quoted else None)
        buf.clear()
        quoted = False

    while i < n:
        ch = text[i]
        if in_quotes:
            if ch == '"' and text[i + 1 : i + 2] == '"':
                buf.append('"')
                i += 1
            elif ch == '"':
                in_quotes = False
            else:
                buf.append(ch)
        elif ch == '"':
            in_quotes = quoted = True
        elif ch == ",":
            end_field()
        elif ch in "\r\n":
            if ch == "\r" and text[i + 1 : i + 2] == "\n":
                i += 1
            end_field()
            rows.append(row)
            row = []
        else:
            buf.append(ch)
        i += 1
    if buf or quoted or row:
        end_field()
        rows.append(row)
    return rows


def export_csv(db: Database, folder: str | Path) -> list[Path]:
    """One ``<table>.csv`` per table (UTF-8, header row first, rows in primary-key order)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for table in user_tables(db):
        cols = [c.name for c in db[table].columns]
        order = ", ".join(f'"{c}"' for c in (db[table].pks or ["rowid"]))
        path = folder / f"{table}.csv"
        with path.open("w", newline="", encoding="utf-8") as f:
            f.write(",".join(_cell(c) for c in cols) + "\r\n")
            for row in db.execute(f'SELECT * FROM "{table}" ORDER BY {order}'):
                f.write(",".join(_cell(v) for v in row) + "\r\n")
        written.append(path)
    return written


def import_csv(db: Database, folder: str | Path) -> dict[str, int]:
    """Load an export into a migrated database (restoring, or checking an export).

    Column affinity turns the text back into numbers; returns rows loaded per table.
    """
    folder = Path(folder)
    counts: dict[str, int] = {}
    with transaction(db):
        # Tables load in name order (sale_items before sales): check the keys at COMMIT.
        db.conn.execute("PRAGMA defer_foreign_keys=ON")
        for table in user_tables(db):
            path = folder / f"{table}.csv"
            if not path.exists():
                continue
            rows = _parse_csv(path.read_text(encoding="utf-8"))
            header, body = rows[0], rows[1:]
            names = ", ".join(f'"{c}"' for c in header)
            marks = ", ".join("?" for _ in header)
            db.conn.executemany(f'INSERT INTO "{table}" ({names}) VALUES ({marks})', body)
            counts[table] = len(body)
    return counts
