"""Pure: a decoded sale or adjustment record -> the rows the centre keeps for reports.

No I/O. ``central/store.py`` inserts what these return. A sale gives a ``sales`` row, one
``sale_lines`` row per item and the names an adjustment may call it by; an adjustment gives an
``adjustments`` row and, once its sale is known, ``adjustment_lines`` allotted with the one rule
of ``kiosk.report.allot_adjustment`` (so the centre's figures equal the cabinets' own).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kiosk import clock
from kiosk.report import allot_adjustment


@dataclass(frozen=True)
class SaleRow:
    record_id: str
    cabinet: str
    sale_no: str | None
    session: str | None
    door: str | None
    closed_at: datetime
    total_fen: int
    method: str | None
    status: str | None
    account: str | None
    confidence: str | None
    catalog_version: int | None


@dataclass(frozen=True)
class SaleLineRow:
    sale_id: str
    line_no: int
    cabinet: str
    sku: str
    qty: int
    unit_price_fen: int
    amount_fen: int
    supplier: str | None
    cert_no: str
    closed_at: datetime


@dataclass(frozen=True)
class AdjustmentRow:
    record_id: str
    cabinet: str
    sale_ref: str
    amount_fen: int  # money back
    items: str  # JSON as sent
    reason: str | None
    actor: str | None
    at: datetime


@dataclass(frozen=True)
class AdjustmentLineRow:
    adjustment_id: str
    line_no: int
    cabinet: str
    sale_id: str
    sku: str
    supplier: str | None
    cert_no: str
    amount_fen: int  # negative: money back
    at: datetime


def parse_time(text: Any) -> datetime | None:
    """An RFC 3339 time as aware UTC, or None when it is not one."""
    try:
        return clock.parse(text)
    except (ValueError, TypeError, OverflowError):
        return None


def _text(v: Any) -> str | None:
    return v if isinstance(v, str) else None


def _int(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def sale_row(record_id: str, cabinet: str, at: str, body: dict[str, Any]) -> SaleRow | None:
    """The ``sales`` row of a sale record; None when its ``at`` is no time (never stored so)."""
    # kiosk.report: a sale's day is its closed_at, else the record's `at`.
    closed = parse_time(body.get("closed_at") or at) or parse_time(at)
    if closed is None:
        return None
    payment = body.get("payment")
    pay: dict[str, Any] = payment if isinstance(payment, dict) else {}
    conf = body.get("confidence")
    return SaleRow(
        record_id=record_id,
        cabinet=cabinet,
        sale_no=_text(body.get("id")),
        session=_text(body.get("session")),
        door=_text(body.get("door")),
        closed_at=closed,
        total_fen=_int(body.get("total_fen")) or 0,
        method=_text(pay.get("method")),
        status=_text(pay.get("status")),
        account=_text(pay.get("account")),
        confidence=None if conf is None else json.dumps(conf),
        catalog_version=_int(body.get("catalog_version")),
    )


def sale_items(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The items of a sale body the report can count (sku, integer qty and price)."""
    items = body.get("items")
    return [
        i
        for i in (items if isinstance(items, list) else [])
        if isinstance(i, dict)
        and isinstance(i.get("sku"), str)
        and _int(i.get("qty")) is not None
        and _int(i.get("unit_price_fen")) is not None
    ]


def _cert(v: Any) -> str:
    # kiosk.report counts a line as certified when cert_no is truthy: "" keeps that reading.
    return (v if isinstance(v, str) else str(v)) if v else ""


def _supplier(item: dict[str, Any]) -> str | None:
    v = item.get("supplier", "?")  # kiosk.report: "?" when the item names none
    return None if v is None else str(v)


def sale_line_rows(sale: SaleRow, body: dict[str, Any]) -> list[SaleLineRow]:
    return [
        SaleLineRow(
            sale_id=sale.record_id,
            line_no=n,
            cabinet=sale.cabinet,
            sku=i["sku"],
            qty=i["qty"],
            unit_price_fen=i["unit_price_fen"],
            amount_fen=i["qty"] * i["unit_price_fen"],
            supplier=_supplier(i),
            cert_no=_cert(i.get("cert_no")),
            closed_at=sale.closed_at,
        )
        for n, i in enumerate(sale_items(body))
    ]


def sale_aliases(record_id: str, body: dict[str, Any]) -> list[str]:
    """The names an adjustment may give this sale (kiosk.report.from_central's alias)."""
    out: list[str] = []
    for k in (record_id, body.get("id"), body.get("sale"), body.get("session")):
        if isinstance(k, str) and k not in out:
            out.append(k)
    return out


def adjustment_row(
    record_id: str, cabinet: str, at: str, body: dict[str, Any]
) -> AdjustmentRow | None:
    """The ``adjustments`` row; None when it moves no money (kiosk.report ignores those)."""
    amount = _int(body.get("amount_fen"))
    when = parse_time(at)  # kiosk.report: an adjustment counts on its record's day
    if amount is None or when is None:
        return None
    items = body.get("items")
    return AdjustmentRow(
        record_id=record_id,
        cabinet=cabinet,
        sale_ref=str(body.get("sale")),
        amount_fen=amount,
        items=json.dumps(items if items is not None else [], ensure_ascii=False),
        reason=_text(body.get("reason")),
        actor=_text(body.get("actor")),
        at=when,
    )


def allot(
    adj: AdjustmentRow, sale_id: str, lines: Sequence[SaleLineRow]
) -> list[AdjustmentLineRow]:
    """The adjustment's share of each of its sale's lines (kiosk.report's rule)."""
    by_no = {ln.line_no: ln for ln in lines}
    items: list[dict[str, Any]] = [
        {"sku": ln.sku, "qty": ln.qty, "unit_price_fen": ln.unit_price_fen, "line_no": n}
        for n, ln in sorted(by_no.items())
    ]
    shares = allot_adjustment(items, adj.amount_fen, json.loads(adj.items))
    out = []
    for n, (it, share) in enumerate(shares):
        ln = by_no[it["line_no"]]
        out.append(
            AdjustmentLineRow(
                adjustment_id=adj.record_id,
                line_no=n,
                cabinet=adj.cabinet,
                sale_id=sale_id,
                sku=ln.sku,
                supplier=ln.supplier,
                cert_no=ln.cert_no,
                amount_fen=share,
                at=adj.at,
            )
        )
    return out


def utc(d: datetime) -> datetime:
    """A time read back from the database as aware UTC (SQLite gives it naive, in UTC)."""
    return d.replace(tzinfo=UTC) if d.tzinfo is None else d.astimezone(UTC)
