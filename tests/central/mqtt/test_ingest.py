"""The centre's MQTT side against a real mosquitto and a real Store: signed batches in, stored
once, signed acks out; shared-subscription workers; presence; downlinks and commands out.

The cabinet side is a plain paho v5 client (``Probe``) that publishes what a cabinet would, or
worse, and sees every ack on ``kiosk/v1/+/ack``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from central.faults import Faults, FaultSettings
from central.metrics import Metrics
from central.mqtt_ingest import IngestWorker
from central.mqtt_url import check_client_id, default_client_id, parse_mqtt_url
from central.publisher import Publisher
from central.store import Store
from kiosk import signing, wire
from tests.central.mqtt.parts import (
    CABS,
    KEY_A,
    KEY_B,
    ROOT,
    SQLITE_ONLY,
    batch,
    metric,
    next_id,
    records,
    running_worker,
    signed,
    stored_ids,
)
from tests.sync.conftest import Broker, make_broker, sale_body, wait_for


# -- batches in, acks out -------------------------------------------------------------------------
def test_a_signed_batch_is_stored_once_and_answered_with_a_signed_ack(
    worker, probe, store, metrics
):
    recs = records(3)
    bid, payload = batch(recs)
    probe.send("QH-A", payload, KEY_A)
    wait_for(lambda: probe.acked(bid), 10, "the ack")
    [(cab, ack, props)] = probe.acked(bid)
    assert cab == "QH-A"
    assert ack == {"batch": bid, "stored": [r for r, _ in recs], "rejected": []}
    raw = next(p for _, p, _ in probe.acks if json.loads(p)["batch"] == bid)
    why = signing.check_signed(KEY_A, props.get("x-timestamp"), props.get("x-signature"), raw)
    assert why is None, why
    assert signing.check_signed(KEY_B, props["x-timestamp"], props["x-signature"], raw)
    assert sorted(stored_ids(store, "QH-A")) == sorted(r for r, _ in recs)

    # Sent again (the ack was lost on the way): the same answer again, nothing stored twice.
    probe.send("QH-A", payload, KEY_A)
    wait_for(lambda: len(probe.acked(bid)) == 2, 10, "the second ack")
    assert probe.acked(bid)[1][1] == ack
    assert len(stored_ids(store)) == 3
    assert metric(metrics, "kiosk_central_batches_total") == 2
    assert metric(metrics, "kiosk_central_records_stored_total") == 3
    assert metric(metrics, "kiosk_central_duplicates_total") == 3
    assert metric(metrics, "kiosk_central_ack_latency_seconds_count") == 2


@SQLITE_ONLY
def test_a_record_out_of_range_is_rejected_in_the_ack_and_the_rest_stored(worker, probe, store):
    good = records(2)
    rid = f"bad-{next_id()}"
    body = json.dumps({**sale_body(1), "total_fen": 1})  # not the sum of its lines
    bad = (rid, wire.record_json(wire.Record(rid, 9, "sale", wire.now_iso(), body)))
    bid, payload = batch([good[0], bad, good[1]])
    probe.send("QH-A", payload, KEY_A)
    wait_for(lambda: probe.acked(bid), 10, "the ack")
    ack = probe.acked(bid)[0][1]
    assert ack["stored"] == [good[0][0], good[1][0]]
    assert [r["id"] for r in ack["rejected"]] == [rid]
    assert sorted(stored_ids(store)) == sorted([good[0][0], good[1][0]])


@SQLITE_ONLY
def test_the_same_batch_id_with_another_body_gets_no_ack(worker, probe, store, metrics):
    bid, first = batch(records(1))
    probe.send("QH-A", first, KEY_A)
    wait_for(lambda: probe.acked(bid), 10, "the first ack")
    _, other = batch(records(1), bid)
    probe.send("QH-A", other, KEY_A)
    bid2, good = batch(records(1))
    probe.send("QH-A", good, KEY_A)
    wait_for(lambda: probe.acked(bid2), 10, "the next batch's ack")
    assert len(probe.acked(bid)) == 1
    assert metric(metrics, "kiosk_central_rejects_total", reason="conflict") == 1
    assert len(stored_ids(store)) == 2


@SQLITE_ONLY
def test_refused_batches_get_no_ack_store_nothing_and_the_intake_goes_on(
    worker, probe, store, metrics
):
    refused = []
    bid, payload = batch(records(1))
    probe.send("QH-A", payload)  # unsigned
    refused.append(bid)
    bid, payload = batch(records(1))
    probe.send("QH-A", payload, bytes(32))  # the wrong key
    refused.append(bid)
    bid, payload = batch(records(1, "QH-B"))
    probe.send("QH-B", payload, KEY_A)  # cabinet A's key on cabinet B's topic
    refused.append(bid)
    bid, payload = batch(records(1))
    props = signed(KEY_A, payload + b" ")  # signed, then changed on the way
    probe.send("QH-A", payload, props=props)
    refused.append(bid)
    bid, payload = batch(records(1, "QH-Z"))
    probe.send("QH-Z", payload, KEY_A)  # no such cabinet
    refused.append(bid)

    good, payload = batch(records(2))
    probe.send("QH-A", payload, KEY_A)
    wait_for(lambda: probe.acked(good), 10, "the good batch's ack")
    # One worker takes the messages of one client in order: the refused ones were seen first.
    assert not any(probe.acked(b) for b in refused)
    assert len(stored_ids(store)) == 2
    assert metric(metrics, "kiosk_central_rejects_total", reason="unsigned") == 1
    assert metric(metrics, "kiosk_central_rejects_total", reason="bad signature") == 3
    assert metric(metrics, "kiosk_central_rejects_total", reason="unknown cabinet") == 1


@SQLITE_ONLY
def test_a_cabinet_added_while_running_is_taken_without_a_restart(worker, probe, store):
    bid, payload = batch(records(1, "QH-NEW"))
    store.add_cabinet("QH-NEW", KEY_B)
    probe.send("QH-NEW", payload, KEY_B)
    wait_for(lambda: probe.acked(bid), 10, "the new cabinet's ack")
    assert len(stored_ids(store, "QH-NEW")) == 1


# -- several workers ------------------------------------------------------------------------------
def test_two_workers_in_one_group_split_the_batches_and_store_each_record_once(
    store, broker, probe
):
    m1, m2 = Metrics(), Metrics()
    w1 = IngestWorker(store, broker.url, group="g", metrics=m1).start()
    w2 = IngestWorker(store, broker.url, group="g", metrics=m2).start()
    try:
        assert w1.wait_connected(10) and w2.wait_connected(10)
        sent: dict[str, list[str]] = {}
        for k in range(200):
            cab = ("QH-A", "QH-B")[k % 2]
            recs = records(2, cab, seq0=k * 2 + 1)
            bid, payload = batch(recs)
            sent[bid] = [r for r, _ in recs]
            probe.send(cab, payload, CABS[cab])
        wait_for(lambda: set(sent) <= probe.acked_ids(), 20, "every batch acked")
    finally:
        w1.stop()
        w2.stop()
    ids = stored_ids(store)
    assert len(ids) == len(set(ids)) == 400
    assert set(ids) == {r for rs in sent.values() for r in rs}
    n1 = metric(m1, "kiosk_central_batches_total")
    n2 = metric(m2, "kiosk_central_batches_total")
    assert n1 > 0 and n2 > 0 and n1 + n2 >= 200, (n1, n2)


# A worker that stores what it gets but holds its acks back (stall_s): killed, every batch it
# took is stored and unanswered, and the cabinet must send it again.
WORKER_PROCESS = """
import sys, time
from central.faults import Faults, FaultSettings
from central.mqtt_ingest import IngestWorker
from central.store import Store
faults = Faults()
faults.set(FaultSettings(stall_s=600))
w = IngestWorker(Store(sys.argv[1]), sys.argv[2], group="g", faults=faults).start()
print("ready" if w.wait_connected(10) else "not connected", flush=True)
time.sleep(600)
"""


def test_a_worker_killed_mid_stream_loses_nothing(store, broker, probe, db_url):
    """kill -9 one of two workers while batches flow: a cabinet-like client that sends again
    what was not acked ends with every record stored once."""
    proc = subprocess.Popen(
        [sys.executable, "-c", WORKER_PROCESS, db_url, broker.url],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    w2 = IngestWorker(store, broker.url, group="g").start()
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        assert w2.wait_connected(10)
        pending: dict[str, tuple[str, bytes, float]] = {}
        every: dict[str, list[str]] = {}

        def send(cab: str, n: int) -> None:
            recs = records(n, cab)
            bid, payload = batch(recs)
            every[bid] = [r for r, _ in recs]
            pending[bid] = (cab, payload, time.monotonic())
            probe.send(cab, payload, CABS[cab])

        def settled(resend_after: float = 1.0) -> bool:
            """Like the agent: forget what was acked, send again what waited too long."""
            acked = probe.acked_ids()
            for bid in [b for b in pending if b in acked]:
                del pending[bid]
            for bid, (cab, payload, at) in list(pending.items()):
                if time.monotonic() - at > resend_after:
                    pending[bid] = (cab, payload, time.monotonic())
                    probe.send(cab, payload, CABS[cab])
            return not pending

        def unanswered() -> int:
            acked = probe.acked_ids()
            return len(stored_ids(store)) - sum(len(every[b]) for b in acked if b in every)

        for k in range(60):
            send(("QH-A", "QH-B")[k % 2], 3)
        wait_for(lambda: unanswered() >= 9, 10, "batches stored by the doomed worker")
        proc.kill()  # SIGKILL: no goodbye to the broker, nothing drained, no acks
        proc.wait()
        for k in range(60):
            send(("QH-A", "QH-B")[k % 2], 3)
        wait_for(settled, 20, "every batch acked")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        w2.stop()
    ids = stored_ids(store)
    assert len(ids) == len(set(ids))
    assert set(ids) == {r for rs in every.values() for r in rs}


# -- presence -------------------------------------------------------------------------------------
def status(state: str, version: str = "1.2.3") -> bytes:
    return json.dumps({"state": state, "at": wire.now_iso(), "version": version}).encode()


@SQLITE_ONLY
def test_presence_follows_the_retained_status_and_the_last_will(store, broker, metrics):
    # Published before the worker starts: the retained copy is what it reads on subscribing.
    pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="t-s", protocol=mqtt.MQTTv5)
    pub.connect("127.0.0.1", broker.port)
    pub.loop_start()
    pub.publish(wire.topic("QH-B", "status"), status("online", "0.9"), 1, retain=True)
    pub.publish(wire.topic("QH-STRANGER", "status"), status("online"), 1, retain=True)
    pub.publish(wire.topic("QH-A", "status"), status("offline"), 1, retain=True).wait_for_publish(5)
    w = IngestWorker(store, broker.url, metrics=metrics).start()
    cab = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2, client_id="kiosk-QH-A", protocol=mqtt.MQTTv5
    )
    try:
        assert w.wait_connected(10)
        wait_for(lambda: (store.cabinet("QH-B") or {}).get("online") is True, 10, "B online")
        assert store.cabinet("QH-B")["version"] == "0.9"
        bad = b'{"state":"online","state":"offline","at":"2030-01-01T00:00:00Z"}'
        pub.publish(wire.topic("QH-A", "status"), bad, 1)  # the same key twice: refused
        wait_for(
            lambda: metric(metrics, "kiosk_central_rejects_total", reason="bad status") == 1,
            10,
            "the bad status refused",
        )
        assert store.cabinet("QH-A")["online"] is False
        assert store.cabinet("QH-STRANGER") is None

        # A cabinet as the agent connects: Last Will offline, then online, retained.
        cab.will_set(wire.topic("QH-A", "status"), status("offline"), 1, retain=True)
        cab.connect("127.0.0.1", broker.port)
        cab.loop_start()
        cab.publish(wire.topic("QH-A", "status"), status("online"), 1, retain=True)
        wait_for(lambda: store.cabinet("QH-A")["online"] is True, 10, "A online")
        assert store.cabinet("QH-A")["version"] == "1.2.3"
        # Gone without a proper goodbye (as when its link dies): the broker publishes the will.
        cab.disconnect(ReasonCode(PacketTypes.DISCONNECT, "Disconnect with will message"))
        cab.loop_stop()
        wait_for(lambda: store.cabinet("QH-A")["online"] is False, 10, "A offline")
    finally:
        w.stop()
        pub.disconnect()
        pub.loop_stop()


# -- faults (--simulate) --------------------------------------------------------------------------
@SQLITE_ONLY
def test_faults_drop_duplicate_and_stall_acks(store, broker, probe):
    faults = Faults()
    w = IngestWorker(store, broker.url, faults=faults).start()
    try:
        assert w.wait_connected(10)
        faults.set(FaultSettings(drop_acks=1))
        bid, payload = batch(records(1))
        probe.send("QH-A", payload, KEY_A)
        wait_for(lambda: len(stored_ids(store)) == 1, 10, "stored")
        bid2, payload2 = batch(records(1))
        probe.send("QH-A", payload2, KEY_A)
        wait_for(lambda: probe.acked(bid2), 10, "the next ack")
        assert not probe.acked(bid)  # stored but not answered: the cabinet sends it again
        probe.send("QH-A", payload, KEY_A)
        wait_for(lambda: probe.acked(bid), 10, "the resent batch's ack")

        faults.set(FaultSettings(duplicates=True, stall_s=0.2))
        bid, payload = batch(records(1))
        probe.send("QH-A", payload, KEY_A)
        wait_for(lambda: len(probe.acked(bid)) == 2, 10, "the ack twice")
        assert len(stored_ids(store)) == 3
    finally:
        w.stop()


@SQLITE_ONLY
def test_the_disconnect_fault_leaves_the_broker_and_comes_back(store, broker, probe):
    faults = Faults()
    w = IngestWorker(store, broker.url, faults=faults).start()
    try:
        assert w.wait_connected(10)
        faults.set(FaultSettings(disconnect=0.5))
        wait_for(lambda: not w.connected, 5, "the worker away")
        assert w.wait_connected(10)
        bid, payload = batch(records(1))
        probe.send("QH-A", payload, KEY_A)
        wait_for(lambda: probe.acked(bid), 10, "an ack after coming back")
    finally:
        w.stop()


# -- a database that fails -------------------------------------------------------------------------
class FlakyStore:
    """The real store, but ``store_batches`` fails ``fails`` times first (a database away),
    and always when it is given batch ``poison`` (one batch the database cannot take)."""

    def __init__(self, store: Store, fails: int = 0, poison: str | None = None):
        self._store, self.fails, self.poison, self.calls = store, fails, poison, 0

    def __getattr__(self, name: str):
        return getattr(self._store, name)

    def store_batches(self, batches):
        self.calls += 1
        if self.fails > 0:
            self.fails -= 1
            raise OSError("the database went away")
        if any(b.batch == self.poison for _, b, _ in batches):
            raise ValueError("a value this database cannot store")
        return self._store.store_batches(batches)

    def healthy(self) -> bool:
        return self.fails == 0


@SQLITE_ONLY
def test_a_database_error_gives_no_ack_and_the_resent_batch_is_stored(store, broker, probe):
    flaky = FlakyStore(store, fails=1)
    with running_worker(flaky, broker):  # type: ignore[arg-type]
        bid, payload = batch(records(2))
        probe.send("QH-A", payload, KEY_A)
        wait_for(lambda: flaky.calls >= 1 and not flaky.fails, 10, "the failed attempt")
        probe.send("QH-A", payload, KEY_A)
        wait_for(lambda: probe.acked(bid), 10, "the ack of the resent batch")
        assert len(probe.acked(bid)) == 1
        assert len(stored_ids(store)) == 2


@SQLITE_ONLY
def test_a_batch_the_database_refuses_does_not_hold_up_the_others(store, broker, probe):
    poison, bad = batch(records(1))
    flaky = FlakyStore(store, poison=poison)
    # A long linger: the three batches are likely stored in one transaction, which fails.
    with running_worker(flaky, broker, max_wait_s=0.3):  # type: ignore[arg-type]
        first, p1 = batch(records(1))
        last, p2 = batch(records(1))
        for payload in (p1, bad, p2):
            probe.send("QH-A", payload, KEY_A)
        wait_for(lambda: probe.acked(first) and probe.acked(last), 10, "the good batches")
        assert not probe.acked(poison)
        assert len(stored_ids(store)) == 2


# -- downlinks and commands ---------------------------------------------------------------------
class Listener:
    def __init__(self, b: Broker, topic: str):
        self.got: list[tuple[str, bytes, bool]] = []
        ready = threading.Event()
        c = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=f"t-l-{next_id()}", protocol=mqtt.MQTTv5
        )
        c.on_connect = lambda cl, *a: cl.subscribe(topic, qos=1)
        c.on_subscribe = lambda *a: ready.set()
        c.on_message = lambda cl, u, m: self.got.append((m.topic, bytes(m.payload), m.retain))
        c.connect("127.0.0.1", b.port)
        c.loop_start()
        assert ready.wait(10)
        self.client = c

    def messages(self, leaf: str) -> list[dict]:
        return [json.loads(p) for t, p, _ in self.got if t.endswith(leaf) and p]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@SQLITE_ONLY
def test_a_pushed_catalog_is_retained_and_signed_and_commands_are_pumped(store, broker, db_url):
    pub = Publisher(store, broker.url).start()
    try:
        assert pub.wait_connected(10)
        catalog = json.loads((ROOT / "examples" / "catalog.json").read_text(encoding="utf-8"))
        with pytest.raises(ValueError, match="unknown config key"):
            pub.push("QH-A", "config", {"colour": "red"})  # a cabinet would refuse it
        assert store.latest_downlink("QH-A", "config") is None
        message = pub.push("QH-A", "catalog", catalog)
        assert signing.verify_message(KEY_A, message)
        assert message["version"] == catalog["version"]
        # A cabinet connecting afterwards still gets it: retained.
        late = Listener(broker, wire.topic("QH-A", "down/#"))
        wait_for(lambda: late.messages("down/catalog"), 10, "the retained catalogue")
        assert late.messages("down/catalog")[0] == message
        # Retained (a live copy may come first: the publisher sends the newest downlinks again
        # right after it connects, which can cross the listener's subscription).
        assert any(r for t, _, r in late.got if t.endswith("down/catalog"))

        # A command queued by another process (`kiosk central send`) goes out, once.
        other = Store(db_url)
        try:
            cmd = other.add_command("QH-A", "reboot", {}, 600)
        finally:
            other.close()
        wait_for(lambda: late.messages("down/cmd"), 10, "the command")
        [got] = late.messages("down/cmd")
        assert got == cmd and signing.verify_message(KEY_A, got)
        wait_for(lambda: not store.unpublished_commands(), 10, "marked published")
        assert not [r for t, _, r in late.got if t.endswith("down/cmd") and r]  # not retained
        late.close()
    finally:
        pub.stop()


@SQLITE_ONLY
def test_the_newest_downlinks_are_published_again_after_a_reconnect(store, tmp_path):
    b = make_broker(tmp_path)
    pub = Publisher(store, b.url).start()
    try:
        assert pub.wait_connected(10)
        message = pub.push("QH-B", "config", {"door_open_alarm_s": 90}, version=3)
        b.kill()  # persistence off: the broker forgets its retained messages
        wait_for(lambda: not pub.connected, 10, "the publisher sees the broker go")
        b.start()
        assert pub.wait_connected(10)
        late = Listener(b, wire.topic("QH-B", "down/config"))
        wait_for(lambda: late.messages("down/config"), 10, "the config again")
        assert late.messages("down/config")[-1] == message
        late.close()
    finally:
        pub.stop()
        b.kill()


# -- small units ---------------------------------------------------------------------------------
def test_client_ids_never_take_a_cabinets_form():
    a, b = default_client_id(), default_client_id()
    assert a != b and a.startswith("kiosk-central-ingest-")
    assert check_client_id("kiosk-central-x") == "kiosk-central-x"
    for bad in ("kiosk-QH-0001", "", "x" * 200):
        with pytest.raises(ValueError):
            check_client_id(bad)


def test_mqtt_urls():
    u = parse_mqtt_url("mqtts://central:s%40cret@broker.example:8884")
    assert (u.host, u.port, u.tls, u.username, u.password) == (
        "broker.example",
        8884,
        True,
        "central",
        "s@cret",
    )
    assert parse_mqtt_url("mqtt://127.0.0.1").port == 1883
    assert parse_mqtt_url("mqtts://h").port == 8883
    for bad in ("http://h:1", "mqtt://", "mqtt://h:99999", "mqtt://h/x", "h:1883"):
        with pytest.raises(ValueError):
            parse_mqtt_url(bad)
    with pytest.raises(ValueError) as e:
        parse_mqtt_url("ftp://u:hunter2@h")
    assert "hunter2" not in str(e.value)
