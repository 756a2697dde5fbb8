"""The centre's report by month (and the other breakdowns): households once per supplier and
period, and the same figures as the cabinets' own ``kiosk report``.

The scenario here (a real cabinet database whose outbox is ingested into the centre, and a
second cabinet) is shared by test_export, test_staff and test_statements."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import date
from pathlib import Path

import pytest

from central import figures_cli, reports
from central.store import Store
from kiosk import catalog as kcat
from kiosk import cli, signing
from kiosk import db as kdb
from kiosk import report as rpt
from tests.sync.conftest import CABINET, KEY
from tests.sync.test_report import CATALOG, item, store_batch

CABINET2, KEY2 = "QH-0002", bytes(range(32, 64))
ALICE, BOB, GONE = "04a1b2c3d4", "0477665544", "DEADBEEF01"  # card UIDs; GONE: not registered
PLATFORM = "wx-user-42"  # a scan-to-open platform account
# (sale id, closed_at UTC, [(sku, qty, certified)], method, card UID or account, status).
# Asia/Shanghai is UTC+8: S1 closes on 31 October in UTC but on 1 November there.
SALES = [
    ("S1", "2026-10-31T17:00:00.000Z", [("zr-rice-5kg", 2, True), ("hs-honey-500g", 1, True)],
     "card", ALICE, "deferred"),
    ("S2", "2026-10-15T02:00:00.000Z", [("dl-waxapple-1.5kg", 1, False)], "card", BOB,
     "deferred"),
    ("S3", "2026-11-10T03:00:00.000Z", [("bo-coco-candy", 1, True)], "payment_code", None,
     "captured"),
    ("S4", "2026-11-20T04:00:00.000Z", [("hs-tea-100g", 1, True)], "scan_to_open", PLATFORM,
     "deferred"),
    ("S5", "2026-10-31T15:00:00.000Z", [("hs-eggs-10", 1, True)], "card", ALICE, "deferred"),
    ("S6", "2026-11-25T04:00:00.000Z", [("zr-rice-5kg", 1, True)], "card", GONE, "deferred"),
]  # fmt: skip
# (adjustment id, sale, fen back, items, at): one bag of rice back; S2 (October) wholly back
# in November.
REFUNDS = [
    ("A1", "S1", 4500, [{"sku": "zr-rice-5kg", "qty": 1}], "2026-11-02T03:00:00.000Z"),
    ("A2", "S2", 5900, [], "2026-11-05T03:00:00.000Z"),
]
# The second cabinet: Alice again (her card hashed with that cabinet's key).
OTHER = ("T1", "2026-11-12T05:00:00.000Z", [("bo-shell-craft", 2, True)], "card", ALICE,
         "deferred")  # fmt: skip
# For tests whose SQL the others already run on both backends: SQLite only (the suite's time).
SQLITE_ONLY = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
HOUSEHOLDS = {s["id"]: s["households"] for s in CATALOG["suppliers"]}


def account(key: bytes, method: str, who: str | None) -> str | None:
    return signing.card_account(key, who) if method == "card" and who else who


def sale_body(key: bytes, sale: tuple) -> dict:
    sid, at, items, method, who, status = sale
    its = [item(*i) for i in items]
    return {
        "id": sid,
        "session": f"ss-{sid}",
        "door": "D1",
        "opened_at": at,
        "closed_at": at,
        "items": its,
        "total_fen": sum(i["qty"] * i["unit_price_fen"] for i in its),
        "payment": {"method": method, "account": account(key, method, who), "status": status},
        "confidence": 0.998,
        "catalog_version": 1,
    }


def cabinet_with_sales(path: Path) -> None:
    """A cabinet database holding SALES and REFUNDS as the controller writes them."""
    db = kdb.open_db(path)
    kcat.apply_catalog(db, kcat.parse_catalog(CATALOG), "test")
    with kdb.transaction(db):
        kdb.set_setting(db, "cabinet_id", CABINET)
        for sale in SALES:
            body = sale_body(KEY, sale)
            sid, at, method, status = body["id"], body["closed_at"], sale[3], sale[5]
            db.execute(
                "INSERT INTO sessions(id, door, kind, method, state, started_at, baseline_json) "
                "VALUES (?, 'D1', 'sale', ?, 'finished', ?, '{}')",
                (body["session"], method, at),
            )
            db.execute(
                "INSERT INTO sales(id, session, door, opened_at, closed_at, total_fen, method, "
                "account, payment_status, confidence, catalog_version, review, created_at) "
                "VALUES (?, ?, 'D1', ?, ?, ?, ?, ?, ?, 0.998, 1, 0, ?)",
                (sid, body["session"], at, at, body["total_fen"], method,
                 body["payment"]["account"], status, at),
            )  # fmt: skip
            for i in body["items"]:
                db.execute(
                    "INSERT INTO sale_items VALUES (?, ?, ?, ?, ?, ?)",
                    (sid, i["sku"], i["qty"], i["unit_price_fen"], i["cert_no"], i["supplier"]),
                )
            kdb.outbox_append(db, "sale", body, at=at)
        for aid, sale, amount, back, at in REFUNDS:
            db.execute(
                "INSERT INTO adjustments VALUES (?, ?, ?, ?, 'refund', 'operator', ?)",
                (aid, sale, amount, json.dumps(back), at),
            )
            kdb.outbox_append(
                db,
                "adjustment",
                {"id": aid, "sale": sale, "amount_fen": amount, "items": back, "reason": "refund"},
                at=at,
            )
    db.conn.close()


def centre_with_sales(store: Store, cabinet_db: Path) -> None:
    """The centre after both cabinets sent everything: QH-0001's real outbox, QH-0002's sale."""
    store.add_cabinet(CABINET, KEY, name="人民医院专柜", location="琼海市嘉积镇")
    store.add_cabinet(CABINET2, KEY2, name="会山镇政府专柜", location="琼海市会山镇")
    store.put_downlink(CABINET, "catalog", CATALOG, 1)
    db = kdb.connect(cabinet_db)
    recs = [
        {"id": i, "seq": s, "type": ty, "at": a, "body": json.loads(b)}
        for i, s, ty, a, b in db.execute("SELECT id, seq, type, at, body FROM outbox")
    ]
    db.conn.close()
    store_batch(store, CABINET, {"batch": "b1", "records": recs})
    body = sale_body(KEY2, OTHER)
    rec = {"id": "t1-rec", "seq": 1, "type": "sale", "at": body["closed_at"], "body": body}
    store_batch(store, CABINET2, {"batch": "b2", "records": [rec]})


def build_centre(store: Store, tmp_path: Path) -> Store:
    """QH-0001's database at ``tmp_path / "kiosk.db"``, and the centre after both sent all."""
    cabinet_with_sales(tmp_path / "kiosk.db")
    centre_with_sales(store, tmp_path / "kiosk.db")
    return store


@pytest.fixture
def centre(store: Store, tmp_path: Path) -> Store:
    return build_centre(store, tmp_path)


def run_central(argv: Sequence[str]) -> int:
    """``kiosk central ARGV`` with this step's figures commands on it (as the lead wires them
    into central/cli.py: added here when they are not there yet)."""
    from central import cli as ccli

    parser = ccli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    if "export" not in sub.choices:
        figures_cli.add_cli(sub)
    if "--master-key" not in parser._option_string_actions:
        parser.add_argument("--master-key", metavar="FILE")
    args = parser.parse_args(list(argv))
    try:
        return int(args.handler(args) or 0)
    except ccli.UsageError as e:
        print(f"kiosk central: {e}", file=sys.stderr)
        return 2


def report_args(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    rpt.add_cli_args(p)
    reports.add_by_arg(p)
    return p.parse_args(list(argv))


# -- tests ------------------------------------------------------------------------------------
def test_by_month_counts_households_once_per_supplier_and_month(centre: Store) -> None:
    data = centre.report_data(None, "Asia/Shanghai")
    f = reports.figures(data, date(2026, 10, 1), date(2026, 12, 31), ("month",))
    assert list(f.by) == ["month"]
    months = {r.key: r for r in f.by["month"]}
    assert list(months) == ["2026-10", "2026-11", "2026-12"]  # an empty month is a figure too
    octo, nov, dec = months.values()
    # October in Shanghai: S2 and S5 (S1 closed on 31 October in UTC, 1 November there)
    assert (octo.sales_fen, octo.certified_fen, octo.transactions, octo.items) == (7900, 2000, 2, 2)
    assert octo.households == HOUSEHOLDS["dl-wax"] + HOUSEHOLDS["hs-agtour"]
    # November: S1 S3 S4 S6 T1, less the refunds given then (A2 refunds an October sale)
    assert (nov.sales_fen, nov.certified_fen, nov.transactions) == (24500, 30400, 5)
    # dl-wax only had money back in November: it brought no household income then
    assert nov.households == HOUSEHOLDS["zr-agri"] + HOUSEHOLDS["hs-agtour"] + HOUSEHOLDS["bo-coco"]
    assert (dec.sales_fen, dec.households, dec.transactions) == (0, 0, 0)
    # over the whole period each supplier once: hs-agtour sold in both months, counted once
    assert f.total.households == sum(HOUSEHOLDS.values()) < octo.households + nov.households
    assert f.total.sales_fen == sum(r.sales_fen for r in months.values()) == 32400
    assert (f.total.enterprises, f.total.cooperatives) == (1, 3)


def test_the_centres_figures_are_the_cabinets_own(centre: Store, tmp_path: Path, capsys) -> None:
    period = ("--from", "2026-10-01", "--to", "2026-11-30")
    assert cli.main(["report", "--db", str(tmp_path / "kiosk.db"), *period, "--json"]) == 0
    own = json.loads(capsys.readouterr().out)["total"]
    data = centre.report_data(None, "Asia/Shanghai")
    assert reports.cli(data, report_args(*period, "--json", "--by", "cabinet")) == 0
    out = json.loads(capsys.readouterr().out)
    assert list(out["by"]) == ["cabinet"]
    by_cab = {r["key"]: r for r in out["by"]["cabinet"]}
    for k in ("sales_fen", "certified_fen", "items", "transactions", "households"):
        assert by_cab[CABINET][k] == own[k], k
    assert by_cab[CABINET2]["sales_fen"] == 7000
    assert out["total"]["sales_fen"] == own["sales_fen"] + 7000 == 32400


@SQLITE_ONLY
def test_by_several_and_the_table(centre: Store, capsys) -> None:
    data = centre.report_data(None, "Asia/Shanghai")
    args = report_args("--from", "2026-11-01", "--to", "2026-11-30", "--by", "month", "--by",
                       "supplier")  # fmt: skip
    assert reports.cli(data, args) == 0
    text = capsys.readouterr().out
    assert "== by month" in text and "== by supplier" in text and "== by category" not in text
    assert "2026-11 " in text and "2026-10" not in text
    assert "2026年11月1日至2026年11月30日, 全市2台爱心专柜累计销售0.02万元" in text


@SQLITE_ONLY
def test_a_bad_period_is_one_line_and_exit_2(centre: Store, capsys) -> None:
    data = centre.report_data(None, "Asia/Shanghai")
    assert reports.cli(data, report_args("--from", "2026-11-31")) == 2
    assert reports.cli(data, report_args("--from", "2026-11-02", "--to", "2026-11-01")) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "kiosk central report: dates are YYYY-MM-DD",
        "kiosk central report: --from is after --to",
    ]


@SQLITE_ONLY
def test_an_open_period_runs_from_the_first_month_with_sales(centre: Store) -> None:
    data = centre.report_data(None, "Asia/Shanghai")
    f = reports.figures(data, None, None, ("month",))
    assert [r.key for r in f.by["month"]] == ["2026-10", "2026-11"]
    empty = reports.figures(data, None, date(2020, 1, 31), ("month",))
    assert empty.by["month"] == ()
