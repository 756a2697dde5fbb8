"""Latency of committing one sale-shaped transaction, kiosk.db against bare sqlite3.

Each transaction: a sale, 3 sale items, an inventory update and an outbox row, committed
with synchronous=FULL (an fsync per commit). The kiosk path goes through ``kiosk.db``
(``connect``, ``transaction``, ``outbox_append``); the baseline is a bare ``sqlite3``
connection with the same pragmas writing the same rows to its own file. The two alternate
commit by commit so disk noise (other processes, the page cache) hits both alike.

    .venv/bin/python bench/sale_commit.py [--n 2000] [--dir DIR]

Prints p50/p99 of each and the ratios; target p50 ratio <= 1.3.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kiosk import db as kdb
from kiosk.clock import now_iso
from kiosk.ids import uuid7

ITEMS = (("zr-rice-5kg", 4500), ("hs-honey-500g", 6800), ("hs-tea-100g", 5800))
SALE_SQL = (
    "INSERT INTO sales (id, session, door, opened_at, closed_at, total_fen, method, account,"
    " payment_status, confidence, catalog_version, review, created_at)"
    " VALUES (?, ?, 'D1', ?, ?, ?, 'card', 'A-1', 'captured', 0.998, 1, 0, ?)"
)
ITEM_SQL = (
    "INSERT INTO sale_items (sale, sku, qty, unit_price_fen, cert_no, supplier)"
    " VALUES (?, ?, 1, ?, 'FP-460002-2020-00117', 'zr-agri')"
)
STOCK_SQL = "UPDATE inventory SET count = count - 1, updated_at = ? WHERE shelf = ? AND sku = ?"
OUTBOX_SQL = "INSERT INTO outbox (id, type, at, body) VALUES (?, 'sale', ?, ?)"


def prepare(path: Path, n: int) -> None:
    """Schema, stock and the sessions the sales belong to (not timed)."""
    db = kdb.open_db(path)
    with kdb.transaction(db):
        for sku, _ in ITEMS:
            db.execute(
                "INSERT INTO inventory (shelf, sku, count, updated_at) VALUES ('D1-S1', ?, ?, ?)",
                (sku, 10 * n, now_iso()),
            )
        db.conn.executemany(
            "INSERT INTO sessions (id, door, kind, method, state, started_at, baseline_json)"
            " VALUES (?, 'D1', 'sale', 'card', 'settling', ?, '{}')",
            [(f"s{i}", now_iso()) for i in range(n)],
        )
    db.close()


def sale_body(sale_id: str, session: str, at: str) -> dict:
    return {
        "id": sale_id,
        "session": session,
        "closed_at": at,
        "total_fen": sum(p for _, p in ITEMS),
        "items": [{"sku": s, "qty": 1, "unit_price_fen": p} for s, p in ITEMS],
    }


def kiosk_commit(db) -> Callable[[int], None]:
    def commit(i: int) -> None:
        sale, at = uuid7(), now_iso()
        with kdb.transaction(db):
            c = db.conn
            c.execute(SALE_SQL, (sale, f"s{i}", at, at, 18100, at))
            for sku, price in ITEMS:
                c.execute(ITEM_SQL, (sale, sku, price))
                c.execute(STOCK_SQL, (at, "D1-S1", sku))
            kdb.outbox_append(db, "sale", sale_body(sale, f"s{i}", at), at=at)

    return commit


def bare_commit(conn: sqlite3.Connection) -> Callable[[int], None]:
    def commit(i: int) -> None:
        sale, at = uuid7(), now_iso()
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(SALE_SQL, (sale, f"s{i}", at, at, 18100, at))
        for sku, price in ITEMS:
            conn.execute(ITEM_SQL, (sale, sku, price))
            conn.execute(STOCK_SQL, (at, "D1-S1", sku))
        body = json.dumps(sale_body(sale, f"s{i}", at), ensure_ascii=False, sort_keys=True)
        conn.execute(OUTBOX_SQL, (uuid7(), at, body))
        conn.execute("COMMIT")

    return commit


def pct(samples: list[float], q: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--dir", help="where the two database files go (default: a temp dir)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        kiosk_path, bare_path = Path(tmp) / "kiosk.db", Path(tmp) / "bare.db"
        prepare(kiosk_path, args.n)
        prepare(bare_path, args.n)

        db = kdb.connect(kiosk_path)
        conn = sqlite3.connect(bare_path, isolation_level=None)
        for p in ("journal_mode=WAL", "synchronous=FULL", "foreign_keys=ON", "busy_timeout=5000"):
            conn.execute(f"PRAGMA {p}")
        paths = {"kiosk.db": kiosk_commit(db), "sqlite3": bare_commit(conn)}
        times: dict[str, list[float]] = {k: [] for k in paths}
        for i in range(args.n):
            order = list(paths.items()) if i % 2 else list(reversed(paths.items()))
            for name, commit in order:
                t0 = time.perf_counter()
                commit(i)
                times[name].append(time.perf_counter() - t0)

        for name, c in (("kiosk.db", db.conn), ("sqlite3", conn)):
            got = c.execute("SELECT count(*), max(seq) FROM outbox").fetchone()
            assert got == (args.n, args.n), (name, got)
        db.close()
        conn.close()

    print(f"sale commit, synchronous=FULL, {args.n} transactions each (ms)")
    print(f"{'path':10} {'p50':>8} {'p99':>8} {'mean':>8}")
    for name, t in times.items():
        ms = [x * 1000 for x in t]
        print(f"{name:10} {pct(ms, 0.5):8.3f} {pct(ms, 0.99):8.3f} {statistics.fmean(ms):8.3f}")
    k, b = times["kiosk.db"], times["sqlite3"]
    p50 = pct(k, 0.5) / pct(b, 0.5)
    p99 = pct(k, 0.99) / pct(b, 0.99)
    verdict = "ok" if p50 <= 1.3 else "OVER TARGET"
    print(f"ratio kiosk/bare: p50 {p50:.2f} (target <= 1.3: {verdict}), p99 {p99:.2f}")
    return 0 if p50 <= 1.3 else 1


if __name__ == "__main__":
    sys.exit(main())
