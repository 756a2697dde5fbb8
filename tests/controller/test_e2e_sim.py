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
from kiosk import snapshot as S
from kiosk.payments import FakePaymentPort

from .conftest import BLOCKED, KEY, OPERATOR_CARD, PIN, STAFF, prepare_db

PAY_CODE = "284567890123456789"  # Alipay (prefix 28)


class Cab:
    """SimulatedCabinet + drivers + Controller, with snapshot waits."""

    def __init__(self, sim, control, payments=None, **controller_kw):
        from kiosk.cli import open_devices
        from kiosk.controller import Controller
        from kiosk.controller.device_health import HealthRelay

        self.sim, self.c, self.cfg = sim, control, sim.config
        self.db_path = self.cfg.database
        prepare_db(self.db_path, self.cfg)
        health = HealthRelay()  # wired as ``kiosk run`` wires it
        locks, scales, scanner = open_devices(self.cfg, health)
        self.ctl = Controller(
            self.cfg, self.db_path, locks, scales, scanner, payments, key=KEY, **controller_kw
        )
        health.attach(self.ctl.on_health)
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
        self.pull(door)

    def pull(self, door="D1", what="door open"):
        """The customer holds the handle, so the door swings open the moment the lock lets go
        (a pulsed latch nobody pulls relocks after 3 s, which a loaded machine can miss)."""
        end = time.monotonic() + 12.0
        while not self.c.pull(door):
            assert time.monotonic() < end, "the lock never let go"
            time.sleep(0.02)
        return self.wait(lambda s: s.state == "open", what=what)

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


# Shelf D2-S3 holding products whose sums collide: 2 x candy (530 g, 36.00) weigh what
# radish + pepper (530 g, 41.00) weigh.
COLLIDING = {
    'lanes = [{sku = "bo-coco-powder", count = 6}, {sku = "hs-radish-400g", count = 6}]': (
        'lanes = [{sku = "bo-coco-powder", count = 6}]'
    ),
    'lanes = [{sku = "bo-coco-candy", count = 8}, {sku = "zr-pepper-powder", count = 8}]': (
        'lanes = [{sku = "bo-coco-candy", count = 8}, {sku = "hs-radish-400g", count = 6},'
        ' {sku = "zr-pepper-powder", count = 8}]'
    ),
}
CANDY, RADISH, PEPPER = "bo-coco-candy", "hs-radish-400g", "zr-pepper-powder"


@pytest.fixture
def sim_config_path(tmp_path: Path, request) -> Path:
    """The example cabinet with a door-open alarm after 4 s (the default is 2 minutes);
    a test's ``indirect`` parameter adds more replacements."""
    from tests.conftest import write_sim_config

    return write_sim_config(
        tmp_path,
        {
            "door_open_alarm_s = 120": "door_open_alarm_s = 4",
            "settle_timeout_s = 8": "settle_timeout_s = 3",
            **getattr(request, "param", {}),
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
    c.pull("D1", "door open after a scanned payment code")
    c.c.take("D1-S2", "hs-honey-500g")
    c.close()
    r = c.receipt()
    assert r.method == "payment_code" and r.payment_status == "captured"
    assert list(port.captured.values()) == [6800]


def test_session_authorized_inbox_row_opens_the_door(cab):
    c = cab()
    snap = c.wait(lambda s: s.state == "idle" and s.scan_url, what="idle with a code")
    prefix = f"http://127.0.0.1:8080/s/{c.cfg.cabinet.id}/"
    assert snap.scan_url.startswith(prefix)
    nonce = snap.scan_url.removeprefix(prefix)

    def authorized(row: str, cmd_id: str, session: str) -> None:
        cmd = {
            "cmd_id": cmd_id,
            "cmd": "session_authorized",
            "args": {"session": session, "account": "acc-9", "limit_fen": 20000},
        }
        c.rows(
            "INSERT INTO inbound (id, kind, ref, received_at, payload)"
            " VALUES (?, 'cmd', ?, '2026-01-01T00:00:00.000Z', ?)",
            (row, cmd_id, json.dumps(cmd)),
        )

    # a nonce this cabinet never showed opens nothing
    authorized("in-0", "c-76", "s-made-up")
    c.wait(lambda s: s.refusal == "code_expired", what="made-up code refused")
    authorized("in-1", "c-77", nonce)
    c.pull("D1", "open from the inbox")
    assert c.ctl.snapshot().scan_url is None  # the idle screen (and its code) is gone
    c.c.take("D1-S3", "zr-chili-sauce")
    c.close()
    r = c.receipt()
    assert r.session == nonce and r.method == "scan_to_open"
    assert c.rows("SELECT status FROM inbound WHERE id = 'in-1'") == [("done",)]
    c.ctl.submit(I.DismissReceipt())
    fresh = c.wait(lambda s: s.state == "idle" and s.scan_url, what="a new code").scan_url
    assert fresh != snap.scan_url
    # the same nonce again (a replayed or doubled command) is single-use: refused
    authorized("in-2", "c-78", nonce)
    c.wait(lambda s: c.rows("SELECT status FROM inbound WHERE id = 'in-2'") == [("done",)])
    results = [
        json.loads(b) for (b,) in c.rows("SELECT body FROM outbox WHERE type = 'cmd_result'")
    ]
    assert results == [
        {"cmd_id": "c-76", "ok": False, "detail": "code_expired"},
        {"cmd_id": "c-77", "ok": True, "detail": f"session {nonce}"},
        {"cmd_id": "c-78", "ok": False, "detail": "code_expired"},
    ]
    assert c.rows("SELECT COUNT(*) FROM sessions") == [(1,)]


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


def test_a_silent_transmitter_raises_an_alarm_without_a_session_and_its_return_is_noted(cab):
    c = cab(device_down_s=2.0)  # the real 10 s would only make the suite slower
    c.wait(lambda s: s.state == "idle", what="idle")
    c.c.fault("D1-S2", "silent")
    s = c.wait(lambda s: any(a.kind == "scale_fault" for a in s.alarms), timeout=30, what="alarm")
    assert [a.device for a in s.alarms if a.kind == "scale_fault"] == ["D1-S2"]
    c.c.clear("D1-S2")
    end = time.monotonic() + 30
    while not c.rows("SELECT 1 FROM events WHERE kind = 'device_recovered' AND device = 'D1-S2'"):
        assert time.monotonic() < end, "the recovery was never recorded"
        time.sleep(0.05)
    alarms = [(a.kind, a.device) for a in c.ctl.snapshot().alarms]
    assert ("scale_fault", "D1-S2") in alarms  # still open: the operator acknowledges it


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
    c.pull("D1", "restock door")
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
    res = c.ctl.submit(I.Calibrate("D2-S4", "known", known))
    assert res.ok
    # before: the zeroed shelf read the six tins' weight off by the gain error; after: on it
    assert abs(res.data["error_before_g"]) < known and abs(res.data["error_after_g"]) < 10
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

        state = ctl_cmd(sock, "state")
        assert (
            state["snapshot"]["state"] == "confirming" and len(state["snapshot"]["candidates"]) >= 2
        )
        reply = ctl_cmd(sock, "confirm", "1")
        assert reply["ok"], reply
        c.wait(lambda s: s.state not in ("confirming",), what="after confirm")
        sessions = c.rows("SELECT outcome, finished_at IS NOT NULL FROM sessions")
        assert sessions[-1][1] == 1 and sessions[-1][0] in ("sold", "nothing_taken")
    finally:
        server.stop()


def ctl_cmd(sock: Path, *words: str) -> dict:
    """``kiosk ctl --control SOCK WORDS...``, its JSON answer."""
    out = subprocess.run(
        [sys.executable, "-m", "kiosk", "ctl", "--control", str(sock), *words],
        capture_output=True,
        text=True,
        timeout=30,
    )
    return json.loads(out.stdout)


def take_radish_and_pepper(c: Cab, code: str) -> S.Snapshot:
    """A customer takes 1 radish + 1 pepper from D2-S3: as heavy as 2 candies."""
    c.open_session(code, door="D2")
    c.c.take("D2-S3", RADISH)
    c.c.take("D2-S3", PEPPER)
    c.close("D2")
    return c.wait(lambda s: s.state not in ("open", "settling"), timeout=20, what="verdict")


def baskets(snap: S.Snapshot) -> list[set[tuple[str, int]]]:
    return [{(i.sku, i.qty) for i in b.items} for b in snap.candidates]


@pytest.mark.parametrize("sim_config_path", [COLLIDING], indirect=True)
def test_ambiguous_basket_confirmed_through_kiosk_ctl_is_paid(cab, tmp_path: Path):
    from kiosk.control import ControlServer

    port = FakePaymentPort()
    c = cab(payments=port)
    sock = tmp_path / "ctl.sock"
    server = ControlServer(c.ctl, sock).start()
    try:
        idle = c.wait(lambda s: s.state == "idle" and s.planogram, what="idle")
        d2s3 = next(p for p in idle.planogram if p.shelf == "D2-S3")
        assert d2s3.door == "D2" and d2s3.skus == (CANDY, RADISH, PEPPER)
        assert [(ln.sku, ln.count) for ln in d2s3.lanes] == [(CANDY, 8), (RADISH, 6), (PEPPER, 8)]
        # the operator was warned, naming the products
        named = ("椰子糖 250g x2", "萝卜干", "白胡椒粉")
        assert any(all(n in w for n in named) for w in d2s3.warnings)
        assert any("Coconut candy 250 g x2" in w and "Dried radish" in w for w in d2s3.warnings_en)

        snap = take_radish_and_pepper(c, PAY_CODE)
        assert snap.state == "confirming", snap.state
        state = ctl_cmd(sock, "state")["snapshot"]
        assert state["state"] == "confirming"
        assert {(RADISH, 1), (PEPPER, 1)} in baskets(snap) and {(CANDY, 2)} in baskets(snap)
        assert [b.total_fen for b in snap.candidates][:2] == [3600, 4100]  # cheaper first
        right = baskets(snap).index({(RADISH, 1), (PEPPER, 1)})
        reply = ctl_cmd(sock, "confirm", str(right + 1))  # kiosk ctl counts from 1
        assert reply["ok"], reply
        r = c.receipt()
        assert {(i.sku, i.qty, i.unit_price_fen) for i in r.items} == {
            (RADISH, 1, 1500),
            (PEPPER, 1, 2600),
        }
        assert r.total_fen == 4100 and r.payment_status == "captured" and not r.review
        assert list(port.captured.values()) == [4100]
        sale = c.rows("SELECT total_fen, review, payment_status FROM sales")
        assert sale == [(4100, 0, "captured")]
        items = c.rows("SELECT sku, qty FROM sale_items ORDER BY sku")
        assert items == [(RADISH, 1), (PEPPER, 1)]
    finally:
        server.stop()


@pytest.mark.parametrize(
    "sim_config_path",
    [{**COLLIDING, "confirm_timeout_s = 60": "confirm_timeout_s = 2"}],
    indirect=True,
)
def test_ambiguous_basket_nobody_answers_charges_the_cheaper_and_flags_review(cab):
    c = cab()
    snap = take_radish_and_pepper(c, STAFF)
    assert snap.state == "confirming", snap.state
    r = c.wait(lambda s: s.receipt is not None, timeout=10, what="receipt").receipt
    assert {(i.sku, i.qty) for i in r.items} == {(CANDY, 2)}  # the cheaper reading
    assert r.total_fen == 3600 and r.review
    assert c.rows("SELECT total_fen, review FROM sales") == [(3600, 1)]
    s = c.wait(lambda s: s.sales.review, what="review list")
    assert s.sales.review == (r.sale,)
    (detail,) = s.sales.review_detail
    assert detail.id == r.sale and detail.total_fen == 3600 and detail.closed_at
    assert [(i.sku, i.qty, i.unit_price_fen, i.zh) for i in detail.items] == [
        (CANDY, 2, 1800, "椰子糖 250g")
    ]
    # staff refund one of the two candies from the review list
    assert c.ctl.submit(I.OperatorLogin(card=OPERATOR_CARD, pin=PIN)).ok
    assert c.ctl.submit(I.Refund(r.sale, items=(I.RefundItem(CANDY, 1),), reason="review")).ok
    s = c.wait(lambda s: s.sales.review_detail[0].refunded_fen == 1800, what="refund shown")


def test_restock_counts_come_from_the_weight(cab):
    c = cab()
    c.wait(lambda s: s.state == "idle")
    assert c.ctl.submit(I.OperatorLogin(card=OPERATOR_CARD, pin=PIN)).ok
    assert c.ctl.submit(I.OpenDoorForRestock("D1")).ok
    c.pull("D1", "restock door")
    c.c.put("D1-S2", "hs-honey-500g", 2)  # 6 -> 8, set down by hand (impact, then settling)

    def settled(s: S.Snapshot) -> bool:
        shelf = next(x for x in s.shelves if x.id == "D1-S2")
        lanes = {ln.sku: ln for ln in s.restock.lanes} if s.restock else {}
        honey = lanes.get("hs-honey-500g")
        return shelf.stable and honey is not None and honey.exact and honey.weighed == 8

    snap = c.wait(settled, timeout=15, what="the shelf settled on 8 honey")
    lanes = {ln.sku: ln for ln in snap.restock.lanes}
    assert lanes["bo-coconut-oil"].weighed == 4 and lanes["hs-honey-500g"].expected == 6
    # "confirm all": no count typed in, every lane keeps what the weight says
    assert c.ctl.submit(I.ConfirmCounts("D1")).ok
    shut = time.monotonic()
    c.close()
    c.wait(lambda s: s.state == "settled", what="restock recorded")
    # counts confirmed before the door shut: the operator (crate in arms) sees the restock end
    # at once, not after a sale's 10 s receipt
    c.wait(lambda s: s.restock is None and s.session is None, what="restock ended")
    assert time.monotonic() - shut < 3.0
    assert c.rows("SELECT sku, count FROM inventory WHERE shelf = 'D1-S2' ORDER BY sku") == [
        ("bo-coconut-oil", 4),
        ("hs-honey-500g", 8),
    ]
    assert c.rows("SELECT COUNT(*) FROM sales") == [(0,)]


def test_door_never_pulled_charges_nothing_and_latches(cab):
    c = cab()
    c.wait(lambda s: s.state == "idle")
    # the simulated lock releases its latch for 3 s; unlock_timeout_s is 10: nobody pulls
    assert c.c.command("state")["doors"]["D1"]["latched"] is True
    assert c.ctl.submit(I.Scan(STAFF, door="D1")).ok
    c.wait(lambda s: s.session is not None, what="session")
    end = c.wait(lambda s: s.state in ("cancelled", "idle"), timeout=20, what="session ended")
    assert end.refusal in (None, "door_not_pulled", "nothing_taken")
    assert c.rows("SELECT outcome FROM sessions") in ([("cancelled",)], [("nothing_taken",)])
    assert c.rows("SELECT COUNT(*) FROM sales") == [(0,)]
    assert c.c.command("state")["doors"]["D1"]["latched"] is True
    d1 = c.wait(lambda s: not s.doors[0].open, what="D1 shown latched").doors[0]
    assert d1.id == "D1" and d1.session is None
