"""The centre's Store on SQLite and PostgreSQL (``db_url``): records once per id, batches
idempotent, several batches in one transaction, sales and allotted adjustments giving the
programme's report figures, downlinks, commands, scans, payments, stats."""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import asdict, replace
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from central import migrate
from central.schema import metadata
from central.store import BatchAnswer, Stats, Store
from kiosk import contract, report, signing, wire
from kiosk.contract import UpBatch, UpRecord
from tests.sync.test_report import CATALOG, item

KEY = bytes(range(32))
CAB, CAB2 = "QH-0001", "QH-0002"
TZ = "Asia/Shanghai"


def rec(rid: str, seq: int, type: str = "event", at: str = "2026-11-27T02:00:00.000Z", **body):
    return UpRecord(rid, seq, type, at, body or {"kind": "x"})


def batch(bid: str, *records: UpRecord, rejected: tuple[wire.Rejected, ...] = ()) -> UpBatch:
    return UpBatch(bid, tuple(records), rejected)


def digest(b: UpBatch) -> str:
    text = json.dumps([b.batch, [[r.id, r.seq, r.type, r.at, r.body] for r in b.records]])
    return hashlib.sha256(text.encode()).hexdigest()


def up(store: Store, *items: tuple[str, UpBatch]) -> list[BatchAnswer]:
    return store.store_batches([(cab, b, digest(b)) for cab, b in items])


def ids(store: Store) -> list[str]:
    return [r["id"] for r in store.records()]


@pytest.fixture
def cab_store(store: Store) -> Store:
    store.add_cabinet(CAB, KEY, name="人民医院专柜", location="琼海市嘉积镇")
    store.add_cabinet(CAB2, KEY)
    return store


# -- schema ---------------------------------------------------------------------------------------
def test_the_migration_creates_exactly_the_schema(db_url):
    assert migrate.at_head(db_url) and migrate.current(db_url) == migrate.head()
    engine = sa.create_engine(Store(db_url).engine.url)
    with engine.connect() as conn:
        diff = compare_metadata(
            MigrationContext.configure(conn, opts={"compare_type": True}), metadata
        )
    engine.dispose()
    assert diff == []


def test_a_new_database_is_not_at_head_until_upgraded(tmp_path):
    path = tmp_path / "new.db"
    assert migrate.current(path) is None and not migrate.at_head(path)
    migrate.upgrade(path)
    assert migrate.at_head(path)
    migrate.upgrade(path)  # again: nothing to do
    assert migrate.at_head(path)


# -- records up -----------------------------------------------------------------------------------
def test_every_record_id_is_stored_once(cab_store):
    s = cab_store
    a = batch("b1", rec("r1", 1), rec("r2", 2), rec("r2", 2))  # twice in one batch
    b = batch("b2", rec("r2", 2), rec("r3", 3))  # r2 again, same transaction
    ans = up(s, (CAB, a), (CAB, b))
    assert [x.stored for x in ans] == [("r1", "r2"), ("r2", "r3")]
    assert [x.fresh for x in ans] == [2, 1]
    assert ids(s) == ["r1", "r2", "r3"]
    ans = up(s, (CAB, batch("b3", rec("r1", 1), rec("r4", 4))))  # a later transaction
    assert ans[0].stored == ("r1", "r4") and not ans[0].conflict
    assert ids(s) == ["r1", "r2", "r3", "r4"]
    assert s.stats() == Stats(records=4, sales=0, duplicates=3)


def test_records_read_back_as_sent_in_cabinet_and_seq_order(cab_store):
    s = cab_store
    body = {"kind": "door", "detail": {"zh": "门已打开", "n": 2**53}}
    up(
        s,
        (CAB2, batch("b", rec("x2", 2), rec("x1", 1, "event", **body))),
        (CAB, batch("b", rec("a", 9))),
    )
    got = s.records()
    assert [(r["cabinet"], r["seq"]) for r in got] == [(CAB, 9), (CAB2, 1), (CAB2, 2)]
    assert got[1] == {
        "id": "x1",
        "cabinet": CAB2,
        "seq": 1,
        "type": "event",
        "at": "2026-11-27T02:00:00.000Z",
        "body": body,
    }
    assert [r["id"] for r in s.records(cabinet=CAB2, type="event")] == ["x1", "x2"]
    assert s.records(type="sale") == []


def test_a_batch_sent_again_gets_its_first_answer_and_another_body_a_conflict(cab_store):
    s = cab_store
    why = (wire.Rejected("bad", "seq must be a positive integer"),)
    first = batch("b1", rec("r1", 1), rec("r2", 2), rejected=why)
    [a1] = up(s, (CAB, first))
    assert a1.to_json() == {
        "batch": "b1",
        "stored": ["r1", "r2"],
        "rejected": [{"id": "bad", "why": "seq must be a positive integer"}],
    }
    [again] = up(s, (CAB, first))
    assert again == a1 and (a1.fresh, again.fresh) == (2, 0)
    other = batch("b1", rec("r9", 9))
    [clash] = up(s, (CAB, other))
    assert clash.conflict and clash.stored == ()
    assert ids(s) == ["r1", "r2"]  # nothing of the other body stored
    [mine] = up(s, (CAB2, other))  # the same batch id from another cabinet is its own
    assert mine.stored == ("r9",) and not mine.conflict
    assert s.stats().duplicates == 0


def test_several_batches_commit_or_fail_together(cab_store):
    s = cab_store
    good = batch("g", rec("ok1", 1))
    bad = batch("b", rec("ok2", 2), rec("huge", 2**70))  # no BIGINT holds this seq
    with pytest.raises((sa.exc.SQLAlchemyError, OverflowError)):
        up(s, (CAB, good), (CAB, bad))
    assert ids(s) == [] and s.stats() == Stats(0, 0, 0)
    [ans] = up(s, (CAB, good))  # nothing was recorded of the failed call: it can be resent
    assert ans.stored == ("ok1",) and ids(s) == ["ok1"]
    assert s.healthy()


def test_the_same_batch_from_two_writers_at_once_is_stored_once(cab_store):
    s = cab_store
    b = batch("same", *(rec(f"c{i}", i) for i in range(1, 51)))
    answers: list[BatchAnswer] = []
    go = threading.Barrier(2)

    def send():
        go.wait()
        answers.extend(up(s, (CAB, b)))

    threads = [threading.Thread(target=send) for _ in range(2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert len(answers) == 2 and answers[0] == answers[1] and len(answers[0].stored) == 50
    assert s.stats() == Stats(50, 0, 0)


def test_telemetry_names_the_cabinet_and_a_batch_is_contact(cab_store):
    s = cab_store
    assert s.cabinet(CAB2)["last_contact"] is None
    tele = rec("t1", 1, "telemetry", name="中心医院专柜", location="万泉镇", cpu=3)
    up(s, (CAB2, batch("b", tele)))
    c = s.cabinet(CAB2)
    assert (c["name"], c["location"]) == ("中心医院专柜", "万泉镇") and c["last_contact"]
    up(s, (CAB2, batch("b2", rec("t2", 2, "telemetry", cpu=4))))  # names nothing: kept
    assert s.cabinet(CAB2)["name"] == "中心医院专柜"


# -- sales and the report ----------------------------------------------------------------------
def sale(rid: str, seq: int, closed: str, *items: dict, session: str, sale_id: str) -> UpRecord:
    body = {
        "id": sale_id,
        "session": session,
        "door": "D1",
        "opened_at": closed,
        "closed_at": closed,
        "items": list(items),
        "total_fen": sum(i["qty"] * i["unit_price_fen"] for i in items),
        "payment": {"method": "card", "account": "acc-1", "status": "captured"},
        "confidence": 0.97,
        "catalog_version": 1,
    }
    return UpRecord(rid, seq, "sale", closed, body)


def adjustment(rid: str, seq: int, at: str, sale_ref: str, amount: int, items=None) -> UpRecord:
    body: dict[str, Any] = {"id": f"adj-{rid}", "sale": sale_ref, "amount_fen": amount}
    if items is not None:
        body["items"] = items
    return UpRecord(rid, seq, "adjustment", at, {**body, "reason": "refund", "actor": "op1"})


S1 = sale(
    "r-s1",
    1,
    "2026-11-27T02:00:00.000Z",
    item("zr-rice-5kg", 2),
    item("hs-honey-500g", 1),
    session="ss-1",
    sale_id="S1",
)
S2 = sale(  # closes on the 27th in UTC, the 28th in Asia/Shanghai
    "r-s2",
    2,
    "2026-11-27T23:00:00.000Z",
    item("dl-waxapple-1.5kg", 1, False),
    session="ss-2",
    sale_id="S2",
)
S3 = sale(
    "r-s3",
    3,
    "2026-11-28T05:00:00.000Z",
    item("zr-rice-5kg", 1),
    item("bo-coco-candy", 3),
    item("hs-honey-500g", 2, False),
    session="ss-3",
    sale_id="S3",
)
ONE_BAG_BACK = adjustment(
    "r-a1", 4, "2026-11-29T03:00:00.000Z", "S1", 4500, [{"sku": "zr-rice-5kg", "qty": 1}]
)
AMOUNT_BACK = adjustment(
    "r-a2", 5, "2026-11-28T06:00:00.000Z", "ss-3", 1001
)  # whole sale, rounding
EARLY = adjustment("r-a0", 6, "2026-11-28T01:00:00.000Z", "r-s2", 300, [])  # before its sale
LOST = adjustment("r-a9", 7, "2026-11-28T01:00:00.000Z", "no-such-sale", 50)
OTHER = sale(
    "o-s1", 1, "2026-11-28T05:00:00.000Z", item("bo-shell-craft", 2), session="x", sale_id="X"
)


def test_the_centre_report_equals_kiosk_report_on_the_same_records(cab_store):
    s = cab_store
    for r in (S1, S2, S3, ONE_BAG_BACK, AMOUNT_BACK, EARLY, LOST, OTHER):  # what cabinets send
        assert contract.check_record(asdict(r)) is None, r.id
    s.put_downlink(CAB, "catalog", CATALOG, 1)
    # the early adjustment comes a batch before its sale; one batch holds a refund and its sale
    up(s, (CAB, batch("b1", EARLY, S1, LOST)), (CAB2, batch("o1", OTHER)))
    up(s, (CAB, batch("b2", ONE_BAG_BACK, S2)))
    up(s, (CAB, batch("b3", AMOUNT_BACK, S3)))
    assert s.stats() == Stats(records=8, sales=4, duplicates=0)
    mine = s.report_data(None, TZ)  # the newest catalogue sent
    theirs = report.from_central(s, CATALOG, TZ)
    for period in ((None, None), (report.date(2026, 11, 27), report.date(2026, 11, 28))):
        assert report.compute(mine, *period) == report.compute(theirs, *period)
    f = report.compute(mine, None, None)
    sold = sum(r.body["total_fen"] for r in (S1, S2, S3, OTHER))
    assert f.total.sales_fen == sold - 4500 - 1001 - 300
    assert f.total.transactions == 4 and f.total.items == 2 + 1 + 1 + 1 + 3 + 2 + 2
    by_cab = {r.key: r for r in f.by["cabinet"]}
    assert by_cab[CAB].name == "人民医院专柜" and by_cab[CAB2].sales_fen == OTHER.body["total_fen"]
    rice = {r.key: r.sales_fen for r in f.by["product"]}["zr-rice-5kg"]
    amount_back_on_rice = next(
        ln.amount_fen
        for ln in mine.lines
        if ln.sale == "r-s3" and ln.sku == "zr-rice-5kg" and not ln.counts_as_sale
    )
    assert rice == 3 * 4500 - 4500 + amount_back_on_rice
    days = {c.id: c.record_days for c in mine.cabinets}
    assert days[CAB] == tuple(report.date(2026, 11, d) for d in (27, 28, 29))


def test_an_adjustment_is_allotted_once_at_ingest(cab_store):
    s = cab_store
    up(s, (CAB, batch("b1", EARLY)))
    lines = s.report_data(CATALOG, TZ).lines
    assert [ln for ln in lines if not ln.counts_as_sale] == []  # its sale not here yet
    up(s, (CAB, batch("b2", S2)))
    up(s, (CAB, batch("b3", S2, EARLY)))  # both again: nothing allotted twice
    back = [ln.amount_fen for ln in s.report_data(CATALOG, TZ).lines if not ln.counts_as_sale]
    assert back == [-300]


def test_a_sale_and_its_adjustment_stored_at_once_by_two_writers_are_allotted(cab_store):
    s = cab_store
    for n in range(5):  # a cabinet's two batches taken by two ingest workers at the same time
        sold = replace(S1, id=f"s{n}", body={**S1.body, "id": f"S{n}", "session": f"ss{n}"})
        back = replace(ONE_BAG_BACK, id=f"a{n}", body={**ONE_BAG_BACK.body, "sale": f"S{n}"})
        go = threading.Barrier(2)

        def send(b: UpBatch, go: threading.Barrier = go) -> None:
            go.wait()
            up(s, (CAB, b))

        threads = [
            threading.Thread(target=send, args=(batch(f"{k}{n}", r),))
            for k, r in (("s", sold), ("a", back))
        ]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
    back_lines = [ln for ln in s.report_data(CATALOG, TZ).lines if not ln.counts_as_sale]
    assert sorted((ln.sale, ln.amount_fen) for ln in back_lines) == [
        (f"s{n}", -4500) for n in range(5)
    ]


def test_a_partial_refund_of_one_item_falls_on_that_item_only(cab_store):
    s = cab_store
    up(s, (CAB, batch("b", S1, ONE_BAG_BACK)))
    data = s.report_data(CATALOG, TZ)
    back = [(ln.sku, ln.amount_fen, ln.day) for ln in data.lines if not ln.counts_as_sale]
    assert back == [("zr-rice-5kg", -4500, report.date(2026, 11, 29))]
    assert data == replace(report.from_central(s, CATALOG, TZ), lines=data.lines)
    assert sorted(data.lines, key=repr) == sorted(
        report.from_central(s, CATALOG, TZ).lines, key=repr
    )


# -- downlinks, commands, scans, payments ---------------------------------------------------------
def test_downlink_versions_are_signed_and_counted_per_cabinet_and_kind(cab_store):
    s = cab_store
    m1 = s.put_downlink(CAB, "config", {"unlock_timeout_s": 10})
    m2 = s.put_downlink(CAB, "config", {"unlock_timeout_s": 20})
    assert (m1["version"], m2["version"]) == (1, 2) and signing.verify_message(KEY, m2)
    assert s.put_downlink(CAB2, "config", {"unlock_timeout_s": 30})["version"] == 1
    assert s.put_downlink(CAB, "accounts", [], version=7)["version"] == 7
    assert s.latest_downlink(CAB, "config") == m2
    assert s.latest_downlink(CAB, "config", after=2) is None
    assert s.latest_downlink(CAB, "catalog") is None and s.latest_catalog() is None
    s.put_downlink(CAB, "catalog", {**CATALOG, "version": 3}, 3)
    assert s.latest_catalog() == {**CATALOG, "version": 3}
    with pytest.raises(KeyError):
        s.put_downlink("nobody", "config", {})
    # Nothing is signed that every cabinet would refuse (the contract's own checks).
    for kind, bad, version in (
        ("config", {"a": 1}, None),
        ("config", {"unlock_timeout_s": 10**6}, None),
        ("catalog", {**CATALOG, "version": 4}, 5),
        ("accounts", [], 2**53 + 1),
        ("prices", {}, None),
    ):
        with pytest.raises(ValueError):
            s.put_downlink(CAB, kind, bad, version)
    assert s.latest_downlink(CAB, "config") == m2


def test_commands_queue_publish_and_poll(cab_store):
    s = cab_store
    m1 = s.add_command(CAB, "reboot", {})
    m2 = s.add_command(CAB, "open_door", {"door": "D1"})
    s.add_command(CAB, "old", {}, ttl_s=-1)  # expired: never polled
    s.add_signed_command(CAB2, {"cmd_id": "forged", "cmd": "reboot", "args": {}})
    assert signing.verify_message(KEY, m1)
    pending = s.unpublished_commands()
    assert [(c, m["cmd"]) for _, c, m in pending] == [
        (CAB, "reboot"),
        (CAB, "open_door"),
        (CAB, "old"),
        (CAB2, "reboot"),
    ]
    s.mark_published(pending[0][0])
    assert [m["cmd"] for _, _, m in s.unpublished_commands()] == ["open_door", "old", "reboot"]
    assert s.commands_after(CAB, None) == [m1, m2]
    assert s.commands_after(CAB, m1["cmd_id"]) == [m2]
    done = rec("res", 1, "cmd_result", cmd_id=m1["cmd_id"], ok=True, detail="")
    up(s, (CAB, batch("b", done)))
    assert s.commands_after(CAB, None) == [m2]
    with pytest.raises(KeyError):
        s.add_command("nobody", "reboot", {})


def test_a_scan_opens_once(cab_store):
    s = cab_store
    m = s.scan_to_open(CAB, "n-1", "acc-9", 5000, 60)
    assert m["cmd"] == "session_authorized" and m["args"] == {
        "session": "n-1",
        "account": "acc-9",
        "limit_fen": 5000,
    }
    assert s.scan_used(CAB, "n-1") and not s.scan_used(CAB2, "n-1")
    assert s.scan_to_open(CAB, "n-1", "acc-other", 5000, 60) is None
    assert [x["cmd_id"] for _, _, x in s.unpublished_commands()] == [m["cmd_id"]]


def test_captures_are_idempotent_per_authorization(cab_store):
    s = cab_store
    s.add_authorization(CAB, "ss-1", 2000, "auth-1", "prov-1")
    s.add_authorization(CAB, "ss-2", 2000, "auth-2", None)
    s.add_authorization(CAB, "ss-1", 2000, "auth-1", "prov-1")  # told twice: one hold
    assert s.capture(CAB, "auth-1", 1500) == (200, {"ok": True})
    assert s.capture(CAB, "auth-1", 1500) == (200, {"ok": True})  # again: same answer
    assert s.capture(CAB, "auth-1", 1200)[0] == 409
    assert s.capture(CAB2, "auth-1", 1500)[0] == 404  # not that cabinet's
    assert s.capture(CAB, "nope", 1)[0] == 404
    assert s.capture(CAB, "auth-2", 2001)[0] == 400
    assert s.capture(CAB, "auth-2", 0) == (200, {"ok": True})
    got = {p["auth_id"]: (p["captured_fen"], p["state"], p["provider_ref"]) for p in s.payments()}
    assert got == {"auth-1": (1500, "captured", "prov-1"), "auth-2": (0, "released", None)}


def test_cabinets_keys_and_presence(cab_store):
    s = cab_store
    assert s.keys() == {CAB: KEY, CAB2: KEY}
    s.add_cabinet(CAB, b"\x01" * 32)  # a new key; name and location kept
    assert s.keys()[CAB] == b"\x01" * 32 and s.cabinet(CAB)["name"] == "人民医院专柜"
    s.set_presence(CAB, True, "2026-11-28T00:00:00.000Z", "1.4.0")
    s.set_presence(CAB, False, "2026-11-28T00:00:01.000Z", "")  # a will names no version
    c = s.cabinet(CAB)
    assert (c["online"], c["version"], c["status_at"]) == (
        False,
        "1.4.0",
        "2026-11-28T00:00:01.000Z",
    )
    s.touch(CAB)
    assert s.cabinet(CAB)["last_contact"] and s.cabinet("nobody") is None
    assert [c["id"] for c in s.cabinets()] == [CAB, CAB2]
