"""An answer from the payment port is contact with the centre: the sync screen's last contact."""

from __future__ import annotations

from kiosk import clock
from kiosk import intents as I
from kiosk.payments import FakePaymentPort

PAY_CODE = "134567890123456789"  # WeChat (prefix 13), 18 digits


def last_contact(r) -> str | None:
    rows = r.query("SELECT value FROM settings WHERE key = 'last_contact'")
    return rows[0][0] if rows else None


def test_a_payment_answer_notes_contact_with_the_centre(rig):
    r = rig(payments=FakePaymentPort(declined={PAY_CODE}))  # a refusal is an answer too
    before = clock.now_iso()
    r.ctl.submit(I.Scan(PAY_CODE, door="D1"))
    r.wait(lambda s: s.refusal == "payment_declined", what="refusal")
    last = last_contact(r)
    assert last is not None and last >= before
    r.wait(lambda s: s.sync.last_contact == last, what="the sync screen's last contact")


def test_no_answer_is_no_contact(rig):
    r = rig(payments=FakePaymentPort(offline=True))
    r.ctl.submit(I.Scan(PAY_CODE, door="D1"))
    r.wait(lambda s: s.refusal == "network_down", what="refusal")
    assert last_contact(r) is None
