"""A small controller that follows the Controller API (snapshot/submit/subscribe), for flows.

It answers intents the way the real one does (reason codes, snapshots after every change) but
decides nothing from weights: the test says what the shelves concluded.
"""

from __future__ import annotations

from dataclasses import replace

from kiosk import intents as I
from kiosk.snapshot import (
    BasketView,
    ItemView,
    OpenSession,
    OperatorView,
    Receipt,
    RestockLane,
    RestockView,
    Snapshot,
    SupplierView,
)
from kiosk.snapshot import (
    SessionState as St,
)
from ui import fixtures

PIN = "2468"
MAX_TRIES = 3


class FakeController:
    def __init__(self, snap: Snapshot | None = None):
        self.snap = snap or fixtures.base()
        self.subs = []
        self.intents: list[I.Intent] = []
        self.failed = 0

    def snapshot(self) -> Snapshot:
        return self.snap

    def subscribe(self, cb) -> None:
        self.subs.append(cb)

    def _set(self, **kw) -> None:
        self.snap = replace(self.snap, seq=self.snap.seq + 1, **kw)
        for cb in self.subs:
            cb(self.snap)

    # -- what the hardware does (driven by the test) --
    def card(self, uid: str) -> None:
        if uid == "blocked":
            self._set(refusal="card_blocked")
            return
        s = OpenSession("s1", "D1", "sale", "card", "unlocking", "2026-11-28T04:00:00.000Z")
        self._set(state=St.UNLOCKING, session=s, refusal=None)

    def door(self, open_: bool) -> None:
        if open_:
            self._set(state=St.OPEN, session=replace(self.snap.session, state="open"))
        else:
            self._set(state=St.SETTLING, session=replace(self.snap.session, state="settling"))

    def settle(self, *baskets: tuple[tuple[str, int], ...]) -> None:
        views = tuple(BasketView(i, self._items(b), self._total(b)) for i, b in enumerate(baskets))
        if len(views) == 1:
            self._receipt(views[0])
        else:
            self._set(state=St.CONFIRMING, candidates=views)

    def _items(self, basket) -> tuple[ItemView, ...]:
        by = {p.sku: p for p in self.snap.products}
        return tuple(
            ItemView(s, by[s].zh, by[s].en, q, by[s].price_fen, by[s].price_fen * q)
            for s, q in basket
        )

    def _total(self, basket) -> int:
        return sum(i.line_fen for i in self._items(basket))

    def _receipt(self, b: BasketView, review: bool = False) -> None:
        by = {p.sku: p for p in self.snap.products}
        sups = {}
        for i in b.items:
            p = by[i.sku]
            sups[p.supplier] = SupplierView(p.supplier, p.supplier_zh, p.supplier_kind, p.town, 100)
        r = Receipt(
            "sale1", "s1", "D1", b.items, b.total_fen, "card", "captured",
            tuple(sups.values()), 100 * len(sups), review, "2026-11-28T04:01:00.000Z",
        )  # fmt: skip
        self._set(state=St.SETTLED, receipt=r, candidates=(), session=None)

    # -- intents --
    def submit(self, intent: I.Intent) -> I.Result:
        self.intents.append(intent)
        if isinstance(intent, I.ConfirmBasket):
            if self.snap.state != St.CONFIRMING:
                return I.Result.refused("nothing_to_confirm")
            if intent.choice is None:
                cheapest = self.snap.candidates[0]
                self._receipt(cheapest, review=True)
            else:
                self._receipt(self.snap.candidates[intent.choice])
            return I.Result(True)
        if isinstance(intent, I.DismissReceipt):
            self._set(state=St.IDLE, receipt=None)
            return I.Result(True)
        if isinstance(intent, I.Cancel):
            self._set(state=St.IDLE, session=None)
            return I.Result(True)
        if isinstance(intent, I.OperatorLogin):
            if self.failed >= MAX_TRIES:
                return I.Result.refused("locked_out")
            if intent.pin != PIN:
                self.failed += 1
                return I.Result.refused("locked_out" if self.failed >= MAX_TRIES else "bad_pin")
            self.failed = 0
            self._set(operator=OperatorView("op1", "王芳", "2026-11-28T04:00:00.000Z"))
            return I.Result(True)
        if intent.operator_only and self.snap.operator is None:
            return I.Result.refused("not_logged_in")
        if isinstance(intent, I.OperatorLogout):
            self._set(operator=None)
            return I.Result(True)
        if isinstance(intent, I.OpenDoorForRestock):
            of_door = [
                (shelf, sku)
                for shelf, (door, skus) in fixtures.SHELVES.items()
                if door == intent.door
                for sku in skus
            ]
            lanes = tuple(
                RestockLane(shelf, sku, sku, sku, 4, 6 if i == 0 else None, i == 0, "2027-01-01")
                for i, (shelf, sku) in enumerate(of_door[:2])
            )
            self._set(restock=RestockView("r1", intent.door, lanes))
            return I.Result(True)
        if isinstance(intent, I.ConfirmCounts):
            self._set(restock=None)
            return I.Result(True)
        if isinstance(intent, I.AckAlarm):
            self._set(
                alarms=tuple(
                    replace(a, acked=a.acked or a.id == intent.alarm) for a in self.snap.alarms
                )
            )
            return I.Result(True)
        return I.Result(True)
