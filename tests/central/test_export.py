"""``kiosk central export``: one row per sale line keyed by cert_no, refunds as negative rows
naming their sale; CSV with a BOM and XLSX; totals equal the reports' for the same period."""

from __future__ import annotations

import csv
import json
from datetime import date
from pathlib import Path

import pytest
from openpyxl import load_workbook

from central import export, reports
from central.store import Store
from kiosk import cli
from tests.central.test_reports import (
    CABINET,
    CABINET2,
    CATALOG,
    SQLITE_ONLY,
    build_centre,
    run_central,
)


@pytest.fixture
def centre(store: Store, tmp_path: Path) -> Store:
    return build_centre(store, tmp_path)


PRODUCT_ZH = {p["sku"]: p["zh"] for p in CATALOG["products"]}
PERIOD = ("--from", "2026-10-01", "--to", "2026-11-30")


def _csv(path: Path) -> list[dict[str, str]]:
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # UTF-8 with a byte order mark
    return list(csv.DictReader(raw.decode("utf-8-sig").splitlines()))


def test_csv_rows_and_totals_equal_both_reports(centre: Store, tmp_path: Path, capsys) -> None:
    out = tmp_path / "nov.csv"
    assert run_central(["--db", str(centre.db), "export", *PERIOD, "--out", str(out)]) == 0
    assert capsys.readouterr().out.startswith(f"wrote {out}: 10 rows, sales 324.00 yuan")
    rows = _csv(out)
    assert tuple(rows[0]) == export.COLUMNS
    assert len(rows) == 10  # 8 sale lines, 2 refund shares (A1 and A2: one line each)
    rice = next(r for r in rows if r["sale"] == "S1" and r["sku"] == "zr-rice-5kg")
    assert rice == {
        "date": "2026-11-01",  # 31 October 17:00 UTC is 1 November in Shanghai
        "cabinet": CABINET,
        "location": "琼海市嘉积镇",
        "cert_no": "FP-460002-2020-00117",
        "sku": "zr-rice-5kg",
        "product": PRODUCT_ZH["zr-rice-5kg"],
        "supplier_id": "zr-agri",
        "supplier": "忠锐农特产",
        "county": "琼海市",
        "qty": "2",
        "unit_price_fen": "4500",
        "amount_fen": "9000",
        "kind": "sale",
        "sale": "S1",
        "refund": "",
    }
    refunds = [r for r in rows if r["kind"] == "refund"]
    assert [(r["sale"], r["sku"], r["qty"], r["amount_fen"], r["date"]) for r in refunds] == [
        ("S1", "zr-rice-5kg", "-1", "-4500", "2026-11-02"),  # one bag back
        ("S2", "dl-waxapple-1.5kg", "-1", "-5900", "2026-11-05"),  # an October sale, all back
    ]
    assert [r["refund"] for r in refunds] == ["A1", "A2"]  # the cabinet's adjustment ids

    # the same totals as `kiosk central report` and the cabinet's own `kiosk report`
    period_args = ["--from", "2026-10-01", "--to", "2026-11-30", "--json"]
    data = centre.report_data(None, "Asia/Shanghai")
    f = reports.figures(data, date(2026, 10, 1), date(2026, 11, 30), ("cabinet",))
    assert sum(int(r["amount_fen"]) for r in rows) == f.total.sales_fen == 32400
    assert sum(int(r["amount_fen"]) for r in rows if r["cert_no"]) == f.total.certified_fen
    assert sum(int(r["qty"]) for r in rows if r["kind"] == "sale") == f.total.items
    assert cli.main(["report", "--db", str(tmp_path / "kiosk.db"), *period_args]) == 0
    own = json.loads(capsys.readouterr().out)["total"]
    mine = [r for r in rows if r["cabinet"] == CABINET]
    assert sum(int(r["amount_fen"]) for r in mine) == own["sales_fen"]
    assert sum(int(r["amount_fen"]) for r in mine if r["cert_no"]) == own["certified_fen"]


def test_xlsx_and_certified_only(centre: Store, tmp_path: Path, capsys) -> None:
    out = tmp_path / "nov.xlsx"
    argv = ["--db", str(centre.db), "export", "--from", "2026-11-01", "--to", "2026-11-30"]
    assert run_central([*argv, "--format", "xlsx", "--out", str(out), "--certified"]) == 0
    ws = load_workbook(out, read_only=True)["sales"]
    got = list(ws.values)
    assert got[0] == export.COLUMNS
    by_col = [dict(zip(export.COLUMNS, r, strict=True)) for r in got[1:]]
    assert all(r["cert_no"] for r in by_col)  # --certified: the uncertified refund left out
    assert sum(r["amount_fen"] for r in by_col) == 30400  # November's certified sales
    assert {r["cabinet"] for r in by_col} == {CABINET, CABINET2}
    t1 = next(r for r in by_col if r["cabinet"] == CABINET2)
    assert (t1["qty"], t1["unit_price_fen"], t1["amount_fen"], t1["date"].date()) == (
        2,
        3500,
        7000,
        date(2026, 11, 12),
    )


@SQLITE_ONLY
def test_an_empty_period_and_bad_input(centre: Store, tmp_path: Path, capsys) -> None:
    out = tmp_path / "none.csv"
    db = ["--db", str(centre.db), "export"]
    assert run_central([*db, "--from", "2026-01-01", "--to", "2026-01-31", "--out", str(out)]) == 0
    assert _csv(out) == [] and out.read_text(encoding="utf-8-sig").startswith("date,cabinet,")
    capsys.readouterr()
    assert run_central([*db, "--from", "2026-11-01"]) == 2
    assert run_central([*db, "--from", "2026-11-30", "--to", "2026-11-01"]) == 2
    assert run_central([*db, "--from", "2026-11-01", "--to", "2026-11-31"]) == 2
    nowhere = tmp_path / "no-such-dir" / "x.csv"
    assert run_central([*db, *PERIOD, "--out", str(nowhere)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "kiosk central: export: give --from YYYY-MM-DD and --to YYYY-MM-DD",
        "kiosk central: export: --from is after --to",
        "kiosk central: export: dates are YYYY-MM-DD",
        f"kiosk central: {nowhere}: cannot write: No such file or directory",
    ]
