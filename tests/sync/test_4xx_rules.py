"""The agent alone, against a scripted centre (tests/sync/scripted_centre.py): what each refusal
does to the records and captures it answers, and which acks count. The same rules against the
real centre: test_refusals.py and test_signed_mqtt.py."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from kiosk import db as kdb
from kiosk import signing, wire
from kiosk.config import Central
from sync import store
from sync.agent import CLOCK_SKEW_NOTED, Agent, Settings
from sync.http_link import CentralBusy
from sync.mqtt_link import Inbound
from tests.sync.conftest import CABINET, KEY, add_sales, cabinet_counts, cabinet_events
from tests.sync.scripted_centre import Reply, ScriptedCentre, Seen

ACK_TOPIC = wire.topic(CABINET, "ack")


@pytest.fixture
def centre():
    with ScriptedCentre(KEY) as c:
        yield c


def settings(centre: ScriptedCentre) -> Settings:
    return Settings(
        CABINET,
        KEY,
        Central(http=centre.url, poll_interval_s=0.2),
        backoff_base_s=0.02,
        backoff_cap_s=0.1,
        http_timeout_s=2,
    )


def run_until(agent: Agent, done: Callable[[], bool], timeout: float = 20) -> None:
    """The agent's own loop, on this thread, until ``done()`` (asked after every step)."""
    stop = threading.Event()
    met: list[bool] = []
    end = time.monotonic() + timeout

    def tick() -> None:
        if done():
            met.append(True)
            stop.set()
        elif time.monotonic() > end:
            stop.set()

    agent.run(stop, tick)  # closes the agent
    assert met, f"timed out: {agent.counters}"


def pending(agent: Agent) -> int:
    return store.pending_count(agent.db)


def sent_ids(seen: Seen) -> list[str]:
    return [r["id"] for r in json.loads(seen.body)["records"]]


def test_a_signed_400_naming_one_record_dead_letters_that_one_only(centre, cabinet_db):
    ids = add_sales(cabinet_db, 5)

    def name_the_third(seen: Seen) -> Reply:
        assert ids[2] in sent_ids(seen)
        rejected = [{"id": ids[2], "why": "qty over 999"}, {"id": "not-in-this-batch"}]
        return Reply(400, {"error": "bad records", "detail": {"rejected": rejected}})

    centre.then("batches", name_the_third)
    agent = Agent(settings(centre), cabinet_db)
    run_until(agent, lambda: pending(agent) == 0)
    c = cabinet_counts(cabinet_db)
    assert c["dead"] == 1 and c["delivered"] == 6  # four sales, telemetry, the event
    db = kdb.connect(cabinet_db)
    dead = db.execute("SELECT id, why FROM outbox WHERE state = 'dead'").fetchall()
    db.conn.close()
    assert dead == [(ids[2], "qty over 999")]
    assert [e["record"] for e in cabinet_events(cabinet_db, "dead letter")] == [ids[2]]
    assert ids[2] not in sent_ids(centre.posts("batches")[-1])


def test_a_4xx_that_names_no_record_keeps_the_batch_pending(centre, cabinet_db):
    ids = add_sales(cabinet_db, 6)
    naming = {"error": "bad records", "detail": {"rejected": [{"id": ids[0], "why": "w"}]}}
    centre.then(
        "batches",
        Reply(400, naming, signed=False),  # names one, but anyone could have said it
        Reply(400, naming, key=bytes(32)),
        Reply(403, {"error": "forbidden"}),
        Reply(422, {"error": "idempotency key reused", "detail": "other body"}),
        Reply(404, {"error": "no such path"}),
        Reply(413, {"error": "too large"}),
    )
    agent = Agent(settings(centre), cabinet_db)
    run_until(agent, lambda: pending(agent) == 0)
    assert agent.counters.refused == 6 and agent.counters.dead == 0
    c = cabinet_counts(cabinet_db)
    assert c.get("dead", 0) == 0 and c["delivered"] == 7
    posts = centre.posts("batches")
    assert all(set(ids) <= set(sent_ids(p)) for p in posts[:6])  # the whole page each time
    too_large = len(sent_ids(posts[5]))
    assert all(len(sent_ids(p)) <= too_large // 2 for p in posts[6:])  # after the 413: halved


def test_an_unsigned_ack_over_http_is_no_ack(centre, cabinet_db):
    add_sales(cabinet_db, 3)

    def unsigned(seen: Seen) -> Reply:
        return Reply(200, {"batch": "b", "stored": sent_ids(seen)}, signed=False)

    centre.then("batches", unsigned, unsigned)
    agent = Agent(settings(centre), cabinet_db)
    run_until(agent, lambda: pending(agent) == 0)
    assert agent.counters.acks_ignored == 2
    assert len(centre.posts("batches")) == 3  # the same records went a third time


def test_clock_skew_raises_one_event_an_hour_and_retries(centre, cabinet_db):
    add_sales(cabinet_db, 2)
    skew = Reply(401, {"error": "clock skew", "detail": {"centre_time": 1_796_032_800}})
    centre.then("batches", skew, skew, skew)
    agent = Agent(settings(centre), cabinet_db)
    run_until(agent, lambda: pending(agent) == 0)
    assert agent.counters.clock_skew == 3
    [e] = cabinet_events(cabinet_db, "clock skew")
    assert e["centre_time"] == wire.iso(1_796_032_800)
    assert abs(wire.parse_time(e["cabinet_time"]) - time.time()) < 600
    assert e["offset_s"] == round(wire.parse_time(e["cabinet_time"]) - 1_796_032_800)
    assert cabinet_counts(cabinet_db).get("dead", 0) == 0
    # A restart within the hour: no second event; an hour on: one more.
    centre.then("batches", skew)
    add_sales(cabinet_db, 1, start=2)
    agent = Agent(settings(centre), cabinet_db)
    run_until(agent, lambda: pending(agent) == 0)
    assert len(cabinet_events(cabinet_db, "clock skew")) == 1
    db = kdb.connect(cabinet_db)
    with kdb.transaction(db):
        store.put_setting(db, CLOCK_SKEW_NOTED, repr(time.time() - 3601))
    db.conn.close()
    centre.then("batches", Reply(401, {"error": "clock skew"}))
    add_sales(cabinet_db, 1, start=3)
    agent = Agent(settings(centre), cabinet_db)
    run_until(agent, lambda: pending(agent) == 0)
    second = cabinet_events(cabinet_db, "clock skew")[1]
    assert "centre_time" not in second and "cabinet_time" in second


def test_retry_after_holds_back_every_http_request(centre, cabinet_db):
    add_sales(cabinet_db, 2)
    agent = Agent(settings(centre), cabinet_db)
    try:
        now = time.monotonic()
        agent._http_trouble(now, CentralBusy("429", 30.0), "http batch")
        assert agent.http_quiet_until >= now + 30
        for _ in range(20):
            agent.step()
        assert centre.seen == []  # no batch, poll or capture while the centre asked for quiet
        agent.http_quiet_until = 0.0
        agent.step()
        assert len(centre.posts("batches")) == 1
    finally:
        agent.close()


def add_capture(path: Path, auth_id: str, amount: int) -> None:
    db = kdb.connect(path)
    with kdb.transaction(db):
        db.execute(
            "INSERT INTO captures(auth_id, session, amount_fen, state, tries, updated_at) "
            "VALUES (?, 's-1', ?, 'pending', 0, ?)",
            (auth_id, amount, wire.now_iso()),
        )
    db.conn.close()


def capture_row(agent: Agent, auth_id: str) -> tuple:
    return agent.db.execute(
        "SELECT state, tries, last_error FROM captures WHERE auth_id = ?", (auth_id,)
    ).fetchone()


def test_a_capture_stays_pending_until_a_final_answer(centre, cabinet_db):
    add_capture(cabinet_db, "a-1", 3200)
    centre.then(
        "capture",
        Reply(429, {"error": "slow down"}, {"Retry-After": "0"}),
        Reply(503, None),
        Reply(401, {"error": "clock skew"}),
        Reply(401, {"error": "bad signature"}),
        Reply(404, {"error": "unknown cabinet"}),
        Reply(500, {"error": "boom"}),
    )
    agent = Agent(settings(centre), cabinet_db)
    states: list[str] = []

    def done() -> bool:
        states.append(capture_row(agent, "a-1")[0])
        return states[-1] == "done"

    run_until(agent, done)
    assert set(states[:-1]) == {"pending"}
    db = kdb.connect(cabinet_db)
    assert db.execute("SELECT state, tries, last_error FROM captures").fetchone() == (
        "done",
        7,
        None,
    )
    db.conn.close()
    assert len(centre.posts("capture")) == 7
    assert cabinet_events(cabinet_db, "capture refused") == []


@pytest.mark.parametrize(
    ("status", "error"),
    [(404, "unknown auth_id"), (409, "already captured"), (400, "amount over the hold")],
)
def test_a_final_refusal_ends_a_capture_with_an_event(centre, cabinet_db, status, error):
    add_capture(cabinet_db, "a-1", 3200)
    centre.then("capture", Reply(status, {"error": error}))
    agent = Agent(settings(centre), cabinet_db)
    run_until(agent, lambda: capture_row(agent, "a-1")[0] == "done")
    assert cabinet_events(cabinet_db, "capture refused") == [{"auth_id": "a-1", "why": error}]
    assert len(centre.posts("capture")) == 1


def signed_ack(payload: bytes, key: bytes = KEY, payload_signed: bytes | None = None) -> Inbound:
    props = signing.signed_properties(key, payload_signed or payload, time.time())
    return Inbound(ACK_TOPIC, payload, tuple(props.items()))


def test_an_mqtt_ack_counts_only_with_a_good_signature(cabinet_db):
    agent = Agent(Settings(CABINET, KEY), cabinet_db)  # no links: messages are handed in
    try:
        payload = json.dumps({"batch": "b-1", "stored": ["r1"], "rejected": []}).encode()
        ts, sig = signed_ack(payload).user_properties
        other = json.dumps({"batch": "b-1", "stored": ["r2"], "rejected": []}).encode()
        forged = [
            Inbound(ACK_TOPIC, payload),  # unsigned
            Inbound(ACK_TOPIC, payload, (ts,)),  # no signature
            Inbound(ACK_TOPIC, payload, (sig,)),  # no timestamp
            signed_ack(payload, key=bytes(32)),  # another key
            signed_ack(payload, payload_signed=other),  # a genuine signature of another ack
            Inbound(ACK_TOPIC, payload, (ts, sig, ("x-signature", "0" * 64))),  # two of them
            Inbound(ACK_TOPIC, payload, (("x-timestamp", "soon"), sig)),
        ]
        assert [agent._checked_ack(m) for m in forged] == [None] * len(forged)
        assert agent.counters.acks_ignored == len(forged)
        assert agent._checked_ack(signed_ack(payload)) == wire.Ack("b-1", ("r1",), ())
        # An old genuine ack (a replay) still counts: no clock check on acks.
        old = signing.signed_properties(KEY, payload, time.time() - 86400 * 30)
        assert agent._checked_ack(Inbound(ACK_TOPIC, payload, tuple(old.items()))) is not None
        assert agent.counters.acks_ignored == len(forged)
    finally:
        agent.close()
