"""The controller's writes to the database: sessions, sales, inventory, events, outbox.

Every function takes the ``kiosk.db`` Database; writes run inside the caller's
``kiosk.db.transaction`` where several rows must land together (a sale with its items,
inventory and outbox rows). Reads that build the screen's snapshot live here too.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlite_utils import Database

from kiosk import db as kiosk_db
from kiosk import ids


def outbox(db: Database, type_: str, body: dict[str, Any], at: str) -> int:
    """One outbox record inside the caller's transaction; returns its ``seq``."""
    _, seq = kiosk_db.outbox_append(db, type_, body, at)
    return seq


# -- sessions ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class SessionRow:
    id: str
    door: str
    kind: str
    method: str
    account: str | None
    auth_id: str | None
    hold_fen: int | None
    operator: str | None
    state: str
    started_at: str
    unlocked_at: str | None
    closed_at: str | None
    catalog_version: int | None
    baseline: dict[str, float]
    verdict_json: str | None


_SESSION_COLS = (
    "id, door, kind, method, account, auth_id, hold_fen, operator, state, started_at,"
    " unlocked_at, closed_at, catalog_version, baseline_json, verdict_json"
)


def insert_session(db: Database, s: SessionRow) -> None:
    db.conn.execute(
        f"INSERT INTO sessions ({_SESSION_COLS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        (
            s.id,
            s.door,
            s.kind,
            s.method,
            s.account,
            s.auth_id,
            s.hold_fen,
            s.operator,
            s.state,
            s.started_at,
            s.unlocked_at,
            s.closed_at,
            s.catalog_version,
            json.dumps(s.baseline),
            s.verdict_json,
        ),
    )


def update_session(db: Database, session: str, **fields: Any) -> None:
    sets = ", ".join(f"{k} = ?" for k in fields)
    db.conn.execute(f"UPDATE sessions SET {sets} WHERE id = ?", (*fields.values(), session))


def unfinished_sessions(db: Database) -> list[SessionRow]:
    rows = db.conn.execute(
        f"SELECT {_SESSION_COLS} FROM sessions WHERE finished_at IS NULL ORDER BY started_at"
    ).fetchall()
    return [
        SessionRow(*r[:13], baseline=json.loads(r[13] or "{}"), verdict_json=r[14]) for r in rows
    ]


def session_body(db: Database, session: str) -> dict[str, Any]:
    r = db.conn.execute(
        "SELECT id, door, kind, method, account, operator, started_at, unlocked_at, closed_at,"
        " finished_at, outcome, catalog_version FROM sessions WHERE id = ?",
        (session,),
    ).fetchone()
    keys = [
        "id",
        "door",
        "kind",
        "method",
        "account",
        "operator",
        "started_at",
        "unlocked_at",
        "closed_at",
        "finished_at",
        "outcome",
        "catalog_version",
    ]
    return {k: v for k, v in zip(keys, r, strict=True) if v is not None}


# -- catalogue reads ---------------------------------------------------------------------------
@dataclass(frozen=True)
class ProductInfo:
    sku: str
    zh: str
    en: str
    cert_no: str | None
    supplier: str
    price_fen: int
    unit_g: float
    unit_sd_g: float
    shelf_life_days: int | None


def products(db: Database) -> dict[str, ProductInfo]:
    rows = db.conn.execute(
        "SELECT sku, zh, en, cert_no, supplier, price_fen, unit_g, unit_sd_g, shelf_life_days"
        " FROM products"
    ).fetchall()
    return {r[0]: ProductInfo(*r) for r in rows}


def catalog_version(db: Database) -> int | None:
    row = db.conn.execute("SELECT MAX(version) FROM catalog_versions").fetchone()
    return None if row is None or row[0] is None else int(row[0])


def price_at(db: Database, sku: str, at: str) -> int | None:
    """The price in force at ``at``: the newest price_history row valid from then or before."""
    row = db.conn.execute(
        "SELECT price_fen FROM price_history WHERE sku = ? AND valid_from <= ?"
        " ORDER BY valid_from DESC, catalog_version DESC, id DESC LIMIT 1",
        (sku, at),
    ).fetchone()
    if row is None:
        row = db.conn.execute("SELECT price_fen FROM products WHERE sku = ?", (sku,)).fetchone()
    return None if row is None else int(row[0])


@dataclass(frozen=True)
class LaneRow:
    shelf: str
    sku: str
    door: str
    low_stock: int
    count: int
    expires_on: str | None


def lanes(db: Database) -> list[LaneRow]:
    rows = db.conn.execute(
        "SELECT p.shelf, p.sku, p.door, p.low_stock, COALESCE(i.count, 0), i.expires_on"
        " FROM planogram p LEFT JOIN inventory i ON i.shelf = p.shelf AND i.sku = p.sku"
        " ORDER BY p.shelf, p.sku"
    ).fetchall()
    return [LaneRow(*r) for r in rows]


def set_count(
    db: Database,
    shelf: str,
    sku: str,
    count: int,
    at: str,
    expires_on: str | None = None,
    keep_expiry: bool = True,
) -> None:
    db.conn.execute(
        "INSERT INTO inventory (shelf, sku, count, expires_on, updated_at) VALUES (?,?,?,?,?)"
        " ON CONFLICT(shelf, sku) DO UPDATE SET count = excluded.count,"
        " updated_at = excluded.updated_at"
        + ("" if keep_expiry else ", expires_on = excluded.expires_on"),
        (shelf, sku, max(0, count), expires_on, at),
    )


# -- events and alarms -------------------------------------------------------------------------
def raise_event(
    db: Database,
    kind: str,
    at: str,
    *,
    severity: str = "alarm",
    device: str | None = None,
    detail: Mapping[str, Any] | None = None,
    alarm: bool = True,
    dedupe: bool = True,
) -> str | None:
    """An event row and its outbox record; an unacknowledged twin (kind, device) is not repeated.

    Returns the event id, or None when deduplicated.
    """
    if dedupe and alarm:
        twin = db.conn.execute(
            "SELECT id FROM events WHERE kind = ? AND device IS ? AND alarm = 1"
            " AND acked_at IS NULL",
            (kind, device),
        ).fetchone()
        if twin:
            return None
    event_id = ids.uuid7()
    detail = dict(detail or {})
    db.conn.execute(
        "INSERT INTO events (id, at, kind, severity, device, detail_json, alarm)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        (event_id, at, kind, severity, device, json.dumps(detail, ensure_ascii=False), int(alarm)),
    )
    outbox(
        db,
        "event",
        {"id": event_id, "kind": kind, "severity": severity, "device": device, "detail": detail},
        at,
    )
    return event_id


def open_alarms(db: Database, limit: int = 50) -> list[tuple]:
    return db.conn.execute(
        "SELECT id, at, kind, severity, device, detail_json, acked_at FROM events"
        " WHERE alarm = 1 AND acked_at IS NULL ORDER BY at DESC LIMIT ?",
        (limit,),
    ).fetchall()
