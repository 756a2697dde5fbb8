"""Every record the cabinet's code writes into its outbox passes the contract: an older cabinet
must never lose a record to a newer centre. The real controller (with the in-test hardware fakes
of tests/controller) and the real sync agent write into a real SQLite database; what lands in
the outbox is sent through the pump's own page reader and decoded as the centre decodes it."""

from __future__ import annotations

import json
import time

from kiosk import contract, signing, wire
from kiosk import intents as I
from kiosk.payments import FakePaymentPort
from sync import apply, store
from sync.agent import Agent, Settings
from tests.controller.conftest import EXAMPLES, KEY, OPERATOR_CARD, PIN, STAFF, Rig
from tests.sync.conftest import wait_for

HONEY = "hs-honey-500g"
PAY_CODE = "134567890123456789"  # WeChat (prefix 13), 18 digits


def outbox_types(db) -> list[str]:
    return [t for (t,) in db.execute("SELECT type FROM outbox ORDER BY seq").fetchall()]


def command(cmd: str, args: dict, ttl: float = 600) -> dict:
    return signing.sign_message(
        KEY,
        {
            "cmd_id": wire.uuid7(),
            "cmd": cmd,
            "args": args,
            "expires_at": wire.iso(time.time() + ttl),
        },
    )


def drive_the_controller(r: Rig) -> str:
    """A card sale, a refund and a restock by the operator, a forced door: the sale's id."""
    assert r.ctl.submit(I.Scan(STAFF, door="D1")).ok
    r.wait_state("open")
    r.scales.take("D1-S2", HONEY, 2)
    r.locks.push(*r.door("D1"))
    r.wait(lambda s: s.receipt is not None, what="receipt")
    r.ctl.submit(I.DismissReceipt())
    sale = r.query("SELECT id FROM sales")[0][0]
    # a payment code: no account, captured
    assert r.ctl.submit(I.Scan(PAY_CODE, door="D1")).ok
    r.wait_state("open")
    r.scales.take("D1-S3", "hs-tea-100g")
    r.locks.push(*r.door("D1"))
    r.wait(lambda s: s.receipt is not None, what="receipt")
    r.ctl.submit(I.DismissReceipt())

    assert r.ctl.submit(I.OperatorLogin(card=OPERATOR_CARD, pin=PIN)).ok
    refund = I.Refund(sale, items=(I.RefundItem(HONEY, 1),), reason="jar cracked 罐子裂了")
    assert r.ctl.submit(refund).ok
    assert r.ctl.submit(I.OpenDoorForRestock("D1")).ok
    r.wait(lambda s: s.restock is not None, what="restock lanes")
    r.scales.put("D1-S2", HONEY, 2)
    assert r.ctl.submit(I.ConfirmCounts("D1", (I.LaneCount("D1-S2", HONEY, 7),))).ok
    r.locks.push(*r.door("D1"))
    r.wait(lambda s: s.session is None, what="restock recorded")
    r.ctl.submit(I.OperatorLogout())

    r.locks.force(*r.door("D2"))
    r.wait(lambda s: any(a.kind == "door_forced" for a in s.alarms), what="alarm")
    return sale


def drive_the_agent(r: Rig, sale: str) -> None:
    """Commands and downlinks from the centre, telemetry and events of the agent."""
    db = store.open_db(r.db_path)
    try:
        now = time.time()
        # a refund the controller runs: an adjustment and a cmd_result
        refund = command("refund", {"sale": sale, "amount_fen": 100, "reason": "goodwill"})
        assert apply.handle_command(db, KEY, json.dumps(refund).encode(), now).applied
        wait_for(lambda: outbox_types(db).count("adjustment") == 2, 20, "the second adjustment")
        wait_for(lambda: "cmd_result" in outbox_types(db), 20, "its cmd_result")
        # one the agent applies, and one refused (an event and a failed cmd_result)
        assert apply.handle_command(
            db, KEY, command("set_price", {"sku": HONEY, "price_fen": 7000}), now
        ).applied
        assert not apply.handle_command(db, KEY, command("reboot", {}, ttl=-5), now).applied
        # downlinks: each applied one goes up as `applied`
        catalog = json.loads((EXAMPLES / "catalog.json").read_text(encoding="utf-8"))
        catalog["version"] = 2
        for kind, payload in (
            ("catalog", catalog),
            ("config", {"door_open_alarm_s": 90, "unlock_timeout_s": 7.5}),
            ("accounts", [{"account": "0" * 32, "name": "王医生", "status": "active"}]),
        ):
            message = signing.sign_message(KEY, {"version": 2, kind: payload})
            outcome = apply.handle_down(db, KEY, kind, json.dumps(message).encode())
            assert outcome is not None and outcome.applied, outcome
        # the agent's own records
        agent = Agent(Settings("QH-0001", KEY, name="卫生室 clinic", location="青海"), r.db_path)
        try:
            agent.send_telemetry()
        finally:
            agent.close()
        store.event(db, "storage low", {"free_mb": 12.5}, severity="alarm")
        with store.tx(db):
            store.add_event(db, "dead letter", {"record": wire.uuid7(), "why": "test"})
    finally:
        db.conn.close()


def test_every_record_the_cabinet_writes_passes_the_contract(tmp_path):
    r = Rig(tmp_path, payments=FakePaymentPort()).start()
    try:
        drive_the_agent(r, drive_the_controller(r))
    finally:
        r.stop()
    db = store.open_db(r.db_path)
    try:
        page = store.next_page(db, 0, 10_000, 100_000_000)
        rows = db.execute("SELECT id, type, body FROM outbox ORDER BY seq").fetchall()
    finally:
        db.conn.close()
    assert page is not None and len(page.records_json) == len(rows)
    b = contract.decode_batch(wire.batch_json(wire.uuid7(), page.records_json))
    assert b.rejected == () and b.dropped == 0
    assert [(x.id, x.type, x.body) for x in b.records] == [
        (rid, t, json.loads(body)) for rid, t, body in rows
    ]
    assert {x.type for x in b.records} == set(wire.RECORD_TYPES)
    payments = [x.body["payment"] for x in b.records if x.type == "sale"]
    assert [(p["method"], p["status"]) for p in payments] == [
        ("card", "deferred"),
        ("payment_code", "captured"),
    ]
