"""End to end: the simulated cabinet on real ptys, the real drivers, the controller."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kiosk import intents as I
from kiosk import signing
from kiosk.payments import FakePaymentPort

from .conftest import BLOCKED, KEY, OPERATOR_CARD, PIN, STAFF, prepare_db

PAY_CODE = "284567890123456789"  # Alipay (prefix 28)


class Cab:
    """SimulatedCabinet + drivers + Controller, with snapshot waits."""

    def __init__(self, sim, control, payments=None):
        from kiosk.cli import open_devices
        from kiosk.controller import Controller

        self.sim, self.c, self.cfg = sim, control, sim.config
        self.db_path = self.cfg.database
        prepare_db(self.db_path, self.cfg)
        locks, scales, scanner = open_devices(self.cfg)
        self.ctl = Controller(self.cfg, self.db_path, locks, scales, scanner, payments, key=KEY)
        self.ctl.start()

    def wait(self, pred, timeout=12.0, what="condition"):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            s = self.ctl.snapshot()
            if pred(s):
                return s
            time.sleep(0.02)
        s = self.ctl.snapshot()
        raise AssertionError(f"timed out waiting for {what}: state {s.state}, refusal {s.refusal}")

    def open_session(self, code=STAFF, door="D1"):
        self.wait(lambda s: s.state == "idle", what="idle")
        res = self.ctl.submit(I.Scan(code, door=door))
        assert res.ok, res
        self.wait(lambda s: s.state == "open", what="door unlatched")
        assert self.c.pull(door)

    def close(self, door="D1"):
        self.c.push(door)

    def receipt(self):
        return self.wait(lambda s: s.receipt is not None, what="receipt").receipt

    def rows(self, sql, args=()):
        from kiosk import db

        d = db.connect(self.db_path)
        try:
            with db.transaction(d):  # writes (an inbox row) commit; reads see the latest
                return d.conn.execute(sql, args).fetchall()
        finally:
            d.close()


@pytest.fixture
def sim_config_path(tmp_path: Path) -> Path:
    """The example cabinet with a door-open alarm after 4 s (the default is 2 minutes)."""
    from tests.conftest import write_sim_config

    return write_sim_config(
        tmp_path,
        {
            "door_open_alarm_s = 120": "door_open_alarm_s = 4",
            "settle_timeout_s = 8": "settle_timeout_s = 3",
        },
    )


@pytest.fixture
def cab(sim_cabinet, sim_control):
    made = []

    def build(**kw):
        c = Cab(sim_cabinet, sim_control, **kw)
        made.append(c)
        return c

    yield build
    for c in made:
        c.ctl.stop()


def test_card_take_several_from_several_shelves(cab):
    c = cab()
    c.open_session()
    c.c.take("D1-S1", "zr-rice-5kg")
    c.c.take("D1-S3", "hs-tea-100g", 2)
    c.close()
    r = c.receipt()
    assert {(i.sku, i.qty) for i in r.items} == {("zr-rice-5kg", 1), ("hs-tea-100g", 2)}
    assert r.total_fen == sum(i.line_fen for i in r.items)
    assert c.rows("SELECT count FROM inventory WHERE sku = 'hs-tea-100g'") == [(6,)]


def test_payment_code_through_the_scanner(cab):
    port = FakePaymentPort()
    c = cab(payments=port)
    c.wait(lambda s: s.state == "idle")
    c.c.scan(PAY_CODE)
    c.wait(lambda s: s.state == "open", what="door open after a scanned payment code")
    c.c.pull("D1")
    c.c.take("D1-S2", "hs-honey-500g")
    c.close()
    r = c.receipt()
    assert r.method == "payment_code" and r.payment_status == "captured"
    assert list(port.captured.values()) == [6800]


def test_session_authorized_inbox_row_opens_the_door(cab):
    c = cab()
    c.wait(lambda s: s.state == "idle")
    cmd = {
        "cmd_id": "c-77",
        "cmd": "session_authorized",
        "args": {"session": "s-phone-1", "account": "acc-9", "limit_fen": 20000},
    }
    c.rows(
        "INSERT INTO inbound (id, kind, ref, received_at, payload)"
        " VALUES ('in-1', 'cmd', 'c-77', '2026-01-01T00:00:00.000Z', ?)",
        (json.dumps(cmd),),
    )
    c.wait(lambda s: s.state == "open", what="open from the inbox")
    c.c.pull("D1")
    c.c.take("D1-S3", "zr-chili-sauce")
    c.close()
    r = c.receipt()
    assert r.session == "s-phone-1" and r.method == "scan_to_open"
    assert c.rows("SELECT status FROM inbound WHERE id = 'in-1'") == [("done",)]
    results = [
        json.loads(b) for (b,) in c.rows("SELECT body FROM outbox WHERE type = 'cmd_result'")
    ]
    assert results == [{"cmd_id": "c-77", "ok": True, "detail": "session s-phone-1"}]


def test_move_between_shelves_and_foreign_object(cab):
    c = cab()
    c.open_session()
    c.c.take("D1-S2", "hs-honey-500g")
    c.c.put("D1-S3", "hs-honey-500g")
    c.c.foreign("D1-S1", 333)
    c.close()
    snap = c.wait(
        lambda s: (
            (s.state in ("cancelled", "settled") and s.session is None) or s.state == "cancelled"
        ),
        what="settled",
    )
    assert c.rows("SELECT COUNT(*) FROM sales") == [(0,)]
    kinds = {a.kind for a in c.wait(lambda s: len(s.alarms) >= 2, what="alarms").alarms}
    assert {"foreign_object", "misplaced_item"} <= kinds
    assert snap is not None


def test_scale_fault_mid_session_is_never_charged(cab):
    c = cab()
    c.open_session()
    c.c.take("D1-S2", "hs-honey-500g")
    c.c.fault("D1-S2", "silent")
    c.close()
    c.wait(lambda s: any(a.kind == "scale_fault" for a in s.alarms), timeout=20, what="fault alarm")
    assert c.rows("SELECT COUNT(*) FROM sale_items WHERE sku = 'hs-honey-500g'") == [(0,)]


def test_door_left_open_and_door_forced(cab):
    c = cab()
    c.open_session()
    c.wait(lambda s: s.session is not None and s.session.door_open_too_long, what="left open")
    c.close()
    c.wait(lambda s: s.state in ("cancelled", "settled"), what="end")
    c.c.force("D2")
    s = c.wait(lambda s: any(a.kind == "door_forced" for a in s.alarms), what="forced")
    assert {a.kind for a in s.alarms} >= {"door_left_open", "door_forced"}


def test_blocked_card_refused(cab):
    c = cab()
    c.wait(lambda s: s.state == "idle")
    assert c.ctl.submit(I.Scan(BLOCKED)).code == "card_blocked"


def test_operator_restock_calibrate_refund_and_lockout(cab):
    c = cab()
    c.wait(lambda s: s.state == "idle")
    # a sale to refund later
    c.open_session()
    c.c.take("D1-S1", "zr-rice-2.5kg")
    c.close()
    sale = c.receipt().sale
    c.ctl.submit(I.DismissReceipt())
    assert c.ctl.submit(I.Refund(sale)).code == "not_logged_in"
    # four bad PINs then the right one works; five bad lock it
    for _ in range(4):
        assert c.ctl.submit(I.OperatorLogin(card=OPERATOR_CARD, pin="0000")).code == "bad_pin"
    assert c.ctl.submit(I.OperatorLogin(card=OPERATOR_CARD, pin=PIN)).ok
    assert c.ctl.submit(
        I.Refund(sale, items=(I.RefundItem("zr-rice-2.5kg", 1),), reason="damaged")
    ).ok
    assert c.ctl.submit(I.Refund(sale)).code == "refund_too_large"
    adj = c.rows("SELECT amount_fen, sale FROM adjustments")
    assert adj == [(2400, sale)]
    # restock D1: two bags of rice in
    assert c.ctl.submit(I.OpenDoorForRestock("D1")).ok
    c.wait(lambda s: s.state == "open", what="restock door")
    c.c.pull("D1")
    c.c.stock("D1-S1", "zr-rice-5kg", 6)
    snap = c.wait(lambda s: s.restock is not None, what="restock lanes")
    assert {ln.sku for ln in snap.restock.lanes} >= {"zr-rice-5kg", "hs-honey-500g"}
    assert c.ctl.submit(I.ConfirmCounts("D1", (I.LaneCount("D1-S1", "zr-rice-5kg", 6),))).ok
    c.close()
    c.wait(lambda s: s.state == "settled", what="restock done")
    assert c.rows("SELECT count FROM inventory WHERE sku = 'zr-rice-5kg'") == [(6,)]
    assert c.rows(
        "SELECT COUNT(*) FROM outbox WHERE type = 'inventory' AND body LIKE '%restock%'"
    ) == [(1,)]
    # calibration
    assert c.ctl.submit(I.Calibrate("D2-S4", "zero")).ok
    load = c.c.command("state")["shelves"]["D2-S4"]["load_g"]
    c.c.stock("D2-S4", "hs-fish-150g", 12)  # six more tins: a known load on the zeroed shelf
    known = round(c.c.command("state")["shelves"]["D2-S4"]["load_g"] - load)
    time.sleep(0.5)
    assert c.ctl.submit(I.Calibrate("D2-S4", "known", known)).ok
    c.wait(lambda s: abs((s.shelves[-1].grams or 0) - known) < 10, what="calibrated reading")
    assert [k for (k,) in c.rows("SELECT kind FROM calibrations ORDER BY at")] == ["zero", "gain"]
    actions = {a for (a,) in c.rows("SELECT action FROM audit")}
    assert {"login", "refund", "restock", "calibrate_zero", "calibrate_known"} <= actions
    c.ctl.submit(I.OperatorLogout())
    for _ in range(5):
        c.ctl.submit(I.OperatorLogin(card=OPERATOR_CARD, pin="1111"))
    assert c.ctl.submit(I.OperatorLogin(card=OPERATOR_CARD, pin=PIN)).code == "locked_out"
    assert signing.card_account(KEY, OPERATOR_CARD)


def test_uncertain_basket_confirmed_through_kiosk_ctl(cab, tmp_path: Path):
    from kiosk.control import ControlServer

    c = cab()
    sock = tmp_path / "ctl.sock"
    server = ControlServer(c.ctl, sock).start()
    try:
        c.open_session()
        # a hand still on the shelf when the door shuts: no clear reading by the settle
        # timeout, so the customer is asked (never silently charged the dearer reading)
        c.c.take("D1-S2", "hs-honey-500g")
        c.c.lean("D1-S2", 300, 8)
        c.close()
        snap = c.wait(lambda s: s.state not in ("open", "settling"), timeout=20, what="verdict")
        assert snap.state == "confirming"
        totals = [b.total_fen for b in snap.candidates]
        assert totals == sorted(totals) and len(totals) >= 2

        def ctl(*words):
            out = subprocess.run(
                [sys.executable, "-m", "kiosk", "ctl", "--control", str(sock), *words],
                capture_output=True,
                text=True,
                timeout=30,
            )
            return json.loads(out.stdout)

        state = ctl("state")
        assert (
            state["snapshot"]["state"] == "confirming" and len(state["snapshot"]["candidates"]) >= 2
        )
        reply = ctl("confirm", "1")
        assert reply["ok"], reply
        c.wait(lambda s: s.state not in ("confirming",), what="after confirm")
        sessions = c.rows("SELECT outcome, finished_at IS NOT NULL FROM sessions")
        assert sessions[-1][1] == 1 and sessions[-1][0] in ("sold", "nothing_taken")
    finally:
        server.stop()
