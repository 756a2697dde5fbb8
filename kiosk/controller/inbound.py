"""Commands the sync agent checked and stored in the inbox, run by the controller."""

from __future__ import annotations

import json
import logging
from typing import Any

from kiosk import clock as wall
from kiosk import db as kdb
from kiosk import intents as I
from kiosk import journal
from kiosk.controller.base import Base
from kiosk.controller.live import (
    INBOX_CMDS,
)
from kiosk.session_table import READY
from kiosk.snapshot import Reason

log = logging.getLogger("kiosk.controller")


class Inbound(Base):
    # == inbox (commands the sync agent checked and stored) ========================================
    def _poll_inbox(self) -> None:
        rows = self.db.conn.execute(
            "SELECT id, ref, payload FROM inbound WHERE kind = 'cmd' AND status ="
            " 'new' ORDER BY received_at, id"
        ).fetchall()
        for inbound_id, ref, payload in rows:
            try:
                cmd = json.loads(payload)
                name = cmd.get("cmd")
                args = cmd.get("args") or {}
                cmd_id = cmd.get("cmd_id") or ref
            except (ValueError, AttributeError):
                continue
            if name not in INBOX_CMDS:
                continue  # the sync agent applies the others
            if name in ("session_authorized", "open_door") and self.state not in READY:
                continue  # wait for the current session to end
            self._run_cmd(inbound_id, cmd_id, name, args)

    def _run_cmd(self, inbound_id: str, cmd_id: str, name: str, args: dict[str, Any]) -> None:
        if name == "session_authorized":
            # the session is the nonce of the on-screen code the customer scanned
            if not self._nonce_ok(str(args.get("session") or "")):
                self._refuse(
                    Reason.CODE_EXPIRED,
                    "scan_to_open",
                    args.get("account"),
                    inbound=inbound_id,
                    cmd_id=cmd_id,
                )
                return
            door = args.get("door")
            res = self._begin(
                "scan_to_open",
                door,
                session=args.get("session"),
                account=args.get("account"),
                hold_fen=args.get("limit_fen"),
                inbound=inbound_id,
                cmd_id=cmd_id,
            )
            if not res.ok and self.state in READY and self._inbound_new(inbound_id):
                with kdb.transaction(self.db):
                    self._inbound_done(inbound_id, cmd_id, False, res.code)
        elif name == "open_door":
            res = self._begin(
                "operator", args.get("door"), kind="maintenance", inbound=inbound_id, cmd_id=cmd_id
            )
            if not res.ok and self._inbound_new(inbound_id):
                with kdb.transaction(self.db):
                    self._inbound_done(inbound_id, cmd_id, False, res.code)
        elif name == "refund":
            items = tuple(I.RefundItem(i["sku"], int(i["qty"])) for i in args.get("items") or ())
            r = I.Refund(
                sale=str(args.get("sale", "")),
                items=items,
                amount_fen=args.get("amount_fen"),
                reason=str(args.get("reason", "")),
            )
            res = self._refund(r, actor=f"central:{cmd_id}", inbound=(inbound_id, cmd_id))
            if not res.ok:
                with kdb.transaction(self.db):
                    self._inbound_done(inbound_id, cmd_id, False, res.code)
        elif name == "reboot":
            with kdb.transaction(self.db):
                self._inbound_done(inbound_id, cmd_id, True, "rebooting")
            if self.on_reboot is not None:
                self.on_reboot()

    def _nonce_ok(self, nonce: str) -> bool:
        """Issued by this cabinet, not expired, and never opened a session before."""
        if self.scan_codes is None or not self.scan_codes.valid(nonce):
            return False
        used = self.db.conn.execute("SELECT 1 FROM sessions WHERE id = ?", (nonce,)).fetchone()
        return used is None

    def _inbound_new(self, inbound_id: str) -> bool:
        row = self.db.conn.execute(
            "SELECT status FROM inbound WHERE id = ?", (inbound_id,)
        ).fetchone()
        return row is not None and row[0] == "new"

    def _inbound_done(self, inbound_id: str, cmd_id: str | None, ok: bool, detail: str) -> None:
        at = wall.now_iso()
        self.db.conn.execute(
            "UPDATE inbound SET status = 'done', handled_at = ?, why = ? WHERE id = ?",
            (at, None if ok else detail, inbound_id),
        )
        journal.outbox(self.db, "cmd_result", {"cmd_id": cmd_id, "ok": ok, "detail": detail}, at)
