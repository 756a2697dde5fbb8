"""Scan-to-open end to end: the code on screen, the phone's POST to the centre, the signed
``session_authorized`` over mosquitto, the sync agent's inbox, the controller opening the
simulated cabinet's door, and the sale back at the centre once. All parts real: mosquitto, the
central simulator, the simulated cabinet on ptys with the real drivers, the controller, the
sync agent (in a thread of this process)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from central.phone import DEMO_ACCOUNT, LIMIT_FEN
from kiosk import db as kdb
from kiosk import intents as I
from tests.controller.conftest import prepare_db

from .conftest import CABINET, KEY, wait_for

FAST_AGENT = {"backoff_base_s": 0.05, "backoff_cap_s": 0.5, "ack_timeout_s": 3.0}


@pytest.fixture
def sim_config_path(tmp_path: Path, central, broker) -> Path:
    """The example cabinet pointed at this test's broker and central simulator."""
    from tests.conftest import write_sim_config

    return write_sim_config(
        tmp_path,
        {
            'mqtt = "mqtt://127.0.0.1:1883"': f'mqtt = "{broker.url}"',
            'http = "http://127.0.0.1:8080"': f'http = "{central.http_url}"',
            "settle_timeout_s = 8": "settle_timeout_s = 3",
        },
    )


@pytest.fixture
def controller(sim_cabinet):
    from kiosk.cli import open_devices
    from kiosk.controller import Controller

    cfg = sim_cabinet.config
    prepare_db(cfg.database, cfg)
    locks, scales, scanner = open_devices(cfg)
    ctl = Controller(cfg, cfg.database, locks, scales, scanner, None, key=KEY)
    ctl.start()
    yield ctl
    ctl.stop()


@pytest.fixture
def agent(sim_cabinet, controller, central) -> Iterator[None]:
    """The sync agent on the controller's database, run on its own thread (its SQLite
    connection belongs to that thread); online once its first telemetry is at the centre."""
    from sync.agent import Agent, Settings

    cfg = sim_cabinet.config
    stop = threading.Event()
    failed: list[BaseException] = []

    def run() -> None:
        try:
            Agent(Settings.from_config(cfg, KEY, **FAST_AGENT), cfg.database).run(stop)
        except BaseException as e:  # the test fails on it below, not silently
            failed.append(e)

    t = threading.Thread(target=run, name="sync-agent", daemon=True)
    t.start()
    wait_for(lambda: central.store.records(CABINET, "telemetry") or failed, 15, "agent online")
    assert not failed, failed
    yield
    stop.set()
    t.join(10)
    assert not failed, failed


def wait_snap(ctl, pred, timeout: float = 8.0, what: str = ""):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        s = ctl.snapshot()
        if pred(s):
            return s
        time.sleep(0.02)
    s = ctl.snapshot()
    raise AssertionError(f"timed out waiting for {what}: state {s.state}, refusal {s.refusal}")


def rows(path: Path, sql: str, args: tuple = ()) -> list[tuple]:
    d = kdb.connect(path)
    try:
        return d.execute(sql, args).fetchall()
    finally:
        d.conn.close()


def results(central) -> dict[str, dict]:
    return {r["body"]["cmd_id"]: r["body"] for r in central.store.records(CABINET, "cmd_result")}


def central_stats(central) -> dict:
    db = str(central.db)
    out = subprocess.run(
        [sys.executable, "-m", "kiosk", "central", "stats", "--db", db, "--json"],
        capture_output=True,
        text=True,
        timeout=20,
        check=True,
    )
    return json.loads(out.stdout)


def test_scan_pay_take_and_the_sale_reaches_the_centre_once(
    central, sim_cabinet, sim_control, controller, agent
):
    ctl, db_path = controller, sim_cabinet.config.database
    snap = wait_snap(ctl, lambda s: s.state == "idle" and s.scan_url, what="idle with a code")
    prefix = f"{central.http_url}/s/{CABINET}/"
    assert snap.scan_url.startswith(prefix)
    nonce = snap.scan_url.removeprefix(prefix)

    # The phone: the login page names the cabinet, then "open the door".
    page = requests.get(snap.scan_url, headers={"Accept": "text/html"}, timeout=5)
    assert page.status_code == 200 and "确认开门" in page.text and CABINET in page.text
    t0 = time.monotonic()
    answer = requests.post(snap.scan_url, timeout=5)
    assert answer.status_code == 200, answer.text
    cmd_id = answer.json()["cmd_id"]
    wait_snap(ctl, lambda s: s.state == "open", 5, "the door unlocked by the phone")
    assert time.monotonic() - t0 < 5
    assert sim_control.pull("D1"), "the lock did not unlatch"
    sim_control.take("D1-S3", "zr-chili-sauce")
    sim_control.push("D1")
    receipt = wait_snap(ctl, lambda s: s.receipt is not None, 10, "the receipt").receipt
    assert receipt.session == nonce and receipt.method == "scan_to_open"
    assert [(i.sku, i.qty) for i in receipt.items] == [("zr-chili-sauce", 1)]

    # The sale goes up once, charged to the phone's account within the platform's limit.
    wait_for(lambda: central.store.records(CABINET, "sale"), 15, "the sale at the centre")
    wait_for(lambda: cmd_id in results(central), 15, "the command's result at the centre")
    assert results(central)[cmd_id]["ok"] is True
    (sale,) = central.store.records(CABINET, "sale")
    assert sale["body"]["session"] == nonce
    assert sale["body"]["payment"]["method"] == "scan_to_open"
    assert sale["body"]["payment"]["account"] == DEMO_ACCOUNT
    assert 0 < sale["body"]["total_fen"] == receipt.total_fen <= LIMIT_FEN
    assert central_stats(central)["sales"] == 1
    assert rows(db_path, "SELECT count(*) FROM outbox WHERE type = 'sale'") == [(1,)]

    # The same code again (a second tap, a shared screenshot): the centre refuses, nothing opens.
    ctl.submit(I.DismissReceipt())
    wait_snap(ctl, lambda s: s.state == "idle" and s.scan_url, what="idle with a new code")
    queued = len(central.store.commands_after(CABINET, None))
    again = requests.post(snap.scan_url, timeout=5)
    assert again.status_code == 409 and again.json()["error"] == "code already used"
    assert len(central.store.commands_after(CABINET, None)) == queued

    # A made-up nonce: the centre cannot tell, the cabinet can (it never showed it).
    forged = requests.post(f"{prefix}not-a-code-it-showed", timeout=5)
    assert forged.status_code == 200
    forged_id = forged.json()["cmd_id"]
    wait_for(lambda: forged_id in results(central), 15, "the forged command's result")
    assert results(central)[forged_id] == {
        "cmd_id": forged_id,
        "ok": False,
        "detail": "code_expired",
    }
    assert ctl.snapshot().state == "idle" and ctl.snapshot().session is None
    assert rows(db_path, "SELECT count(*) FROM sessions") == [(1,)]
    assert central_stats(central)["sales"] == 1


def test_the_phone_pages_at_the_centre(tmp_path):
    from central.service import CentralService

    with CentralService(tmp_path / "c.db", {CABINET: KEY}, simulate=True) as c:
        url = f"{c.http_url}/s/{CABINET}/n0nce-A_1"
        html = {"Accept": "text/html"}
        page = requests.get(url, headers=html, timeout=5)
        assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
        assert page.text.index("确认开门") < page.text.index("Open the door")
        for method in (requests.get, requests.post):
            assert method(f"{c.http_url}/s/QH-9999/x", timeout=5).status_code == 404
        bad = requests.post(url, json={"account": "a b"}, timeout=5)
        assert bad.status_code == 400 and bad.json()["error"] == "bad login"
        assert c.store.commands_after(CABINET, None) == []  # a bad login spends nothing
        ok = requests.post(url, data={"account": "acc-7"}, headers=html, timeout=5)
        assert ok.status_code == 200 and "柜门即将打开" in ok.text
        (cmd,) = c.store.commands_after(CABINET, None)
        assert cmd["cmd"] == "session_authorized"
        assert cmd["args"] == {"session": "n0nce-A_1", "account": "acc-7", "limit_fen": LIMIT_FEN}
        again = requests.post(url, data={"account": "acc-7"}, headers=html, timeout=5)
        assert again.status_code == 409 and "已使用" in again.text
        assert "已使用" in requests.get(url, headers=html, timeout=5).text
        other = requests.post(url + "2", json={"limit_fen": 5000}, timeout=5).json()
        assert other["ok"] and len(c.store.commands_after(CABINET, None)) == 2
        args = c.store.commands_after(CABINET, None)[1]["args"]
        assert args == {"session": "n0nce-A_12", "account": DEMO_ACCOUNT, "limit_fen": 5000}
