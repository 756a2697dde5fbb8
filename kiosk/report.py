"""The programme's report (report.md): sales and households reached, by cabinet, location,
category, supplier and product, over a period.

One computation, two sources: ``from_cabinet_db`` reads a cabinet's own database, and
``from_central`` reads what the central simulator stored from every cabinet (the sale
bodies carry sku, qty, price, certificate and supplier; the catalogue gives names and
categories). Both produce ``ReportData``; ``compute`` turns it into ``Figures``; ``cli``
prints a table, a Chinese summary, and optionally CSV files and a Pillow bar chart.
"""

from __future__ import annotations

import argparse
import csv
import json
import unicodedata
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar
from zoneinfo import ZoneInfo

from kiosk import clock

BREAKDOWNS = ("cabinet", "location", "category", "supplier", "product")


@dataclass(frozen=True)
class Line:
    """One product line of a sale, net of adjustments allotted to it."""

    cabinet: str
    location: str
    day: date
    sale: str
    sku: str
    category: str
    supplier: str
    qty: int
    amount_fen: int  # can be negative: an adjustment in the period to an earlier sale
    certified: bool
    counts_as_sale: bool = True  # False for an adjustment line (not a transaction)


@dataclass(frozen=True)
class Supplier:
    id: str
    zh: str
    kind: str  # enterprise | cooperative
    households: int


@dataclass(frozen=True)
class CabinetInfo:
    id: str
    name: str
    location: str
    record_days: tuple[date, ...]  # days with at least one record
    last_contact: str | None


@dataclass(frozen=True)
class ReportData:
    lines: tuple[Line, ...]
    suppliers: dict[str, Supplier]
    categories: dict[str, str]  # id -> Chinese name
    products: dict[str, str]  # sku -> Chinese name
    cabinets: tuple[CabinetInfo, ...]


@dataclass(frozen=True)
class Row:
    key: str
    name: str
    sales_fen: int
    certified_fen: int
    items: int
    transactions: int
    households: int
    enterprises: int
    cooperatives: int

    @property
    def suppliers(self) -> int:
        return self.enterprises + self.cooperatives


@dataclass(frozen=True)
class Figures:
    date_from: date | None
    date_to: date
    total: Row
    by: dict[str, tuple[Row, ...]]
    cabinets_reporting: tuple[CabinetInfo, ...] = field(default=())


def yuan(fen: int) -> str:
    return f"{fen / 100:.2f}"


def wan(fen: int) -> str:
    """万元 with two decimals."""
    return f"{fen / 1_000_000:.2f}"


# -- computing -------------------------------------------------------------------------------
def _row(key: str, name: str, lines: list[Line], suppliers: dict[str, Supplier]) -> Row:
    sups = {ln.supplier for ln in lines if ln.counts_as_sale}
    known = [suppliers[s] for s in sups if s in suppliers]
    return Row(
        key=key,
        name=name,
        sales_fen=sum(ln.amount_fen for ln in lines),
        certified_fen=sum(ln.amount_fen for ln in lines if ln.certified),
        items=sum(ln.qty for ln in lines if ln.counts_as_sale),
        transactions=len({ln.sale for ln in lines if ln.counts_as_sale}),
        households=sum(s.households for s in known),
        enterprises=sum(1 for s in known if s.kind == "enterprise"),
        cooperatives=sum(1 for s in known if s.kind != "enterprise"),
    )


def compute(data: ReportData, date_from: date | None, date_to: date | None) -> Figures:
    """Figures for a period; both ends included; None: open."""
    lines = [
        ln
        for ln in data.lines
        if (date_from is None or ln.day >= date_from) and (date_to is None or ln.day <= date_to)
    ]
    end = date_to or max((ln.day for ln in data.lines), default=date.today())
    cab_names = {c.id: c.name or c.id for c in data.cabinets}
    names = {
        "cabinet": lambda k: cab_names.get(k, k),
        "location": lambda k: k,
        "category": lambda k: data.categories.get(k, k),
        "supplier": lambda k: data.suppliers[k].zh if k in data.suppliers else k,
        "product": lambda k: data.products.get(k, k),
    }
    by: dict[str, tuple[Row, ...]] = {}
    for b in BREAKDOWNS:
        groups: dict[str, list[Line]] = defaultdict(list)
        for ln in lines:
            groups[getattr(ln, "sku" if b == "product" else b)].append(ln)
        rows = [_row(k, names[b](k), g, data.suppliers) for k, g in groups.items()]
        by[b] = tuple(sorted(rows, key=lambda r: (-r.sales_fen, r.key)))
    reporting = tuple(
        c
        for c in data.cabinets
        if any(
            (date_from is None or d >= date_from) and (date_to is None or d <= date_to)
            for d in c.record_days
        )
    )
    return Figures(date_from, end, _row("total", "合计", lines, data.suppliers), by, reporting)


def summary(f: Figures) -> str:
    """The programme's own words, with the real figures."""
    t = f.total
    when = f"{f.date_to.year}年{f.date_to.month}月{f.date_to.day}日"
    if f.date_from:
        d = f.date_from
        period = f"{d.year}年{d.month}月{d.day}日至{when}"
    else:
        period = f"截至{when}"
    return (
        f"{period}, 全市{len(f.cabinets_reporting)}台爱心专柜累计销售{wan(t.sales_fen)}万元, "
        f"其中认定扶贫产品销售{wan(t.certified_fen)}万元, "
        f"带动{t.suppliers}家企业和合作社、{t.households}户脱贫户增收。"
    )


# -- sources ---------------------------------------------------------------------------------
def _day(at: str, tz: ZoneInfo) -> date:
    return clock.parse(at).astimezone(tz).date()


def _allot(total: int, parts: list[int]) -> list[int]:
    """Split ``total`` over ``parts`` in proportion, in whole fen, summing exactly."""
    base = sum(parts)
    if base <= 0:
        return [total] + [0] * (len(parts) - 1) if parts else []
    shares = [total * p // base for p in parts]
    shares[0] += total - sum(shares)
    return shares


_Item = TypeVar("_Item", bound=Mapping[str, Any])


def allot_adjustment(
    sale_items: Sequence[_Item], amount_fen: int, adj_items: Any
) -> list[tuple[_Item, int]]:
    """The sale lines an adjustment of ``amount_fen`` back is allotted to, each with its share
    (negative fen, summing exactly to ``-amount_fen``); none when the sale has no lines.

    Allotted to the items it names (refund of one product: in proportion to the named qty at
    the line's price), else to the whole sale (in proportion to each line's amount). The one
    rule for the cabinet's report and the centre's ingest (central/ingest_rows.py)."""
    if not sale_items:
        return []
    named = {
        i.get("sku"): int(i.get("qty") or 0)
        for i in (adj_items if isinstance(adj_items, list) else [])
        if isinstance(i, dict)
    }
    hit = [i for i in sale_items if i["sku"] in named] or list(sale_items)
    parts = [(named.get(i["sku"]) or int(i["qty"])) * int(i["unit_price_fen"]) for i in hit]
    return list(zip(hit, _allot(-amount_fen, parts), strict=True))


def catalog_maps(
    catalog: dict[str, Any],
) -> tuple[dict[str, Supplier], dict[str, str], dict[str, str], dict[str, str]]:
    """(suppliers, category names, product names, category of each sku) of a catalogue."""
    products = catalog.get("products", [])
    return (
        {
            s["id"]: Supplier(s["id"], s["zh"], s["kind"], int(s["households"]))
            for s in catalog.get("suppliers", [])
        },
        {c["id"]: c["zh"] for c in catalog.get("categories", [])},
        {p["sku"]: p["zh"] for p in products},
        {p["sku"]: p["category"] for p in products},
    )


@dataclass(frozen=True)
class _Sale:
    id: str
    cabinet: str
    location: str
    at: str
    items: list[dict[str, Any]]


def _lines(
    sales: Iterable[_Sale],
    adjustments: Iterable[tuple[str, str, int, Any]],  # (sale, at, amount_fen back, items)
    categories_of: dict[str, str],
    tz: ZoneInfo,
) -> list[Line]:
    out: list[Line] = []
    by_id: dict[str, _Sale] = {}
    for s in sales:
        by_id[s.id] = s
        day = _day(s.at, tz)
        for it in s.items:
            out.append(
                Line(
                    s.cabinet,
                    s.location,
                    day,
                    s.id,
                    it["sku"],
                    categories_of.get(it["sku"], "?"),
                    it.get("supplier", "?"),
                    int(it["qty"]),
                    int(it["qty"]) * int(it["unit_price_fen"]),
                    bool(it.get("cert_no")),
                )
            )
    for sale_id, at, amount, adj_items in adjustments:
        sold = by_id.get(sale_id)
        if sold is None:
            continue
        for it, share in allot_adjustment(sold.items, amount, adj_items):
            out.append(
                Line(
                    sold.cabinet,
                    sold.location,
                    _day(at, tz),
                    sold.id,
                    it["sku"],
                    categories_of.get(it["sku"], "?"),
                    it.get("supplier", "?"),
                    0,
                    share,
                    bool(it.get("cert_no")),
                    counts_as_sale=False,
                )
            )
    return out


def from_cabinet_db(
    db: Any, timezone: str = "Asia/Shanghai", name: str = "", location: str = ""
) -> ReportData:
    """A cabinet's own figures (``db`` is a ``sqlite_utils.Database``)."""
    tz = ZoneInfo(timezone)
    row = db.execute("SELECT value FROM settings WHERE key = 'cabinet_id'").fetchone()
    cab = row[0] if row and row[0] else "cabinet"
    items: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for sale, sku, qty, price, cert, sup in db.execute(
        "SELECT sale, sku, qty, unit_price_fen, cert_no, supplier FROM sale_items"
    ):
        items[sale].append(
            {"sku": sku, "qty": qty, "unit_price_fen": price, "cert_no": cert, "supplier": sup}
        )
    sales = [
        _Sale(sid, cab, location, closed, items[sid])
        for sid, closed in db.execute("SELECT id, closed_at FROM sales")
    ]
    adjustments = [
        (sale, at, amount, json.loads(items or "[]"))
        for sale, at, amount, items in db.execute(
            "SELECT sale, created_at, amount_fen, items_json FROM adjustments"
        )
    ]
    cats = dict(db.execute("SELECT sku, category FROM products").fetchall())
    days = {
        _day(at, tz)
        for (at,) in db.execute("SELECT at FROM outbox UNION SELECT closed_at FROM sales")
    }
    last = db.execute("SELECT max(at) FROM outbox").fetchone()[0]
    return ReportData(
        lines=tuple(_lines(sales, adjustments, cats, tz)),
        suppliers={
            r[0]: Supplier(*r)
            for r in db.execute("SELECT id, zh, kind, households FROM suppliers").fetchall()
        },
        categories=dict(db.execute("SELECT id, zh FROM categories").fetchall()),
        products=dict(db.execute("SELECT sku, zh FROM products").fetchall()),
        cabinets=(CabinetInfo(cab, name, location, tuple(sorted(days)), last),),
    )


class CentralRecords(Protocol):
    def records(self, cabinet: str | None = None, type: str | None = None) -> list[dict]: ...
    def cabinets(self) -> list[dict]: ...
    def latest_catalog(self) -> dict | None: ...


def from_central(
    store: CentralRecords, catalog: dict | None, timezone: str = "Asia/Shanghai"
) -> ReportData:
    """Every cabinet's figures, from the records the centre stored (sale bodies) and a
    catalogue (names, categories, suppliers' households): ``catalog`` or the newest sent."""
    tz = ZoneInfo(timezone)
    catalog = catalog or store.latest_catalog() or {}
    cabinets = {c["id"]: c for c in store.cabinets()}
    sales = []
    adjustments = []
    alias: dict[str, str] = {}  # an adjustment names its sale by sale id, session or record id
    days: dict[str, set[date]] = defaultdict(set)
    for r in store.records():
        days[r["cabinet"]].add(_day(r["at"], tz))
        body = r["body"]
        if r["type"] == "sale":
            loc = cabinets.get(r["cabinet"], {}).get("location", "")
            at = body.get("closed_at") or r["at"]
            sales.append(_Sale(r["id"], r["cabinet"], loc, at, body.get("items", [])))
            for k in (r["id"], body.get("id"), body.get("sale"), body.get("session")):
                if isinstance(k, str):
                    alias[k] = r["id"]
        elif r["type"] == "adjustment" and isinstance(body.get("amount_fen"), int):
            adjustments.append(
                (str(body.get("sale")), r["at"], body["amount_fen"], body.get("items"))
            )
    adjustments = [(alias.get(s, s), at, amt, its) for s, at, amt, its in adjustments]
    suppliers, categories, products, category_of = catalog_maps(catalog)
    return ReportData(
        lines=tuple(_lines(sales, adjustments, category_of, tz)),
        suppliers=suppliers,
        categories=categories,
        products=products,
        cabinets=tuple(
            CabinetInfo(
                cid,
                c.get("name") or "",
                c.get("location") or "",
                tuple(sorted(days.get(cid, ()))),
                c.get("last_contact"),
            )
            for cid, c in sorted(cabinets.items())
        ),
    )


# -- outputs ---------------------------------------------------------------------------------
HEADER = (
    "key",
    "name",
    "sales_yuan",
    "sales_wan",
    "certified_yuan",
    "items",
    "transactions",
    "households",
    "enterprises",
    "cooperatives",
)


def _cells(r: Row) -> list[str]:
    return [
        r.key,
        r.name,
        yuan(r.sales_fen),
        wan(r.sales_fen),
        yuan(r.certified_fen),
        str(r.items),
        str(r.transactions),
        str(r.households),
        str(r.enterprises),
        str(r.cooperatives),
    ]


def write_csv(f: Figures, folder: str | Path) -> list[Path]:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for b, rows in f.by.items():
        path = folder / f"by_{b}.csv"
        with path.open("w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(HEADER)
            w.writerows(_cells(r) for r in rows)
            w.writerow(_cells(f.total))
        out.append(path)
    path = folder / "cabinets.csv"
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(("cabinet", "name", "location", "last_contact"))
        w.writerows((c.id, c.name, c.location, c.last_contact or "") for c in f.cabinets_reporting)
    out.append(path)
    return out


def _pad(text: str, width: int) -> str:
    """Left-aligned in ``width`` terminal columns (a Chinese character takes two)."""
    out, used = "", 0
    for ch in text:
        w = 2 if unicodedata.east_asian_width(ch) in "WF" else 1
        if used + w > width:
            break
        out, used = out + ch, used + w
    return out + " " * (width - used)


def table(f: Figures) -> str:
    lines = []
    for b, rows in f.by.items():
        lines.append(f"== by {b}")
        lines.append(
            f"{'name':<24} {'sales yuan':>12} {'certified':>12} {'items':>6} "
            f"{'sales#':>6} {'households':>10}"
        )
        for r in (*rows, f.total):
            lines.append(
                f"{_pad(r.name or '-', 24)} {yuan(r.sales_fen):>12} "
                f"{yuan(r.certified_fen):>12} {r.items:>6} {r.transactions:>6} "
                f"{r.households:>10}"
            )
    lines.append("== cabinets reporting")
    for c in f.cabinets_reporting:
        lines.append(f"{c.id:<12} {c.name[:20]:<20} {c.location[:16]:<16} last {c.last_contact}")
    return "\n".join(lines)


FONT = "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"


def chart(f: Figures, path: str | Path) -> Path:
    """Two bar charts (sales by category, by supplier) in one PNG, drawn with Pillow."""
    from PIL import Image, ImageDraw, ImageFont

    panels = [("按类别销售 (元)", f.by["category"]), ("按供应商销售 (元)", f.by["supplier"])]
    bar_h, gap, left, width = 26, 8, 220, 900
    height = 40 + sum(60 + len(rows) * (bar_h + gap) for _, rows in panels)
    img = Image.new("RGB", (width, height), "white")
    d = ImageDraw.Draw(img)
    try:
        font = ImageFont.truetype(FONT, 16)
    except OSError:
        font = ImageFont.load_default()
    y = 20
    for title, rows in panels:
        d.text((20, y), title, fill="black", font=font)
        y += 40
        top = max((r.sales_fen for r in rows), default=1) or 1
        for r in rows:
            w = int((width - left - 140) * max(r.sales_fen, 0) / top)
            d.text((20, y + 4), r.name[:12], fill="black", font=font)
            d.rectangle([left, y, left + w, y + bar_h], fill=(196, 40, 40))
            d.text((left + w + 8, y + 4), yuan(r.sales_fen), fill="black", font=font)
            y += bar_h + gap
        y += 20
    path = Path(path)
    img.save(path)
    return path


def _date(text: str | None) -> date | None:
    return datetime.strptime(text, "%Y-%m-%d").date() if text else None


def add_cli_args(c: argparse.ArgumentParser) -> None:
    """The period and output options ``cli`` reads (``kiosk report``, ``kiosk central report``)."""
    c.add_argument("--from", dest="date_from", metavar="YYYY-MM-DD")
    c.add_argument("--to", dest="date_to", metavar="YYYY-MM-DD")
    c.add_argument("--csv", metavar="DIR", help="one CSV per breakdown")
    c.add_argument("--chart", metavar="FILE.png", help="bar chart of sales by category, supplier")
    c.add_argument("--json", action="store_true", help="the figures as JSON")


def cli(data: ReportData, args: argparse.Namespace) -> int:
    """Shared by ``kiosk report`` and ``kiosk central report``."""
    try:
        start, end = _date(args.date_from), _date(args.date_to)
    except ValueError:
        print("kiosk report: dates are YYYY-MM-DD")
        return 2
    f = compute(data, start, end)
    if args.json:
        print(
            json.dumps(
                {
                    "summary": summary(f),
                    "total": asdict(f.total),
                    "by": {b: [asdict(r) for r in rows] for b, rows in f.by.items()},
                    "cabinets_reporting": [c.id for c in f.cabinets_reporting],
                },
                ensure_ascii=False,
            )
        )
    else:
        print(table(f))
        print()
        print(summary(f))
    if args.csv:
        for p in write_csv(f, args.csv):
            print(f"wrote {p}")
    if getattr(args, "chart", None):
        print(f"wrote {chart(f, args.chart)}")
    return 0
