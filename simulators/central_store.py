"""The central simulator's own SQLite file: records once per id, answers, downlinks, payments.

One connection shared by the HTTP threads and the MQTT thread, guarded by a lock; every
method is one transaction. Stats and reports open the file read-only from other processes.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kiosk import signing, wire

SCHEMA = """
CREATE TABLE IF NOT EXISTS cabinets(id TEXT PRIMARY KEY, key_hex TEXT NOT NULL,
    name TEXT NOT NULL DEFAULT '', location TEXT NOT NULL DEFAULT '', last_contact TEXT);
CREATE TABLE IF NOT EXISTS records(id TEXT PRIMARY KEY, cabinet TEXT NOT NULL, seq INTEGER,
    type TEXT NOT NULL, at TEXT NOT NULL, body TEXT NOT NULL, batch TEXT, received_at TEXT);
CREATE INDEX IF NOT EXISTS records_cabinet_type ON records(cabinet, type);
CREATE TABLE IF NOT EXISTS answers(cabinet TEXT, batch TEXT, answer TEXT NOT NULL,
    PRIMARY KEY(cabinet, batch));
CREATE TABLE IF NOT EXISTS counters(name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS downlinks(cabinet TEXT, kind TEXT, version INTEGER, message TEXT,
    created_at TEXT, PRIMARY KEY(cabinet, kind, version));
CREATE TABLE IF NOT EXISTS commands(seq INTEGER PRIMARY KEY AUTOINCREMENT, cmd_id TEXT UNIQUE,
    cabinet TEXT NOT NULL, message TEXT NOT NULL, created_at TEXT, published INTEGER DEFAULT 0);
CREATE TABLE IF NOT EXISTS payments(auth_id TEXT PRIMARY KEY, cabinet TEXT, session TEXT,
    hold_fen INTEGER, captured_fen INTEGER, state TEXT, created_at TEXT);
CREATE TABLE IF NOT EXISTS scans(cabinet TEXT, nonce TEXT, account TEXT, cmd_id TEXT,
    used_at TEXT, PRIMARY KEY(cabinet, nonce));
"""


# Each record's id, body text and member count as in the batch, and the batch's member count
# (a body that is not an object gives a NULL/other text and is caught by ``wire.check_record``
# first). SQLite reads the first of two equal keys and Python the last: the counts tell when a
# text has such keys, and then Python's reading, the one checked, is stored.
_BODIES = (
    "SELECT value ->> 'id', value -> 'body', (SELECT count(*) FROM json_each(value)),"
    " (SELECT count(*) FROM json_each(?1)) FROM json_each(?1, '$.records')"
)


@dataclass(frozen=True)
class Stats:
    records: int
    sales: int
    duplicates: int


class CentralStore:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(SCHEMA)
        self._lock = threading.Lock()
        self._reader = sqlite3.connect(":memory:", check_same_thread=False)  # JSON work only
        self._reader_lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._db.close()
            self._reader.close()

    def _tx(self):
        return _Tx(self._db, self._lock)

    # -- cabinets -------------------------------------------------------------------------
    def add_cabinet(self, cabinet: str, key: bytes) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO cabinets(id, key_hex) VALUES (?, ?) "
                "ON CONFLICT(id) DO UPDATE SET key_hex = excluded.key_hex",
                (cabinet, key.hex()),
            )

    def keys(self) -> dict[str, bytes]:
        with self._tx() as db:
            rows = db.execute("SELECT id, key_hex FROM cabinets").fetchall()
        return {c: bytes.fromhex(k) for c, k in rows}

    def touch(self, cabinet: str, name: str | None = None, location: str | None = None) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE cabinets SET last_contact = ?, name = coalesce(?, name), "
                "location = coalesce(?, location) WHERE id = ?",
                (wire.now_iso(), name, location, cabinet),
            )

    # -- records up -----------------------------------------------------------------------
    def store_batch(
        self, cabinet: str, batch: dict[str, Any], raw: bytes | None = None
    ) -> dict[str, Any]:
        """Store a batch once per record id; the answer lists what is stored and rejected.

        A batch id seen before gets its first answer again (``Idempotency-Key``). ``raw``, the
        batch's JSON text as received, lets SQLite cut each body's text out of it instead of
        Python encoding the parsed body again.
        """
        bid = batch.get("batch")
        records = batch.get("records")
        if not isinstance(bid, str) or not isinstance(records, list):
            raise ValueError("a batch is {batch, records}")
        now = wire.now_iso()
        bodies = self._body_texts(raw, len(records), len(batch))
        rejected: list[dict[str, str]] = []
        fresh: list[tuple[Any, ...]] = []
        for k, r in enumerate(records):
            why = wire.check_record(r)
            if why:
                rid = r.get("id") if isinstance(r, dict) else None
                if isinstance(rid, str):
                    rejected.append({"id": rid, "why": why})
                continue
            body = bodies[k] if bodies else None
            if body is None or body[0] != r["id"] or body[2] != len(r):  # read otherwise
                text = json.dumps(r["body"], ensure_ascii=False)
            else:
                text = body[1]
            fresh.append((r["id"], cabinet, r["seq"], r["type"], r["at"], text, bid, now))
        stored = [f[0] for f in fresh]
        answer = {"batch": bid, "stored": stored, "rejected": rejected}
        with self._tx() as db:
            row = db.execute(
                "SELECT answer FROM answers WHERE cabinet = ? AND batch = ?", (cabinet, bid)
            ).fetchone()
            if row:
                return json.loads(row[0])
            # Dedupe by id in the insert itself: a record seen before (or twice here) is kept once.
            cur = db.executemany("INSERT OR IGNORE INTO records VALUES (?,?,?,?,?,?,?,?)", fresh)
            dups = len(fresh) - cur.rowcount
            if dups:
                db.execute(
                    "INSERT INTO counters VALUES ('duplicates', ?) "
                    "ON CONFLICT(name) DO UPDATE SET value = value + excluded.value",
                    (dups,),
                )
            db.execute("INSERT INTO answers VALUES (?, ?, ?)", (cabinet, bid, json.dumps(answer)))
            db.execute("UPDATE cabinets SET last_contact = ? WHERE id = ?", (now, cabinet))
            for r in fresh:
                if r[3] == "telemetry":
                    body = json.loads(r[5])
                    db.execute(
                        "UPDATE cabinets SET name = coalesce(?, name), "
                        "location = coalesce(?, location) WHERE id = ?",
                        (body.get("name"), body.get("location"), cabinet),
                    )
        return answer

    def _body_texts(self, raw: bytes | None, n: int, keys: int) -> list[tuple[Any, ...]] | None:
        """(id, body JSON text, member count) of each of the ``n`` records in ``raw``, cut out
        by SQLite; None without, or when the batch (``keys`` members) reads otherwise there."""
        if raw is None:
            return None
        try:
            with self._reader_lock:
                rows = self._reader.execute(_BODIES, (raw.decode(),)).fetchall()
        except (sqlite3.Error, UnicodeDecodeError):
            return None
        return rows if len(rows) == n and (not rows or rows[0][3] == keys) else None

    def stats(self) -> Stats:
        with self._tx() as db:
            n = db.execute("SELECT count(*) FROM records").fetchone()[0]
            s = db.execute("SELECT count(*) FROM records WHERE type = 'sale'").fetchone()[0]
            d = db.execute("SELECT value FROM counters WHERE name = 'duplicates'").fetchone()
        return Stats(n, s, d[0] if d else 0)

    def records(self, cabinet: str | None = None, type: str | None = None) -> list[dict]:
        q = "SELECT id, cabinet, seq, type, at, body FROM records WHERE 1=1"
        args: list[Any] = []
        if cabinet:
            q += " AND cabinet = ?"
            args.append(cabinet)
        if type:
            q += " AND type = ?"
            args.append(type)
        with self._tx() as db:
            rows = db.execute(q + " ORDER BY cabinet, seq", args).fetchall()
        return [
            {"id": i, "cabinet": c, "seq": s, "type": t, "at": a, "body": json.loads(b)}
            for i, c, s, t, a, b in rows
        ]

    # -- downlinks: catalogue, configuration, accounts, commands -----------------------------
    def put_downlink(self, cabinet: str, kind: str, payload: dict, version: int | None) -> dict:
        """Sign and keep a new version of ``kind``; returns the signed message."""
        key = self.keys()[cabinet]
        with self._tx() as db:
            if version is None:
                row = db.execute(
                    "SELECT max(version) FROM downlinks WHERE cabinet = ? AND kind = ?",
                    (cabinet, kind),
                ).fetchone()
                version = (row[0] or 0) + 1
            message = signing.sign_message(key, {"version": version, kind: payload})
            db.execute(
                "INSERT OR REPLACE INTO downlinks VALUES (?, ?, ?, ?, ?)",
                (cabinet, kind, version, json.dumps(message, ensure_ascii=False), wire.now_iso()),
            )
        return message

    def latest_downlink(self, cabinet: str, kind: str, after: int = 0) -> dict | None:
        with self._tx() as db:
            row = db.execute(
                "SELECT message FROM downlinks WHERE cabinet = ? AND kind = ? AND version > ? "
                "ORDER BY version DESC LIMIT 1",
                (cabinet, kind, after),
            ).fetchone()
        return json.loads(row[0]) if row else None

    def latest_catalog(self) -> dict | None:
        """The newest catalogue sent to any cabinet (for reports)."""
        with self._tx() as db:
            row = db.execute(
                "SELECT message FROM downlinks WHERE kind = 'catalog' "
                "ORDER BY version DESC, created_at DESC LIMIT 1"
            ).fetchone()
        return json.loads(row[0])["catalog"] if row else None

    def add_command(self, cabinet: str, cmd: str, args: dict, ttl_s: float = 600) -> dict:
        message = self._sign_command(cabinet, cmd, args, ttl_s)
        self.add_signed_command(cabinet, message)
        return message

    def _sign_command(self, cabinet: str, cmd: str, args: dict, ttl_s: float) -> dict:
        key = self.keys().get(cabinet)
        if key is None:
            raise KeyError(f"unknown cabinet {cabinet!r}")
        return signing.sign_message(
            key,
            {
                "cmd_id": wire.uuid7(),
                "cmd": cmd,
                "args": args,
                "expires_at": wire.iso(time.time() + ttl_s),
            },
        )

    def scan_to_open(
        self, cabinet: str, nonce: str, account: str, limit_fen: int, ttl_s: float
    ) -> dict | None:
        """A phone authorised ``nonce``: queue a signed ``session_authorized`` (the session is
        the nonce) and return it; None when the nonce was used here before (single use).

        The centre cannot tell a nonce the cabinet issued from a made-up one; the cabinet
        refuses those (``code_expired``)."""
        args = {"session": nonce, "account": account, "limit_fen": limit_fen}
        message = self._sign_command(cabinet, "session_authorized", args, ttl_s)
        now = wire.now_iso()
        with self._tx() as db:
            cur = db.execute(
                "INSERT INTO scans VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (cabinet, nonce, account, message["cmd_id"], now),
            )
            if cur.rowcount == 0:
                return None
            db.execute(
                "INSERT INTO commands(cmd_id, cabinet, message, created_at) VALUES (?,?,?,?)",
                (message["cmd_id"], cabinet, json.dumps(message, ensure_ascii=False), now),
            )
        return message

    def scan_used(self, cabinet: str, nonce: str) -> bool:
        with self._tx() as db:
            row = db.execute(
                "SELECT 1 FROM scans WHERE cabinet = ? AND nonce = ?", (cabinet, nonce)
            ).fetchone()
        return row is not None

    def cabinet(self, cabinet: str) -> dict | None:
        return next((c for c in self.cabinets() if c["id"] == cabinet), None)

    def add_signed_command(self, cabinet: str, message: dict) -> None:
        """Queue a message as is (tests use this to send forged or expired commands)."""
        with self._tx() as db:
            db.execute(
                "INSERT INTO commands(cmd_id, cabinet, message, created_at) VALUES (?,?,?,?)",
                (
                    str(message.get("cmd_id", uuid.uuid4())),
                    cabinet,
                    json.dumps(message, ensure_ascii=False),
                    wire.now_iso(),
                ),
            )

    def unpublished_commands(self) -> list[tuple[int, str, dict]]:
        with self._tx() as db:
            rows = db.execute(
                "SELECT seq, cabinet, message FROM commands WHERE published = 0 ORDER BY seq"
            ).fetchall()
        return [(s, c, json.loads(m)) for s, c, m in rows]

    def mark_published(self, seq: int) -> None:
        with self._tx() as db:
            db.execute("UPDATE commands SET published = 1 WHERE seq = ?", (seq,))

    def commands_after(self, cabinet: str, after: str | None) -> list[dict]:
        """Pending commands for HTTP polling: after ``after``, unanswered, not expired."""
        with self._tx() as db:
            start = 0
            if after:
                row = db.execute("SELECT seq FROM commands WHERE cmd_id = ?", (after,)).fetchone()
                start = row[0] if row else 0
            rows = db.execute(
                "SELECT message FROM commands WHERE cabinet = ? AND seq > ? ORDER BY seq",
                (cabinet, start),
            ).fetchall()
            answered = {
                json.loads(b).get("cmd_id")
                for (b,) in db.execute(
                    "SELECT body FROM records WHERE cabinet = ? AND type = 'cmd_result'",
                    (cabinet,),
                )
            }
        out = []
        now = time.time()
        for (m,) in rows:
            msg = json.loads(m)
            exp = wire.parse_time(msg.get("expires_at"))
            if msg.get("cmd_id") not in answered and (exp is None or exp > now):
                out.append(msg)
        return out

    # -- payments ---------------------------------------------------------------------------
    def authorize(self, cabinet: str, session: str, code: str, hold_fen: int) -> dict:
        # The simulator's rule: a code ending in 9999 is declined; above 5,000 yuan is too much.
        if code.endswith("9999"):
            return {"ok": False, "auth_id": None, "why": "declined"}
        if hold_fen > 500_000:
            return {"ok": False, "auth_id": None, "why": "over the limit"}
        auth_id = wire.uuid7()
        with self._tx() as db:
            db.execute(
                "INSERT INTO payments VALUES (?,?,?,?,NULL,'held',?)",
                (auth_id, cabinet, session, hold_fen, wire.now_iso()),
            )
        return {"ok": True, "auth_id": auth_id}

    def capture(self, cabinet: str, auth_id: str, amount_fen: int) -> tuple[int, dict]:
        """(HTTP status, answer); idempotent per ``auth_id``."""
        with self._tx() as db:
            row = db.execute(
                "SELECT hold_fen, captured_fen FROM payments WHERE auth_id = ? AND cabinet = ?",
                (auth_id, cabinet),
            ).fetchone()
            if row is None:
                return 404, {"error": "unknown auth_id", "detail": auth_id}
            hold, captured = row
            if captured is not None:
                if captured == amount_fen:
                    return 200, {"ok": True}
                return 409, {"error": "already captured", "detail": captured}
            if amount_fen > hold:
                return 400, {"error": "amount over the hold", "detail": hold}
            state = "released" if amount_fen == 0 else "captured"
            db.execute(
                "UPDATE payments SET captured_fen = ?, state = ? WHERE auth_id = ?",
                (amount_fen, state, auth_id),
            )
        return 200, {"ok": True}

    def payments(self) -> list[dict]:
        with self._tx() as db:
            rows = db.execute(
                "SELECT auth_id, cabinet, session, hold_fen, captured_fen, state FROM payments"
            ).fetchall()
        keys = ("auth_id", "cabinet", "session", "hold_fen", "captured_fen", "state")
        return [dict(zip(keys, r, strict=True)) for r in rows]

    def cabinets(self) -> list[dict]:
        with self._tx() as db:
            rows = db.execute(
                "SELECT id, name, location, last_contact FROM cabinets ORDER BY id"
            ).fetchall()
        return [dict(zip(("id", "name", "location", "last_contact"), r, strict=True)) for r in rows]


class _Tx:
    """``with`` block: the lock held, one transaction committed or rolled back."""

    def __init__(self, db: sqlite3.Connection, lock: threading.Lock):
        self.db, self.lock = db, lock

    def __enter__(self) -> sqlite3.Connection:
        self.lock.acquire()
        self.db.execute("BEGIN IMMEDIATE")
        return self.db

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            self.db.execute("ROLLBACK" if exc_type else "COMMIT")
        finally:
            self.lock.release()
