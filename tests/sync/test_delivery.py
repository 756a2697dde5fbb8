"""Every sale reaches the centre once: MQTT, HTTP, and the failures in between."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import requests

from central.faults import FaultSettings
from kiosk import db as kdb
from kiosk import wire
from sync.agent import CONTACT_EVERY_S, Agent, Settings
from tests.sync.conftest import (
    CABINET,
    KEY,
    add_sales,
    assert_all_delivered_once,
    cabinet_counts,
    wait_for,
)


def last_contact(path: Path) -> str | None:
    db = kdb.connect(path)
    try:
        row = db.execute("SELECT value FROM settings WHERE key = 'last_contact'").fetchone()
    finally:
        db.conn.close()
    return row[0] if row else None


def delivered(path: Path) -> int:
    return cabinet_counts(path).get("delivered", 0)


def test_sales_stream_over_mqtt_and_are_acknowledged(
    tmp_path, central, broker, sync_proc, cabinet_db
):
    add_sales(cabinet_db, 300)
    sync_proc(mqtt=broker.url, http=central.http_url, batch_max_records=50)
    wait_for(lambda: cabinet_counts(cabinet_db).get("pending", 0) == 0, 30, "drain")
    add_sales(cabinet_db, 20, start=300)
    wait_for(lambda: central.store.stats().sales == 320, 30, "new sales")
    wait_for(lambda: cabinet_counts(cabinet_db).get("pending", 0) == 0, 30, "drain")
    assert_all_delivered_once(cabinet_db, tmp_path / "central.db")


def test_http_only_cabinet_delivers_with_idempotency(tmp_path, central, sync_proc, cabinet_db):
    add_sales(cabinet_db, 120)
    assert last_contact(cabinet_db) is None
    sync_proc(http=central.http_url, batch_max_records=40)
    wait_for(lambda: central.store.stats().sales == 120, 30, "http delivery")
    wait_for(lambda: cabinet_counts(cabinet_db).get("pending", 0) == 0, 30, "drain")
    assert abs(time.time() - wire.parse_time(last_contact(cabinet_db))) < 30
    assert_all_delivered_once(cabinet_db, tmp_path / "central.db")


def test_kill_9_mid_batch_then_restart(tmp_path, central, broker, sync_proc, cabinet_db):
    add_sales(cabinet_db, 3000)
    # Slow acks keep batches in flight, so the kill lands between storing and marking.
    central.set_faults(FaultSettings(stall_s=0.3))
    p = sync_proc(mqtt=broker.url, batch_max_records=100)
    wait_for(lambda: central.store.stats().sales >= 300, 30, "some delivered")
    p.kill9()
    stored_at_kill = central.store.stats().sales
    assert 0 < stored_at_kill < 3000
    central.set_faults(FaultSettings())
    sync_proc(mqtt=broker.url, batch_max_records=500)
    wait_for(lambda: cabinet_counts(cabinet_db).get("pending", 0) == 0, 60, "drain")
    # Batches stored but not yet acknowledged when killed went again, and were dropped.
    assert central.store.stats().duplicates > 0
    assert_all_delivered_once(cabinet_db, tmp_path / "central.db")


def test_broker_killed_and_restarted_mid_stream(tmp_path, central, broker, sync_proc, cabinet_db):
    add_sales(cabinet_db, 500)
    sync_proc(mqtt=broker.url, batch_max_records=50)
    wait_for(lambda: central.store.stats().sales > 0, 30, "first batch")
    broker.kill()
    add_sales(cabinet_db, 500, start=500)  # sales go on while the broker is away
    time.sleep(0.5)
    broker.start()
    assert central.wait_mqtt(10)
    wait_for(lambda: central.store.stats().sales == 1000, 60, "all sales after restart")
    wait_for(lambda: cabinet_counts(cabinet_db).get("pending", 0) == 0, 30, "drain")
    assert_all_delivered_once(cabinet_db, tmp_path / "central.db")


def test_dropped_acks_are_resent_and_deduplicated(tmp_path, central, broker, sync_proc, cabinet_db):
    add_sales(cabinet_db, 400)
    r = requests.post(f"{central.http_url}/admin/faults", json={"drop_acks": 3}, timeout=5)
    assert r.status_code == 200
    sync_proc(mqtt=broker.url, batch_max_records=100, tune=["ack_timeout_s=1"])
    wait_for(lambda: cabinet_counts(cabinet_db).get("pending", 0) == 0, 40, "drain")
    stats = central.store.stats()
    assert stats.duplicates >= 100  # the centre did see the unacknowledged batches again
    assert_all_delivered_once(cabinet_db, tmp_path / "central.db")


def test_100_connection_cuts_during_a_stream(tmp_path, central, broker, sync_proc, cabinet_db):
    from tests.sync.proxy import CuttingProxy

    proxy = CuttingProxy(broker.port)
    sync_proc(mqtt=f"mqtt://127.0.0.1:{proxy.port}", batch_max_records=20)
    total = 0
    cuts = 0
    try:
        while cuts < 100:
            add_sales(cabinet_db, 10, start=total)
            total += 10
            wait_for(lambda n=cuts: proxy.accepted > n, 20, "a reconnection")
            time.sleep(0.05)
            cuts += proxy.cut_all() and 1
        wait_for(lambda: central.store.stats().sales == total, 60, "all sales after the cuts")
        wait_for(lambda: cabinet_counts(cabinet_db).get("pending", 0) == 0, 30, "drain")
    finally:
        proxy.close()
    assert cuts == 100
    assert_all_delivered_once(cabinet_db, tmp_path / "central.db")


def test_a_week_offline_then_drain(tmp_path, central, broker, sync_proc, cabinet_db):
    # A busy cabinet sells ~300 a day: 2,000 sales queue up while it has no network at all.
    add_sales(cabinet_db, 2000)
    assert cabinet_counts(cabinet_db)["pending"] == 2000
    sync_proc(mqtt=broker.url, http=central.http_url)
    wait_for(lambda: central.store.stats().sales == 2000, 60, "the week's sales")
    wait_for(lambda: cabinet_counts(cabinet_db).get("pending", 0) == 0, 30, "drain")
    assert_all_delivered_once(cabinet_db, tmp_path / "central.db")


def test_http_fallback_when_mqtt_is_down_and_500s_are_retried(
    tmp_path, central, sync_proc, cabinet_db
):
    add_sales(cabinet_db, 200)
    central.set_faults(FaultSettings(http_500=3))
    dead_port = socket.socket()
    dead_port.bind(("127.0.0.1", 0))  # bound, not listening: MQTT connections are refused
    port = dead_port.getsockname()[1]
    try:
        sync_proc(
            mqtt=f"mqtt://127.0.0.1:{port}",
            http=central.http_url,
            http_fallback_after_s=0.5,
            batch_max_records=50,
        )
        wait_for(lambda: central.store.stats().sales == 200, 30, "delivery over HTTP")
        wait_for(lambda: cabinet_counts(cabinet_db).get("pending", 0) == 0, 30, "drain")
    finally:
        dead_port.close()
    assert central.faults.current.http_500 == 0  # the 500s were answered and retried
    assert_all_delivered_once(cabinet_db, tmp_path / "central.db")


def test_rejected_records_become_dead_letters_with_an_event(
    tmp_path, central, broker, sync_proc, cabinet_db
):
    add_sales(cabinet_db, 5)
    db = kdb.connect(cabinet_db)
    with kdb.transaction(db):
        bad, _ = kdb.outbox_append(db, "sale", {"items": "not a list", "total_fen": 1})
    db.conn.close()
    sync_proc(mqtt=broker.url)
    wait_for(lambda: cabinet_counts(cabinet_db).get("dead", 0) == 1, 30, "a dead letter")
    wait_for(lambda: cabinet_counts(cabinet_db).get("pending", 0) == 0, 30, "drain")
    db = kdb.connect(cabinet_db)
    why = db.execute("SELECT why FROM outbox WHERE id = ?", (bad,)).fetchone()[0]
    ev = db.execute("SELECT detail_json FROM events WHERE kind = 'dead letter'").fetchall()
    db.conn.close()
    assert "items" in why
    assert len(ev) == 1 and json.loads(ev[0][0])["record"] == bad
    assert central.store.stats().sales == 5  # the bad one is not counted


def test_centre_leaving_the_broker_and_answering_twice(
    tmp_path, central, broker, sync_proc, cabinet_db
):
    add_sales(cabinet_db, 300)
    r = requests.post(
        f"{central.http_url}/admin/faults", json={"duplicates": True, "disconnect": 1.0}, timeout=5
    )
    assert r.json()["duplicates"] is True
    sync_proc(mqtt=broker.url, batch_max_records=50, tune=["ack_timeout_s=1"])
    add_sales(cabinet_db, 300, start=300)
    wait_for(lambda: central.store.stats().sales == 600, 40, "all sales")
    wait_for(lambda: cabinet_counts(cabinet_db).get("pending", 0) == 0, 30, "drain")
    assert (
        requests.post(f"{central.http_url}/admin/faults", json={"bogus": 1}, timeout=5).status_code
        == 400
    )
    assert_all_delivered_once(cabinet_db, tmp_path / "central.db")


def test_last_contact_is_noted_at_most_every_few_seconds(cabinet_db):
    """A stream of acks does not become a stream of writes: one per CONTACT_EVERY_S."""
    agent = Agent(Settings(CABINET, KEY), cabinet_db)  # no links: acks are handed in
    try:
        agent._on_acks([wire.Ack(wire.uuid7(), (), ())])
        first = last_contact(cabinet_db)
        assert first is not None
        for _ in range(50):
            time.sleep(0.002)
            agent._on_acks([wire.Ack(wire.uuid7(), (), ())])
        assert last_contact(cabinet_db) == first
        agent.contact_noted -= CONTACT_EVERY_S  # as if those seconds had passed
        agent._on_acks([wire.Ack(wire.uuid7(), (), ())])
        assert last_contact(cabinet_db) > first
    finally:
        agent.close()
