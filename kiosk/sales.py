"""Reading recorded sales back (``kiosk sales list``); sales themselves are never edited."""

from __future__ import annotations

from typing import Any

from sqlite_utils import Database


def list_sales(db: Database) -> list[dict[str, Any]]:
    """Every sale, oldest first, with the outbox ``seq`` it was sent under."""
    items: dict[str, list[dict[str, Any]]] = {}
    for sale, sku, qty, price in db.execute(
        "SELECT sale, sku, qty, unit_price_fen FROM sale_items ORDER BY sale, sku"
    ):
        items.setdefault(sale, []).append({"sku": sku, "qty": qty, "unit_price_fen": price})
    seqs = {
        sid: seq
        for seq, sid in db.execute(
            "SELECT seq, json_extract(body, '$.id') FROM outbox WHERE type = 'sale'"
        )
    }
    out = []
    for sid, session, door, closed_at, total, method, status, review in db.execute(
        "SELECT id, session, door, closed_at, total_fen, method, payment_status, review"
        " FROM sales ORDER BY created_at, id"
    ):
        out.append(
            {
                "id": sid,
                "seq": seqs.get(sid),
                "session": session,
                "door": door,
                "closed_at": closed_at,
                "items": items.get(sid, []),
                "total_fen": total,
                "payment": {"method": method, "status": status},
                "review": bool(review),
            }
        )
    return out
