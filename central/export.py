"""``kiosk central export``: every sale line of a period, keyed by the product's certification
number: the form in which certified-product sales are reported upward.

Rules:
- One row per sale line (``sale_lines``) closed in the period, and one negative row per share
  of a refund given in the period (``adjustment_lines``, allotted to the sale's lines by
  ``kiosk.report``'s one rule), naming the sale it refunds. So the amounts add up to
  ``kiosk central report``'s sales (and, over the certified rows, its certified sales) and to
  the sum of the cabinets' own ``kiosk report`` for the same period.
- Days are calendar days in the report's time zone (Asia/Shanghai unless told), both ends of
  the period included, as ``kiosk report --from --to``.
- Names come from the catalogue (``--catalog``, else the newest sent): product, supplier and
  the supplier's county. A line not certified has an empty ``cert_no`` (``--certified``
  leaves those out).
- A refund row's ``qty`` is the units given back, when its share is a whole number of units
  at the line's price; 0 when the refund was money only.
- CSV is UTF-8 with a byte order mark (so Excel opens Chinese names right), comma separated;
  XLSX is one sheet ``sales``. Column names are English; money is integer fen.
"""

from __future__ import annotations

import csv
import json
from dataclasses import astuple, dataclass, fields
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from central import schema as t
from central.ingest_rows import utc

if TYPE_CHECKING:
    from central.store import Store

FORMATS = ("csv", "xlsx")


@dataclass(frozen=True)
class ExportRow:
    date: date
    cabinet: str
    location: str
    cert_no: str
    sku: str
    product: str
    supplier_id: str
    supplier: str
    county: str
    qty: int
    unit_price_fen: int
    amount_fen: int
    kind: str  # sale | refund
    sale: str  # the sale (the cabinet's sale id, else its record id); a refund's: the one refunded
    refund: str  # a refund row's adjustment (the cabinet's id, else its record id); "" for a sale


COLUMNS = tuple(f.name for f in fields(ExportRow))


@dataclass(frozen=True)
class Totals:
    rows: int
    sales_fen: int  # = kiosk report's sales_fen
    certified_fen: int  # = kiosk report's certified_fen
    items: int  # units sold (refunds not taken off: as kiosk report's items)


def totals(rows: list[ExportRow]) -> Totals:
    return Totals(
        rows=len(rows),
        sales_fen=sum(r.amount_fen for r in rows),
        certified_fen=sum(r.amount_fen for r in rows if r.cert_no),
        items=sum(r.qty for r in rows if r.kind == "sale"),
    )


def bounds(date_from: date, date_to: date, timezone: str) -> tuple[datetime, datetime]:
    """The period's [start, end) in UTC: local midnight of ``date_from`` to that after
    ``date_to``."""
    zone = ZoneInfo(timezone)
    start = datetime.combine(date_from, time(), zone).astimezone(UTC)
    end = datetime.combine(date_to + timedelta(days=1), time(), zone).astimezone(UTC)
    return start, end


def refund_name(record_id: str, body: str) -> str:
    """A refund as the cabinet names it (its adjustment's ``id``), else its record id."""
    try:
        name = json.loads(body).get("id")
    except (ValueError, AttributeError):
        name = None
    return name if isinstance(name, str) and name else record_id


def _refund_qty(share: int, unit_price: int | None, qty: int | None) -> int:
    if not unit_price or share >= 0 or share % unit_price:
        return 0
    units = share // unit_price  # negative
    return units if qty is not None and -units <= qty else 0


def rows(
    store: Store,
    catalog: dict | None,
    date_from: date,
    date_to: date,
    timezone: str = "Asia/Shanghai",
    certified_only: bool = False,
) -> list[ExportRow]:
    """The period's sale lines and refund shares, in time order."""
    zone = ZoneInfo(timezone)
    start, end = bounds(date_from, date_to, timezone)
    catalog = catalog or store.latest_catalog() or {}
    products = {p.get("sku"): p.get("zh", "") for p in catalog.get("products", [])}
    suppliers = {s.get("id"): s for s in catalog.get("suppliers", [])}
    sl, al, s, cab = t.sale_lines.c, t.adjustment_lines.c, t.sales.c, t.cabinets.c
    sale_name = sa.func.coalesce(s.sale_no, s.record_id).label("sale_name")
    location = sa.func.coalesce(cab.location, "").label("location")
    sold = (
        sa.select(
            sl.closed_at.label("at"),
            sl.cabinet,
            location,
            sl.cert_no,
            sl.sku,
            sl.supplier,
            sl.qty,
            sl.unit_price_fen,
            sl.amount_fen,
            sale_name,
            sl.line_no,
        )
        .select_from(
            t.sale_lines.join(t.sales, s.record_id == sl.sale_id).outerjoin(
                t.cabinets, cab.id == sl.cabinet
            )
        )
        .where(sl.closed_at >= start, sl.closed_at < end)
    )
    # The refunded line's price and quantity (the first line of that sku in the sale).
    first_line = (
        sa.select(sa.func.min(t.sale_lines.c.line_no))
        .where(t.sale_lines.c.sale_id == al.sale_id, t.sale_lines.c.sku == al.sku)
        .scalar_subquery()
    )
    line = t.sale_lines.alias("line")
    refunded = (
        sa.select(
            al.at,
            al.cabinet,
            location,
            al.cert_no,
            al.sku,
            al.supplier,
            line.c.qty,
            line.c.unit_price_fen,
            al.amount_fen,
            sale_name,
            al.line_no,
            al.adjustment_id,
            t.records.c.body.label("adjustment_body"),
        )
        .select_from(
            t.adjustment_lines.join(t.sales, s.record_id == al.sale_id)
            .join(t.records, t.records.c.id == al.adjustment_id)
            .outerjoin(t.cabinets, cab.id == al.cabinet)
            .outerjoin(line, sa.and_(line.c.sale_id == al.sale_id, line.c.line_no == first_line))
        )
        .where(al.at >= start, al.at < end)
    )
    if certified_only:
        sold = sold.where(sl.cert_no != "")
        refunded = refunded.where(al.cert_no != "")

    def row(r: Any, kind: str) -> tuple[datetime, ExportRow]:
        at = utc(r.at)
        sup_id = r.supplier or "?"
        sup = suppliers.get(sup_id, {})
        refund = kind == "refund"
        return at, ExportRow(
            date=at.astimezone(zone).date(),
            cabinet=r.cabinet,
            location=r.location,
            cert_no=r.cert_no,
            sku=r.sku,
            product=products.get(r.sku, ""),
            supplier_id=sup_id,
            supplier=sup.get("zh", ""),
            county=sup.get("county", ""),
            qty=_refund_qty(int(r.amount_fen), r.unit_price_fen, r.qty) if refund else int(r.qty),
            unit_price_fen=int(r.unit_price_fen or 0),
            amount_fen=int(r.amount_fen),
            kind=kind,
            sale=r.sale_name,
            refund=refund_name(r.adjustment_id, r.adjustment_body) if refund else "",
        )

    with store.engine.connect() as conn, conn.begin():
        got = [row(r, "sale") for r in conn.execute(sold)]
        got += [row(r, "refund") for r in conn.execute(refunded)]
    got.sort(key=lambda x: (x[0], x[1].kind != "sale", x[1].cabinet, x[1].sale, x[1].refund))
    return [r for _, r in got]


def _cells(r: ExportRow) -> list[Any]:
    return list(astuple(r))


def write_csv(rows: list[ExportRow], path: str | Path) -> Path:
    p = Path(path)
    # utf-8-sig: the byte order mark Excel needs to read UTF-8 (Chinese names) as such
    with p.open("w", encoding="utf-8-sig", newline="") as f:
        w = csv.writer(f)
        w.writerow(COLUMNS)
        for r in rows:
            w.writerow([c.isoformat() if isinstance(c, date) else c for c in _cells(r)])
    return p


def write_xlsx(rows: list[ExportRow], path: str | Path, sheet: str = "sales") -> Path:
    from openpyxl import Workbook

    p = Path(path)
    wb = Workbook(write_only=True)  # streams rows: a year of sales stays small in memory
    ws = wb.create_sheet(sheet)
    ws.append(list(COLUMNS))
    for r in rows:
        ws.append(_cells(r))
    wb.save(p)
    return p


def write(rows: list[ExportRow], path: str | Path, fmt: str) -> Path:
    if fmt not in FORMATS:
        raise ValueError(f"the format is one of {', '.join(FORMATS)}")
    return write_csv(rows, path) if fmt == "csv" else write_xlsx(rows, path)
