"""The programme's report: from a cabinet's database, and the same way across cabinets."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from PIL import Image

from central import migrate
from central.store import Store
from kiosk import catalog as kcat
from kiosk import cli, contract
from kiosk import db as kdb
from tests.sync.conftest import CABINET, KEY, ROOT

CATALOG = json.loads((ROOT / "examples" / "catalog.json").read_text(encoding="utf-8"))
PRICES = {p["sku"]: (p["price_fen"], p["cert_no"], p["supplier"]) for p in CATALOG["products"]}
# (sale id, closed_at UTC, [(sku, qty, certified)]). Asia/Shanghai is UTC+8: S2 closes on the
# 27th in UTC but on the 28th in the cabinet's time.
SALES = [
    ("S1", "2026-11-27T02:00:00.000Z", [("zr-rice-5kg", 2, True), ("hs-honey-500g", 1, True)]),
    ("S2", "2026-11-27T23:00:00.000Z", [("dl-waxapple-1.5kg", 1, False)]),
    ("S3", "2026-11-20T02:00:00.000Z", [("bo-coco-candy", 1, True)]),
]
REFUND = ("A1", "S1", 4500, "2026-11-28T03:00:00.000Z")  # one bag of rice back
SUMMARY = (
    "2026年11月27日至2026年11月28日, 全市1台爱心专柜累计销售0.02万元, "
    "其中认定扶贫产品销售0.01万元, 带动3家企业和合作社、414户脱贫户增收。"
)


def item(sku: str, qty: int, certified: bool = True) -> dict:
    price, cert, supplier = PRICES[sku]
    return {
        "sku": sku,
        "qty": qty,
        "unit_price_fen": price,
        "cert_no": cert if certified else "",
        "supplier": supplier,
    }


def cabinet_with_sales(path: Path) -> None:
    db = kdb.open_db(path)
    kcat.apply_catalog(db, kcat.parse_catalog(CATALOG), "test")
    with kdb.transaction(db):
        kdb.set_setting(db, "cabinet_id", CABINET)
        for sid, at, items in SALES:
            its = [item(*i) for i in items]
            total = sum(i["qty"] * i["unit_price_fen"] for i in its)
            db.execute(
                "INSERT INTO sessions(id, door, kind, method, state, started_at, baseline_json) "
                "VALUES (?, 'D1', 'sale', 'card', 'finished', ?, '{}')",
                (f"ss-{sid}", at),
            )
            db.execute(
                "INSERT INTO sales(id, session, door, opened_at, closed_at, total_fen, method, "
                "account, payment_status, confidence, catalog_version, review, created_at) "
                "VALUES (?, ?, 'D1', ?, ?, ?, 'card', NULL, 'captured', 1.0, 1, 0, ?)",
                (sid, f"ss-{sid}", at, at, total, at),
            )
            for i in its:
                db.execute(
                    "INSERT INTO sale_items VALUES (?, ?, ?, ?, ?, ?)",
                    (sid, i["sku"], i["qty"], i["unit_price_fen"], i["cert_no"], i["supplier"]),
                )
            kdb.outbox_append(
                db,
                "sale",
                {"session": f"ss-{sid}", "closed_at": at, "items": its, "total_fen": total},
                at=at,
            )
        aid, sale, amount, at = REFUND
        back = [{"sku": "zr-rice-5kg", "qty": 1}]
        db.execute(
            "INSERT INTO adjustments VALUES (?, ?, ?, ?, 'refund', 'operator', ?)",
            (aid, sale, amount, json.dumps(back), at),
        )
        kdb.outbox_append(
            db,
            "adjustment",
            {"id": aid, "sale": f"ss-{sale}", "amount_fen": amount, "items": back},
            at=at,
        )
    db.conn.close()


def store_batch(store: Store, cabinet: str, batch: dict) -> None:
    raw = json.dumps(batch).encode()
    up = contract.decode_batch(raw)
    assert up.rejected == ()
    store.store_batches([(cabinet, up, hashlib.sha256(raw).hexdigest())])


def run(capsys, *argv: str) -> str:
    assert cli.main(list(argv)) == 0
    return capsys.readouterr().out


def test_cabinet_report_figures_summary_and_csv(tmp_path, capsys):
    path = tmp_path / "kiosk.db"
    cabinet_with_sales(path)
    out = json.loads(
        run(
            capsys,
            "report",
            "--db",
            str(path),
            "--from",
            "2026-11-27",
            "--to",
            "2026-11-28",
            "--json",
        )
    )
    t = out["total"]
    assert (t["sales_fen"], t["certified_fen"], t["items"], t["transactions"]) == (
        17200,
        11300,
        4,
        2,
    )
    assert (t["households"], t["enterprises"], t["cooperatives"]) == (414, 1, 2)
    assert out["summary"] == SUMMARY
    by_supplier = {r["key"]: r["sales_fen"] for r in out["by"]["supplier"]}
    assert by_supplier == {"zr-agri": 4500, "hs-agtour": 6800, "dl-wax": 5900}
    text = run(capsys, "report", "--db", str(path), "--csv", str(tmp_path / "csv"))
    assert "截至2026年11月28日, 全市1台爱心专柜累计销售0.02万元" in text  # the whole history
    rows = (tmp_path / "csv" / "by_category.csv").read_text(encoding="utf-8").splitlines()
    assert rows[0].startswith("key,name,sales_yuan") and rows[-1].startswith("total,合计,190.00")


def test_central_report_across_cabinets_matches_the_cabinets_own(tmp_path, capsys):
    path = tmp_path / "kiosk.db"
    cabinet_with_sales(path)
    migrate.upgrade(tmp_path / "central.db")
    store = Store(tmp_path / "central.db")
    store.add_cabinet(CABINET, KEY)
    store.add_cabinet("QH-0002", KEY)
    store.put_downlink(CABINET, "catalog", CATALOG, 1)
    db = kdb.connect(path)
    recs = [
        {"id": i, "seq": s, "type": t, "at": a, "body": json.loads(b)}
        for i, s, t, a, b in db.execute("SELECT id, seq, type, at, body FROM outbox")
    ]
    db.conn.close()
    recs.append(
        {
            "id": "tele-1",
            "seq": 99,
            "type": "telemetry",
            "at": "2026-11-28T04:00:00.000Z",
            "body": {"name": "人民医院专柜", "location": "琼海市嘉积镇"},
        }
    )
    store_batch(store, CABINET, {"batch": "b1", "records": recs})
    other = {
        "session": "x",
        "closed_at": "2026-11-28T05:00:00.000Z",
        "items": [item("bo-shell-craft", 2, True)],
        "total_fen": 7000,
    }
    store_batch(
        store,
        "QH-0002",
        {
            "batch": "b2",
            "records": [
                {
                    "id": "o1",
                    "seq": 1,
                    "type": "sale",
                    "at": "2026-11-28T05:00:00.000Z",
                    "body": other,
                }
            ],
        },
    )
    store.close()
    chart = tmp_path / "chart.png"
    out = json.loads(
        run(
            capsys,
            "central",
            "report",
            "--db",
            str(tmp_path / "central.db"),
            "--from",
            "2026-11-27",
            "--to",
            "2026-11-28",
            "--json",
            "--chart",
            str(chart),
        ).split("\nwrote")[0]
    )
    by_cab = {r["key"]: r for r in out["by"]["cabinet"]}
    assert by_cab[CABINET]["sales_fen"] == 17200  # the same as the cabinet's own report
    assert by_cab[CABINET]["name"] == "人民医院专柜"
    assert by_cab["QH-0002"]["sales_fen"] == 7000
    assert out["total"]["households"] == 414 + 41
    assert sorted(out["cabinets_reporting"]) == [CABINET, "QH-0002"]
    assert out["summary"].startswith(
        "2026年11月27日至2026年11月28日, 全市2台爱心专柜累计销售0.02万元"
    )
    with Image.open(chart) as img:
        assert img.format == "PNG" and img.height > 200
