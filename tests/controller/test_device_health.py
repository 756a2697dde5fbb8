"""Device health reaches ``settings.device_health`` (the sync agent's telemetry) on change only."""

from __future__ import annotations

import json
import sqlite3
import time

from kiosk import clock
from kiosk import intents as I
from kiosk.controller.device_health import HealthRelay
from kiosk.hardware import DeviceHealth

from .conftest import STAFF


def devices(r) -> dict:
    rows = r.query("SELECT value FROM settings WHERE key = 'device_health'")
    return json.loads(rows[0][0]) if rows else {}


def wait_devices(r, pred, what: str) -> dict:
    end = time.monotonic() + 5
    while time.monotonic() < end:
        d = devices(r)
        if pred(d):
            return d
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}: {devices(r)}")


def test_a_health_change_is_written_once_with_when_it_began(rig):
    r = rig()
    r.ctl.on_health(DeviceHealth("scanner", False, "no answer"))
    d = wait_devices(r, lambda d: "scanner" in d, "the scanner's health")
    down = d["scanner"]
    assert down["ok"] is False and down["why"] == "no answer"
    clock.parse(down["since"])  # an RFC 3339 time
    time.sleep(0.01)
    r.ctl.on_health(DeviceHealth("scanner", False, "no answer"))  # the same again: no change
    r.ctl.on_health(DeviceHealth("scales", True))  # handled after it (one queue)
    d = wait_devices(r, lambda d: "scales" in d, "the scales' health")
    assert d["scanner"] == down
    assert d["scales"]["ok"] is True and d["scales"]["why"] == ""
    r.ctl.on_health(DeviceHealth("scanner", True))
    d = wait_devices(r, lambda d: d["scanner"]["ok"], "the scanner back")
    assert d["scanner"]["since"] > down["since"] and d["scanner"]["why"] == ""


def test_reports_made_before_the_controller_exists_keep_their_time_and_order():
    relay = HealthRelay()
    relay(DeviceHealth("scanner", False, "port missing"))
    relay(DeviceHealth("scanner", True))
    got: list[tuple[DeviceHealth, str | None]] = []
    time.sleep(0.01)
    attached_at = clock.now_iso()
    relay.attach(lambda h, at: got.append((h, at)))
    relay(DeviceHealth("scales", True))
    assert [h for h, _ in got] == [
        DeviceHealth("scanner", False, "port missing"),
        DeviceHealth("scanner", True),
        DeviceHealth("scales", True),
    ]
    assert got[0][1] is not None and got[0][1] < attached_at
    assert got[2][1] is None  # stamped by the controller as it arrives


def test_a_failed_health_write_does_not_disturb_a_sale(rig, caplog):
    r = rig()
    con = sqlite3.connect(r.db_path)
    for when in ("INSERT", "UPDATE"):  # the disk refuses exactly this row
        con.execute(
            f"CREATE TRIGGER no_health_{when} BEFORE {when} ON settings"
            " WHEN NEW.key = 'device_health' BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END"
        )
    con.commit()
    con.close()
    r.ctl.on_health(DeviceHealth("scanner", False, "no answer"))
    assert r.ctl.submit(I.Scan(STAFF, door="D1")).ok
    r.wait_state("open")
    r.scales.take("D1-S2", "hs-honey-500g")
    r.locks.push(*r.door("D1"))
    snap = r.wait(lambda s: s.receipt is not None, what="receipt")
    assert snap.receipt.total_fen == 6800
    assert r.query("SELECT total_fen FROM sales") == [(6800,)]
    assert devices(r) == {}
    assert "device health not saved (scanner)" in caplog.text
