"""Settling a session: the sale (or restock) with its items, inventory, events and outbox rows in
one transaction, and the payment capture."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any

from kiosk import clock as wall
from kiosk import db as kdb
from kiosk import ids, journal, operators
from kiosk.controller.base import Base
from kiosk.controller.live import (
    CANCELLED_S,
    Live,
    VerdictMemo,
    cheaper_first,
)
from kiosk.payments import PaymentOffline
from kiosk.snapshot import SessionState as St
from kiosk.weighing import Move

log = logging.getLogger("kiosk.controller")


class Settlement(Base):
    def _record_sale(self, live: Live) -> None:
        v = live.verdict
        at = wall.now_iso()
        review = live.review
        learnable = False  # the weights are known right: they may teach unit weights
        if v is None:  # nothing to weigh from (no weigher): nothing charged
            basket_taken: dict[str, int] = {}
            moves: tuple = ()
            foreign: tuple[str, ...] = ()
            faults: tuple[str, ...] = ()
            confidence = 0.0
        else:
            basket = None
            if v.uncertain and len(v.candidates) >= 2:
                cands = cheaper_first(v.candidates)
                if live.choice is not None and 0 <= live.choice < len(cands):
                    basket = cands[live.choice]
                else:  # no answer, or "none of these": the cheaper one, and staff review it
                    basket = cands[0]
                    review = True
            if basket is None:
                basket_taken, moves, foreign = dict(v.taken), tuple(v.misplaced), tuple(v.foreign)
            else:
                basket_taken, moves, foreign = (
                    dict(basket.taken),
                    tuple(basket.misplaced),
                    tuple(basket.foreign),
                )
            faults = tuple(v.fault)
            confidence = float(v.confidence)
            learnable = not v.uncertain or (basket is not None and live.choice is not None)
        basket_taken = {k: n for k, n in basket_taken.items() if n > 0}
        items = []
        for sku, qty in sorted(basket_taken.items()):
            p = self._products.get(sku)
            price = live.prices.get(sku)
            if price is None:
                price = journal.price_at(self.db, sku, live.started_at) or 0
            items.append((sku, qty, price, p.cert_no if p else "", p.supplier if p else ""))
        total = sum(q * pr for _, q, pr, _, _ in items)
        status = "deferred"
        if live.method == "payment_code" and live.auth_id:
            ok = self._try_capture(live.auth_id, total)
            status = "captured" if ok else ("failed" if ok is False else "deferred")
        sale_id = ids.uuid7()
        outcome = "sold" if items else "nothing_taken"
        with kdb.transaction(self.db):
            if not self._still_open(live.id):
                return
            if items:
                self.db.conn.execute(
                    "INSERT INTO sales (id, session, door, opened_at, closed_at, total_fen, method,"
                    " account, payment_status, confidence, catalog_version, review, created_at)"
                    " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (
                        sale_id,
                        live.id,
                        live.door,
                        live.opened_at or live.started_at,
                        live.closed_at or at,
                        total,
                        live.method,
                        live.account,
                        status,
                        confidence,
                        live.catalog_version,
                        int(review),
                        at,
                    ),
                )
                for sku, qty, price, cert, sup in items:
                    self.db.conn.execute(
                        "INSERT INTO sale_items (sale, sku, qty, unit_price_fen, cert_no, supplier)"
                        " VALUES (?,?,?,?,?,?)",
                        (sale_id, sku, qty, price, cert, sup),
                    )
                body = {
                    "id": sale_id,
                    "session": live.id,
                    "door": live.door,
                    "opened_at": live.opened_at or live.started_at,
                    "closed_at": live.closed_at or at,
                    "items": [
                        {"sku": s, "qty": q, "unit_price_fen": p, "cert_no": c, "supplier": u}
                        for s, q, p, c, u in items
                    ],
                    "total_fen": total,
                    "payment": {"method": live.method, "account": live.account, "status": status},
                    "confidence": round(confidence, 4),
                    "catalog_version": live.catalog_version,
                    "review": review,
                }
                journal.outbox(self.db, "sale", body, at)
            changed = self._apply_inventory(live.door, basket_taken, moves, at)
            self._outbox_inventory(live.id, "sale", changed, at)
            for shelf in foreign:
                self._alarm("foreign_object", device=shelf, detail={"session": live.id}, tx=False)
            for m in moves:
                self._alarm(
                    "misplaced_item",
                    device=m.dst,
                    severity="warning",
                    detail={"session": live.id, "sku": m.sku, "from": m.src, "to": m.dst},
                    tx=False,
                    dedupe=False,
                )
            for shelf in faults:
                why = (v.faults_why or {}).get(shelf, "") if v is not None else ""
                self._alarm(
                    "scale_fault", device=shelf, detail={"session": live.id, "why": why}, tx=False
                )
            self._low_stock_alarms(live.door)
            if live.method == "payment_code" and live.auth_id and status != "captured":
                self._keep_capture(live.auth_id, live.id, total, at)
            journal.update_session(
                self.db,
                live.id,
                state="finished",
                finished_at=at,
                outcome=outcome,
                verdict_json=VerdictMemo.dumps(v) if v is not None else None,
            )
            journal.outbox(
                self.db,
                "session",
                {**journal.session_body(self.db, live.id), **({"sale": sale_id} if items else {})},
                at,
            )
        if learnable:  # recorded: its shelves may teach unit weights once still
            self._learn_from_sale(live, basket_taken, moves, (*foreign, *faults))
        if items:
            self.receipt = self._receipt(sale_id, live, items, total, status, review, at)
        else:
            self.receipt = None
            # nothing taken: shown like a cancelled session ("nothing charged")
            self.state = St.CANCELLED
            self.state_deadline = self.clock() + CANCELLED_S

    def _record_operator_session(self, live: Live) -> None:
        at = wall.now_iso()
        with kdb.transaction(self.db):
            if not self._still_open(live.id):
                return
            changed = []
            before = {(ln.shelf, ln.sku): ln.count for ln in self._door_lanes(live.door)}
            if live.kind == "restock":
                changed = self._apply_counts(live, at)
                self._outbox_inventory(live.id, "restock", changed, at)
                operators.audit(
                    self.db.conn,
                    live.operator,
                    "restock",
                    {"session": live.id, "door": live.door, "lanes": changed},
                    at,
                )
            journal.update_session(
                self.db, live.id, state="finished", finished_at=at, outcome=live.kind
            )
            journal.outbox(self.db, "session", journal.session_body(self.db, live.id), at)
        self._learn_from_restock(live, before, changed)  # recorded: once its shelves are still
        self.receipt = None

    # -- payments --------------------------------------------------------------------------------
    def _try_capture(self, auth_id: str, amount: int) -> bool | None:
        """True captured, False refused by the platform, None not reached (kept pending)."""
        if self.payments is None:
            return None
        try:
            captured = bool(self.payments.capture(auth_id, amount))
        except PaymentOffline:
            return None
        except Exception:
            log.exception("capture")
            return None
        self._heard_from_centre()
        return captured

    def _heard_from_centre(self) -> None:
        """The payment port got the centre's answer (a refusal too): note it as the sync agent
        does. Losing the note costs the sync screen a timestamp, never a sale."""
        try:
            with kdb.transaction(self.db):
                kdb.note_contact(self.db, wall.now_iso())
        except sqlite3.Error as e:
            log.warning("last contact not saved: %s", e)

    def _keep_capture(self, auth_id: str, session: str, amount: int, at: str) -> None:
        self.db.conn.execute(
            "INSERT INTO captures (auth_id, session, amount_fen, state, tries, updated_at)"
            " VALUES (?, ?, ?, 'pending', 1, ?) ON CONFLICT(auth_id) DO NOTHING",
            (auth_id, session, amount, at),
        )

    def _capture_or_keep(
        self, auth_id: str, session: str, amount: int, record: bool = True
    ) -> None:
        if self._try_capture(auth_id, amount) is None and record:
            with kdb.transaction(self.db):
                self._keep_capture(auth_id, session, amount, wall.now_iso())

    # -- inventory ---------------------------------------------------------------------------------
    def _door_lanes(self, door: str) -> list[journal.LaneRow]:
        return [ln for ln in journal.lanes(self.db) if ln.door == door]

    def _outbox_inventory(
        self, session: str, reason: str, changed: list[dict[str, Any]], at: str
    ) -> None:
        """The lanes a sale or restock changed, for the centre (inside the caller's transaction)."""
        if changed:
            journal.outbox(
                self.db, "inventory", {"session": session, "reason": reason, "lanes": changed}, at
            )

    def _apply_inventory(
        self, door: str, taken: Mapping[str, int], moves: Sequence[Move], at: str
    ) -> list[dict[str, Any]]:
        lanes = {(ln.shelf, ln.sku): ln.count for ln in self._door_lanes(door)}
        before = dict(lanes)
        for sku, n in taken.items():
            left = n
            for key in sorted((k for k in lanes if k[1] == sku), key=lambda k: -lanes[k]):
                take = min(left, lanes[key])
                lanes[key] -= take
                left -= take
                if left == 0:
                    break
        for m in moves:
            src, dst = (m.src, m.sku), (m.dst, m.sku)
            lanes[src] = max(0, lanes.get(src, 0) - 1)
            lanes[dst] = lanes.get(dst, 0) + 1
        changed = []
        for (shelf, sku), count in lanes.items():
            if before.get((shelf, sku)) != count:
                journal.set_count(self.db, shelf, sku, count, at)
                changed.append({"shelf": shelf, "sku": sku, "count": count})
        return changed

    def _apply_counts(self, live: Live, at: str) -> list[dict[str, Any]]:
        view = self._restock_lanes(live)
        today = self._today()
        changed = []
        for lane in view.lanes:
            c = live.counts.get((lane.shelf, lane.sku))
            count = (
                c.count
                if c is not None
                else (lane.weighed if lane.weighed is not None else lane.expected)
            )
            expires = (c.expires_on if c is not None and c.expires_on else None) or lane.expires_on
            grew = count > lane.expected
            journal.set_count(
                self.db,
                lane.shelf,
                lane.sku,
                count,
                at,
                expires_on=expires if grew else None,
                keep_expiry=not grew,
            )
            changed.append(
                {
                    "shelf": lane.shelf,
                    "sku": lane.sku,
                    "count": count,
                    **({"expires_on": expires} if grew else {}),
                }
            )
            if count > 0:
                self.db.conn.execute(
                    "UPDATE events SET acked_at = ?, acked_by = 'restock' WHERE acked_at IS NULL"
                    " AND device = ? AND kind IN ('low_stock', 'expired', 'expiring')",
                    (at, f"{lane.shelf}/{lane.sku}"),
                )
        del today
        return changed
