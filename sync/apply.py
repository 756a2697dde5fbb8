"""Applying checked inbound messages to the cabinet database, whole or not at all.

Every message that passes ``sync.inbound`` gets an ``inbound`` row (UNIQUE(kind, ref) is the
replay guard), and its effect in the same transaction. Every refusal is an event; a signed
command that is refused also gets a ``cmd_result`` so the centre knows. Commands for the
controller (``open_door``, ``session_authorized``, ``refund``, ``reboot``) are left ``new``
for it to pick up; it writes their ``cmd_result``.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass

from sqlite_utils import Database

from kiosk import catalog as kcat
from kiosk import wire
from sync import inbound as ib
from sync import store
from sync.store import tx

CONFIG_VERSION = "central_config_version"
CONFIG_JSON = "central_config"
ACCOUNTS_VERSION = "accounts_version"
LAST_CMD = "sync_last_cmd_id"


@dataclass(frozen=True)
class Outcome:
    """What happened to one inbound message (for logs and the agent's own follow-ups)."""

    kind: str
    ref: str | None
    applied: bool
    why: str = ""
    report_now: bool = False
    config: dict | None = None


def current_version(db: Database, kind: str) -> int:
    if kind == "catalog":
        return kcat.current_version(db) or 0
    key = CONFIG_VERSION if kind == "config" else ACCOUNTS_VERSION
    return int(store.get_setting(db, key) or 0)


def _seen(db: Database, kind: str, ref: str) -> bool:
    return (
        db.execute("SELECT 1 FROM inbound WHERE kind = ? AND ref = ?", (kind, ref)).fetchone()
        is not None
    )


def _insert(db: Database, kind: str, ref: str, payload: dict, status: str, why: str | None):
    now = wire.now_iso()
    db.execute(
        "INSERT INTO inbound(id, kind, ref, received_at, payload, status, why, handled_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            wire.uuid7(),
            kind,
            ref,
            now,
            json.dumps(payload, ensure_ascii=False),
            status,
            why,
            None if status == "new" else now,
        ),
    )


def refuse(db: Database, r: ib.Refusal, signed: bool = False) -> Outcome:
    """An event naming the reason. A signed message (its ``ref`` can be trusted) also gets a
    ``rejected`` row, so a retained copy redelivered on reconnect is not refused again; a
    signed command gets a ``cmd_result`` too, so the centre knows."""
    with tx(db):
        store.add_event(db, "inbound rejected", {"message": r.kind, "ref": r.ref, "why": r.why})
        if signed and r.ref is not None:
            try:
                with tx(db):
                    _insert(db, r.kind, r.ref, {"ref": r.ref}, "rejected", r.why)
            except sqlite3.IntegrityError:
                pass  # seen before (a replay, or an older version): the event says so
            if r.kind == "cmd":
                store.put_setting(db, LAST_CMD, r.ref)  # HTTP polling goes on after it
                store.append(db, "cmd_result", {"cmd_id": r.ref, "ok": False, "detail": r.why})
    return Outcome(r.kind, r.ref, False, r.why)


def handle_down(db: Database, key: bytes, kind: str, message: object) -> Outcome | None:
    """A catalogue, configuration or accounts message; None when it is one already handled
    (a retained message redelivered on every reconnect is not news)."""
    checked = ib.check_down(kind, key, message, current_version(db, kind))
    if isinstance(checked, ib.Refusal):
        if checked.ref is not None and _seen(db, kind, checked.ref):
            return None
        return refuse(db, checked, signed=checked.ref is not None)
    d = checked
    ref = str(d.version)
    try:
        with tx(db):
            if kind == "catalog":
                cat = kcat.parse_catalog(d.payload)
                kcat.apply_catalog(db, cat, "central")
            elif kind == "config":
                store.put_setting(db, CONFIG_JSON, json.dumps(d.payload))
                store.put_setting(db, CONFIG_VERSION, ref)
            else:
                _replace_accounts(db, d.version, d.payload)
            _insert(db, kind, ref, d.raw, "applied", None)
            store.append(db, "applied", {"kind": kind, "version": d.version})
    except kcat.CatalogError as e:
        return refuse(db, ib.Refusal(kind, ref, "; ".join(e.problems)[:500]), signed=True)
    return Outcome(kind, ref, True, config=d.payload if kind == "config" else None)


def _replace_accounts(db: Database, version: int, accounts: list[dict]) -> None:
    now = wire.now_iso()
    db.execute("DELETE FROM accounts")
    db.conn.executemany(
        "INSERT INTO accounts(account, name, status, offline_limit_fen, version, updated_at) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        [
            (a["account"], a["name"], a["status"], a.get("offline_limit_fen"), version, now)
            for a in accounts
        ],
    )
    store.put_setting(db, ACCOUNTS_VERSION, str(version))


def handle_command(db: Database, key: bytes, message: object, now: float) -> Outcome:
    checked = ib.check_command(key, message, now)
    if isinstance(checked, ib.Refusal):
        if checked.ref is not None and _seen(db, "cmd", checked.ref):
            return refuse(db, ib.Refusal("cmd", checked.ref, f"replayed ({checked.why})"))
        return refuse(db, checked, signed=checked.ref is not None)
    c = checked
    if _seen(db, "cmd", c.cmd_id):
        return refuse(db, ib.Refusal("cmd", c.cmd_id, "replayed: cmd_id seen before"))
    try:
        with tx(db):
            store.put_setting(db, LAST_CMD, c.cmd_id)
            if c.cmd in ib.CONTROLLER_COMMANDS:
                _insert(db, "cmd", c.cmd_id, c.raw, "new", None)
                return Outcome("cmd", c.cmd_id, True)
            detail = _apply_agent_command(db, c)
            _insert(db, "cmd", c.cmd_id, c.raw, "done", None)
            store.append(db, "cmd_result", {"cmd_id": c.cmd_id, "ok": True, "detail": detail})
    except sqlite3.IntegrityError:  # the same command on both paths at once
        return refuse(db, ib.Refusal("cmd", c.cmd_id, "replayed: cmd_id seen before"))
    except kcat.CatalogError as e:
        return refuse(db, ib.Refusal("cmd", c.cmd_id, "; ".join(e.problems)), signed=True)
    return Outcome("cmd", c.cmd_id, True, report_now=c.cmd == "report_now")


def _apply_agent_command(db: Database, c: ib.Command) -> str:
    if c.cmd == "set_price":
        kcat.set_price(db, c.args["sku"], c.args["price_fen"])
        return f"{c.args['sku']} now {c.args['price_fen']} fen"
    if c.cmd in ("block_card", "unblock_card"):
        status = "blocked" if c.cmd == "block_card" else "active"
        now = wire.now_iso()
        db.execute(
            "INSERT INTO accounts(account, name, status, offline_limit_fen, version, updated_at) "
            "VALUES (?, '', ?, NULL, ?, ?) ON CONFLICT(account) DO UPDATE SET "
            "status = excluded.status, updated_at = excluded.updated_at",
            (c.args["account"], status, current_version(db, "accounts"), now),
        )
        return status
    if c.cmd == "report_now":
        return "telemetry sent"
    raise AssertionError(c.cmd)  # every agent command is handled above
