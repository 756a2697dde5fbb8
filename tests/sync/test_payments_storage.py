"""Payments over HTTP, captures retried until answered, storage limits, TLS, the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from central.service import CentralService
from kiosk import db as kdb
from kiosk import wire
from kiosk.config import Central
from kiosk.payments import PaymentOffline
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
    free_port,
    make_broker,
    wait_for,
    wait_port,
)


def test_payment_port_authorizes_captures_and_reports_offline(tmp_path):
    with CentralService(tmp_path / "central.db", {CABINET: KEY}, simulate=True) as central:
        port = HttpPaymentPort(HttpLink(central.http_url, CABINET, KEY, timeout_s=2))
        a = port.authorize("s-1", "134567890123456789", 9000)
        assert a.ok and a.auth_id
        assert port.capture(a.auth_id, 4500)
        assert port.capture(a.auth_id, 4500)  # idempotent per auth_id
        assert not port.capture(a.auth_id, 100)  # a different amount is not a second charge
        declined = port.authorize("s-2", "134567890123459999", 9000)
        assert not declined.ok and declined.why == "declined"
        assert {p["state"] for p in central.store.payments()} == {"captured"}
        wrong_key = HttpPaymentPort(HttpLink(central.http_url, CABINET, bytes(32), timeout_s=2))
        refused = wrong_key.authorize("s-3", "134567890123456789", 100)
        assert not refused.ok and "signature" in refused.why
    with pytest.raises(PaymentOffline):
        port.authorize("s-4", "134567890123456789", 100)


def test_a_capture_that_cannot_reach_the_centre_is_retried_until_answered(tmp_path, cabinet_db):
    http_port = free_port()
    central = CentralService(
        tmp_path / "central.db", {CABINET: KEY}, ("127.0.0.1", http_port), simulate=True
    )
    central.start()
    auth = HttpPaymentPort(HttpLink(central.http_url, CABINET, KEY)).authorize(
        "s-1", "1" * 18, 5000
    )
    central.stop()  # the centre goes away before the door closes
    db = kdb.connect(cabinet_db)
    with kdb.transaction(db):  # as the controller writes it, with the sale
        db.execute(
            "INSERT INTO captures(auth_id, session, amount_fen, state, tries, updated_at) "
            "VALUES (?, 's-1', 3200, 'pending', 0, ?)",
            (auth.auth_id, wire.now_iso()),
        )
    db.conn.close()
    s = Settings(
        CABINET,
        KEY,
        Central(http=f"http://127.0.0.1:{http_port}", poll_interval_s=0.2),
        http_timeout_s=1,
        backoff_base_s=0.05,
    )
    stop = threading.Event()
    agent = Agent(s, cabinet_db)
    deadline = time.monotonic() + 20
    revived: list[CentralService] = []
    silent: list[str | None] = []  # last_contact while the centre was away

    def tick() -> None:
        tries = agent.db.execute("SELECT tries FROM captures").fetchone()[0]
        if tries >= 2 and not revived:  # tried and failed twice: now the centre comes back
            silent.append(store.get_setting(agent.db, "last_contact"))
            revived.append(
                CentralService(
                    tmp_path / "central.db", {CABINET: KEY}, ("127.0.0.1", http_port), simulate=True
                ).start()
            )
        state = agent.db.execute("SELECT state FROM captures").fetchone()[0]
        if state == "done" or time.monotonic() > deadline:
            stop.set()

    agent.run(stop, on_tick=tick)
    try:
        assert revived, "the capture was not retried"
        payments = revived[0].store.payments()
        assert payments[0]["captured_fen"] == 3200 and payments[0]["state"] == "captured"
    finally:
        for c in revived:
            c.stop()
    rows = kdb.connect(cabinet_db).execute("SELECT state, tries FROM captures").fetchall()
    assert rows[0][0] == "done" and rows[0][1] >= 3
    assert silent == [None]  # unreachable is not contact; the capture's answer is
    heard = store.get_setting(kdb.connect(cabinet_db), "last_contact")
    assert abs(time.time() - wire.parse_time(heard)) < 30


def test_disk_full_refuses_the_sale_loudly_and_loses_nothing(
    tmp_path, central, broker, sync_proc, cabinet_db
):
    add_sales(cabinet_db, 50)
    db = kdb.connect(cabinet_db)
    pages = db.execute("PRAGMA page_count").fetchone()[0]
    db.execute(f"PRAGMA max_page_count = {pages}")  # this connection's disk is now full
    with pytest.raises(store.StorageFull, match="cannot take more writes"), store.tx(db):
        for i in range(2000):  # a sale with its outbox row, until the file cannot grow
            store.append(db, "sale", {"items": [], "total_fen": i, "pad": "x" * 500})
    db.conn.close()
    assert cabinet_counts(cabinet_db)["sales"] == 50  # the refused sale left nothing half-written
    sync_proc(mqtt=broker.url)
    wait_for(lambda: central.store.stats().sales == 50, 30, "the recorded sales")
    wait_for(lambda: cabinet_counts(cabinet_db).get("pending", 0) == 0, 30, "drain")
    assert_all_delivered_once(cabinet_db, tmp_path / "central.db")


def test_pruning_keeps_undelivered_and_low_storage_raises_an_event(tmp_path, cabinet_db):
    add_sales(cabinet_db, 10)
    db = kdb.connect(cabinet_db)
    with kdb.transaction(db):
        db.execute(
            "UPDATE outbox SET state = 'delivered', delivered_at = '2020-01-01T00:00:00.000Z' "
            "WHERE seq <= 6"
        )
    db.conn.close()
    s = Settings(CABINET, KEY, Central(prune_delivered_after_days=30, storage_low_mb=1e12))
    agent = Agent(s, cabinet_db)
    try:
        agent.housekeeping()
        agent.housekeeping()  # still low: one event, not one a minute
    finally:
        agent.close()
    c = cabinet_counts(cabinet_db)
    assert c.get("delivered", 0) == 0 and c["sales"] == 4
    db = kdb.connect(cabinet_db)
    ev = db.execute("SELECT severity FROM events WHERE kind = 'storage low'").fetchall()
    db.conn.close()
    assert ev == [("alarm",)]


def make_ca(tmp: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for 127.0.0.1, made with the openssl CLI."""

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=tmp)

    run(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "2",
        "-subj",
        "/CN=kiosk test CA",
    )
    run(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    )
    (tmp / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1\n")
    run(
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.crt",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    )
    return tmp / "ca.crt", tmp / "server.crt", tmp / "server.key"


def test_mqtt_over_tls_with_a_ca_made_in_the_test(tmp_path, sync_proc, cabinet_db):
    ca, crt, key = make_ca(tmp_path)
    broker = make_broker(tmp_path, f"cafile {ca}\ncertfile {crt}\nkeyfile {key}\n")
    url = f"mqtts://127.0.0.1:{broker.port}"
    central = CentralService(tmp_path / "central.db", {CABINET: KEY}, mqtt_url=url, ca_file=str(ca))
    central.start()
    try:
        assert central.wait_mqtt()
        add_sales(cabinet_db, 100)
        sync_proc(mqtt=url, ca_file=str(ca))
        wait_for(lambda: central.store.stats().sales == 100, 30, "sales over TLS")
        wait_for(lambda: cabinet_counts(cabinet_db).get("pending", 0) == 0, 30, "drain")
    finally:
        central.stop()
        broker.kill()
    assert_all_delivered_once(cabinet_db, tmp_path / "central.db")


def test_central_cli_send_and_stats(tmp_path, broker, keyfile, sync_proc, cabinet_db):
    from tests.sync.test_inbound import with_catalog

    with_catalog(cabinet_db)
    http = free_port()
    cdb = tmp_path / "central.db"
    kiosk = [sys.executable, "-m", "kiosk", "central"]
    proc = subprocess.Popen(
        [
            *kiosk,
            "--db",
            str(cdb),
            "--http",
            f"127.0.0.1:{http}",
            "--mqtt",
            broker.url,
            "--cabinet",
            f"{CABINET}={keyfile}",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        first = json.loads(proc.stdout.readline())
        assert first["cabinets"] == [CABINET]
        wait_port(http)
        add_sales(cabinet_db, 30)
        sync_proc(mqtt=broker.url, http=f"http://127.0.0.1:{http}", poll_interval_s=0.5)
        out = subprocess.run(
            [
                *kiosk,
                "send",
                "set_price",
                "--cabinet",
                CABINET,
                "--db",
                str(cdb),
                "--args",
                '{"sku": "zr-rice-5kg", "price_fen": 4999}',
                "--key-file",
                str(keyfile),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        assert json.loads(out.stdout)["cmd"] == "set_price"

        def price() -> int:
            d = kdb.connect(cabinet_db)
            try:
                return d.execute(
                    "SELECT price_fen FROM products WHERE sku = 'zr-rice-5kg'"
                ).fetchone()[0]
            finally:
                d.conn.close()

        wait_for(lambda: price() == 4999, 20, "the command applied")
        wait_for(lambda: cabinet_counts(cabinet_db).get("pending", 0) == 0, 20, "drain")
        stats = subprocess.run(
            [*kiosk, "stats", "--db", str(cdb), "--json"],
            capture_output=True,
            text=True,
            check=True,
        )
        assert json.loads(stats.stdout) == {
            "records": cabinet_counts(cabinet_db)["delivered"],
            "sales": 30,
            "duplicates": 0,
        }
        bad = subprocess.run(
            [*kiosk, "send", "reboot", "--cabinet", "QH-9999", "--db", str(cdb)],
            capture_output=True,
            text=True,
        )
        assert bad.returncode == 2 and "unknown cabinet" in bad.stderr
    finally:
        proc.terminate()
        proc.wait(10)
    assert_all_delivered_once(cabinet_db, cdb)
