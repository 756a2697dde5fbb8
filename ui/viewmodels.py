"""Presentation models: what each screen shows, computed from a controller snapshot.

Pure functions of (snapshot, language, the UI's own navigation state): no Kivy, no I/O, so
they are tested without a window. Screens only copy these values into widgets.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from zoneinfo import ZoneInfo

from kiosk.snapshot import (
    AlarmView,
    BasketView,
    ItemView,
    ProductView,
    Receipt,
    SessionState,
    Snapshot,
)
from ui.i18n import alarm_text, reason, t

COUNTDOWN_FROM_S = 30  # the ring shows only in the last 30 s before the alarm
LOW_STOCK_SHOWN_AT = 2
ImageFor = Callable[[str], str]  # sku -> image path ("" when none)


def _no_image(_sku: str) -> str:
    return ""


def money(fen: int) -> str:
    """Integer fen as ``¥45.00`` (``-¥3.50`` for a refund)."""
    sign = "-" if fen < 0 else ""
    fen = abs(fen)
    return f"{sign}¥{fen // 100}.{fen % 100:02d}"


def name_of(p: ProductView | ItemView, lang: str) -> str:
    return p.zh if lang == "zh" or not p.en else p.en


# -- navigation: which screen ----------------------------------------------------------------
@dataclass(frozen=True)
class Nav:
    """The UI's own state: where the operator is, whether a refusal was dismissed, attract."""

    operator_page: str | None = None  # None: the customer side; "operator-login" or a page
    refusal_dismissed: bool = False
    attract: bool = False
    pending_dismissed: bool = False  # "back" on the PIN pad while an operator card waits


OPERATOR_PAGES = (
    "operator-menu",
    "restock",
    "planogram",
    "calibrate",
    "alarms",
    "sales",
    "sync",
    "settings",
)


def route(snap: Snapshot, nav: Nav) -> str:
    """The screen for this snapshot. Customers' sessions win over everything but an operator."""
    if snap.operator is not None:
        if snap.restock is not None:
            return "restock"
        page = nav.operator_page
        return page if page in OPERATOR_PAGES else "operator-menu"
    if nav.operator_page is not None:
        return "operator-login"
    st = snap.state
    if st in (SessionState.AUTHORISING, SessionState.UNLOCKING):
        return "authorise"
    if st == SessionState.OPEN:
        return "door-open"
    if st == SessionState.SETTLING:
        return "settling"
    if st == SessionState.CONFIRMING:
        return "confirm"
    if st == SessionState.SETTLED and snap.receipt is not None:
        return "receipt"
    if snap.operator_pending and not nav.pending_dismissed:
        return "operator-login"  # an operator card was read: its PIN next
    if snap.refusal and snap.refusal != "ok" and not nav.refusal_dismissed:
        return "refused"
    if st == SessionState.OUT_OF_SERVICE or snap.out_of_service:
        return "out-of-service"
    return "attract" if nav.attract else "idle"


# -- idle: the wall --------------------------------------------------------------------------
@dataclass(frozen=True)
class Chip:
    id: str  # "" is "all"
    label: str
    selected: bool


@dataclass(frozen=True)
class ProductCard:
    sku: str
    name: str
    origin: str
    price: str
    stock: str
    status: str  # ok | low | sold_out | unavailable
    certified: bool
    badge: str
    image: str


def chips(snap: Snapshot, lang: str, selected: str) -> tuple[Chip, ...]:
    out = [Chip("", t("all", lang), selected == "")]
    out += [Chip(c.id, c.zh if lang == "zh" else c.en, c.id == selected) for c in snap.categories]
    return tuple(out)


def product_card(p: ProductView, lang: str, image_for: ImageFor = _no_image) -> ProductCard:
    if p.available and p.stock > 0:
        status = "low" if p.stock <= LOW_STOCK_SHOWN_AT else "ok"
        stock = t("low_stock" if status == "low" else "in_stock", lang, n=p.stock)
    elif p.why_unavailable in (None, "sold_out") or (p.stock <= 0 and p.why_unavailable is None):
        status, stock = "sold_out", t("sold_out", lang)
    else:
        status, stock = "unavailable", t("unavailable", lang)
    return ProductCard(
        sku=p.sku,
        name=name_of(p, lang),
        origin=" · ".join(x for x in (p.town, p.supplier_zh) if x),
        price=money(p.price_fen),
        stock=stock,
        status=status,
        certified=p.certified,
        badge=t("cert_badge", lang) if p.certified else "",
        image=image_for(p.sku),
    )


def wall(
    snap: Snapshot, lang: str, category: str = "", image_for: ImageFor = _no_image
) -> tuple[ProductCard, ...]:
    """The product wall, filtered by category, in catalogue order.

    A product that sells out stays where it was (greyed, 售罄): cards never jump under a
    customer's finger, and a stock change redraws one card, not the whole wall.
    """
    return tuple(
        product_card(p, lang, image_for)
        for p in snap.products
        if not category or p.category == category
    )


@dataclass(frozen=True)
class Header:
    title: str
    location: str


def header(snap: Snapshot, lang: str) -> Header:
    loc = " ".join(x for x in (snap.cabinet.location, snap.cabinet.name) if x)
    return Header(t("title", lang), loc)


@dataclass(frozen=True)
class SupplierSlide:
    name: str
    line: str
    image: str


def attract(
    snap: Snapshot, lang: str, image_for: ImageFor = _no_image
) -> tuple[SupplierSlide, ...]:
    """One slide per supplier on the wall: its name, town, households, and a product picture."""
    seen: dict[str, SupplierSlide] = {}
    for p in snap.products:
        if p.supplier in seen:
            continue
        line = t("attract_supplier", lang, town=p.town, households=p.households)
        seen[p.supplier] = SupplierSlide(p.supplier_zh, line, image_for(p.sku))
    return tuple(seen.values())


# -- authorise, refused, out of service ------------------------------------------------------
@dataclass(frozen=True)
class Message:
    title: str
    why: str
    todo: str
    code: str
    tone: str  # ok | warn | fault
    icon: str


def authorise(snap: Snapshot, lang: str) -> Message:
    s = snap.session
    if s is None or snap.state == SessionState.AUTHORISING:
        return Message(t("authorising", lang), t("authorising_hint", lang), "", "", "ok", "card")
    return Message(
        t("door_will_open", lang, door=s.door),
        t("pull_door", lang, door=s.door),
        "",
        "",
        "ok",
        "arrow_down",
    )


def refusal(code: str, lang: str) -> Message:
    title, why, todo = reason(code, lang)
    return Message(title, why, todo, code, "fault", "cross")


def out_of_service(code: str, lang: str) -> Message:
    _title, why, todo = reason(code or "starting", lang)
    return Message(t("oos_title", lang), why, todo, code, "fault", "wrench")


# -- door open, settling ---------------------------------------------------------------------
def countdown(remaining_s: float | None) -> int | None:
    """Whole seconds to show, only in the last 30 s (and never below 0); else None."""
    if remaining_s is None or remaining_s > COUNTDOWN_FROM_S:
        return None
    return max(0, math.ceil(remaining_s))


@dataclass(frozen=True)
class DoorOpen:
    door: str
    title: str
    hint: str
    countdown: int | None
    countdown_text: str
    too_long: bool


def door_open(snap: Snapshot, lang: str, now: float | None = None) -> DoorOpen:
    s = snap.session
    door = s.door if s else "?"
    remaining = s.remaining_s if s else None
    if s is not None and s.deadline is not None and now is not None:
        remaining = s.deadline - now
    if s is not None and s.door_open_too_long:
        return DoorOpen(
            door,
            t("door_too_long", lang, door=door),
            t("door_too_long_hint", lang),
            None,
            "",
            True,
        )
    n = countdown(remaining)
    return DoorOpen(
        door,
        t("door_open", lang, door=door),
        t("take_and_close", lang),
        n,
        t("close_soon", lang, s=n) if n is not None else "",
        False,
    )


# -- confirm ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Line:
    sku: str
    name: str
    qty: str
    unit: str
    amount: str
    image: str


@dataclass(frozen=True)
class Basket:
    index: int
    lines: tuple[Line, ...]
    total: str


def lines(
    items: Iterable[ItemView], lang: str, image_for: ImageFor = _no_image
) -> tuple[Line, ...]:
    return tuple(
        Line(
            i.sku,
            name_of(i, lang),
            f"× {i.qty}",
            money(i.unit_price_fen),
            money(i.line_fen),
            image_for(i.sku),
        )
        for i in items
    )


def baskets(
    candidates: Iterable[BasketView], lang: str, image_for: ImageFor = _no_image
) -> tuple[Basket, ...]:
    """Cheaper first (the controller sends them so; sorted again so the screen never lies)."""
    out = [Basket(b.index, lines(b.items, lang, image_for), money(b.total_fen)) for b in candidates]
    return tuple(sorted(out, key=lambda b: _fen(b.total)))


def _fen(text: str) -> int:
    neg = text.startswith("-")
    yuan, fen = text.lstrip("-¥").split(".")
    v = int(yuan) * 100 + int(fen)
    return -v if neg else v


# -- receipt ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class ReceiptModel:
    lines: tuple[Line, ...]
    total: str
    paid_by: str
    note: str  # deferred / failed payment, review, nothing taken
    thanks: str


def thanks_line(r: Receipt, lang: str) -> str:
    """本次消费帮扶了 会山农旅体验馆 等 2 家合作社, 带动 138 户 (empty when nothing was bought)."""
    sups = r.suppliers
    if not sups:
        return ""
    first = sups[0].zh
    if len(sups) == 1:
        return t("thanks_one", lang, first=first, households=r.households)
    kinds = {s.kind for s in sups}
    kind = (
        "kind_cooperative"
        if kinds == {"cooperative"}
        else ("kind_enterprise" if kinds == {"enterprise"} else "kind_mixed")
    )
    return t(
        "thanks_many",
        lang,
        first=first,
        n=len(sups),
        more=len(sups) - 1,
        kind=t(kind, lang),
        households=r.households,
    )


def receipt(r: Receipt, lang: str, image_for: ImageFor = _no_image) -> ReceiptModel:
    method = t(f"method_{r.method}", lang)
    note = ""
    if not r.items:
        note = t("nothing_taken", lang)
    elif r.payment_status == "deferred":
        note = t("payment_deferred", lang)
    elif r.payment_status == "failed":
        note = t("payment_failed", lang)
    if r.review:
        note = " ".join(x for x in (note, t("under_review", lang)) if x)
    return ReceiptModel(
        lines(r.items, lang, image_for),
        money(r.total_fen),
        t("paid_by", lang, method=method),
        note,
        thanks_line(r, lang),
    )


# -- operators -------------------------------------------------------------------------------
def pin_mask(digits: str) -> str:
    return "●" * len(digits)


@dataclass(frozen=True)
class Tile:
    page: str
    label: str
    badge: str
    tone: str  # ok | warn | fault


TILES = (
    ("restock", "tile_restock"),
    ("planogram", "tile_planogram"),
    ("calibrate", "tile_calibrate"),
    ("alarms", "tile_alarms"),
    ("sales", "tile_sales"),
    ("sync", "tile_sync"),
    ("settings", "tile_settings"),
    ("exit", "tile_exit"),
)


def open_alarms(snap: Snapshot) -> int:
    return sum(1 for a in snap.alarms if not a.acked)


def menu(snap: Snapshot, lang: str) -> tuple[Tile, ...]:
    out = []
    for page, key in TILES:
        badge, tone = "", "ok"
        if page == "alarms" and (n := open_alarms(snap)):
            badge, tone = t("alarm_count", lang, n=n), "fault"
        if page == "sales" and snap.sales.review:
            badge, tone = f"{t('review_list', lang)} {len(snap.sales.review)}", "warn"
        if page == "sync" and (snap.sync.backlog or snap.sync.dead):
            badge = f"{snap.sync.backlog}"
            tone = "fault" if snap.sync.dead else "warn"
        out.append(Tile(page, t(key, lang), badge, tone))
    return tuple(out)


@dataclass(frozen=True)
class RestockRow:
    shelf: str
    sku: str
    name: str
    expected: int
    weighed: str
    count: int  # what will be confirmed unless the operator changes it
    expires_on: str
    mismatch: bool
    image: str


def restock_rows(
    snap: Snapshot, lang: str, image_for: ImageFor = _no_image
) -> tuple[RestockRow, ...]:
    if snap.restock is None:
        return ()
    return tuple(
        RestockRow(
            shelf=lane.shelf,
            sku=lane.sku,
            name=lane.zh if lang == "zh" else lane.en,
            expected=lane.expected,
            weighed="?" if lane.weighed is None else str(lane.weighed),
            count=lane.weighed if lane.weighed is not None else lane.expected,
            expires_on=lane.expires_on,
            mismatch=not lane.exact,
            image=image_for(lane.sku),
        )
        for lane in snap.restock.lanes
    )


@dataclass(frozen=True)
class AlarmRow:
    id: str
    time: str
    where: str
    what: str
    severity: str
    acked: bool


def local_time(at: str, tz: str = "Asia/Shanghai") -> str:
    try:
        dt = datetime.fromisoformat(at.replace("Z", "+00:00"))
    except ValueError:
        return at
    return dt.astimezone(ZoneInfo(tz)).strftime("%m-%d %H:%M")


def alarm_rows(
    alarms: Iterable[AlarmView], lang: str, tz: str = "Asia/Shanghai"
) -> tuple[AlarmRow, ...]:
    """Newest first, open ones before acknowledged ones."""
    rows = sorted(alarms, key=lambda a: a.at, reverse=True)
    rows.sort(key=lambda a: a.acked)
    return tuple(
        AlarmRow(
            a.id,
            local_time(a.at, tz),
            a.device or "",
            alarm_text(a.kind, a.device, lang),
            a.severity,
            a.acked,
        )
        for a in rows
    )


@dataclass(frozen=True)
class KeyValue:
    key: str
    value: str
    tone: str = "ok"


def sync_rows(snap: Snapshot, lang: str, tz: str = "Asia/Shanghai") -> tuple[KeyValue, ...]:
    s = snap.sync
    return (
        KeyValue(t("backlog", lang), str(s.backlog), "warn" if s.backlog else "ok"),
        KeyValue(t("dead", lang), str(s.dead), "fault" if s.dead else "ok"),
        KeyValue(
            t("last_contact", lang),
            local_time(s.last_contact, tz) if s.last_contact else t("never", lang),
        ),
        KeyValue(
            t("catalog_version", lang), "-" if s.catalog_version is None else str(s.catalog_version)
        ),
    )


@dataclass(frozen=True)
class ReviewLine:
    sku: str
    name: str
    qty: int
    unit: str  # what refunding one of them gives back
    amount: str


@dataclass(frozen=True)
class ReviewCard:
    """One sale flagged for review: what an operator needs to refund some or all of it."""

    sale: str
    time: str
    total: str
    refunded: str  # "" when nothing was refunded yet
    refundable_fen: int
    lines: tuple[ReviewLine, ...]


def review_cards(snap: Snapshot, lang: str, tz: str = "Asia/Shanghai") -> tuple[ReviewCard, ...]:
    return tuple(
        ReviewCard(
            sale=r.id,
            time=local_time(r.closed_at, tz),
            total=money(r.total_fen),
            refunded=t("refunded", lang, amount=money(r.refunded_fen)) if r.refunded_fen else "",
            refundable_fen=r.total_fen - r.refunded_fen,
            lines=tuple(
                ReviewLine(
                    i.sku, name_of(i, lang), i.qty, money(i.unit_price_fen), money(i.line_fen)
                )
                for i in r.items
            ),
        )
        for r in snap.sales.review_detail
    )


@dataclass(frozen=True)
class PlanogramRow:
    shelf: str
    door: str
    skus: tuple[str, ...]
    warnings: tuple[str, ...]  # in the screen's language, without the "{shelf}: " prefix


def planogram_rows(snap: Snapshot, lang: str) -> tuple[PlanogramRow, ...]:
    def bare(w: str, shelf: str) -> str:
        return w[len(shelf) + 1 :].strip() if w.startswith(shelf + ":") else w

    out = []
    for p in snap.planogram:
        ws = p.warnings_en if lang == "en" and p.warnings_en else p.warnings
        out.append(PlanogramRow(p.shelf, p.door, p.skus, tuple(bare(w, p.shelf) for w in ws)))
    return tuple(out)


def sales_summary(snap: Snapshot, lang: str) -> str:
    return t("sales_today", lang, n=snap.sales.today_count, total=money(snap.sales.today_total_fen))


def shelf_reading(grams: float | None, stable: bool, lang: str) -> tuple[str, str]:
    """(the big number, steady/settling) for the calibration wizard."""
    if grams is None:
        return "—", t("no_reading", lang)
    return f"{grams:,.1f} g", t("stable" if stable else "unstable", lang)


def with_stock(snap: Snapshot, sku: str, stock: int) -> Snapshot:
    """A snapshot with one product's stock changed (fixtures and the benchmark)."""
    ps = tuple(
        replace(p, stock=stock, available=stock > 0, why_unavailable=None if stock else "sold_out")
        if p.sku == sku
        else p
        for p in snap.products
    )
    return replace(snap, products=ps, seq=snap.seq + 1)
