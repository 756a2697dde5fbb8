"""What the MQTT tests share: a cabinet-like paho v5 client (``Probe``), signed batches,
and the broker, store and worker as context managers (conftest.py makes fixtures of them)."""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from central.metrics import Metrics
from central.mqtt_ingest import IngestWorker
from central.store import Store
from kiosk import signing, wire
from tests.sync.conftest import Broker, make_broker, sale_body

KEY_A = bytes(range(32))
KEY_B = bytes(range(32, 64))
CABS = {"QH-A": KEY_A, "QH-B": KEY_B}
ROOT = Path(__file__).resolve().parents[3]
_ids = itertools.count(1)


def next_id() -> int:
    """A number no other probe or record of this test run has."""
    return next(_ids)


# What the database does is test_store*'s business: most tests here run on SQLite only, those
# where several transactions or processes meet run on PostgreSQL too.
SQLITE_ONLY = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


# -- the cabinet side ---------------------------------------------------------------------------
def records(n: int, cabinet: str = "QH-A", seq0: int = 1) -> list[tuple[str, str]]:
    """``n`` sale records as (id, record JSON), the way the agent writes them."""
    out = []
    for k in range(n):
        rid = f"{cabinet}-r{next(_ids):08d}"
        body = json.dumps(sale_body(seq0 + k))
        out.append(
            (rid, wire.record_json(wire.Record(rid, seq0 + k, "sale", wire.now_iso(), body)))
        )
    return out


def batch(recs: list[tuple[str, str]], batch_id: str | None = None) -> tuple[str, bytes]:
    bid = batch_id or wire.uuid7()
    return bid, wire.batch_json(bid, [r for _, r in recs])


def signed(key: bytes, payload: bytes) -> Properties:
    props = Properties(PacketTypes.PUBLISH)
    props.UserProperty = list(signing.signed_properties(key, payload, time.time()).items())
    return props


class Probe:
    """Publishes as any cabinet (or a stranger) and records every ack the centre sends."""

    def __init__(self, b: Broker, name: str = "probe"):
        self.acks: list[tuple[str, bytes, dict[str, str]]] = []
        self._lock = threading.Lock()
        self._ready = threading.Event()
        c = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=f"test-{name}-{next(_ids)}",
            protocol=mqtt.MQTTv5,
        )
        c.on_connect = lambda cl, *a: cl.subscribe(wire.topic("+", "ack"), qos=1)
        c.on_subscribe = lambda *a: self._ready.set()
        c.on_message = self._on_message
        c.connect("127.0.0.1", b.port, clean_start=True)
        c.loop_start()
        assert self._ready.wait(10)
        self.client = c

    def _on_message(self, client, userdata, msg) -> None:
        props = dict(getattr(msg.properties, "UserProperty", None) or [])
        with self._lock:
            self.acks.append((wire.cabinet_of(msg.topic) or "", bytes(msg.payload), props))

    def send(
        self,
        cabinet: str,
        payload: bytes,
        key: bytes | None = None,
        props: Properties | None = None,
    ) -> None:
        """Publish on ``cabinet``'s up topic, signed with ``key`` (None: unsigned)."""
        if props is None and key is not None:
            props = signed(key, payload)
        info = self.client.publish(wire.topic(cabinet, "up"), payload, qos=1, properties=props)
        info.wait_for_publish(10)

    def acked(self, batch_id: str) -> list[tuple[str, dict, dict[str, str]]]:
        with self._lock:
            got = list(self.acks)
        out = []
        for cab, payload, props in got:
            m = json.loads(payload)
            if m.get("batch") == batch_id:
                out.append((cab, m, props))
        return out

    def acked_ids(self) -> set[str]:
        with self._lock:
            return {json.loads(p)["batch"] for _, p, _ in self.acks}

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


# -- context managers (the fixtures in conftest.py are made of them) ---------------------------
@contextmanager
def open_broker(tmp_path: Path) -> Iterator[Broker]:
    b = make_broker(tmp_path)
    try:
        yield b
    finally:
        b.kill()


@contextmanager
def open_store(db_url: str) -> Iterator[Store]:
    """The centre's store with cabinets QH-A and QH-B."""
    s = Store(db_url)
    try:
        for cab, key in CABS.items():
            s.add_cabinet(cab, key)
        yield s
    finally:
        s.close()


@contextmanager
def open_probe(b: Broker) -> Iterator[Probe]:
    p = Probe(b)
    try:
        yield p
    finally:
        p.close()


@contextmanager
def running_worker(store: Store, b: Broker, **kw: Any) -> Iterator[IngestWorker]:
    w = IngestWorker(store, b.url, **kw).start()
    try:
        assert w.wait_connected(10)
        yield w
    finally:
        w.stop()


def stored_ids(store: Store, cabinet: str | None = None) -> list[str]:
    return [r["id"] for r in store.records(cabinet)]


def metric(metrics: Metrics, name: str, **labels: str) -> float:
    v = metrics.registry.get_sample_value(name, {"path": "mqtt", **labels})
    return v or 0.0
