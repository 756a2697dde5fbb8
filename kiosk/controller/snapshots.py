"""Building the snapshot the screen (and ``kiosk ctl state``) sees."""

from __future__ import annotations

import json
import logging

from kiosk import auth, journal, operators, restock
from kiosk import db as kdb
from kiosk import snapshot as S
from kiosk.controller.base import Base
from kiosk.controller.live import (
    PENDING_CARD_S,
    Live,
    cheaper_first,
)
from kiosk.session_table import ACTIVE
from kiosk.snapshot import SessionState as St
from kiosk.weighing import Basket

log = logging.getLogger("kiosk.controller")


class Snapshots(Base):
    # == snapshots =================================================================================
    def _publish(self, force: bool = False) -> None:
        now = self.clock()
        if self._pending_operator(now) != self._snap.operator_pending:
            force = True  # a card read (or its wait ran out) sets no dirty flag of its own
        if not (force or self._dirty):
            # readings and background refreshes alone publish at a calm rate
            calm = now - self._last_publish >= 0.5
            if not (calm and (self._readings_dirty or self._dirty_static)):
                return
        self._readings_dirty = False
        if self._dirty_static or force:
            self._static_parts()
            self._dirty_static = False
        self._dirty = False
        self._last_publish = now
        self._seq += 1
        snap = self._build(now)
        self._snap = snap
        for cb in list(self._subs):
            try:
                cb(snap)
            except Exception:
                log.exception("snapshot subscriber")

    def _static_parts(self) -> None:
        db = self.db.conn
        self._static["alarms"] = tuple(
            S.AlarmView(r[0], r[1], r[2], r[3], r[4], json.loads(r[5] or "{}"), r[6] is not None)
            for r in journal.open_alarms(self.db)
        )
        self._static["products"], self._static["categories"] = self._product_wall()
        backlog = db.execute("SELECT COUNT(*) FROM outbox WHERE state = 'pending'").fetchone()[0]
        dead = db.execute("SELECT COUNT(*) FROM outbox WHERE state = 'dead'").fetchone()[0]
        last = db.execute("SELECT MAX(delivered_at) FROM outbox").fetchone()[0]
        last = kdb.get_setting(self.db, kdb.LAST_CONTACT, last) or last
        self._static["sync"] = S.SyncView(backlog, dead, last, journal.catalog_version(self.db))
        lo, hi = auth.day_bounds(self._today(), self.tz)
        c, tot = db.execute(
            "SELECT COUNT(*), COALESCE(SUM(total_fen), 0) FROM sales WHERE"
            " closed_at >= ? AND closed_at < ?",
            (lo, hi),
        ).fetchone()
        detail = self._review_detail()
        self._static["sales"] = S.SalesView(c, tot, tuple(r.id for r in detail), detail)
        self._static["planogram"] = self._planogram_view()

    def _review_detail(self) -> tuple[S.ReviewSale, ...]:
        """The sales flagged for review (newest first), with their items for a part refund."""
        db = self.db.conn
        sales = db.execute(
            "SELECT s.id, s.closed_at, s.total_fen, (SELECT COALESCE(SUM(a.amount_fen), 0)"
            " FROM adjustments a WHERE a.sale = s.id) FROM sales s WHERE s.review = 1"
            " ORDER BY s.created_at DESC LIMIT 50"
        ).fetchall()
        out = []
        for sale, closed_at, total, refunded in sales:
            items = []
            for sku, qty, price in db.execute(
                "SELECT sku, qty, unit_price_fen FROM sale_items WHERE sale = ? ORDER BY sku",
                (sale,),
            ):
                pr = self._products.get(sku)
                items.append(
                    S.ItemView(
                        sku, pr.zh if pr else sku, pr.en if pr else sku, qty, price, qty * price
                    )
                )
            out.append(S.ReviewSale(sale, closed_at, int(total), tuple(items), int(refunded)))
        return tuple(out)

    def _planogram_view(self) -> tuple[S.PlanogramShelf, ...]:
        """Per shelf: its door, lanes (sku, threshold, count) and weighing warnings."""
        lanes = journal.lanes(self.db)
        out = []
        for s in self.cfg.shelves:
            mine = [ln for ln in lanes if ln.shelf == s.id]
            skus = tuple(ln.sku for ln in mine)
            key = (s.id, skus, journal.catalog_version(self.db))
            cache = self._static.setdefault("warnings_cache", {})
            if key not in cache:  # the check compares every small take: only on a change
                cache[key] = self._shelf_warnings(s.id, skus)
            zh, en = cache[key]
            out.append(
                S.PlanogramShelf(
                    shelf=s.id,
                    door=s.door,
                    lanes=tuple(S.PlanogramLaneView(ln.sku, ln.low_stock, ln.count) for ln in mine),
                    skus=skus,
                    warnings=tuple(zh),
                    warnings_en=tuple(en),
                )
            )
        return tuple(out)

    def _product_wall(self) -> tuple[tuple[S.ProductView, ...], tuple[S.CategoryView, ...]]:
        db = self.db.conn
        today = self._today().isoformat()
        lanes = journal.lanes(self.db)
        stock: dict[str, int] = {}
        expired: set[str] = set()
        doors_of: dict[str, set[str]] = {}
        faulty: set[str] = set()
        for ln in lanes:
            doors_of.setdefault(ln.sku, set()).add(ln.door)
            if ln.expires_on and ln.expires_on[:10] < today:
                expired.add(ln.sku)
                continue
            if ln.shelf in self.shelf_fault:
                faulty.add(ln.sku)
                continue
            stock[ln.sku] = stock.get(ln.sku, 0) + ln.count
        rows = db.execute(
            "SELECT p.sku, p.zh, p.en, p.category, p.supplier, COALESCE(s.zh, ''),"
            " COALESCE(s.kind, ''),"
            " COALESCE(s.county, ''), COALESCE(s.town, ''), p.cert_no, p.price_fen,"
            " COALESCE(s.households, 0)"
            " FROM products p LEFT JOIN suppliers s ON s.id = p.supplier ORDER BY p.category, p.sku"
        ).fetchall()
        out = []
        for r in rows:
            sku = r[0]
            if sku not in doors_of:
                continue
            n = stock.get(sku, 0)
            why = None
            if n <= 0:
                why = (
                    "expired" if sku in expired else "scale_fault" if sku in faulty else "sold_out"
                )
            out.append(
                S.ProductView(
                    sku=sku,
                    zh=r[1],
                    en=r[2],
                    category=r[3],
                    supplier=r[4],
                    supplier_zh=r[5],
                    supplier_kind=r[6],
                    county=r[7],
                    town=r[8],
                    cert_no=r[9],
                    certified=bool(r[9]),
                    price_fen=int(r[10]),
                    stock=n,
                    available=n > 0,
                    why_unavailable=why,
                    doors=tuple(sorted(doors_of[sku])),
                    households=int(r[11] or 0),
                )
            )
        cats = tuple(
            S.CategoryView(*r) for r in db.execute("SELECT id, zh, en FROM categories ORDER BY id")
        )
        return tuple(out), cats

    def _restock_view(self) -> S.RestockView | None:
        """The running restock for the screen; none once recorded (no lane takes counts)."""
        live = self.live
        if live is None or live.kind != "restock" or self.state not in ACTIVE:
            return None
        return self._restock_lanes(live)

    def _restock_lanes(self, live: Live) -> S.RestockView:
        """A restock's lanes: expected counts and what the weight says now."""
        today = self._today()
        lanes = self._door_lanes(live.door)
        out = []
        for s in self.cfg.shelves_of(live.door):
            mine = [ln for ln in lanes if ln.shelf == s.id and ln.sku in self._products]
            units = [restock.LaneUnit(ln.sku, ln.count, *self._unit_weight(ln.sku)) for ln in mine]
            base = (live.baseline.get(s.id) or {}).get("g")
            now_r = self.last.get(s.id)
            counted = None
            if base is not None and now_r is not None and now_r.grams is not None:
                counted = restock.weighed_counts(units, now_r.grams - base)
            for ln in mine:
                p = self._products[ln.sku]
                out.append(
                    S.RestockLane(
                        shelf=s.id,
                        sku=ln.sku,
                        zh=p.zh,
                        en=p.en,
                        expected=ln.count,
                        weighed=counted.counts.get(ln.sku) if counted else None,
                        exact=bool(counted and counted.exact),
                        expires_on=restock.default_expiry(today, p.shelf_life_days),
                    )
                )
        return S.RestockView(live.id, live.door, tuple(out))

    def _build(self, now: float) -> S.Snapshot:
        live = self.live
        sess = None
        cands: tuple[S.BasketView, ...] = ()
        if live is not None and self.state not in (St.IDLE,):
            deadline = (
                live.deadline
                if self.state in (St.UNLOCKING, St.CONFIRMING)
                else (live.open_alarm_at if self.state == St.OPEN else None)
            )
            sess = S.OpenSession(
                id=live.id,
                door=live.door,
                kind=live.kind,
                method=live.method,
                state=str(self.state),
                started_at=live.started_at,
                deadline=deadline,
                remaining_s=None if deadline is None else max(0.0, deadline - now),
                door_open_too_long=live.alarmed_open,
            )
            if self.state == St.CONFIRMING and live.verdict is not None and live.kind == "sale":
                cands = tuple(
                    self._basket_view(i, b, live)
                    for i, b in enumerate(cheaper_first(live.verdict.candidates))
                )
        door_views = tuple(
            S.DoorView(
                d.id,
                bool(self.door_open.get(d.id)),
                live.id if live and live.door == d.id and self.state in ACTIVE else None,
                self.door_fault.get(d.id),
            )
            for d in self.cfg.doors
        )
        shelves = tuple(
            S.ShelfView(
                s.id,
                s.door,
                self.last[s.id].grams if s.id in self.last else None,
                bool(self.last[s.id].stable) if s.id in self.last else False,
                self.shelf_fault.get(s.id),
            )
            for s in self.cfg.shelves
        )
        op = (
            S.OperatorView(self.operator.id, self.operator.name, self.operator_since or "")
            if self.operator
            else None
        )
        planogram = self._static.get("planogram", ())
        state = str(self.state)
        if self.state == St.IDLE and self.oos is not None:
            state = St.OUT_OF_SERVICE
        return S.Snapshot(
            state=state,
            seq=self._seq,
            cabinet=self._snap.cabinet,
            session=sess,
            doors=door_views,
            shelves=shelves,
            alarms=self._static.get("alarms", ()),
            receipt=self.receipt,
            candidates=cands,
            refusal=self.refusal,
            out_of_service=self.oos,
            operator=op,
            restock=self._restock_view(),
            products=self._static.get("products", ()),
            categories=self._static.get("categories", ()),
            sync=self._static.get("sync", S.SyncView()),
            sales=self._static.get("sales", S.SalesView()),
            planogram_warnings=tuple(w for p in planogram for w in p.warnings),
            scan_url=self._scan_url(),
            planogram=planogram,
            operator_pending=self._pending_operator(now),
        )

    def _pending_operator(self, now: float) -> str | None:
        """The name of the operator whose card was read and who has yet to type a PIN."""
        p = self.pending_card
        if p is None or self.operator is not None or now - p[1] >= PENDING_CARD_S:
            return None
        account, name = self._static.get("pending_name", (None, None))
        if account != p[0]:  # looked up once per card, not on every publish
            op = operators.by_card(self.db.conn, p[0])
            account, name = p[0], op.name if op else None
            self._static["pending_name"] = (account, name)
        return name

    def _scan_url(self) -> str | None:
        """The on-screen code, while the idle screen can show one (a central platform to serve
        it, no session running, the cabinet in service)."""
        base = self.cfg.central.http
        nonce = self.scan_codes.current if self.scan_codes is not None else None
        if not base or nonce is None or self.state != St.IDLE or self.oos is not None:
            return None
        return f"{base.rstrip('/')}/s/{self.cfg.cabinet.id}/{nonce}"

    def _basket_view(self, index: int, b: Basket, live: Live) -> S.BasketView:
        items = []
        for sku, qty in sorted(dict(b.taken).items()):
            if qty <= 0:
                continue
            p = self._products.get(sku)
            price = live.prices.get(sku, p.price_fen if p else 0)
            items.append(
                S.ItemView(sku, p.zh if p else sku, p.en if p else sku, qty, price, price * qty)
            )
        return S.BasketView(index, tuple(items), sum(i.line_fen for i in items))

    def _receipt(
        self,
        sale_id: str,
        live: Live,
        items: list[tuple],
        total: int,
        status: str,
        review: bool,
        at: str,
    ) -> S.Receipt:
        views = []
        sups: dict[str, S.SupplierView] = {}
        for sku, qty, price, _cert, sup in items:
            p = self._products.get(sku)
            views.append(
                S.ItemView(sku, p.zh if p else sku, p.en if p else sku, qty, price, price * qty)
            )
            if sup and sup not in sups:
                r = self.db.conn.execute(
                    "SELECT id, zh, kind, town, households FROM suppliers WHERE id = ?", (sup,)
                ).fetchone()
                if r:
                    sups[sup] = S.SupplierView(r[0], r[1], r[2], r[3] or "", int(r[4] or 0))
        return S.Receipt(
            sale=sale_id,
            session=live.id,
            door=live.door,
            items=tuple(views),
            total_fen=total,
            method=live.method,
            payment_status=status,
            suppliers=tuple(sups.values()),
            households=sum(s.households for s in sups.values()),
            review=review,
            closed_at=live.closed_at or at,
        )
