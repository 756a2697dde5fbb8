"""What the centre's refusals do, against the real centre (``central.service``): a storm of 429s
during a catch-up loses nothing, a clock the centre refuses raises one event and no dead letter,
a refused record is the only dead letter, and a capture answered 429 is kept and completed.
(Refusals the real centre has no way to make on demand: test_4xx_rules.py.)"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from central.faults import FaultSettings
from kiosk import db as kdb
from kiosk import wire
from kiosk.config import Central
from sync import store
from sync.agent import Agent, Settings
from sync.http_link import HttpLink
from sync.payments import HttpPaymentPort
from tests.sync.conftest import (
    CABINET,
    KEY,
    add_sales,
    assert_all_delivered_once,
    cabinet_counts,
    cabinet_events,
    wait_for,
)


def log_count(log: Path, text: str) -> int:
    return log.read_text(errors="replace").count(text) if log.exists() else 0


def test_a_429_storm_during_a_catch_up_loses_nothing(tmp_path, central, sync_proc, cabinet_db):
    n = 10_000
    add_sales(cabinet_db, n)
    sync_proc(http=central.http_url, batch_max_records=500)
    wait_for(lambda: central.store.stats().sales >= 1000, 60, "the catch-up under way")
    central.set_faults(FaultSettings(http_429=-1))  # every request: 429, Retry-After: 1
    log = tmp_path / "sync.log"
    wait_for(lambda: log_count(log, "HTTP 429") >= 3, 30, "three 429s")
    stalled = central.store.stats().sales
    assert stalled < n
    central.set_faults(FaultSettings())
    wait_for(lambda: central.store.stats().sales == n, 90, "the catch-up")
    wait_for(lambda: cabinet_counts(cabinet_db).get("pending", 0) == 0, 30, "drain")
    c = cabinet_counts(cabinet_db)
    assert c.get("dead", 0) == 0 and c["sales"] == n
    assert_all_delivered_once(cabinet_db, tmp_path / "central.db")


def test_a_clock_the_centre_refuses_raises_one_event_and_no_dead_letter(
    tmp_path, central, cabinet_db
):
    add_sales(cabinet_db, 20)
    offset = [-900.0]  # the cabinet's clock is 15 minutes slow
    s = Settings(
        CABINET,
        KEY,
        Central(http=central.http_url, poll_interval_s=0.2),
        backoff_base_s=0.02,
        backoff_cap_s=0.2,
        http_timeout_s=3,
    )
    agent = Agent(s, cabinet_db, wall=lambda: time.time() + offset[0])
    stop = threading.Event()
    end = time.monotonic() + 30

    def tick() -> None:
        if agent.counters.clock_skew >= 5:
            offset[0] = 0.0  # the operator sets the clock
        if store.pending_count(agent.db) == 0 or time.monotonic() > end:
            stop.set()

    agent.run(stop, tick)
    assert agent.counters.clock_skew >= 5
    [e] = cabinet_events(cabinet_db, "clock skew")
    assert "centre_time" in e and abs(e["offset_s"] + 900) < 60
    c = cabinet_counts(cabinet_db)
    assert c.get("pending", 0) == 0 and c.get("dead", 0) == 0
    assert_all_delivered_once(cabinet_db, tmp_path / "central.db")


def test_a_record_the_centre_refuses_is_the_only_dead_letter_over_http(
    tmp_path, central, sync_proc, cabinet_db
):
    add_sales(cabinet_db, 5)
    db = kdb.connect(cabinet_db)
    with kdb.transaction(db):
        bad, _ = kdb.outbox_append(db, "sale", {"items": "not a list", "total_fen": 1})
    db.conn.close()
    add_sales(cabinet_db, 5, start=5)
    sync_proc(http=central.http_url)
    wait_for(lambda: cabinet_counts(cabinet_db).get("pending", 0) == 0, 30, "drain")
    db = kdb.connect(cabinet_db)
    dead = db.execute("SELECT id FROM outbox WHERE state = 'dead'").fetchall()
    db.conn.close()
    assert dead == [(bad,)]
    assert [e["record"] for e in cabinet_events(cabinet_db, "dead letter")] == [bad]
    assert central.store.stats().sales == 10


def test_a_capture_answered_429_stays_pending_then_completes(
    tmp_path, central, sync_proc, cabinet_db
):
    auth = HttpPaymentPort(HttpLink(central.http_url, CABINET, KEY)).authorize(
        "s-1", "1" * 18, 5000
    )
    assert auth.ok
    db = kdb.connect(cabinet_db)
    with kdb.transaction(db):  # as the controller keeps a capture it could not make
        db.execute(
            "INSERT INTO captures(auth_id, session, amount_fen, state, tries, updated_at) "
            "VALUES (?, 's-1', 3200, 'pending', 0, ?)",
            (auth.auth_id, wire.now_iso()),
        )
    db.conn.close()

    def capture() -> tuple:
        db = kdb.connect(cabinet_db)
        try:
            return db.execute("SELECT state, tries, last_error FROM captures").fetchone()
        finally:
            db.conn.close()

    central.set_faults(FaultSettings(http_429=-1))
    sync_proc(http=central.http_url, poll_interval_s=0.2)
    wait_for(lambda: capture()[1] >= 2, 30, "two tries answered 429")
    state, _, why = capture()
    assert state == "pending" and "429" in why
    assert central.store.payments()[0]["captured_fen"] is None
    central.set_faults(FaultSettings())
    wait_for(lambda: capture()[0] == "done", 30, "the capture")
    assert capture()[2] is None
    [p] = central.store.payments()
    assert (p["captured_fen"], p["state"]) == (3200, "captured")
    assert cabinet_events(cabinet_db, "capture refused") == []
