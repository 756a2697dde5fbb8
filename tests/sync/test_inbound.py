"""What comes down: checked, applied whole or refused with an event; results go back up."""

from __future__ import annotations

import json
import time
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from central.faults import FaultSettings
from kiosk import catalog as kcat
from kiosk import db as kdb
from kiosk import signing, wire
from sync import apply
from sync.agent import Agent, Settings
from tests.sync.conftest import CABINET, KEY, ROOT, cabinet_counts, wait_for

CATALOG = json.loads((ROOT / "examples" / "catalog.json").read_text(encoding="utf-8"))
ACCOUNT = "1847ec8a0df92538223ca2572ea4cfd3"


def with_catalog(path: Path) -> None:
    db = kdb.connect(path)
    kcat.apply_catalog(db, kcat.parse_catalog(CATALOG), "test")
    db.conn.close()


def catalog_v(version: int, rice_fen: int) -> dict:
    c = json.loads(json.dumps(CATALOG))
    c["version"] = version
    for p in c["products"]:
        if p["sku"] == "zr-rice-5kg":
            p["price_fen"] = rice_fen
    return c


def query(path: Path, sql: str, *args) -> list[tuple]:
    db = kdb.connect(path)
    try:
        return db.execute(sql, args).fetchall()
    finally:
        db.conn.close()


def set_setting(path: Path, key: str, value: str) -> None:
    db = kdb.connect(path)
    with kdb.transaction(db):
        kdb.set_setting(db, key, value)
    db.conn.close()


def last_contact(path: Path) -> str | None:
    rows = query(path, "SELECT value FROM settings WHERE key = 'last_contact'")
    return rows[0][0] if rows else None


def events(path: Path, kind: str = "inbound rejected") -> list[dict]:
    rows = query(path, "SELECT detail_json FROM events WHERE kind = ? ORDER BY at", kind)
    return [json.loads(r[0]) for r in rows]


def wait_online(central) -> None:
    """The cabinet's first telemetry has arrived: it is connected and subscribed."""
    wait_for(lambda: central.store.records(CABINET, "telemetry"), 20, "the cabinet online")


def command(cmd: str, args: dict, ttl: float = 600, key: bytes = KEY, cmd_id: str = "") -> dict:
    return signing.sign_message(
        key,
        {
            "cmd_id": cmd_id or wire.uuid7(),
            "cmd": cmd,
            "args": args,
            "expires_at": wire.iso(time.time() + ttl),
        },
    )


def test_catalogue_config_accounts_by_retained_topics(
    tmp_path, central, broker, sync_proc, cabinet_db
):
    with_catalog(cabinet_db)
    central.push(CABINET, "catalog", catalog_v(2, 4800))
    central.push(CABINET, "config", {"door_open_alarm_s": 90})
    central.push(
        CABINET,
        "accounts",
        [{"account": ACCOUNT, "name": "王医生", "status": "active", "offline_limit_fen": 20000}],
    )
    proc = sync_proc(mqtt=broker.url)
    wait_for(lambda: len(central.store.records(CABINET, "applied")) == 3, 30, "applied x3")
    assert query(cabinet_db, "SELECT max(version) FROM catalog_versions") == [(2,)]
    assert query(cabinet_db, "SELECT price_fen FROM products WHERE sku = 'zr-rice-5kg'") == [
        (4800,)
    ]
    cfg = query(cabinet_db, "SELECT value FROM settings WHERE key = ?", apply.CONFIG_JSON)
    assert json.loads(cfg[0][0]) == {"door_open_alarm_s": 90}
    assert query(cabinet_db, "SELECT name, status FROM accounts") == [("王医生", "active")]
    kinds = sorted(r["body"]["kind"] for r in central.store.records(CABINET, "applied"))
    assert kinds == ["accounts", "catalog", "config"]
    # An older catalogue is refused with an event; the one in force stays.
    central.push(CABINET, "catalog", catalog_v(1, 1), version=1)
    wait_for(lambda: len(events(cabinet_db)) == 1, 20, "refusal event")
    assert "not newer" in events(cabinet_db)[0]["why"]
    assert query(cabinet_db, "SELECT max(version) FROM catalog_versions") == [(2,)]
    # Restarted, the agent gets every retained message again: none is news, none an event.
    proc.stop()
    telemetry = len(central.store.records(CABINET, "telemetry"))
    sync_proc(mqtt=broker.url)
    wait_for(
        lambda: len(central.store.records(CABINET, "telemetry")) > telemetry, 20, "back online"
    )
    time.sleep(0.3)
    assert len(events(cabinet_db)) == 1
    assert len(central.store.records(CABINET, "applied")) == 3


def test_http_polling_is_the_second_path(tmp_path, central, sync_proc, cabinet_db):
    with_catalog(cabinet_db)
    central.push(CABINET, "catalog", catalog_v(3, 5000))
    central.store.add_command(CABINET, "set_price", {"sku": "hs-tea-100g", "price_fen": 3900})
    sync_proc(http=central.http_url, poll_interval_s=0.3)
    wait_for(
        lambda: query(cabinet_db, "SELECT max(version) FROM catalog_versions") == [(3,)], 20, "v3"
    )
    wait_for(lambda: len(central.store.records(CABINET, "cmd_result")) == 1, 20, "cmd_result")
    assert query(cabinet_db, "SELECT price_fen FROM products WHERE sku = 'hs-tea-100g'") == [
        (3900,)
    ]
    time.sleep(1)  # more polls: nothing is applied twice, no replay events from polling
    assert len(central.store.records(CABINET, "cmd_result")) == 1
    assert events(cabinet_db) == []


def test_forged_expired_and_replayed_commands_are_rejected(
    tmp_path, central, broker, sync_proc, cabinet_db
):
    with_catalog(cabinet_db)
    sync_proc(mqtt=broker.url)
    wait_online(central)
    good = command("set_price", {"sku": "zr-rice-5kg", "price_fen": 4700})
    central.publisher.publish_down(CABINET, "cmd", good)
    wait_for(lambda: len(central.store.records(CABINET, "cmd_result")) == 1, 20, "good applied")
    forged = command("set_price", {"sku": "zr-rice-5kg", "price_fen": 1}, key=bytes(32))
    tampered = {**command("set_price", {"sku": "zr-rice-5kg", "price_fen": 4600})}
    tampered["args"] = {"sku": "zr-rice-5kg", "price_fen": 2}
    expired = command("set_price", {"sku": "zr-rice-5kg", "price_fen": 3}, ttl=-5)
    for m in (forged, tampered, expired, good):  # good again: a replay
        central.publisher.publish_down(CABINET, "cmd", m)
    wait_for(lambda: len(events(cabinet_db)) == 4, 20, "four refusals")
    whys = [e["why"] for e in events(cabinet_db)]
    assert whys[:2] == ["bad signature", "bad signature"]
    assert whys[2] == "expired"
    assert whys[3].startswith("replayed")
    assert query(cabinet_db, "SELECT price_fen FROM products WHERE sku = 'zr-rice-5kg'") == [
        (4700,)
    ]
    assert len(query(cabinet_db, "SELECT * FROM price_history WHERE sku = 'zr-rice-5kg'")) == 2
    # The expired one was signed: the centre hears it was refused.
    wait_for(lambda: len(central.store.records(CABINET, "cmd_result")) == 2, 20, "refusal result")
    results = {r["body"]["cmd_id"]: r["body"] for r in central.store.records(CABINET, "cmd_result")}
    assert results[good["cmd_id"]]["ok"] is True
    assert results[expired["cmd_id"]] == {
        "cmd_id": expired["cmd_id"],
        "ok": False,
        "detail": "expired",
    }
    wait_for(lambda: cabinet_counts(cabinet_db).get("pending", 0) == 0, 20, "drain")


def test_controller_commands_wait_in_inbound_and_agent_commands_apply(
    tmp_path, central, broker, sync_proc, cabinet_db
):
    with_catalog(cabinet_db)
    scanner_down = {"ok": False, "why": "no answer", "since": "2026-11-28T09:00:00.000Z"}
    set_setting(cabinet_db, "device_health", json.dumps({"scanner": scanner_down}))
    sync_proc(mqtt=broker.url)
    wait_online(central)
    # The controller writes device health as it changes; telemetry carries what is there now.
    assert central.store.records(CABINET, "telemetry")[0]["body"]["devices"] == {
        "scanner": scanner_down
    }
    scanner_up = {"ok": True, "why": "", "since": "2026-11-28T09:05:00.000Z"}
    set_setting(cabinet_db, "device_health", json.dumps({"scanner": scanner_up}))
    door = central.store.add_command(CABINET, "open_door", {"door": "D1", "reason": "补货"})
    block = central.store.add_command(CABINET, "block_card", {"account": ACCOUNT})
    report = central.store.add_command(CABINET, "report_now", {})
    wait_for(lambda: len(central.store.records(CABINET, "cmd_result")) == 2, 20, "two results")
    rows = dict(query(cabinet_db, "SELECT ref, status FROM inbound WHERE kind = 'cmd'"))
    assert rows == {door["cmd_id"]: "new", block["cmd_id"]: "done", report["cmd_id"]: "done"}
    assert query(cabinet_db, "SELECT status FROM accounts WHERE account = ?", ACCOUNT) == [
        ("blocked",)
    ]
    # report_now sends telemetry at once (the first one went at start).
    wait_for(lambda: len(central.store.records(CABINET, "telemetry")) >= 2, 20, "telemetry")
    latest = central.store.records(CABINET, "telemetry")[-1]["body"]
    assert latest["devices"] == {"scanner": scanner_up}
    # Acks and commands over MQTT are the centre's voice: the sync screen's last contact.
    wait_for(lambda: last_contact(cabinet_db) is not None, 10, "last contact")
    heard = wire.parse_time(last_contact(cabinet_db))
    assert abs(time.time() - heard) < 30


def test_a_price_change_during_an_open_session_keeps_the_sale_price(
    tmp_path, central, broker, sync_proc, cabinet_db
):
    with_catalog(cabinet_db)
    old = query(cabinet_db, "SELECT price_fen FROM products WHERE sku = 'zr-rice-5kg'")[0][0]
    time.sleep(0.01)
    session_started = wire.now_iso()  # the customer opens the door ...
    time.sleep(0.01)
    sync_proc(mqtt=broker.url)
    wait_online(central)
    central.store.add_command(CABINET, "set_price", {"sku": "zr-rice-5kg", "price_fen": old + 500})
    wait_for(lambda: len(central.store.records(CABINET, "cmd_result")) == 1, 20, "price change")
    # ... and closes it after the change: the sale is priced as when the session started.
    db = kdb.connect(cabinet_db)
    price = kcat.price_at(db, "zr-rice-5kg", session_started)
    assert price == old
    assert kcat.price_at(db, "zr-rice-5kg", wire.now_iso()) == old + 500
    with kdb.transaction(db):
        from tests.sync.conftest import sale_body

        kdb.outbox_append(db, "sale", sale_body(1, price))
    db.conn.close()
    wait_for(lambda: central.store.stats().sales == 1, 20, "the sale")
    assert central.store.records(CABINET, "sale")[0]["body"]["items"][0]["unit_price_fen"] == old


# -- malformed messages (hypothesis): nothing crashes, nothing is applied ---------------------
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)
command_like = st.fixed_dictionaries(
    {},
    optional={
        "cmd_id": st.text(max_size=70) | json_values,
        "cmd": st.sampled_from(list(apply.ib.ARGS)) | json_values,
        "args": st.dictionaries(
            st.sampled_from(["sku", "price_fen", "door", "account", "x"]), json_values
        )
        | json_values,
        "expires_at": st.sampled_from(["2020-01-01T00:00:00Z", "soon", "2099-01-01T00:00:00Z"])
        | json_values,
        "sig": st.text(max_size=64) | json_values,
        "version": json_values,
        "catalog": json_values,
    },
)
payloads = (
    st.binary(max_size=200)
    | json_values.map(lambda v: json.dumps(v).encode())
    | command_like.map(lambda v: json.dumps(v).encode())
    # Signed with the right key but otherwise arbitrary: schema and limits must still hold.
    | command_like.map(lambda v: json.dumps(signing.sign_message(KEY, v)).encode())
)
topics = st.sampled_from(["ack", "down/cmd", "down/catalog", "down/config", "down/accounts"])


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(messages=st.lists(st.tuples(topics, payloads), min_size=1, max_size=5))
def test_malformed_inbound_messages_apply_nothing(tmp_path_factory, messages):
    path = tmp_path_factory.mktemp("h") / "kiosk.db"
    kdb.open_db(path).conn.close()
    with_catalog(path)
    agent = Agent(Settings(CABINET, KEY), path)
    prices = query(path, "SELECT sku, price_fen FROM products ORDER BY sku")
    try:
        for leaf, payload in messages:
            agent._on_message(wire.topic(CABINET, leaf), payload)
    finally:
        agent.close()
    applied = query(path, "SELECT kind, payload FROM inbound WHERE status != 'rejected'")
    for kind, payload in applied:
        # Only a message that is valid in every respect may pass: a signed, well-formed one.
        m = json.loads(payload)
        assert signing.verify_message(KEY, m)
        if kind == "cmd":
            assert apply.ib.check_command(KEY, m, 0).__class__.__name__ == "Command"
    if not any(k == "cmd" for k, _ in applied):
        assert query(path, "SELECT sku, price_fen FROM products ORDER BY sku") == prices
    assert query(path, "SELECT max(version) FROM catalog_versions") == [(1,)] or applied
    assert query(path, "PRAGMA integrity_check") == [("ok",)]


def test_a_command_delivered_twice_is_applied_once(
    tmp_path, central, broker, sync_proc, cabinet_db
):
    with_catalog(cabinet_db)
    sync_proc(mqtt=broker.url)
    wait_online(central)
    central.set_faults(FaultSettings(duplicates=True))
    central.store.add_command(CABINET, "set_price", {"sku": "hs-eggs-10", "price_fen": 2100})
    wait_for(lambda: len(events(cabinet_db)) == 1, 20, "the second copy refused")
    assert events(cabinet_db)[0]["why"].startswith("replayed")
    assert len(query(cabinet_db, "SELECT * FROM price_history WHERE sku = 'hs-eggs-10'")) == 2
    wait_for(lambda: len(central.store.records(CABINET, "cmd_result")) == 1, 20, "one result")
