"""Operators: card plus PIN, scrypt-hashed; five bad PINs lock the account for five minutes.

Every operator action goes to the ``audit`` table through ``audit()``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from kiosk import ids
from kiosk.auth import iso
from kiosk.snapshot import Reason

MAX_FAILED = 5
LOCKOUT = timedelta(minutes=5)
# scrypt cost: ~50 ms on a cabinet PC; a 4-6 digit PIN's strength is the lockout, not this.
_N, _R, _P = 2**14, 8, 1


def hash_pin(pin: str, salt: bytes | None = None) -> str:
    salt = salt or os.urandom(16)
    h = hashlib.scrypt(pin.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    return f"scrypt${_N}${_R}${_P}${salt.hex()}${h.hex()}"


def verify_pin(pin: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, want = stored.split("$")
        if scheme != "scrypt":
            return False
        got = hashlib.scrypt(
            pin.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p), dklen=32
        )
    except ValueError:
        return False
    return hmac.compare_digest(got.hex(), want)


@dataclass(frozen=True)
class Operator:
    id: str
    name: str
    card_account: str | None


@dataclass(frozen=True)
class LoginResult:
    ok: bool
    why: str = Reason.OK
    operator: Operator | None = None
    locked_until: str | None = None


def audit(
    conn: sqlite3.Connection, operator: str | None, action: str, detail: dict[str, Any], at: str
) -> None:
    conn.execute(
        "INSERT INTO audit (id, at, operator, action, detail_json) VALUES (?, ?, ?, ?, ?)",
        (ids.uuid7(), at, operator, action, json.dumps(detail, ensure_ascii=False)),
    )


def add(
    conn: sqlite3.Connection, name: str, card_account: str | None, pin: str, at: str
) -> Operator:
    op = Operator(ids.uuid7(), name, card_account)
    conn.execute(
        "INSERT INTO operators (id, name, card_account, pin_hash, failed, locked_until,"
        " created_at) VALUES (?, ?, ?, ?, 0, NULL, ?)",
        (op.id, name, card_account, hash_pin(pin), at),
    )
    audit(conn, None, "operator_added", {"operator": op.id, "name": name}, at)
    return op


def by_card(conn: sqlite3.Connection, card_account: str) -> Operator | None:
    row = conn.execute(
        "SELECT id, name, card_account FROM operators WHERE card_account = ?", (card_account,)
    ).fetchone()
    return Operator(*row) if row else None


def login(
    conn: sqlite3.Connection, card_account: str | None, pin: str, now: datetime
) -> LoginResult:
    """Check a PIN (for the operator of ``card_account``, or any operator when None)."""
    if card_account is not None:
        rows = conn.execute(
            "SELECT id, name, card_account, pin_hash, failed, locked_until FROM operators"
            " WHERE card_account = ?",
            (card_account,),
        ).fetchall()
    else:  # PIN alone: only where the PIN identifies one operator
        rows = conn.execute(
            "SELECT id, name, card_account, pin_hash, failed, locked_until FROM operators"
        ).fetchall()
    if not rows:
        return LoginResult(False, Reason.UNKNOWN_OPERATOR)
    at = iso(now)
    if card_account is None:
        for row in rows:
            if _locked(row[5], now) is None and verify_pin(pin, row[3]):
                return _ok(conn, row, at)
        audit(conn, None, "login_failed", {"why": "bad_pin"}, at)
        return LoginResult(False, Reason.BAD_PIN)
    row = rows[0]
    until = _locked(row[5], now)
    if until is not None:
        audit(conn, row[0], "login_refused", {"why": "locked_out"}, at)
        return LoginResult(False, Reason.LOCKED_OUT, locked_until=until)
    if verify_pin(pin, row[3]):
        return _ok(conn, row, at)
    failed = int(row[4]) + 1
    locked = iso(now + LOCKOUT) if failed >= MAX_FAILED else None
    conn.execute(
        "UPDATE operators SET failed = ?, locked_until = ? WHERE id = ?",
        (0 if locked else failed, locked, row[0]),
    )
    audit(conn, row[0], "login_failed", {"failed": failed, "locked_until": locked}, at)
    if locked:
        return LoginResult(False, Reason.LOCKED_OUT, locked_until=locked)
    return LoginResult(False, Reason.BAD_PIN)


def _locked(locked_until: str | None, now: datetime) -> str | None:
    if not locked_until:
        return None
    until = datetime.fromisoformat(locked_until.replace("Z", "+00:00"))
    return locked_until if now.astimezone(UTC) < until else None


def _ok(conn: sqlite3.Connection, row: tuple, at: str) -> LoginResult:
    conn.execute("UPDATE operators SET failed = 0, locked_until = NULL WHERE id = ?", (row[0],))
    audit(conn, row[0], "login", {}, at)
    return LoginResult(True, Reason.OK, Operator(row[0], row[1], row[2]))
