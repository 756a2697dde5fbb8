"""The centre's HTTP side (central.http_app) served by a real uvicorn, on both database backends:
what a cabinet sends and what it gets back, signed; payments; the phone page; health, metrics
and the simulated centre's faults.

``running_centre`` and the signing helpers are shared with test_http_hostile.py.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests
import uvicorn

from central.faults import Faults
from central.http_app import HttpSettings, create_app
from central.metrics import Metrics
from central.payments import PaymentProvider, ScriptedProvider, UnconfiguredProvider
from central.phone import DEMO_ACCOUNT, NoPhoneLogin, PhoneLogin, TestLogin
from central.store import Store
from kiosk import signing, wire
from sync.http_link import CentralUnreachable, HttpLink
from tests.conftest import EXAMPLES
from tests.sync.conftest import sale_body, wait_for

# What does not depend on the database runs on SQLite only; the contract runs on both.
sqlite_only = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)

CAB = "QH-0001"
EXAMPLE_CATALOG = json.loads((EXAMPLES / "catalog.json").read_text("utf-8"))
KEY = bytes(range(32))
CAB2 = "QH-0002"
KEY2 = bytes(range(32, 64))


# -- a running centre ---------------------------------------------------------------------------
@dataclass
class Centre:
    url: str
    port: int
    store: Store
    metrics: Metrics
    faults: Faults | None
    stored_calls: list[int] = field(default_factory=list)

    def api(self, cabinet: str = CAB) -> str:
        return f"{self.url}/api/v1/cabinets/{cabinet}"


@contextmanager
def running_centre(
    store: Store,
    *,
    simulate: bool = True,
    settings: HttpSettings | None = None,
    payments: PaymentProvider | None = None,
    phone: PhoneLogin | None = None,
) -> Iterator[Centre]:
    """``create_app`` under a real uvicorn on a free loopback port, stopped afterwards."""
    for cab, key in ((CAB, KEY), (CAB2, KEY2)):
        store.add_cabinet(cab, key)
    metrics = Metrics()
    faults = Faults() if simulate else None
    # Bound here and handed to uvicorn: no other process can take the port in between.
    sock = socket.create_server(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    centre = Centre(f"http://127.0.0.1:{port}", port, store, metrics, faults)
    app = create_app(
        store,
        settings or HttpSettings(),
        simulate=simulate,
        payments=payments or (ScriptedProvider() if simulate else UnconfiguredProvider()),
        phone=phone or (TestLogin() if simulate else NoPhoneLogin()),
        faults=faults,
        metrics=metrics,
        on_stored=lambda: centre.stored_calls.append(1),
    )
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="test-central-http", daemon=True
    )
    thread.start()
    try:
        wait_for(lambda: server.started, 10, "uvicorn started")
        yield centre
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@pytest.fixture
def centre(store: Store) -> Iterator[Centre]:
    """A simulated centre (scripted payments, the test login, /admin/faults) on ``db_url``."""
    with running_centre(store) as c:
        yield c


# -- the cabinet's side -------------------------------------------------------------------------
def signed_headers(
    body: bytes = b"", cabinet: str = CAB, key: bytes = KEY, ts: int | None = None
) -> dict[str, str]:
    """What the cabinet sends with every request (sync/http_link.py)."""
    ts = int(time.time()) if ts is None else ts
    return {
        "X-Cabinet": cabinet,
        "X-Timestamp": str(ts),
        "X-Signature": signing.request_signature(key, ts, body),
    }


def record(seq: int, type: str = "event", body: dict[str, Any] | None = None) -> dict[str, Any]:
    if body is None:
        body = {"kind": "door left open", "severity": "warning", "device": "D1"}
    return {"id": wire.uuid7(), "seq": seq, "type": type, "at": wire.now_iso(), "body": body}


def batch_body(records: list[dict[str, Any]], batch_id: str | None = None) -> tuple[str, bytes]:
    bid = batch_id or wire.uuid7()
    return bid, json.dumps({"batch": bid, "records": records}).encode()


def post_batch(
    c: Centre, bid: str, body: bytes, cabinet: str = CAB, key: bytes = KEY
) -> requests.Response:
    headers = {**signed_headers(body, cabinet, key), "Idempotency-Key": bid}
    return requests.post(f"{c.api(cabinet)}/batches", data=body, headers=headers, timeout=10)


def signed_get(c: Centre, path: str, cabinet: str = CAB, key: bytes = KEY) -> requests.Response:
    return requests.get(
        c.api(cabinet) + path, headers=signed_headers(b"", cabinet, key), timeout=10
    )


def signed_post(c: Centre, path: str, message: Any) -> requests.Response:
    body = json.dumps(message).encode()
    return requests.post(c.api() + path, data=body, headers=signed_headers(body), timeout=10)


def assert_signed_answer(r: requests.Response, key: bytes = KEY) -> None:
    """The answer's X-Timestamp/X-Signature are the cabinet's key over the exact body bytes."""
    why = signing.check_signed(
        key, r.headers.get("X-Timestamp"), r.headers.get("X-Signature"), r.content
    )
    assert why is None, (why, r.status_code, r.content)


def ids_in_store(store: Store) -> set[str]:
    return {r["id"] for r in store.records()}


# -- batches ------------------------------------------------------------------------------------
def test_a_good_batch_is_stored_and_the_answer_is_signed(centre: Centre) -> None:
    recs = [record(1), record(2, "sale", sale_body(2)), record(3, "telemetry", {"uptime_s": 5})]
    bid, body = batch_body(recs)
    r = post_batch(centre, bid, body)
    assert r.status_code == 200, r.text
    assert_signed_answer(r)
    answer = r.json()
    assert answer["stored"] == [x["id"] for x in recs]
    assert answer["rejected"] == []
    assert ids_in_store(centre.store) == {x["id"] for x in recs}
    assert [s["body"]["total_fen"] for s in centre.store.records(CAB, "sale")] == [4500]
    assert centre.stored_calls  # on_stored was called

    # The cabinet's own client accepts it: a second batch through sync.http_link.HttpLink.
    link = HttpLink(centre.url, CAB, KEY)
    try:
        more = [record(4), record(5)]
        bid2, body2 = batch_body(more)
        ack = link.post_batch(bid2, body2)
    finally:
        link.close()
    assert ack.stored == tuple(x["id"] for x in more)
    assert len(ids_in_store(centre.store)) == 5


def test_a_replayed_batch_gets_the_same_answer_and_another_body_gets_422(centre: Centre) -> None:
    recs = [record(1), record(2)]
    bid, body = batch_body(recs)
    first = post_batch(centre, bid, body)
    again = post_batch(centre, bid, body)
    assert first.status_code == again.status_code == 200
    assert again.content == first.content  # the same answer, byte for byte
    assert_signed_answer(again)

    other = [record(3)]
    _, other_body = batch_body(other, bid)
    r = post_batch(centre, bid, other_body)
    assert r.status_code == 422, r.text
    assert_signed_answer(r)
    assert r.json()["error"] and r.json()["detail"] == {"batch": bid}
    assert ids_in_store(centre.store) == {x["id"] for x in recs}  # nothing of the other body

    # A record sent again in a new batch is acknowledged again and kept once.
    bid3, body3 = batch_body([recs[0], record(3)])
    r = post_batch(centre, bid3, body3)
    assert r.status_code == 200 and recs[0]["id"] in r.json()["stored"]
    assert centre.store.stats().records == 3


@sqlite_only
def test_the_idempotency_key_is_required_and_is_the_batch_id(centre: Centre) -> None:
    bid, body = batch_body([record(1)])
    url = f"{centre.api()}/batches"
    r = requests.post(url, data=body, headers=signed_headers(body), timeout=10)
    assert r.status_code == 400 and r.json()["error"] == "Idempotency-Key required"
    assert_signed_answer(r)
    h = {**signed_headers(body), "Idempotency-Key": "another-id"}
    r = requests.post(url, data=body, headers=h, timeout=10)
    assert r.status_code == 400 and r.json()["detail"] == bid
    assert ids_in_store(centre.store) == set()


# -- downlinks and commands -----------------------------------------------------------------------
def test_downlinks_newer_than_after_else_204(centre: Centre) -> None:
    for kind in wire.DOWN_KINDS:
        payload: Any = {
            "accounts": [],
            "config": {"unlock_timeout_s": 10},
            "catalog": {**EXAMPLE_CATALOG, "version": 3},
        }[kind]
        message = centre.store.put_downlink(CAB, kind, payload, 3)
        r = signed_get(centre, f"/{kind}?after=2")
        assert r.status_code == 200, r.text
        assert_signed_answer(r)
        assert r.json() == message and signing.verify_message(KEY, r.json())
        r = signed_get(centre, f"/{kind}?after=3")
        assert r.status_code == 204 and r.content == b""
        assert_signed_answer(r)
        assert signed_get(centre, f"/{kind}").status_code == 200  # no after: everything
        for bad in ("abc", "-1", str(2**53 + 1), "1.5", "1e3", "\u0661", "1&after=2"):
            r = signed_get(centre, f"/{kind}?after={bad}")
            assert r.status_code == 400, (kind, bad)
            assert r.json()["error"] == "bad query"
            assert_signed_answer(r)
        assert signed_get(centre, f"/{kind}", CAB2, KEY2).status_code == 204  # not another's


def test_commands_are_served_oldest_first_after_the_last_seen(centre: Centre) -> None:
    a = centre.store.add_command(CAB, "report_now", {})
    b = centre.store.add_command(CAB, "open_door", {"door": "D1", "reason": "test"})
    r = signed_get(centre, "/commands")
    assert r.status_code == 200
    assert_signed_answer(r)
    assert [m["cmd_id"] for m in r.json()] == [a["cmd_id"], b["cmd_id"]]
    assert [m["cmd_id"] for m in signed_get(centre, f"/commands?after={a['cmd_id']}").json()] == [
        b["cmd_id"]
    ]
    assert signed_get(centre, "/commands", CAB2, KEY2).json() == []
    assert signed_get(centre, "/commands?after=" + "x" * 65).status_code == 400


# -- payments -----------------------------------------------------------------------------------
def test_scripted_payments_authorize_and_capture(centre: Centre) -> None:
    code = "134567890123456789"
    r = signed_post(centre, "/payments/authorize", {"session": "s1", "code": code, "hold_fen": 900})
    assert r.status_code == 200, r.text
    assert_signed_answer(r)
    auth = r.json()
    assert auth["ok"] is True and auth["auth_id"]
    capture = {"auth_id": auth["auth_id"], "amount_fen": 450}
    for _ in range(2):  # idempotent per auth_id: the cabinet retries until answered
        r = signed_post(centre, "/payments/capture", capture)
        assert r.status_code == 200 and r.json() == {"ok": True}
        assert_signed_answer(r)
    r = signed_post(centre, "/payments/capture", {**capture, "amount_fen": 451})
    assert r.status_code == 409
    [p] = centre.store.payments()
    assert (p["session"], p["hold_fen"], p["captured_fen"], p["state"]) == (
        "s1",
        900,
        450,
        "captured",
    )
    assert code not in json.dumps(p, default=str)  # the code is never stored

    declined = {"session": "s2", "code": "1345678901234599999", "hold_fen": 900}
    r = signed_post(centre, "/payments/authorize", declined)
    assert r.json() == {"ok": False, "auth_id": None, "why": "declined"}
    big = {"session": "s3", "code": code, "hold_fen": 500_001}
    assert signed_post(centre, "/payments/authorize", big).json()["ok"] is False
    unknown = signed_post(centre, "/payments/capture", {"auth_id": "nope", "amount_fen": 1})
    assert unknown.status_code == 404
    assert len(centre.store.payments()) == 1


BAD_AUTHORIZE = [
    {"session": "s1", "code": "12345678901234567x", "hold_fen": 100},
    {"session": "s1", "code": "123456789", "hold_fen": 100},
    {"session": "s1", "code": "1" * 33, "hold_fen": 100},
    {"session": "s1", "code": "\u0661" * 18, "hold_fen": 100},
    {"session": "s1", "code": 123456789012345678, "hold_fen": 100},
    {"session": "s1", "code": "123456789012345678", "hold_fen": -1},
    {"session": "s1", "code": "123456789012345678", "hold_fen": 10**7 + 1},
    {"session": "s1", "code": "123456789012345678", "hold_fen": True},
    {"session": "s1", "code": "123456789012345678", "hold_fen": 1.0},
    {"session": "", "code": "123456789012345678", "hold_fen": 100},
    {"session": "a b", "code": "123456789012345678", "hold_fen": 100},
    {"code": "123456789012345678", "hold_fen": 100},
    ["s1", "123456789012345678", 100],
]


@sqlite_only
def test_a_bad_authorize_or_capture_is_400_without_echoing_the_code(centre: Centre) -> None:
    for message in BAD_AUTHORIZE:
        r = signed_post(centre, "/payments/authorize", message)
        assert r.status_code == 400, (message, r.text)
        assert r.json()["error"] == "bad request" and r.json()["detail"]
        assert_signed_answer(r)
        assert "12345678901234567" not in r.text
    for message in (
        {"auth_id": "a1", "amount_fen": -1},
        {"auth_id": "a1"},
        {"auth_id": "x" * 65, "amount_fen": 1},
        {"auth_id": 5, "amount_fen": 1},
    ):
        r = signed_post(centre, "/payments/capture", message)
        assert r.status_code == 400, (message, r.text)
    assert centre.store.payments() == []


@sqlite_only
def test_the_unconfigured_provider_declines_every_code(store: Store) -> None:
    with running_centre(store, simulate=False) as c:
        message = {"session": "s1", "code": "134567890123456789", "hold_fen": 100}
        r = signed_post(c, "/payments/authorize", message)
        assert r.status_code == 200
        assert r.json() == {"ok": False, "auth_id": None, "why": "no payment provider configured"}
        assert store.payments() == []


# -- the phone page -----------------------------------------------------------------------------
def test_the_phone_page_with_the_test_login_queues_session_authorized(centre: Centre) -> None:
    url = f"{centre.url}/s/{CAB}/n0nce-1"
    page = requests.get(url, headers={"Accept": "text/html"}, timeout=10)
    assert page.status_code == 200
    assert page.headers["Content-Type"] == "text/html; charset=utf-8"
    assert "扫码开门" in page.text and DEMO_ACCOUNT in page.text and "<form" in page.text

    r = requests.post(url, timeout=10)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"] == "application/json; charset=utf-8"
    answer = r.json()
    assert answer["ok"] is True and answer["session"] == "n0nce-1"
    [cmd] = signed_get(centre, "/commands").json()
    assert cmd["cmd"] == "session_authorized" and cmd["cmd_id"] == answer["cmd_id"]
    assert cmd["args"] == {"session": "n0nce-1", "account": DEMO_ACCOUNT, "limit_fen": 20_000}
    assert signing.verify_message(KEY, cmd)

    again = requests.post(url, headers={"Accept": "text/html"}, timeout=10)
    assert again.status_code == 409
    assert again.headers["Content-Type"] == "text/html; charset=utf-8"
    assert "已使用" in again.text
    assert requests.post(url, timeout=10).json()["error"] == "code already used"
    assert "已使用" in requests.get(url, timeout=10).text
    assert len(signed_get(centre, "/commands").json()) == 1

    bad = requests.post(f"{centre.url}/s/{CAB}/n2", data={"limit_fen": "9999999"}, timeout=10)
    assert bad.status_code == 400 and bad.json()["error"] == "bad login"
    assert requests.get(f"{centre.url}/s/QH-9999/n3", timeout=10).status_code == 404
    assert requests.get(f"{centre.url}/s/{CAB}/{'n' * 65}", timeout=10).status_code == 404


@sqlite_only
def test_without_a_platform_login_scan_to_open_is_not_available(store: Store) -> None:
    with running_centre(store, simulate=False) as c:
        url = f"{c.url}/s/{CAB}/n0nce-1"
        page = requests.get(url, headers={"Accept": "text/html"}, timeout=10)
        assert page.status_code == 503
        assert page.headers["Content-Type"] == "text/html; charset=utf-8"
        assert "扫码开门" in page.text
        r = requests.post(url, timeout=10)
        assert r.status_code == 503 and r.json()["error"] == "scan-to-open is not available here"
        assert store.commands_after(CAB, None) == []


# -- health, metrics, errors, admin -------------------------------------------------------------
def test_healthz_metrics_and_json_errors(centre: Centre) -> None:
    r = requests.get(f"{centre.url}/healthz", timeout=10)
    assert r.status_code == 200 and r.json() == {"ok": True, "db": True}

    recs = [record(1), record(2)]
    bid, body = batch_body(recs)
    post_batch(centre, bid, body)
    post_batch(centre, wire.uuid7(), batch_body([recs[0]])[1])  # a duplicate, key mismatch: 400
    bid3, body3 = batch_body([recs[0], {**record(3), "type": "nonsense"}])
    assert post_batch(centre, bid3, body3).status_code == 200
    requests.get(f"{centre.api()}/catalog", headers={"X-Cabinet": CAB}, timeout=10)  # unsigned

    m = requests.get(f"{centre.url}/metrics", timeout=10)
    assert m.status_code == 200 and m.headers["Content-Type"].startswith("text/plain")
    text = m.text
    assert 'kiosk_central_records_stored_total{path="http"} 2.0' in text
    assert 'kiosk_central_duplicates_total{path="http"} 1.0' in text
    assert 'kiosk_central_batches_total{path="http"} 2.0' in text
    assert 'kiosk_central_rejects_total{path="http",reason="bad record"} 1.0' in text
    assert 'kiosk_central_rejects_total{path="http",reason="unsigned"} 1.0' in text
    assert 'kiosk_central_ack_latency_seconds_count{path="http"} 2.0' in text

    for method, path, status in (
        ("GET", "/nowhere", 404),
        ("GET", f"/api/v1/cabinets/{CAB}/batches", 405),
        ("DELETE", "/healthz", 405),
        ("GET", f"/api/v1/cabinets/{CAB}/nothing", 404),
    ):
        r = requests.request(method, centre.url + path, timeout=10)
        assert r.status_code == status, (method, path)
        assert set(r.json()) == {"error", "detail"}


@sqlite_only
def test_admin_faults_exist_only_in_a_simulated_centre(store: Store) -> None:
    with running_centre(store, simulate=False) as c:
        for method in ("GET", "POST"):
            r = requests.request(method, f"{c.url}/admin/faults", json={}, timeout=10)
            assert r.status_code == 404 and r.json()["error"] == "not found"


@sqlite_only
def test_simulated_faults(centre: Centre) -> None:
    admin = f"{centre.url}/admin/faults"
    assert requests.get(admin, timeout=10).json()["http_500"] == 0
    r = requests.post(admin, json={"http_500": 1, "nonsense": 1}, timeout=10)
    assert r.status_code == 400 and "nonsense" in r.json()["detail"]

    assert requests.post(admin, json={"http_500": 1}, timeout=10).json()["http_500"] == 1
    assert signed_get(centre, "/commands").status_code == 500
    assert signed_get(centre, "/commands").status_code == 200  # used up

    requests.post(admin, json={"http_429": 1}, timeout=10)
    r = signed_get(centre, "/commands")
    assert r.status_code == 429 and r.headers["Retry-After"] == "1"

    # drop_acks: the batch is stored, the answer never arrives; the retry gets it.
    requests.post(admin, json={"drop_acks": 1}, timeout=10)
    recs = [record(1)]
    bid, body = batch_body(recs)
    link = HttpLink(centre.url, CAB, KEY)
    try:
        with pytest.raises(CentralUnreachable):
            link.post_batch(bid, body)
        assert ids_in_store(centre.store) == {recs[0]["id"]}
        assert link.post_batch(bid, body).stored == (recs[0]["id"],)
    finally:
        link.close()
    assert centre.faults is not None and centre.faults.current.drop_acks == 0
    r = requests.post(admin, json={}, timeout=10)
    assert r.json() == {
        "drop_acks": 0,
        "http_500": 0,
        "http_429": 0,
        "stall_s": 0.0,
        "disconnect": 0.0,
        "duplicates": False,
    }


# -- the rate limiter on its own (a fake clock) -------------------------------------------------
class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_the_token_bucket() -> None:
    from central.ratelimit import RateLimiter

    clock = FakeClock()
    limiter = RateLimiter(rate_per_s=2.0, burst=3, clock=clock)
    assert [limiter.take("a").allowed for _ in range(4)] == [True, True, True, False]
    assert limiter.take("a").retry_after_s == 1  # half a second to the next token: 1 s
    assert limiter.take("b").allowed  # each cabinet its own bucket
    clock.t += 0.5
    assert limiter.take("a").allowed and not limiter.take("a").allowed
    clock.t += 100
    assert sum(limiter.take("a").allowed for _ in range(10)) == 3  # never more than the burst
    clock.t -= 50  # a clock that steps back takes nothing away, gives nothing
    assert not limiter.take("a").allowed
    slow = RateLimiter(rate_per_s=0.1, burst=1, clock=clock)
    assert slow.take("a").allowed
    assert slow.take("a").retry_after_s == 10
    clock.t += 2.5
    assert slow.take("a").retry_after_s == 8  # ceil(7.5)
    peek = RateLimiter(rate_per_s=1.0, burst=2, clock=clock)
    assert all(peek.check("a").allowed for _ in range(10))  # looking spends nothing
    assert [peek.take("a").allowed for _ in range(3)] == [True, True, False]
    assert not peek.check("a").allowed
    with pytest.raises(ValueError):
        RateLimiter(rate_per_s=0, burst=1)
