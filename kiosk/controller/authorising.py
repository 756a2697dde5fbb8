"""Authorisation: staff cards, payment codes, on-screen codes; every attempt recorded."""

from __future__ import annotations

import logging
import threading

from kiosk import auth, ids, operators
from kiosk import clock as wall
from kiosk import db as kdb
from kiosk import intents as I
from kiosk.controller.base import Base
from kiosk.controller.live import (
    FRESH_S,
    AuthAnswer,
    Live,
)
from kiosk.hardware import (
    CodeKind,
    classify,
)
from kiosk.payments import PaymentOffline
from kiosk.session_table import READY, Ev
from kiosk.snapshot import Reason
from kiosk.snapshot import SessionState as St

log = logging.getLogger("kiosk.controller")


class Authorising(Base):
    # == authorisation =============================================================================
    def _on_code(self, text: str, door: str | None) -> I.Result:
        code = classify(text)
        if code.kind is CodeKind.STAFF_CARD:
            account = self._card_account(code.text)
            if account is not None:
                op = operators.by_card(self.db.conn, account)
                if op is not None:
                    self.pending_card = (account, self.clock())
                    return I.Result(False, Reason.PIN_REQUIRED, data={"operator": op.name})
            return self._begin("card", door, code=code.text)
        if code.kind.is_payment:
            return self._begin("payment_code", door, code=code.text)
        self._refuse(Reason.UNKNOWN_CODE, "payment_code", None)
        return I.Result.refused(Reason.UNKNOWN_CODE)

    def _card_account(self, uid: str) -> str | None:
        if self.key is None:
            return None
        from kiosk.signing import card_account

        return card_account(self.key, uid)

    def _begin(
        self,
        method: str,
        door: str | None,
        *,
        code: str | None = None,
        session: str | None = None,
        account: str | None = None,
        hold_fen: int | None = None,
        inbound: str | None = None,
        cmd_id: str | None = None,
        kind: str = "sale",
        operator: str | None = None,
    ) -> I.Result:
        if self.state not in READY:
            return I.Result.refused(Reason.BUSY)
        why = self._cannot_open(door)
        door_id = door or self._default_door()
        if why is None and door_id is None:
            why = self._door_problem(self.cfg.doors[0].id) or Reason.DOOR_OPEN
        if why is not None:
            self._refuse(why, method, account)
            return I.Result.refused(why)
        assert door_id is not None
        self.live = Live(
            id=session or ids.uuid7(),
            door=door_id,
            kind=kind,
            method=method,
            started_at=wall.now_iso(),
            account=account,
            hold_fen=hold_fen,
            operator=operator,
            code=code,
            inbound=inbound,
            cmd_id=cmd_id,
        )
        self.refusal = None
        self._fire(Ev.AUTH_START)
        if self.state == St.IDLE:  # refused synchronously
            return I.Result.refused(self.refusal or Reason.BAD_REQUEST)
        return I.Result(
            True,
            data={
                "session": self.live.id if self.live else None,
                "door": door_id,
                "state": str(self.state),
            },
        )

    def _cannot_open(self, door: str | None) -> str | None:
        if self.oos is not None and self.oos in (Reason.STORAGE_FULL, Reason.STARTING):
            return self.oos
        if door is not None:
            if door not in {d.id for d in self.cfg.doors}:
                return Reason.NO_SUCH_DOOR
            return self._door_problem(door)
        return None

    def _door_problem(self, door: str) -> str | None:
        if door in self.door_fault:
            return self.door_fault[door]
        if self.door_open.get(door):
            return Reason.DOOR_OPEN
        for s in self.cfg.shelves_of(door):
            # one missed answer is noise (``_on_reading``): only a shelf fault or silence counts,
            # else a single miss would send a customer's card to another door
            r = self.last.get(s.id)
            if r is None or s.id in self.shelf_fault or self.clock() - r.t > FRESH_S:
                return Reason.SCALE_FAULT
            if not any(x.grams is not None for x in self.ring.get(s.id, ())):
                return Reason.SCALE_FAULT  # no weight to start the session from
        return None

    def _default_door(self) -> str | None:
        for d in self.cfg.doors:
            if self._door_problem(d.id) is None:
                return d.id
        return None

    def _do_authorise(self) -> None:
        live = self.live
        assert live is not None
        self.receipt = None
        if live.method == "card":
            self._authorise_card(live)
        elif live.method == "payment_code":
            if self.payments is None:
                self._fire(Ev.AUTH_REFUSED, why=Reason.PAYMENT_UNAVAILABLE)
                return
            hold = max(1, self._door_value(live.door))
            live.hold_fen = hold
            code, port, sid = live.code or "", self.payments, live.id
            live.code = None  # never kept longer than the question takes

            def ask() -> None:
                try:
                    a = port.authorize(sid, code, hold)
                    self._post(AuthAnswer(sid, a.ok, a.auth_id, a.why, offline=False))
                except PaymentOffline as e:
                    self._post(AuthAnswer(sid, False, None, str(e), offline=True))
                except Exception as e:  # a broken port is "offline" to the customer
                    log.exception("payment port")
                    self._post(AuthAnswer(sid, False, None, str(e), offline=True))

            threading.Thread(target=ask, name="authorize", daemon=True).start()
        else:  # scan_to_open (the platform authorised it) and operator sessions
            self._fire(Ev.AUTH_OK)

    def _authorise_card(self, live: Live) -> None:
        if self.key is None:
            self._fire(Ev.AUTH_REFUSED, why=Reason.CARD_UNKNOWN)
            return
        d = auth.check_card(
            self.db.conn,
            self.key,
            live.code or "",
            now=self.now(),
            tz=self.tz,
            default_limit_fen=self.cfg.limits.card_offline_limit_fen,
        )
        live.code = None
        live.account = d.account
        if not d.ok:
            self._fire(Ev.AUTH_REFUSED, why=d.why)
            return
        live.hold_fen = d.remaining_fen
        self._fire(Ev.AUTH_OK)

    def _on_auth_answer(self, a: AuthAnswer) -> None:
        if not a.offline:
            self._heard_from_centre()
        live = self.live
        if live is None or live.id != a.session or self.state != St.AUTHORISING:
            if a.ok and a.auth_id and self.payments is not None:
                self._capture_or_keep(a.auth_id, a.session, 0)  # nobody waits: release it
            return
        if a.ok:
            live.auth_id = a.auth_id
            self._fire(Ev.AUTH_OK)
        else:
            self._fire(
                Ev.AUTH_REFUSED, why=Reason.NETWORK_DOWN if a.offline else Reason.PAYMENT_DECLINED
            )

    def _do_refused(self, why: str = Reason.BAD_REQUEST) -> None:
        live = self.live
        self.live = None
        if live is not None:
            self._refuse(why, live.method, live.account, inbound=live.inbound, cmd_id=live.cmd_id)

    def _refuse(
        self,
        why: str,
        method: str,
        account: str | None,
        *,
        inbound: str | None = None,
        cmd_id: str | None = None,
    ) -> None:
        self.refusal = why
        self._dirty = True
        with kdb.transaction(self.db):
            auth.record_attempt(self.db.conn, method, account, False, why, None, wall.now_iso())
            if inbound is not None:
                self._inbound_done(inbound, cmd_id, False, why)

    def _i_scan(self, it: I.Scan) -> I.Result:
        return self._on_code(it.text, it.door)
