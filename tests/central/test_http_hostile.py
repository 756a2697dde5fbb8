"""The centre's HTTP side against hostile or broken clients: unsigned and forged requests, clock
skew, lying or huge lengths (raw sockets: what ``requests`` will not send), malformed JSON, out
of range records, floods. Nothing bad is stored, the answer says why, the server keeps serving.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator

import pytest
import requests

from central.http_app import HttpSettings
from central.store import Store
from kiosk import signing
from tests.central.test_http import (
    CAB,
    CAB2,
    KEY,
    KEY2,
    Centre,
    assert_signed_answer,
    batch_body,
    ids_in_store,
    post_batch,
    record,
    running_centre,
    signed_get,
    signed_headers,
)
from tests.sync.conftest import sale_body

LIMIT = 4096  # a small body limit, so over-limit bodies stay small

# The server's answers do not depend on the backend here: SQLite only (test_http.py runs the
# contract on both).
pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


@pytest.fixture
def centre(store: Store) -> Iterator[Centre]:
    """The default body limit; a rate limit of 30 at once, then one every 10 s."""
    with running_centre(store, settings=HttpSettings(rate_per_s=0.1, burst=30)) as c:
        yield c


@pytest.fixture
def small(store: Store) -> Iterator[Centre]:
    """A body limit of ``LIMIT`` bytes: an over-limit body is small enough to be read whole by
    the server before it closes (closing with unread data would reset the connection and the
    answer with it)."""
    with running_centre(store, settings=HttpSettings(body_limit_bytes=LIMIT)) as c:
        yield c


def raw(port: int, data: bytes, timeout: float = 10) -> bytes:
    """Send ``data`` as is and read until the server closes the connection."""
    out = []
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        while True:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            out.append(chunk)
    return b"".join(out)


def head_lines(path: str, headers: dict[str, str], method: str = "POST") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def still_serving(c: Centre) -> None:
    """The server answers and stores a good batch after whatever came before."""
    assert requests.get(f"{c.url}/healthz", timeout=10).json() == {"ok": True, "db": True}
    good = [record(99)]
    bid, body = batch_body(good)
    r = post_batch(c, bid, body)
    assert r.status_code == 200 and r.json()["stored"] == [good[0]["id"]]


# -- who is asking --------------------------------------------------------------------------------
def _refusals(body: bytes) -> dict[str, dict[str, str]]:
    ts = int(time.time())
    good = signed_headers(body)
    return {
        "unsigned": {"X-Cabinet": CAB},
        "no timestamp": {"X-Cabinet": CAB, "X-Signature": good["X-Signature"]},
        "bad signature": {**good, "X-Signature": signing.request_signature(KEY, ts, b"{}")},
        "other cabinet's key": signed_headers(body, CAB, KEY2),
        "X-Cabinet mismatch": signed_headers(body, CAB2, KEY2),
        "non-ASCII signature": {**good, "X-Signature": "é" * 64},
        "timestamp with a fraction": {**good, "X-Timestamp": f"{ts}.5"},
        "negative timestamp": {**good, "X-Timestamp": "-5"},
        "huge timestamp": {**good, "X-Timestamp": "9" * 40},
    }


def test_unsigned_forged_and_misdirected_requests_are_401(centre: Centre) -> None:
    bid, body = batch_body([record(1)])
    for case, headers in _refusals(body).items():
        r = requests.post(
            f"{centre.api()}/batches",
            data=body,
            headers={**headers, "Idempotency-Key": bid},
            timeout=10,
        )
        assert r.status_code == 401, (case, r.text)
        assert set(r.json()) == {"error", "detail"}
        assert "X-Signature" not in r.headers  # nothing is signed for a stranger
    assert ids_in_store(centre.store) == set()
    still_serving(centre)


def test_a_timestamp_too_far_from_the_centres_clock_is_clock_skew(centre: Centre) -> None:
    for off in (-301, 301, -(10**6)):
        r = requests.get(
            f"{centre.api()}/commands",
            headers=signed_headers(b"", ts=int(time.time()) + off),
            timeout=10,
        )
        assert r.status_code == 401
        answer = r.json()
        assert answer["error"] == "clock skew"
        assert isinstance(answer["detail"]["centre_time"], int)
        assert abs(answer["detail"]["centre_time"] - time.time()) < 60  # the centre's time
    assert signed_get(centre, "/commands").status_code == 200


def test_an_unknown_cabinet_is_404(centre: Centre) -> None:
    r = requests.get(
        f"{centre.url}/api/v1/cabinets/QH-9999/commands",
        headers=signed_headers(b"", "QH-9999", KEY),
        timeout=10,
    )
    assert r.status_code == 404 and r.json()["error"] == "unknown cabinet"


# -- lengths and sizes ----------------------------------------------------------------------------
def test_a_content_length_that_is_not_a_number_is_400(centre: Centre) -> None:
    h = {**signed_headers(b"{}"), "Content-Length": "abc"}
    answer = raw(centre.port, head_lines(f"/api/v1/cabinets/{CAB}/batches", h) + b"{}")
    assert answer.startswith(b"HTTP/1.1 400 "), answer[:200]
    still_serving(centre)


def test_a_declared_50_mb_body_is_refused_before_it_is_sent(small: Centre) -> None:
    h = {**signed_headers(b""), "Idempotency-Key": "b1", "Content-Length": str(50 << 20)}
    # Only the head is sent: the answer must come without the body, then the connection closes.
    answer = raw(small.port, head_lines(f"/api/v1/cabinets/{CAB}/batches", h))
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
    head, _, body = answer.partition(b"\r\n\r\n")
    assert b"connection: close" in head.lower()
    assert json.loads(body) == {"error": "body too large", "detail": {"limit_bytes": LIMIT}}
    # Whatever refuses a request before its body, the connection closes: nothing more is read.
    for path, status in (
        ("/api/v1/cabinets/QH-9999/batches", b"404"),
        ("/nowhere", b"404"),
        ("/healthz", b"405"),
        (f"/api/v1/cabinets/{CAB}/commands", b"405"),
    ):
        answer = raw(small.port, head_lines(path, h))
        assert answer.startswith(b"HTTP/1.1 " + status), (path, answer[:200])
        assert b"connection: close" in answer.partition(b"\r\n\r\n")[0].lower()
    still_serving(small)


def test_a_chunked_body_over_the_limit_is_413(small: Centre) -> None:
    h = {**signed_headers(b""), "Idempotency-Key": "b1", "Transfer-Encoding": "chunked"}
    chunk = b"x" * 1000
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(6)) + b"0\r\n\r\n"
    answer = raw(small.port, head_lines(f"/api/v1/cabinets/{CAB}/batches", h) + chunks)
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
    still_serving(small)


def test_a_chunked_body_within_the_limit_is_read(centre: Centre) -> None:
    recs = [record(1)]
    bid, body = batch_body(recs)
    h = {**signed_headers(body), "Idempotency-Key": bid}
    r = requests.post(f"{centre.api()}/batches", data=iter([body[:10], body[10:]]), headers=h)
    assert r.request.headers.get("Transfer-Encoding") == "chunked"
    assert r.status_code == 200, r.text
    assert_signed_answer(r)
    assert ids_in_store(centre.store) == {recs[0]["id"]}


# -- malformed batches ----------------------------------------------------------------------------
def _with_record_body(text: str) -> bytes:
    r = record(1)
    head = json.dumps({k: v for k, v in r.items() if k != "body"})[:-1]
    return ('{"batch":"b-1","records":[' + head + ',"body":' + text + "}]}").encode()


MALFORMED = {
    "100k-deep nesting": (
        '{"batch":"b-1","records":' + "[" * 100_000 + "]" * 100_000 + "}"
    ).encode(),
    "lone surrogate escape": _with_record_body('{"kind":"x\\ud800","severity":"info"}'),
    "lone surrogate bytes": _with_record_body('{"kind":"x","severity":"info"}').replace(
        b'"x"', b'"x\xed\xa0\x80"'
    ),
    "duplicated batch key": b'{"batch":"b-1","batch":"b-2","records":[]}',
    "duplicated key in a body": _with_record_body(
        '{"kind":"x","severity":"info","severity":"alarm"}'
    ),
    "seq 2^70": _with_record_body("{}").replace(b'"seq": 1', b'"seq": ' + str(2**70).encode()),
    "not an object": b'["b-1", []]',
    "records not a list": b'{"batch":"b-1","records":{}}',
    "not JSON": b'{"batch":"b-1","records":[',
}


def test_a_malformed_batch_is_400_and_nothing_is_stored(centre: Centre) -> None:
    for case, body in MALFORMED.items():
        h = {**signed_headers(body), "Idempotency-Key": "b-1"}
        r = requests.post(f"{centre.api()}/batches", data=body, headers=h, timeout=30)
        assert r.status_code == 400, (case, r.text)
        assert_signed_answer(r)  # a signed request: the cabinet can trust the refusal
        assert r.json()["error"] == "malformed batch" and r.json()["detail"], case
    assert ids_in_store(centre.store) == set()
    still_serving(centre)


def test_out_of_range_records_are_rejected_with_the_reason_and_not_stored(centre: Centre) -> None:
    huge = sale_body(1, price_fen=10**12)
    no_qty = sale_body(2)
    no_qty["items"][0]["qty"] = 0
    no_qty["total_fen"] = 0
    path_sku = sale_body(3)
    path_sku["items"][0]["sku"] = "../../etc/passwd"
    bad = [record(1, "sale", huge), record(2, "sale", no_qty), record(3, "sale", path_sku)]
    good = record(4, "sale", sale_body(4))
    bid, body = batch_body([*bad, good])
    # NaN is not JSON: only the record holding it is refused (kiosk.contract.decode_batch)
    nan = record(5, "event", {"kind": "x", "severity": "info", "v": 1.5})
    body = body[:-2] + b"," + json.dumps(nan).replace("1.5", "NaN").encode() + b"]}"
    bad.append(nan)
    r = post_batch(centre, bid, body)
    assert r.status_code == 200, r.text
    assert_signed_answer(r)
    answer = r.json()
    assert answer["stored"] == [good["id"]]
    assert [x["id"] for x in answer["rejected"]] == [x["id"] for x in bad]
    assert all(x["why"] for x in answer["rejected"])
    assert ids_in_store(centre.store) == {good["id"]}
    assert [s["id"] for s in centre.store.records(CAB, "sale")] == [good["id"]]


# -- floods ---------------------------------------------------------------------------------------
def test_a_cabinet_over_its_rate_is_429_with_retry_after(centre: Centre) -> None:
    # A stranger's unsigned requests naming the cabinet do not use up its allowance.
    url = f"{centre.url}/api/v1/cabinets/{CAB}/commands"
    assert {requests.get(url, timeout=10).status_code for _ in range(40)} == {401}
    # burst 30, then one request every 10 s
    statuses = [signed_get(centre, "/commands").status_code for _ in range(31)]
    assert statuses == [200] * 30 + [429]
    r = signed_get(centre, "/commands")
    assert r.status_code == 429
    retry = r.headers["Retry-After"]
    assert retry.isdigit() and 1 <= int(retry) <= 10
    assert r.json()["error"] == "too many requests"
    assert signed_get(centre, "/commands", CAB2, KEY2).status_code == 200  # its own bucket
    assert requests.get(f"{centre.url}/healthz", timeout=10).status_code == 200
