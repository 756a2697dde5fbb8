"""The pump's pages and the centre's batch storage: the fast paths give the contract's bytes."""

from __future__ import annotations

import hashlib
import json

from central import migrate
from central.store import BatchAnswer, Store
from kiosk import contract, wire
from kiosk import db as kdb
from sync import store
from tests.sync.conftest import sale_body

BODY = {"items": [{"sku": "黑木耳-250g", "qty": 2}], "note": 'say "hi"\n', "total_fen": 3600}


def _backlog(path, n: int) -> None:
    db = kdb.connect(path)
    kdb.migrate(db)
    with kdb.transaction(db):
        for i in range(n):
            kdb.outbox_append(db, "sale", {**BODY, "i": i})
    db.conn.close()


def test_page_texts_are_the_records_as_the_contract_writes_them(tmp_path):
    _backlog(tmp_path / "k.db", 5)
    db = store.open_db(tmp_path / "k.db")
    page = store.next_page(db, 0, 10, 1_000_000)
    assert page is not None and len(page.span.ids) == 5
    rows = db.execute("SELECT id, seq, type, at, body FROM outbox ORDER BY seq").fetchall()
    assert page.records_json == tuple(wire.record_json(wire.Record(*r)) for r in rows)
    assert page.span.last_seq == rows[-1][1]
    parsed = json.loads(wire.batch_json("b", page.records_json))
    assert parsed["records"][0]["body"]["items"][0]["sku"] == "黑木耳-250g"


def test_page_stays_within_max_bytes_but_one_record_always_goes(tmp_path):
    _backlog(tmp_path / "k.db", 20)
    db = store.open_db(tmp_path / "k.db")
    one = len(store.next_page(db, 0, 1, 1_000_000).records_json[0].encode())
    page = store.next_page(db, 0, 20, 64 + 3 * (one + 1))
    assert len(page.span.ids) == 3
    assert len(wire.batch_json(wire.uuid7(), page.records_json)) <= 64 + 3 * (one + 1)
    assert len(store.next_page(db, 0, 20, 10).span.ids) == 1
    assert store.next_page(db, 10**9, 20, 10) is None


def test_centre_stores_each_id_once_with_the_body_sent(tmp_path):
    """A page as the pump sends it, read by the shared decoder and stored by the centre."""
    path = tmp_path / "k.db"
    db = kdb.connect(path)
    kdb.migrate(db)
    with kdb.transaction(db):
        for i in range(4):
            kdb.outbox_append(db, "sale", {**sale_body(i), "note": 'say "hi"\n'})
    db.conn.close()
    db = store.open_db(path)
    page = store.next_page(db, 0, 10, 1_000_000)
    bad = '{"id":"bad-1","seq":9,"type":"sale","at":"yesterday","body":{}}'
    raw = wire.batch_json("b1", (*page.records_json, page.records_json[0], bad))
    migrate.upgrade(str(tmp_path / "c.db"))
    central = Store(tmp_path / "c.db")
    central.add_cabinet("QH-0001", b"k" * 32)

    def stored(raw: bytes) -> BatchAnswer:
        digest = hashlib.sha256(raw).hexdigest()
        return central.store_batches([("QH-0001", contract.decode_batch(raw), digest)])[0]

    answer = stored(raw)
    assert answer.stored == page.span.ids  # the one sent twice is stored and named once
    assert [r.id for r in answer.rejected] == ["bad-1"]
    again = wire.batch_json("b2", page.records_json[:2])
    assert stored(again).stored == page.span.ids[:2]
    stats = central.stats()
    assert (stats.records, stats.duplicates) == (4, 3)
    kept = central.records("QH-0001")
    assert [r["id"] for r in kept] == list(page.span.ids)
    sent = db.execute("SELECT body FROM outbox WHERE id = ?", (kept[0]["id"],)).fetchone()[0]
    assert kept[0]["body"] == json.loads(sent)
    central.close()


def test_acks_mark_delivered_only_the_records_they_name(tmp_path):
    _backlog(tmp_path / "k.db", 6)
    db = store.open_db(tmp_path / "k.db")
    first = store.next_page(db, 0, 3, 1_000_000).span
    second = store.next_page(db, first.last_seq, 3, 1_000_000).span
    sent = {"b1": first, "b2": second}
    whole = wire.Ack("b1", first.ids, ())
    part = wire.Ack("b2", second.ids[:1], (wire.Rejected(second.ids[2], "bad total"),))
    assert store.mark_acked(db, [whole, part], sent) == (4, 1)
    states = dict(db.execute("SELECT id, state FROM outbox").fetchall())
    assert [states[i] for i in (*first.ids, *second.ids)] == [
        *["delivered"] * 4,
        "pending",
        "dead",
    ]
    assert store.mark_acked(db, [whole], sent) == (0, 0)  # a duplicate ack counts nothing
    pending = db.execute("SELECT id, type FROM outbox WHERE state = 'pending'").fetchall()
    assert pending[0] == (second.ids[1], "sale") and [t for _, t in pending[1:]] == ["event"]
