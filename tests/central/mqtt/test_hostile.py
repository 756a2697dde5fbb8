"""Hostile input on the MQTT intake: nothing a cabinet (or whoever holds its key) publishes can
crash the worker, store something it should not, or stop the next good batch."""

from __future__ import annotations

import json
import random
import time

import pytest

from central import mqtt_ingest
from central.metrics import Metrics
from central.mqtt_ingest import Arrival, IngestWorker, Intake, signature_of
from kiosk import signing, wire
from tests.central.mqtt.parts import (
    KEY_A,
    SQLITE_ONLY,
    batch,
    metric,
    records,
    sale_body,
    stored_ids,
)
from tests.sync.conftest import wait_for


def record(rid: str, seq: object, body: str | None = None) -> str:
    body = body if body is not None else json.dumps(sale_body(1))
    return f'{{"id":"{rid}","seq":{seq},"type":"sale","at":"{wire.now_iso()}","body":{body}}}'


def hostile_payloads() -> dict[str, bytes]:
    rnd = random.Random(7)
    deep = 100_000
    return {
        "seq 2^70": wire.batch_json("b-seq", [record("r-seq", 2**70)]),
        "100k-deep nesting": b'{"batch":"b-deep","records":[' + b"[" * deep + b"]" * deep + b"]}",
        "deep body": wire.batch_json("b-deepbody", [record("r-deep", 1, "[" * 40 + "]" * 40)]),
        "lone surrogate escape": wire.batch_json("b-sur", [record("r-\\ud800", 1)]),
        "lone surrogate raw": b'{"batch":"b-raw","records":['
        + record("r-", 1).encode().replace(b'"r-"', b'"r-\xed\xa0\x80"')
        + b"]}",
        "2 MB garbage": rnd.randbytes(2_000_000),
        "11 MB (over the broker's limit for us)": b"[" + b" " * 11_000_000 + b"]",
        "not UTF-8": b'{"batch":"b-\xff","records":[]}',
        "empty": b"",
        "NaN": wire.batch_json("b-nan", [record("r-nan", "NaN")]),
        "5000-digit integer": wire.batch_json("b-int", [record("r-int", "9" * 5000)]),
        "duplicate keys": b'{"batch":"b-dup","batch":"b-dup2","records":[]}',
        "an array": b"[1,2,3]",
        "records not a list": b'{"batch":"b-nl","records":{"a":1}}',
        "100k records": wire.batch_json("b-many", ["{}"] * 100_000),
    }


@SQLITE_ONLY
def test_hostile_batches_store_nothing_and_the_next_good_batch_is_stored(worker, probe, store):
    for name, payload in hostile_payloads().items():
        probe.send("QH-A", payload, KEY_A)
        good, p = batch(records(1))
        probe.send("QH-A", p, KEY_A)
        wait_for(lambda g=good: probe.acked(g), 10, f"the good batch after {name}")
        assert worker._writer.is_alive(), name
    every_ack = [json.loads(p) for _, p, _ in probe.acks]
    stored = {i for a in every_ack for i in a["stored"]}
    assert set(stored_ids(store)) == stored
    assert len(stored) == len(hostile_payloads())  # the good ones, nothing else


@SQLITE_ONLY
def test_a_record_outside_the_ranges_is_rejected_by_name(worker, probe, store):
    bid = "b-range"
    payload = wire.batch_json(bid, [record("r-big", 2**53 + 1), *[r for _, r in records(1)]])
    probe.send("QH-A", payload, KEY_A)
    wait_for(lambda: probe.acked(bid), 10, "the ack")
    ack = probe.acked(bid)[0][1]
    assert [r["id"] for r in ack["rejected"]] == ["r-big"]
    assert "r-big" not in stored_ids(store)
    assert len(ack["stored"]) == 1


@SQLITE_ONLY
@pytest.mark.parametrize(
    "props",
    [
        [("x-timestamp", "9" * 40), ("x-signature", "0" * 64)],
        [("x-timestamp", "１２３"), ("x-signature", "0" * 64)],  # non-ASCII digits
        [("x-timestamp", "1"), ("x-signature", "é" * 64)],
        [("x-signature", "0" * 64)],
        [],
    ],
)
def test_hostile_signatures_are_refused(worker, probe, store, metrics, props):
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    bid, payload = batch(records(1))
    p = Properties(PacketTypes.PUBLISH)
    if props:
        p.UserProperty = props
    probe.send("QH-A", payload, props=p)
    good, gp = batch(records(1))
    probe.send("QH-A", gp, KEY_A)
    wait_for(lambda: probe.acked(good), 10, "the good batch")
    assert not probe.acked(bid)
    assert len(stored_ids(store)) == 1


def test_a_signature_property_given_twice_counts_as_none():
    payload = b"{}"
    good = signing.signed_properties(KEY_A, payload, time.time())
    twice = [*good.items(), ("x-signature", "0" * 64)]
    assert signature_of(twice)[1] is None
    assert signature_of(list(good.items())) == (good["x-timestamp"], good["x-signature"])


@SQLITE_ONLY
def test_a_poison_message_that_breaks_the_decoder_does_not_end_the_intake(
    store, broker, probe, monkeypatch
):
    """A unit test of the worker: a decoder bug (any exception) costs that message only."""
    real = mqtt_ingest.contract.decode_batch

    def decode(data):
        if b"POISON" in data:
            raise RecursionError("a decoder bug")
        return real(data)

    monkeypatch.setattr(mqtt_ingest.contract, "decode_batch", decode)
    m = Metrics()
    w = IngestWorker(store, broker.url, metrics=m).start()
    try:
        assert w.wait_connected(10)
        probe.send("QH-A", b'{"POISON":1}', KEY_A)
        good, p = batch(records(1))
        probe.send("QH-A", p, KEY_A)
        wait_for(lambda: probe.acked(good), 10, "the good batch after the poison")
        assert metric(m, "kiosk_central_rejects_total", reason="malformed batch") == 1
    finally:
        w.stop()


def test_a_full_queue_refuses_more_and_takes_again_once_drained():
    q = Intake(max_messages=3, max_bytes=10)

    def a(n: int) -> Arrival:
        return Arrival("QH-A", "up", b"x" * n, (), 0.0)

    assert q.put(a(4)) and q.put(a(4))
    assert not q.put(a(4))  # 12 bytes > 10
    assert q.put(a(1))
    assert not q.put(a(1))  # 4 messages > 3
    assert len(q.take(10, 0.0, 0.0)) == 3
    assert q.put(a(10))
    q = Intake()
    for _ in range(5):
        q.put(a(4))
    assert len(q.take(10, 0.0, 0.0, most_bytes=8)) == 2  # a round is bounded in bytes too
    assert len(q.take(10, 0.0, 0.0, most_bytes=1)) == 1  # and takes at least one
