"""Operator intents: login, restock, calibration, planogram, alarms, refunds (all audited)."""

from __future__ import annotations

import json
import logging
import queue

from kiosk import clock as wall
from kiosk import db as kdb
from kiosk import ids, journal, operators
from kiosk import intents as I
from kiosk.controller.base import Base
from kiosk.controller.live import (
    PENDING_CARD_S,
)
from kiosk.hardware import (
    HardwareError,
    Reading,
    classify,
)
from kiosk.session_table import Ev
from kiosk.snapshot import Reason
from kiosk.snapshot import SessionState as St

log = logging.getLogger("kiosk.controller")


AFTER_CAL_S = 3.0  # how long a calibration waits for the shelf's new reading


def _round(g: float | None) -> float | None:
    return None if g is None else round(g, 1)


class OperatorWork(Base):
    def _i_operator_login(self, it: I.OperatorLogin) -> I.Result:
        account = None
        if it.card:
            account = self._card_account(classify(it.card).text)
            if account is None:
                return I.Result.refused(Reason.UNKNOWN_OPERATOR)
        elif self.pending_card and self.clock() - self.pending_card[1] < PENDING_CARD_S:
            account = self.pending_card[0]
        if it.pin is None:
            if account and operators.by_card(self.db.conn, account):
                self.pending_card = (account, self.clock())
                return I.Result(False, Reason.PIN_REQUIRED)
            return I.Result.refused(Reason.UNKNOWN_OPERATOR)
        with kdb.transaction(self.db):
            res = operators.login(self.db.conn, account, it.pin, self.now())
        if not res.ok:
            return I.Result(
                False, res.why, data={"locked_until": res.locked_until} if res.locked_until else {}
            )
        self.pending_card = None
        self.operator = res.operator
        self.operator_since = wall.now_iso()
        self.operator_seen = self.clock()
        return I.Result(True, data={"operator": res.operator.name if res.operator else ""})

    def _i_operator_logout(self, it: I.OperatorLogout) -> I.Result:
        self._logout("logout")
        return I.Result(True)

    def _logout(self, why: str) -> None:
        if self.operator is None:
            return
        with kdb.transaction(self.db):
            operators.audit(self.db.conn, self.operator.id, "logout", {"why": why}, wall.now_iso())
        self.operator = None
        self._dirty = True

    def _i_open_door_for_restock(self, it: I.OpenDoorForRestock) -> I.Result:
        assert self.operator is not None
        return self._begin("operator", it.door, kind="restock", operator=self.operator.id)

    def _i_open_door(self, it: I.OpenDoor) -> I.Result:
        assert self.operator is not None
        return self._begin("operator", it.door, kind="maintenance", operator=self.operator.id)

    def _i_confirm_counts(self, it: I.ConfirmCounts) -> I.Result:
        live = self.live
        if (
            live is None
            or live.kind != "restock"
            or live.door != it.door
            or self.state not in (St.OPEN, St.SETTLING, St.CONFIRMING, St.UNLOCKING)
        ):
            return I.Result.refused(Reason.NOT_RESTOCKING)
        for c in it.counts:
            if c.count < 0:
                return I.Result.refused(Reason.BAD_REQUEST, "a count is never negative")
            live.counts[(c.shelf, c.sku)] = c
        live.counts_confirmed = True
        if self.state == St.CONFIRMING:
            self._fire(Ev.CONFIRMED)
            return I.Result(True, data={"finished": True})
        return I.Result(True, data={"finished": False})

    def _i_calibrate(self, it: I.Calibrate) -> I.Result:
        assert self.operator is not None
        if it.shelf not in {s.id for s in self.cfg.shelves}:
            return I.Result.refused(Reason.NO_SUCH_SHELF)
        before = self.last.get(it.shelf)
        try:
            if it.step == "zero":
                self.scales.zero(it.shelf)
            elif it.step == "known" and it.known_g and it.known_g > 0:
                self.scales.calibrate(it.shelf, int(it.known_g))
            else:
                return I.Result.refused(
                    Reason.BAD_REQUEST, "step is zero, or known with known_g > 0"
                )
        except HardwareError as e:
            return I.Result.refused(Reason.SCALE_FAULT, e.why)
        self._forget_learning(it.shelf)  # it reads differently from now on
        target = 0.0 if it.step == "zero" else float(it.known_g or 0)
        err_before = None
        if before is not None and before.grams is not None:
            err_before = before.grams - target
        after = self._next_grams(it.shelf, since=self.clock())
        err_after = None if after is None else after - target
        at = wall.now_iso()
        with kdb.transaction(self.db):
            self.db.conn.execute(
                "INSERT INTO calibrations (id, shelf, at, kind, known_g, operator)"
                " VALUES (?,?,?,?,?,?)",
                (
                    ids.uuid7(),
                    it.shelf,
                    at,
                    "zero" if it.step == "zero" else "gain",
                    it.known_g,
                    self.operator.id,
                ),
            )
            operators.audit(
                self.db.conn,
                self.operator.id,
                f"calibrate_{it.step}",
                {
                    "shelf": it.shelf,
                    "known_g": it.known_g,
                    "before_g": before.grams if before else None,
                    "error_before_g": _round(err_before),
                    "error_after_g": _round(err_after),
                },
                at,
            )
        return I.Result(
            True,
            data={
                "shelf": it.shelf,
                "before_error_g": err_before,  # the first name of error_before_g (kept)
                "error_before_g": _round(err_before),
                "error_after_g": _round(err_after),  # None: no reading came in time
            },
        )

    def _next_grams(self, shelf: str, since: float, n: int = 3) -> float | None:
        """The mean of ``shelf``'s next ``n`` readings taken after ``since`` (the calibration's
        result), read off the queue within ``AFTER_CAL_S``; anything else is held for later."""
        end = self.clock() + AFTER_CAL_S
        got: list[float] = []
        while len(got) < n and self.clock() < end:
            try:
                item = self._q.get(timeout=0.05)
            except queue.Empty:
                continue
            if not isinstance(item, Reading):
                self._held.append(item)
                continue
            self._on_reading(item)
            if item.shelf == shelf and item.t > since and item.grams is not None:
                got.append(item.grams)
        return sum(got) / len(got) if got else None

    def _i_set_planogram(self, it: I.SetPlanogram) -> I.Result:
        assert self.operator is not None
        shelf = next((s for s in self.cfg.shelves if s.id == it.shelf), None)
        if shelf is None:
            return I.Result.refused(Reason.NO_SUCH_SHELF)
        for ln in it.lanes:
            if ln.sku not in self._products:
                return I.Result.refused(Reason.NO_SUCH_PRODUCT, ln.sku)
        warnings, _en = self._shelf_warnings(shelf.id, [ln.sku for ln in it.lanes])
        if warnings and not it.force:
            return I.Result(
                False, Reason.INDISTINGUISHABLE, "; ".join(warnings), data={"warnings": warnings}
            )
        at = wall.now_iso()
        with kdb.transaction(self.db):
            self.db.conn.execute("DELETE FROM planogram WHERE shelf = ?", (it.shelf,))
            for ln in it.lanes:
                self.db.conn.execute(
                    "INSERT INTO planogram (shelf, sku, door, low_stock) VALUES (?,?,?,?)",
                    (it.shelf, ln.sku, shelf.door, ln.low_stock),
                )
                self.db.conn.execute(
                    "INSERT INTO inventory (shelf, sku, count, updated_at) VALUES"
                    " (?,?,0,?) ON CONFLICT DO NOTHING",
                    (it.shelf, ln.sku, at),
                )
            operators.audit(
                self.db.conn,
                self.operator.id,
                "planogram",
                {"shelf": it.shelf, "lanes": [ln.sku for ln in it.lanes], "warnings": warnings},
                at,
            )
        self._dirty_static = True
        return I.Result(True, data={"warnings": warnings})

    def _i_ack_alarm(self, it: I.AckAlarm) -> I.Result:
        assert self.operator is not None
        at = wall.now_iso()
        with kdb.transaction(self.db):
            cur = self.db.conn.execute(
                "UPDATE events SET acked_at = ?, acked_by = ? WHERE id = ? AND alarm ="
                " 1 AND acked_at IS NULL",
                (at, self.operator.id, it.alarm),
            )
            if cur.rowcount == 0:
                return I.Result.refused(Reason.NO_SUCH_ALARM)
            operators.audit(self.db.conn, self.operator.id, "ack_alarm", {"alarm": it.alarm}, at)
        self._dirty_static = True
        return I.Result(True)

    def _i_refund(self, it: I.Refund) -> I.Result:
        assert self.operator is not None
        return self._refund(it, actor=self.operator.id)

    def _refund(self, it: I.Refund, actor: str, inbound: tuple[str, str] | None = None) -> I.Result:
        sale = self.db.conn.execute(
            "SELECT total_fen FROM sales WHERE id = ?", (it.sale,)
        ).fetchone()
        if sale is None:
            return I.Result.refused(Reason.NO_SUCH_SALE)
        prices = dict(
            self.db.conn.execute(
                "SELECT sku, unit_price_fen FROM sale_items WHERE sale = ?", (it.sale,)
            ).fetchall()
        )
        qtys = dict(
            self.db.conn.execute(
                "SELECT sku, qty FROM sale_items WHERE sale = ?", (it.sale,)
            ).fetchall()
        )
        done = self.db.conn.execute(
            "SELECT COALESCE(SUM(amount_fen), 0) FROM adjustments WHERE sale = ?", (it.sale,)
        ).fetchone()[0]
        if it.amount_fen is not None:
            amount = int(it.amount_fen)
        elif it.items:
            for i in it.items:
                if i.sku not in prices or i.qty <= 0 or i.qty > qtys[i.sku]:
                    return I.Result.refused(
                        Reason.BAD_REQUEST, f"{i.sku} x{i.qty} is not in the sale"
                    )
            amount = sum(prices[i.sku] * i.qty for i in it.items)
        else:
            amount = int(sale[0]) - int(done)
        if amount <= 0 or amount + int(done) > int(sale[0]):
            return I.Result.refused(
                Reason.REFUND_TOO_LARGE, f"refundable: {int(sale[0]) - int(done)} fen"
            )
        adj_id = ids.uuid7()
        at = wall.now_iso()
        items = [{"sku": i.sku, "qty": i.qty} for i in it.items]
        with kdb.transaction(self.db):
            self.db.conn.execute(
                "INSERT INTO adjustments (id, sale, amount_fen, items_json, reason,"
                " actor, created_at) VALUES (?,?,?,?,?,?,?)",
                (adj_id, it.sale, amount, json.dumps(items), it.reason or "refund", actor, at),
            )
            journal.outbox(
                self.db,
                "adjustment",
                {
                    "id": adj_id,
                    "sale": it.sale,
                    "amount_fen": amount,
                    "items": items,
                    "reason": it.reason or "refund",
                    "actor": actor,
                },
                at,
            )
            operators.audit(
                self.db.conn,
                None if actor.startswith("central:") else actor,
                "refund",
                {"sale": it.sale, "amount_fen": amount, "adjustment": adj_id},
                at,
            )
            if inbound is not None:
                self._inbound_done(inbound[0], inbound[1], True, f"adjustment {adj_id}")
        return I.Result(True, data={"adjustment": adj_id, "amount_fen": amount})
