"""Staff card accounts: imported from CSV with UIDs sealed at rest, sent down per cabinet as
the contract hashes them, applied by a real cabinet database, blocked and unblocked."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from central import staff
from central.keyring import Keyring, KeyringError, new_master_key
from central.schema_staff import staff_cards
from central.store import Store
from kiosk import auth, contract, signing
from kiosk import db as kdb
from kiosk.snapshot import Reason
from sync import apply
from tests.central.test_reports import CABINET, CABINET2, KEY, KEY2, SQLITE_ONLY, run_central

NOW = datetime(2026, 11, 28, 2, 0, tzinfo=UTC)
CARDS = (
    "card,name,offline_limit_fen,status,employee_no,employer,department\n"
    "04a1b2c3d4,王丽,20000,active,E-0017,琼海市人民医院,药剂科\n"
    " 0477665544 ,陈明,,active,E-0023,琼海市人民医院,后勤\n"
    "11223344,李强,5000,blocked,,会山镇政府,\n"
)


@pytest.fixture
def master(tmp_path: Path) -> Path:
    return new_master_key(tmp_path / "master.key")


@pytest.fixture
def ring(master: Path) -> Keyring:
    return Keyring.from_file(master)


def write(tmp_path: Path, text: str, name: str = "cards.csv") -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8-sig")  # as Excel saves it: with a BOM
    return p


def test_import_seals_uids_and_updates_by_card(store: Store, ring: Keyring, tmp_path) -> None:
    got = staff.import_csv(store, ring, write(tmp_path, CARDS), NOW)
    assert got == staff.ImportResult(added=3, updated=0)
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(staff_cards)).all()
    dump = json.dumps([[str(v) for v in r] for r in rows], ensure_ascii=False).upper()
    for uid in ("04A1B2C3D4", "0477665544", "11223344"):
        assert uid not in dump  # never in clear
    other = new_master_key(tmp_path / "other.key")
    with pytest.raises(KeyringError):
        staff.opened(store, Keyring.from_file(other))
    assert {(c.name, uid) for c, uid in staff.opened(store, ring)} == {
        ("王丽", "04A1B2C3D4"),
        ("陈明", "0477665544"),
        ("李强", "11223344"),
    }
    # the same card again (another case): updated, not added; a column left out is kept
    again = "card,name,offline_limit_fen,status\n04A1B2C3D4,王丽,30000,active\nAABBCCDD,赵敏,,\n"
    assert staff.import_csv(store, ring, write(tmp_path, again, "b.csv")) == staff.ImportResult(
        added=1, updated=1
    )
    cards = {c.name: c for c in staff.cards(store)}
    assert len(cards) == 4
    assert (cards["王丽"].offline_limit_fen, cards["王丽"].employer) == (30000, "琼海市人民医院")
    assert (cards["赵敏"].status, cards["赵敏"].offline_limit_fen) == ("active", None)


@pytest.mark.parametrize(
    "text, why",
    [
        ("card,name\nAA,x\n", "missing columns offline_limit_fen, status"),
        ("card,name,offline_limit_fen,status\nAA,x,12.5,active\n", "line 2: offline_limit_fen"),
        ("card,name,offline_limit_fen,status\nAA,x,,lost\n", "line 2: status is active or"),
        ("card,name,offline_limit_fen,status\nAA,x,,\naa,y,,\n", "line 3: card listed twice"),
        ("card,name,offline_limit_fen,status\n,x,,\n", "line 2: card is the UID"),
        ("card,name,offline_limit_fen,status\nAA,x,2000000,\n", "line 2: offline_limit_fen"),
        ("card,name,offline_limit_fen,status\nAA," + "名" * 101 + ",,\n", "line 2: name longer"),
    ],
)
def test_a_bad_file_changes_nothing(tmp_path, text: str, why: str) -> None:
    with pytest.raises(staff.StaffError, match=why):
        staff.parse_csv(write(tmp_path, text))


def test_accounts_list_as_the_contract_hashes_it_applied_by_a_cabinet(
    store: Store, ring: Keyring, cabinet_db: Path, tmp_path
) -> None:
    store.add_cabinet(CABINET, KEY)
    store.add_cabinet(CABINET2, KEY2)
    staff.import_csv(store, ring, write(tmp_path, CARDS), NOW)
    payload = staff.accounts_payload(store, ring, CABINET)
    assert contract.check_accounts(payload) is None
    # integration.md's test vector: card 04a1b2c3d4 under key 00..1f
    wang = next(a for a in payload if a["name"] == "王丽")
    assert wang == {
        "account": "1847ec8a0df92538223ca2572ea4cfd3",
        "name": "王丽",
        "status": "active",
        "offline_limit_fen": 20000,
    }
    assert "offline_limit_fen" not in next(a for a in payload if a["name"] == "陈明")
    other = staff.accounts_payload(store, ring, CABINET2)
    assert {a["account"] for a in other}.isdisjoint({a["account"] for a in payload})

    assert staff.publish_accounts(store, ring) == {CABINET: 1, CABINET2: 1}
    message = store.latest_downlink(CABINET, "accounts")
    db = kdb.connect(cabinet_db)
    try:
        assert apply.handle_down(db, KEY, "accounts", message).applied  # the cabinet's own check

        def card(uid: str) -> auth.CardDecision:
            return auth.check_card(
                db.conn, KEY, uid, now=NOW, tz="Asia/Shanghai", default_limit_fen=10000
            )

        assert card("04A1B2C3D4").ok and card("04A1B2C3D4").limit_fen == 20000
        assert card("0477665544").ok and card("0477665544").limit_fen == 10000  # its default
        assert card("11223344").why == Reason.CARD_BLOCKED
        assert card("99999999").why == Reason.CARD_UNKNOWN

        # blocked at the centre: a block_card command now, and the next accounts list
        blocked, uid = staff.set_status(store, ring, "04a1b2c3d4", "blocked")
        assert (blocked.status, uid) == ("blocked", "04A1B2C3D4")
        assert staff.send_status(store, blocked, uid) == [CABINET, CABINET2]
        (_, _, cmd), *_ = [c for c in store.unpublished_commands() if c[1] == CABINET]
        assert (cmd["cmd"], cmd["args"]) == ("block_card", {"account": wang["account"]})
        assert signing.verify_message(KEY, cmd)
        assert apply.handle_command(db, KEY, cmd, NOW.timestamp()).applied
        assert card("04A1B2C3D4").why == Reason.CARD_BLOCKED
        assert staff.publish_accounts(store, ring, [CABINET]) == {CABINET: 2}
        again = apply.handle_down(db, KEY, "accounts", store.latest_downlink(CABINET, "accounts"))
        assert again is not None and again.applied
        assert card("04A1B2C3D4").why == Reason.CARD_BLOCKED
    finally:
        db.conn.close()
    # by its id, without the UID
    staff.set_status(store, None, blocked.id, "active")
    assert {c.name: c.status for c in staff.cards(store)}["王丽"] == "active"
    with pytest.raises(staff.StaffError, match="no staff card"):
        staff.set_status(store, ring, "CAFEBABE", "blocked")
    with pytest.raises(staff.StaffError, match="no cabinet in service named QH-9999"):
        staff.publish_accounts(store, ring, ["QH-9999"])


@SQLITE_ONLY
def test_the_staff_commands(store: Store, master: Path, tmp_path, capsys) -> None:
    store.add_cabinet(CABINET, KEY)
    db = ["--db", str(store.db)]
    mk = ["--master-key", str(master)]
    assert run_central([*db, "staff", "import", str(write(tmp_path, CARDS)), *mk]) == 0
    assert capsys.readouterr().out == "3 cards added, 0 updated (`staff push` sends them down)\n"
    assert run_central([*db, "staff", "list", "--json", *mk]) == 0
    listed = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert {(c["name"], c["card"], c["status"]) for c in listed} == {
        ("王丽", "****C3D4", "active"),
        ("陈明", "****5544", "active"),
        ("李强", "****3344", "blocked"),
    }
    assert run_central([*db, "staff", "push", *mk]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"{CABINET}: accounts version 1",
        "accounts list sent to 1 cabinets",
    ]
    assert run_central([*db, "staff", "block", "04A1B2C3D4", *mk]) == 0
    assert "blocked; block_card sent to 1 cabinets" in capsys.readouterr().out
    assert store.latest_downlink(CABINET, "accounts")["version"] == 2
    # bad input: one line, exit 2, nothing changed
    bad = write(tmp_path, "card,name,offline_limit_fen,status\nAA,x,,gone\n", "bad.csv")
    assert run_central([*db, "staff", "import", str(bad), *mk]) == 2
    assert run_central([*db, "staff", "unblock", "nobody", *mk]) == 2
    missing = ["--master-key", str(tmp_path / "none.key")]
    assert run_central([*db, "staff", "push", *missing]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 3 and all(e.startswith("kiosk central: ") for e in err)
    assert "line 2: status is active or blocked" in err[0]
    assert "no such file" in err[2]
    assert len(staff.cards(store)) == 3
