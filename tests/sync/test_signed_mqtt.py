"""Signed both ways on MQTT v5: the cabinet's batches carry a good signature, and an ack counts
only signed with the cabinet's key (a stranger on the broker cannot mark sales delivered)."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from central.faults import FaultSettings
from kiosk import db as kdb
from kiosk import signing, wire
from tests.sync.conftest import (
    CABINET,
    KEY,
    Broker,
    add_sales,
    assert_all_delivered_once,
    cabinet_counts,
    wait_for,
)


class Stranger:
    """A paho v5 client on the broker that is not the centre: it listens and publishes."""

    def __init__(self, broker: Broker, listen: str | None = None):
        self.got: list[tuple[bytes, dict[str, str]]] = []
        self._lock = threading.Lock()
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id="stranger", protocol=mqtt.MQTTv5
        )
        self.subscribed = threading.Event()
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *a: self.subscribed.set()
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()
        if listen:
            self.client.subscribe(listen, qos=1)
            assert self.subscribed.wait(10)

    def _on_message(self, client, userdata, msg) -> None:
        props = dict(getattr(msg.properties, "UserProperty", None) or [])
        with self._lock:
            self.got.append((msg.payload, props))

    def messages(self) -> list[tuple[bytes, dict[str, str]]]:
        with self._lock:
            return list(self.got)

    def publish(self, topic: str, payload: bytes, user: dict[str, str] | None = None) -> None:
        props = None
        if user:
            props = Properties(PacketTypes.PUBLISH)
            props.UserProperty = list(user.items())
        self.client.publish(topic, payload, qos=1, properties=props).wait_for_publish(10)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def states(path: Path, ids: list[str]) -> set[str]:
    db = kdb.connect(path)
    try:
        marks = ",".join("?" * len(ids))
        rows = db.execute(f"SELECT state FROM outbox WHERE id IN ({marks})", ids).fetchall()
    finally:
        db.conn.close()
    return {r[0] for r in rows}


def ignored_acks(log: Path) -> int:
    return log.read_text(errors="replace").count("event=ack_ignored") if log.exists() else 0


def test_up_batches_carry_a_good_signature(tmp_path, central, broker, sync_proc, cabinet_db):
    listener = Stranger(broker, wire.topic(CABINET, "up"))
    try:
        add_sales(cabinet_db, 60)
        sync_proc(mqtt=broker.url, batch_max_records=20)
        wait_for(lambda: cabinet_counts(cabinet_db).get("pending", 0) == 0, 30, "drain")
        got = listener.messages()
    finally:
        listener.close()
    assert len(got) >= 3
    for payload, props in got:
        assert set(props) >= {signing.TIMESTAMP_PROPERTY, signing.SIGNATURE_PROPERTY}
        why = signing.check_signed(
            KEY, props[signing.TIMESTAMP_PROPERTY], props[signing.SIGNATURE_PROPERTY], payload
        )
        assert why is None
        assert signing.check_signed(
            bytes(32), props["x-timestamp"], props["x-signature"], payload
        ) == ("bad signature")
    assert_all_delivered_once(cabinet_db, tmp_path / "central.db")


def test_forged_acks_are_ignored_and_the_centre_delivers_once(
    tmp_path, central, broker, sync_proc, cabinet_db
):
    ids = add_sales(cabinet_db, 50)
    central.set_faults(FaultSettings(drop_acks=-1))  # the centre stores, and says nothing
    sync_proc(mqtt=broker.url, batch_max_records=50)
    wait_for(lambda: central.store.stats().sales == 50, 30, "sales stored, unanswered")
    forged = json.dumps({"batch": wire.uuid7(), "stored": ids, "rejected": []}).encode()
    wrong = signing.signed_properties(bytes(32), forged, 1_796_032_800)
    elsewhere = json.dumps({"batch": "b", "stored": [], "rejected": []}).encode()
    replayed = signing.signed_properties(KEY, elsewhere, 1_796_032_800)  # genuine, other body
    stranger = Stranger(broker)
    try:
        stranger.publish(wire.topic(CABINET, "ack"), forged)  # unsigned
        stranger.publish(wire.topic(CABINET, "ack"), forged, wrong)
        stranger.publish(wire.topic(CABINET, "ack"), forged, replayed)
        rejected = {"batch": "b", "stored": [], "rejected": [{"id": ids[0], "why": "forged"}]}
        stranger.publish(wire.topic(CABINET, "ack"), json.dumps(rejected).encode())
    finally:
        stranger.close()
    log = tmp_path / "sync.log"
    wait_for(lambda: ignored_acks(log) >= 4, 20, "four acks ignored")
    assert states(cabinet_db, ids) == {"pending"}  # nothing delivered, nothing dead
    central.set_faults(FaultSettings())
    wait_for(lambda: cabinet_counts(cabinet_db).get("pending", 0) == 0, 30, "drain")
    assert states(cabinet_db, ids) == {"delivered"}
    assert cabinet_counts(cabinet_db).get("dead", 0) == 0
    assert central.store.stats().sales == 50
    assert_all_delivered_once(cabinet_db, tmp_path / "central.db")
