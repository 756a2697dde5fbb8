"""Snapshots of every screen, built from the sample catalogue: for shots, tests and the bench.

No hardware and no controller: the values a real controller would send, frozen.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from kiosk.snapshot import (
    AlarmView,
    BasketView,
    CabinetView,
    CategoryView,
    DoorView,
    ItemView,
    OpenSession,
    OperatorView,
    PlanogramLaneView,
    PlanogramShelf,
    ProductView,
    Receipt,
    RestockLane,
    RestockView,
    ReviewSale,
    SalesView,
    SessionState,
    ShelfView,
    Snapshot,
    SupplierView,
    SyncView,
)
from ui.viewmodels import Nav

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
CATALOG = EXAMPLES / "catalog.json"
# Stock as in examples/cabinet.toml's lanes; the rest of the catalogue is sold out.
STOCK = {
    "zr-rice-5kg": 4,
    "zr-rice-2.5kg": 4,
    "hs-honey-500g": 6,
    "bo-coconut-oil": 4,
    "hs-tea-100g": 8,
    "zr-chili-sauce": 2,
    "hs-eggs-10": 5,
    "dl-waxapple-1.5kg": 3,
    "bo-coco-powder": 6,
    "hs-radish-400g": 6,
    "bo-coco-candy": 8,
    "zr-pepper-powder": 8,
    "hs-fish-150g": 1,
    "bo-shell-craft": 4,
}
UNAVAILABLE = {"dl-waxapple-1.5kg": "expired"}
SHELVES = {
    "D1-S1": ("D1", ("zr-rice-5kg", "zr-rice-2.5kg")),
    "D1-S2": ("D1", ("hs-honey-500g", "bo-coconut-oil")),
    "D1-S3": ("D1", ("hs-tea-100g", "zr-chili-sauce")),
    "D2-S1": ("D2", ("hs-eggs-10", "dl-waxapple-1.5kg")),
    "D2-S2": ("D2", ("bo-coco-powder", "hs-radish-400g")),
    "D2-S3": ("D2", ("bo-coco-candy", "zr-pepper-powder")),
    "D2-S4": ("D2", ("hs-fish-150g", "bo-shell-craft")),
}
CENTRAL = "http://127.0.0.1:8080"
NONCE = "k7Qx2mP9"


def load_catalog(path: Path = CATALOG) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def households(catalog: dict[str, Any]) -> dict[str, int]:
    return {s["id"]: s["households"] for s in catalog["suppliers"]}


def products(catalog: dict[str, Any], copies: int = 1) -> tuple[ProductView, ...]:
    """The catalogue as the wall shows it; ``copies`` > 1 repeats it (the 200-product bench)."""
    sup = {s["id"]: s for s in catalog["suppliers"]}
    door_of = {sku: door for door, skus in SHELVES.values() for sku in skus}
    out = []
    for k in range(copies):
        for p in catalog["products"]:
            s = sup[p["supplier"]]
            sku = p["sku"] if k == 0 else f"{p['sku']}#{k}"
            stock = STOCK.get(p["sku"], 0)
            why = UNAVAILABLE.get(p["sku"]) or (None if stock else "sold_out")
            out.append(
                ProductView(
                    sku=sku,
                    zh=p["zh"],
                    en=p["en"],
                    category=p["category"],
                    supplier=s["id"],
                    supplier_zh=s["zh"],
                    supplier_kind=s["kind"],
                    county=s["county"],
                    town=s["town"],
                    cert_no=p["cert_no"],
                    certified=bool(p["cert_no"]),
                    price_fen=p["price_fen"],
                    stock=stock,
                    available=why is None,
                    why_unavailable=why,
                    doors=(door_of[p["sku"]],) if p["sku"] in door_of else (),
                    households=s["households"],
                )
            )
    return tuple(out)


# What the controller's weighing check says (`kiosk planogram check` on examples/cabinet.toml).
WARNINGS = {
    "D1-S1": ("生态大米 5kg (5020 g) / 生态大米 2.5kg x2 (5030 g)",),
    "D2-S4": ("小鱼仔 150g (160 g) / 椰壳工艺碗 (190 g)",),
}
WARNINGS_EN = {
    "D1-S1": ("Eco rice 5 kg (5020 g) / Eco rice 2.5 kg x2 (5030 g)",),
    "D2-S4": ("Dried small fish 150 g (160 g) / Coconut-shell craft bowl (190 g)",),
}


def planogram() -> tuple[PlanogramShelf, ...]:
    return tuple(
        PlanogramShelf(
            shelf=sid,
            door=door,
            lanes=tuple(PlanogramLaneView(sku, 2, STOCK.get(sku, 0)) for sku in skus),
            skus=skus,
            warnings=tuple(f"{sid}: {w}" for w in WARNINGS.get(sid, ())),
            warnings_en=tuple(f"{sid}: {w}" for w in WARNINGS_EN.get(sid, ())),
        )
        for sid, (door, skus) in SHELVES.items()
    )


def review_sales(prods: tuple[ProductView, ...]) -> tuple[ReviewSale, ...]:
    """Three sales flagged for review: more than a landscape screen shows at once."""
    by = {p.sku: p for p in prods}
    out = []
    for n, (at, take) in enumerate(
        (
            ("2026-11-28T04:31:00.000Z", {"bo-coco-candy": 2}),
            ("2026-11-28T03:12:00.000Z", {"hs-radish-400g": 1, "zr-pepper-powder": 1}),
            ("2026-11-27T10:02:00.000Z", {"hs-honey-500g": 1}),
        )
    ):
        items = tuple(_item(by[sku], q) for sku, q in take.items())
        total = sum(i.line_fen for i in items)
        out.append(ReviewSale(f"0193f2a1-7c1e-7b11-9a00-5e0f3c2d1a0{n + 3}", at, total, items, 0))
    return tuple(out)


def base(catalog: dict[str, Any] | None = None, copies: int = 1) -> Snapshot:
    catalog = catalog or load_catalog()
    prods = products(catalog, copies)
    review = review_sales(prods)
    return Snapshot(
        state=SessionState.IDLE,
        seq=1,
        cabinet=CabinetView("QH-0001", "琼海市人民医院 爱心专柜", "琼海市嘉积镇"),
        doors=(DoorView("D1", False), DoorView("D2", False)),
        shelves=tuple(
            ShelfView(sid, door, 4000.0 + 137.5 * i, True)
            for i, (sid, (door, _)) in enumerate(SHELVES.items())
        ),
        products=prods,
        categories=tuple(CategoryView(c["id"], c["zh"], c["en"]) for c in catalog["categories"]),
        sync=SyncView(
            backlog=3, dead=0, last_contact="2026-11-28T09:41:07.000Z", catalog_version=1
        ),
        sales=SalesView(
            today_count=17,
            today_total_fen=61_300,
            review=tuple(r.id for r in review),
            review_detail=review,
        ),
        scan_url=f"{CENTRAL}/s/QH-0001/{NONCE}",
        planogram=planogram(),
    )


def _item(p: ProductView, qty: int) -> ItemView:
    return ItemView(p.sku, p.zh, p.en, qty, p.price_fen, p.price_fen * qty)


def _session(
    door: str,
    state: str,
    kind: str = "sale",
    remaining: float | None = None,
    too_long: bool = False,
) -> OpenSession:
    return OpenSession(
        id="0193f2a1-0000-7000-8000-000000000001",
        door=door,
        kind=kind,
        method="card",
        state=state,
        started_at="2026-11-28T04:12:00.000Z",
        remaining_s=remaining,
        door_open_too_long=too_long,
    )


# Screen name -> (snapshot, nav); "extra" UI input (PIN digits, calibration step) via nav only.
def screens(catalog: dict[str, Any] | None = None) -> dict[str, tuple[Snapshot, Nav]]:
    catalog = catalog or load_catalog()
    b = base(catalog)
    by = {p.sku: p for p in b.products}
    sup = {s["id"]: s for s in catalog["suppliers"]}
    op = OperatorView("op-1", "王芳", "2026-11-28T04:00:00.000Z")
    honey, tea, rice = by["hs-honey-500g"], by["hs-tea-100g"], by["zr-rice-5kg"]
    # Five lines: more than a landscape receipt shows above its total.
    eggs, oil = by["hs-eggs-10"], by["bo-coconut-oil"]
    items = (_item(honey, 1), _item(tea, 2), _item(rice, 1), _item(eggs, 1), _item(oil, 1))
    used = []
    for i in items:
        s = sup[by[i.sku].supplier]
        if s["id"] not in [u.id for u in used]:
            used.append(SupplierView(s["id"], s["zh"], s["kind"], s["town"], s["households"]))
    rec = Receipt(
        sale="0193f2a1-7c1e-7b11-9a00-5e0f3c2d1a02",
        session="0193f2a1-0000-7000-8000-000000000001",
        door="D1",
        items=items,
        total_fen=sum(i.line_fen for i in items),
        method="card",
        payment_status="captured",
        suppliers=tuple(used),
        households=sum(u.households for u in used),
        review=False,
        closed_at="2026-11-28T04:13:10.000Z",
    )
    candy, powder = by["bo-coco-candy"], by["zr-pepper-powder"]
    cands = (
        BasketView(0, (_item(powder, 1),), powder.price_fen),
        BasketView(1, (_item(candy, 1), _item(powder, 1)), candy.price_fen + powder.price_fen),
        BasketView(2, (_item(candy, 2),), candy.price_fen * 2),
    )
    lanes = (
        RestockLane("D1-S1", "zr-rice-5kg", rice.zh, rice.en, 4, 6, True, "2027-11-28"),
        RestockLane(
            "D1-S1",
            "zr-rice-2.5kg",
            by["zr-rice-2.5kg"].zh,
            by["zr-rice-2.5kg"].en,
            4,
            4,
            True,
            "2027-11-28",
        ),
        RestockLane("D1-S2", "hs-honey-500g", honey.zh, honey.en, 6, None, False, "2028-11-17"),
        RestockLane("D1-S3", "hs-tea-100g", tea.zh, tea.en, 8, 10, True, "2028-05-21"),
    )
    alarms = (
        AlarmView("a3", "2026-11-28T04:20:00.000Z", "door_left_open", "alarm", "D2", {}),
        AlarmView(
            "a2", "2026-11-28T03:05:00.000Z", "scale_fault", "alarm", "D2-S4", {"why": "timeout"}
        ),
        AlarmView(
            "a4", "2026-11-28T02:00:00.000Z", "expiring", "warning", "D2-S1", {"sku": "hs-eggs-10"}
        ),
        AlarmView(
            "a1", "2026-11-27T23:00:00.000Z", "low_stock", "warning", "D1-S3", {}, acked=True
        ),
    )
    opb = replace(b, operator=op, alarms=alarms)
    return {
        "idle": (b, Nav()),
        "attract": (b, Nav(attract=True)),
        "authorise": (
            replace(
                b, state=SessionState.UNLOCKING, session=_session("D1", "unlocking", remaining=8.0)
            ),
            Nav(),
        ),
        "refused": (replace(b, refusal="over_offline_limit"), Nav()),
        "door-open": (
            replace(b, state=SessionState.OPEN, session=_session("D1", "open", remaining=21.4)),
            Nav(),
        ),
        "settling": (
            replace(b, state=SessionState.SETTLING, session=_session("D1", "settling")),
            Nav(),
        ),
        "confirm": (
            replace(
                b,
                state=SessionState.CONFIRMING,
                session=_session("D2", "confirming"),
                candidates=cands,
            ),
            Nav(),
        ),
        "receipt": (replace(b, state=SessionState.SETTLED, receipt=rec), Nav()),
        "out-of-service": (
            replace(b, state=SessionState.OUT_OF_SERVICE, out_of_service="scale_fault"),
            Nav(),
        ),
        "operator-login": (b, Nav(operator_page="operator-login")),
        "operator-menu": (opb, Nav(operator_page="operator-menu")),
        "restock": (
            replace(
                opb,
                restock=RestockView("0193f2a1-0000-7000-8000-0000000000r1", "D1", lanes),
                session=_session("D1", "open", kind="restock"),
            ),
            Nav(operator_page="restock"),
        ),
        "planogram": (opb, Nav(operator_page="planogram")),
        "calibrate": (opb, Nav(operator_page="calibrate")),
        "alarms": (opb, Nav(operator_page="alarms")),
        "sales": (opb, Nav(operator_page="sales")),
        "sync": (opb, Nav(operator_page="sync")),
        "settings": (opb, Nav(operator_page="settings")),
    }
