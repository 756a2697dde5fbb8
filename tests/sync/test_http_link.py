"""``sync.http_link`` and ``sync.payments`` alone: what each answer of the centre becomes, read
against a scripted centre on loopback (tests/sync/scripted_centre.py)."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from email.utils import format_datetime

import pytest

from kiosk import wire
from kiosk.payments import PaymentOffline
from sync.backoff import Backoff
from sync.http_link import (
    RETRY_AFTER_CAP_S,
    CentralBusy,
    CentralRefused,
    CentralUnreachable,
    ClockSkew,
    HttpLink,
    named_records,
    retry_after_s,
)
from sync.payments import HttpPaymentPort, capture_refusal_is_final
from tests.sync.conftest import CABINET, KEY
from tests.sync.scripted_centre import Reply, ScriptedCentre

NOW = 1_796_032_800.0
BATCH = wire.batch_json("b-1", [])
# integration.md's test vector: a good signature, of another body (a replayed answer's)
OTHER_BODY_SIG = "2bd29dc3fb9cdbc8418bf6d2935e2ae78c56cb94a749f6bf5e8adaefe840d040"


@pytest.fixture
def centre():
    with ScriptedCentre(KEY) as c:
        yield c


def link(centre: ScriptedCentre) -> HttpLink:
    return HttpLink(centre.url, CABINET, KEY, timeout_s=2)


def refusal(centre: ScriptedCentre, reply: Reply) -> CentralRefused:
    centre.then("batches", reply)
    with pytest.raises(CentralRefused) as e:
        link(centre).post_batch("b-1", BATCH)
    return e.value


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        (None, None),
        ("5", 5.0),
        (" 12 ", 12.0),
        ("0", 0.0),
        ("301", RETRY_AFTER_CAP_S),
        ("9" * 5000, RETRY_AFTER_CAP_S),  # no int() of 5000 digits
        (format_datetime(datetime.fromtimestamp(NOW + 30, UTC), usegmt=True), 30.0),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),  # already past
        (format_datetime(datetime.fromtimestamp(NOW + 86400, UTC), usegmt=True), 300.0),
        ("soon", None),
        ("-3", None),
        ("1.5", None),
        ("", None),
    ],
)
def test_retry_after_is_seconds_or_an_http_date_within_the_cap(header, seconds):
    assert retry_after_s(header, NOW) == seconds


def test_the_wait_the_centre_asks_for_gets_a_little_jitter_and_never_spins():
    b = Backoff(0.5, 60, random.Random(1))
    waits = [b.after(10) for _ in range(50)]
    assert all(10 <= w <= 11 for w in waits) and len(set(waits)) > 1
    assert all(0.25 <= b.after(0) <= 0.3 for _ in range(20))  # Retry-After: 0 is base/2
    assert b.failures == 0  # the centre said when: no failure counted
    assert 0.25 <= b.after(None) <= 0.5 and b.failures == 1  # not said: the usual backoff


def test_429_and_503_are_busy_with_their_retry_after(centre):
    centre.then("batches", Reply(429, {"error": "slow down"}, {"Retry-After": "7"}))
    centre.then("batches", Reply(503, {"error": "maintenance"}, signed=False))
    centre.then("batches", Reply(429, None, {"Retry-After": "later"}))
    waits = []
    for _ in range(3):
        with pytest.raises(CentralBusy) as e:
            link(centre).post_batch("b-1", BATCH)
        waits.append(e.value.retry_after)
    assert waits == [7.0, None, None]


def test_a_500_or_no_json_is_unreachable_not_busy(centre):
    centre.then("batches", Reply(500, {"error": "boom"}), Reply(400, None))
    for _ in range(2):
        with pytest.raises(CentralUnreachable) as e:
            link(centre).post_batch("b-1", BATCH)
        assert type(e.value) is CentralUnreachable


def test_a_401_clock_skew_says_the_centres_time(centre):
    centre.then(
        "batches",
        Reply(401, {"error": "clock skew", "detail": {"centre_time": NOW}}),
        Reply(401, {"error": "clock skew", "detail": {"centre_time": 1e300}}),
        Reply(401, {"error": "clock skew"}),
    )
    times = []
    for _ in range(3):
        with pytest.raises(ClockSkew) as e:
            link(centre).post_batch("b-1", BATCH)
        times.append(e.value.centre_time)
    assert times == [NOW, None, None]


def test_other_401s_are_refusals(centre):
    e = refusal(centre, Reply(401, {"error": "bad signature"}))
    assert (e.status, e.error, e.signed) == (401, "bad signature", True)
    assert named_records(e) == ()


@pytest.mark.parametrize(
    ("detail", "named"),
    [
        ({"rejected": [{"id": "r1", "why": "qty over 999"}]}, [("r1", "qty over 999")]),
        ({"rejected": [{"id": "r1"}, {"why": "no id"}, {"id": 7}]}, [("r1", "bad record")]),
        ({"ids": ["r1", "r2"]}, [("r1", "bad record"), ("r2", "bad record")]),
        (["r1", {"id": "r2", "why": "w"}], [("r1", "bad record"), ("r2", "w")]),
        ("the batch is not an object", []),
        ({"rejected": "r1"}, []),
        (None, []),
    ],
)
def test_a_signed_400_or_422_names_its_records(centre, detail, named):
    for status in (400, 422):
        e = refusal(centre, Reply(status, {"error": "bad record", "detail": detail}))
        assert [(r.id, r.why) for r in named_records(e)] == named


def test_a_refusal_names_nothing_unsigned_wrongly_signed_or_not_400(centre):
    detail = {"error": "bad record", "detail": {"rejected": [{"id": "r1", "why": "w"}]}}
    assert named_records(refusal(centre, Reply(400, detail, signed=False))) == ()
    assert named_records(refusal(centre, Reply(400, detail, key=bytes(32)))) == ()
    assert named_records(refusal(centre, Reply(409, detail))) == ()
    assert named_records(refusal(centre, Reply(403, detail))) == ()


def test_an_ack_counts_only_signed_with_the_cabinets_key(centre):
    answer = {"batch": "b-1", "stored": ["r1"], "rejected": [{"id": "r2", "why": "w"}]}
    centre.then(
        "batches",
        Reply(200, answer, signed=False),
        Reply(200, answer, key=bytes(32)),
        Reply(200, answer, {"X-Timestamp": "1796032800", "X-Signature": OTHER_BODY_SIG}, False),
        Reply(200, answer),
    )
    for _ in range(3):
        with pytest.raises(CentralUnreachable, match="not taken"):
            link(centre).post_batch("b-1", BATCH)
    ack = link(centre).post_batch("b-1", BATCH)
    assert ack == wire.Ack("b-1", ("r1",), (wire.Rejected("r2", "w"),))


def test_final_capture_refusals():
    final = [(404, "unknown auth_id"), (409, "already captured"), (400, "amount over the hold")]
    not_final = [
        (404, "unknown cabinet"),
        (404, "no such path"),
        (400, "capture needs {auth_id, amount_fen}"),
        (401, "bad signature"),
        (403, "forbidden"),
        (422, "idempotency key reused"),
    ]
    assert all(capture_refusal_is_final(CentralRefused(s, e)) for s, e in final)
    assert not any(capture_refusal_is_final(CentralRefused(s, e)) for s, e in not_final)


def test_the_payment_port_keeps_a_capture_unless_the_answer_is_final(centre):
    port = HttpPaymentPort(link(centre))
    centre.then(
        "capture",
        Reply(429, {"error": "slow down"}, {"Retry-After": "1"}),
        Reply(503, None),
        Reply(401, {"error": "clock skew", "detail": {"centre_time": NOW}}),
        Reply(401, {"error": "bad signature"}),
        Reply(404, {"error": "unknown cabinet"}),
        Reply(409, {"error": "already captured", "detail": 100}),
        Reply(404, {"error": "unknown auth_id"}),
        Reply(200, {"ok": True}),
    )
    for _ in range(5):
        with pytest.raises(PaymentOffline):
            port.capture("a-1", 4500)
    assert [port.capture("a-1", 4500) for _ in range(3)] == [False, False, True]


def test_authorize_on_a_busy_or_skewed_centre_is_offline(centre):
    port = HttpPaymentPort(link(centre))
    centre.then(
        "authorize",
        Reply(429, {"error": "slow down"}),
        Reply(401, {"error": "clock skew"}),
        Reply(401, {"error": "bad signature"}),
    )
    for _ in range(2):
        with pytest.raises(PaymentOffline):
            port.authorize("s-1", "1" * 18, 100)
    refused = port.authorize("s-1", "1" * 18, 100)
    assert not refused.ok and refused.why == "bad signature"
