"""``kiosk central statements``: per staff account and month, every deferred sale and refund
with the total to deduct; one person across cabinets; unknown accounts under their hash."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from openpyxl import load_workbook

from central import staff, statements
from central.keyring import Keyring, new_master_key
from central.store import Store
from kiosk import signing
from tests.central.test_reports import (
    ALICE,
    BOB,
    CABINET,
    CABINET2,
    GONE,
    KEY,
    PLATFORM,
    SQLITE_ONLY,
    build_centre,
    run_central,
    sale_body,
    store_batch,
)


@pytest.fixture
def centre(store: Store, tmp_path: Path) -> Store:
    return build_centre(store, tmp_path)


CARDS = (
    "card,name,offline_limit_fen,status,employee_no,employer,department\n"
    f"{ALICE},王丽,20000,active,E-0017,琼海市人民医院,药剂科\n"
    f"{BOB},陈明,,active,E-0023,琼海市人民医院,后勤\n"
    "11223344,李强,5000,active,G-0001,会山镇政府,\n"
)


@pytest.fixture
def master(tmp_path: Path) -> Path:
    return new_master_key(tmp_path / "master.key")


@pytest.fixture
def staffed(centre: Store, master: Path, tmp_path: Path) -> Store:
    cards = tmp_path / "cards.csv"
    cards.write_text(CARDS, encoding="utf-8")
    staff.import_csv(centre, Keyring.from_file(master), cards)
    return centre


def _november(st: statements.Statements) -> None:
    by = {s.name or s.account: s for s in st.statements}
    assert list(by) == ["王丽", "陈明", signing.card_account(KEY, GONE), PLATFORM]
    wang = by["王丽"]
    assert (wang.registered, wang.employee_no, wang.employer) == (True, "E-0017", "琼海市人民医院")
    # one person across both cabinets; her October sale (S5) is October's
    assert [(e.cabinet, e.kind, e.sale, e.amount_fen) for e in wang.entries] == [
        (CABINET, "sale", "S1", 15800),
        (CABINET, "refund", "S1", -4500),
        (CABINET2, "sale", "T1", 7000),
    ]
    assert (wang.sales_fen, wang.refunds_fen, wang.total_fen) == (22800, 4500, 18300)
    # Bob bought in October and was refunded in November: money back this month
    chen = by["陈明"]
    assert [(e.kind, e.sale, e.refund, e.amount_fen) for e in chen.entries] == [
        ("refund", "S2", "A2", -5900)
    ]
    assert chen.total_fen == -5900
    # not in the registry: a card no longer there, a scan-to-open platform account
    gone = by[signing.card_account(KEY, GONE)]
    assert (gone.registered, gone.total_fen, gone.entries[0].method) == (False, 4500, "card")
    phone = by[PLATFORM]
    assert (phone.total_fen, phone.entries[0].method) == (5800, "scan_to_open")
    assert st.total_fen == 18300 - 5900 + 4500 + 5800  # the captured sale S3 is not here


def test_november_with_the_master_key(staffed: Store, master: Path) -> None:
    _november(statements.compute(staffed, Keyring.from_file(master), "2026-11"))


def test_without_the_master_key_the_accounts_sent_down_name_the_people(
    staffed: Store, master: Path
) -> None:
    no_one = statements.compute(staffed, None, "2026-11")
    assert not any(s.registered for s in no_one.statements)  # nothing sent down yet
    staff.publish_accounts(staffed, Keyring.from_file(master))
    _november(statements.compute(staffed, None, "2026-11"))


@SQLITE_ONLY
def test_october_and_an_employer(staffed: Store, master: Path) -> None:
    ring = Keyring.from_file(master)
    octo = statements.compute(staffed, ring, "2026-10")
    assert {s.name: s.total_fen for s in octo.statements} == {"王丽": 2000, "陈明": 5900}
    wang = next(s for s in octo.statements if s.name == "王丽")
    assert wang.entries[0].sale == "S5"  # 31 October 23:00 in Shanghai
    only = statements.compute(staffed, ring, "2026-11", employer="会山镇政府")
    assert only.statements == ()  # 李强 bought nothing


@SQLITE_ONLY
def test_csv_and_xlsx_files(staffed: Store, master: Path, tmp_path: Path, capsys) -> None:
    db, mk = ["--db", str(staffed.db)], ["--master-key", str(master)]
    out = tmp_path / "nov.csv"
    assert run_central([*db, "statements", "--month", "2026-11", *mk, "--out", str(out)]) == 0
    assert capsys.readouterr().out == (
        f"wrote {out}: 4 accounts (2 not in the staff registry), to deduct 227.00 yuan\n"
    )
    raw = out.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(raw.decode("utf-8-sig").splitlines()))
    assert tuple(rows[0]) == statements.COLUMNS
    wang = [r for r in rows if r["name"] == "王丽"]
    assert [(r["date"], r["time"], r["kind"], r["amount_fen"], r["amount_yuan"]) for r in wang] == [
        ("2026-11-01", "01:00:00", "sale", "15800", "158.00"),
        ("2026-11-02", "11:00:00", "refund", "-4500", "-45.00"),
        ("2026-11-12", "13:00:00", "sale", "7000", "70.00"),
        ("", "", "total", "18300", "183.00"),
    ]
    assert {r["location"] for r in wang[:3]} == {"琼海市嘉积镇", "琼海市会山镇"}

    totals = tmp_path / "totals.csv"
    argv = [*db, "statements", "--month", "2026-11", *mk, "--totals", "--out", str(totals)]
    assert run_central(argv) == 0
    lines = list(csv.DictReader(totals.read_text(encoding="utf-8-sig").splitlines()))
    assert [(r["name"], r["employee_no"], r["total_fen"]) for r in lines[:2]] == [
        ("王丽", "E-0017", "18300"),
        ("陈明", "E-0023", "-5900"),
    ]

    book = tmp_path / "nov.xlsx"
    argv = [*db, "statements", "--month", "2026-11", *mk, "--format", "xlsx", "--out", str(book)]
    assert run_central(argv) == 0
    wb = load_workbook(book, read_only=True)
    assert wb.sheetnames == ["statement", "totals"]
    sums = list(wb["totals"].values)
    assert sums[0] == statements.TOTAL_COLUMNS
    assert sums[1][1:3] == ("王丽", "E-0017")
    assert [r[-2] for r in sums[1:]] == [18300, -5900, 4500, 5800]
    assert float(sums[1][-1]) == 183.0


@SQLITE_ONLY
def test_a_bad_month_is_one_line_and_exit_2(staffed: Store, capsys) -> None:
    assert run_central(["--db", str(staffed.db), "statements", "--month", "2026-13"]) == 2
    assert capsys.readouterr().err == "kiosk central: statements: month '2026-13' is not YYYY-MM\n"


@SQLITE_ONLY
def test_after_a_key_rotation_the_accounts_sent_down_still_name_the_person(
    store: Store, master: Path, tmp_path: Path
) -> None:
    ring = Keyring.from_file(master)
    store.keyring = ring
    old, new = bytes(range(64, 96)), bytes(range(96, 128))
    store.provision_cabinet("QH-0003", old)  # its key sealed under the master key
    cards = tmp_path / "cards.csv"
    cards.write_text(CARDS, encoding="utf-8")
    staff.import_csv(store, ring, cards)
    assert staff.publish_accounts(store, ring) == {"QH-0003": 1}
    tea = [("hs-tea-100g", 2, True)]
    body = sale_body(old, ("R1", "2026-11-03T04:00:00.000Z", tea, "card", ALICE, "deferred"))
    rec = {"id": "r1-rec", "seq": 1, "type": "sale", "at": body["closed_at"], "body": body}
    store_batch(store, "QH-0003", {"batch": "b1", "records": [rec]})
    store.rotate_key("QH-0003", new, grace_s=0)  # the old key is gone
    st = statements.compute(store, ring, "2026-11")
    assert [(s.name, s.total_fen) for s in st.statements] == [("王丽", 11600)]
