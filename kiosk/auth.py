"""Staff cards: who may open a door on account, and how much offline per calendar day.

A card's UID never reaches the database: ``account`` is the keyed hash of sync.md. The
``accounts`` table (from the platform, or ``kiosk accounts import``) says whether it is active
and its offline limit; spending is counted from today's card sales of that account, "today"
being the cabinet's calendar day. Every attempt, allowed or not, is one ``auth_attempts`` row.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from kiosk import ids
from kiosk.signing import card_account
from kiosk.snapshot import Reason


@dataclass(frozen=True)
class CardDecision:
    ok: bool
    account: str
    why: str = Reason.OK  # a Reason value
    limit_fen: int = 0
    spent_fen: int = 0

    @property
    def remaining_fen(self) -> int:
        return max(0, self.limit_fen - self.spent_fen)


def iso(t: datetime) -> str:
    """RFC 3339 UTC with milliseconds and ``Z`` (the database's time format)."""
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def day_bounds(day: date, tz: str) -> tuple[str, str]:
    """The UTC bounds [start, end) of a calendar day in the cabinet's time zone."""
    zone = ZoneInfo(tz)
    start = datetime.combine(day, time(), zone)
    end = datetime.combine(day + timedelta(days=1), time(), zone)
    return iso(start), iso(end)


def spent_today(conn: sqlite3.Connection, account: str, now: datetime, tz: str) -> int:
    lo, hi = day_bounds(now.astimezone(ZoneInfo(tz)).date(), tz)
    row = conn.execute(
        "SELECT COALESCE(SUM(total_fen), 0) FROM sales WHERE account = ? AND method = 'card'"
        " AND closed_at >= ? AND closed_at < ?",
        (account, lo, hi),
    ).fetchone()
    return int(row[0])


def record_attempt(
    conn: sqlite3.Connection,
    method: str,
    account: str | None,
    ok: bool,
    why: str | None,
    session: str | None,
    at: str,
) -> None:
    conn.execute(
        "INSERT INTO auth_attempts (id, at, method, account, ok, why, session)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        (ids.uuid7(), at, method, account, int(ok), None if ok else why, session),
    )


def check_card(
    conn: sqlite3.Connection,
    key: bytes,
    uid: str,
    *,
    now: datetime,
    tz: str,
    default_limit_fen: int,
) -> CardDecision:
    """Decide a staff card (no side effects; the caller records the attempt)."""
    account = card_account(key, uid)
    row = conn.execute(
        "SELECT status, offline_limit_fen FROM accounts WHERE account = ?", (account,)
    ).fetchone()
    if row is None:
        return CardDecision(False, account, Reason.CARD_UNKNOWN)
    status, limit = row[0], row[1]
    if status != "active":
        return CardDecision(False, account, Reason.CARD_BLOCKED)
    limit = default_limit_fen if limit is None else int(limit)
    spent = spent_today(conn, account, now, tz)
    if spent >= limit:
        return CardDecision(False, account, Reason.OVER_OFFLINE_LIMIT, limit, spent)
    return CardDecision(True, account, Reason.OK, limit, spent)


@dataclass(frozen=True)
class AccountRow:
    card: str
    name: str
    offline_limit_fen: int | None
    status: str


def import_accounts(conn: sqlite3.Connection, key: bytes, rows: list[AccountRow], at: str) -> int:
    """Upsert accounts from clear card numbers (a cabinet without a platform); returns count."""
    for r in rows:
        conn.execute(
            "INSERT INTO accounts (account, name, status, offline_limit_fen, version, updated_at)"
            " VALUES (?, ?, ?, ?, 0, ?) ON CONFLICT(account) DO UPDATE SET name = excluded.name,"
            " status = excluded.status, offline_limit_fen = excluded.offline_limit_fen,"
            " updated_at = excluded.updated_at",
            (card_account(key, r.card), r.name, r.status, r.offline_limit_fen, at),
        )
    return len(rows)
