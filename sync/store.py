"""The sync agent's side of the cabinet database (schema: docs/internals.md).

Reads are streamed in bounded pages (never the whole backlog); every write is one short
``BEGIN IMMEDIATE`` transaction so the controller, writing sales in the same file, waits at
most a few milliseconds. ``StorageFull`` is the one translation of SQLITE_FULL / disk I/O.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from kiosk import db as kdb
from kiosk import wire

SEVERITIES = ("info", "warning", "alarm")


class StorageFull(Exception):
    """The database cannot take another write (disk or page limit full)."""


def open_db(path: str | Path) -> Database:
    """The cabinet database, migrated (the same pragmas as every process)."""
    db = kdb.connect(path)
    kdb.migrate(db)
    return db


@contextmanager
def tx(db: Database) -> Iterator[Database]:
    """``kiosk.db.transaction``; SQLITE_FULL and friends come out as ``StorageFull``."""
    try:
        with kdb.transaction(db):
            yield db
    except sqlite3.DatabaseError as e:
        code = getattr(e, "sqlite_errorcode", None)
        if code in (sqlite3.SQLITE_FULL, sqlite3.SQLITE_IOERR) or "is full" in str(e):
            raise StorageFull(f"the cabinet's database cannot take more writes: {e}") from e
        raise


def append(db: Database, type: str, body: dict[str, Any]) -> tuple[str, int]:
    """An outbox record inside the caller's transaction: (id, seq)."""
    return kdb.outbox_append(db, type, body)


def add_event(
    db: Database,
    kind: str,
    detail: dict[str, Any],
    severity: str = "warning",
    device: str | None = None,
) -> None:
    """An event row and its outbox record, inside the caller's transaction."""
    at = wire.now_iso()
    db.execute(
        "INSERT INTO events(id, at, kind, severity, device, detail_json, alarm) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        (
            wire.uuid7(),
            at,
            kind,
            severity,
            device,
            json.dumps(detail, ensure_ascii=False),
            int(severity == "alarm"),
        ),
    )
    # The event's own fields last: a detail can never change what kind of event goes up.
    append(db, "event", {**detail, "kind": kind, "severity": severity, "device": device})


def event(db: Database, kind: str, detail: dict[str, Any], severity="warning") -> None:
    with tx(db):
        add_event(db, kind, detail, severity)


# -- the outbox ---------------------------------------------------------------------------------
# Each record's wire text (``wire.record_json``) built by SQLite: the stored body is spliced in
# as it is, with no decode/re-encode and no Python work per record (the pump's hot path).
_RECORD_JSON = (
    """'{"id":' || json_quote(id) || ',"seq":' || seq || ',"type":' || json_quote(type)"""
    """ || ',"at":' || json_quote(at) || ',"body":' || body || '}'"""
)
_PAGE = (
    f"SELECT seq, id, {_RECORD_JSON} FROM outbox WHERE state = 'pending' AND seq > ? "
    "ORDER BY seq LIMIT ?"
)


@dataclass(frozen=True)
class Span:
    """The records a batch carries, by id: all those pending from ``first_seq`` to
    ``last_seq`` when read."""

    first_seq: int
    last_seq: int
    ids: tuple[str, ...]


@dataclass(frozen=True)
class Page:
    """Pending records for one batch: what its ack is matched against, and their wire JSON
    texts, oldest first (only the span is kept while the batch is in flight)."""

    span: Span
    records_json: tuple[str, ...]


def next_page(db: Database, after_seq: int, max_records: int, max_bytes: int) -> Page | None:
    """Pending records after ``after_seq``, oldest first, within both bounds; None if none.

    A single record larger than ``max_bytes`` still goes alone, or it would block the queue.
    """
    rows = db.conn.execute(_PAGE, (after_seq, max_records)).fetchall()
    if not rows:
        return None
    size = 64  # the batch's own envelope: id and brackets
    n = 0
    for _, _, text in rows:
        size += (len(text) if text.isascii() else len(text.encode())) + 1
        if n and size > max_bytes:
            break
        n += 1
    del rows[n:]
    span = Span(rows[0][0], rows[-1][0], tuple(r[1] for r in rows))
    return Page(span, tuple(r[2] for r in rows))


def mark_acked(
    db: Database, acks: list[wire.Ack], sent: Mapping[str, Span] | None = None
) -> tuple[int, int]:
    """Apply the centre's acks (one transaction for all that arrived together): stored ->
    delivered; rejected -> dead letter with an event. ``sent``: the spans of the batches
    answered, by batch id.

    Returns (delivered, dead) counts of records that were still pending.
    """
    now = wire.now_iso()
    delivered = dead = 0
    with tx(db):
        for ack in acks:
            delivered += _mark_delivered(db, ack, (sent or {}).get(ack.batch), now)
            for r in ack.rejected:
                cur = db.execute(
                    "UPDATE outbox SET state = 'dead', batch = ?, why = ? "
                    "WHERE id = ? AND state = 'pending'",
                    (ack.batch, r.why, r.id),
                )
                if cur.rowcount:
                    dead += 1
                    add_event(db, "dead letter", {"record": r.id, "why": r.why})
    return delivered, dead


def _mark_delivered(db: Database, ack: wire.Ack, span: Span | None, now: str) -> int:
    """Stored -> delivered: the batch's seq range in one statement when the ack names all of
    it (the usual case; a record never goes back to pending, so the pending ones in the range
    are the batch's own), else id by id."""
    if span is not None and ack.stored == span.ids:
        cur = db.conn.execute(
            "UPDATE outbox SET state = 'delivered', batch = ?, delivered_at = ? "
            "WHERE state = 'pending' AND seq BETWEEN ? AND ?",
            (ack.batch, now, span.first_seq, span.last_seq),
        )
        return cur.rowcount
    before = db.conn.total_changes
    db.conn.executemany(
        "UPDATE outbox SET state = 'delivered', batch = ?, delivered_at = ? "
        "WHERE id = ? AND state = 'pending'",
        [(ack.batch, now, i) for i in ack.stored],
    )
    return db.conn.total_changes - before


@dataclass(frozen=True)
class Backlog:
    pending: int
    oldest_at: str | None
    dead: int


def backlog(db: Database) -> Backlog:
    n, oldest = db.execute(
        "SELECT count(*), min(at) FROM outbox WHERE state = 'pending'"
    ).fetchone()
    dead = db.execute("SELECT count(*) FROM outbox WHERE state = 'dead'").fetchone()[0]
    return Backlog(n, oldest, dead)


def pending_count(db: Database) -> int:
    """``backlog().pending`` alone: the index only, no scan of the rows for ``oldest_at``."""
    return db.execute("SELECT count(*) FROM outbox WHERE state = 'pending'").fetchone()[0]


def prune_delivered(db: Database, before_iso: str) -> int:
    """Delete delivered records older than ``before_iso``; pending and dead ones stay."""
    with tx(db):
        cur = db.execute(
            "DELETE FROM outbox WHERE state = 'delivered' AND delivered_at < ?", (before_iso,)
        )
    return cur.rowcount


# -- settings (small key/value state of the agent) ------------------------------------------
def get_setting(db: Database, key: str, default: str | None = None) -> str | None:
    row = db.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
    return row[0] if row else default


def put_setting(db: Database, key: str, value: str) -> None:
    """Inside the caller's transaction."""
    db.execute(
        "INSERT INTO settings(key, value) VALUES (?, ?) "
        "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        (key, value),
    )


# -- captures -----------------------------------------------------------------------------
def pending_captures(db: Database, limit: int = 50) -> list[tuple[str, int]]:
    return db.execute(
        "SELECT auth_id, amount_fen FROM captures WHERE state = 'pending' "
        "ORDER BY updated_at LIMIT ?",
        (limit,),
    ).fetchall()


def capture_tried(db: Database, auth_id: str, done: bool, error: str | None) -> None:
    with tx(db):
        db.execute(
            "UPDATE captures SET state = ?, tries = tries + 1, last_error = ?, updated_at = ? "
            "WHERE auth_id = ?",
            ("done" if done else "pending", error, wire.now_iso(), auth_id),
        )
