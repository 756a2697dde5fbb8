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


class Skewed:
    """The controller's clock, run forward by the test: an outage lasts without waiting it."""

    def __init__(self) -> None:
        self.skew = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.skew

    def advance(self, s: float) -> None:
        self.skew += s


def events(r, kind: str) -> list[tuple]:
    return r.query(
        "SELECT device, severity, alarm, acked_at, detail_json FROM events WHERE kind = ?"
        " ORDER BY at",
        (kind,),
    )


def wait_rows(r, kind: str, n: int, what: str) -> list[tuple]:
    end = time.monotonic() + 10
    while time.monotonic() < end:
        rows = events(r, kind)
        if len(rows) >= n:
            return rows
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}: {events(r, kind)}")


def report(r, device: str, ok: bool) -> None:
    """A driver's report, waited for until the controller has handled it."""
    r.ctl.on_health(DeviceHealth(device, ok, "" if ok else "no answer"))
    wait_devices(r, lambda d: d.get(device, {}).get("ok") is ok, f"{device} ok={ok}")


def test_a_device_down_for_long_raises_one_alarm_and_its_recovery_is_recorded(rig):
    clk = Skewed()
    r = rig(clock=clk)
    report(r, "scanner", False)
    clk.advance(2)  # a glitch: telemetry only
    report(r, "scanner", True)
    report(r, "scale:D1-S2", False)
    clk.advance(12)
    [(shelf, severity, alarm, acked, detail)] = wait_rows(r, "scale_fault", 1, "scale alarm")
    assert (shelf, severity, alarm, acked) == ("D1-S2", "alarm", 1, None)
    assert json.loads(detail)["device"] == "scale:D1-S2"
    assert events(r, "scanner_fault") == []  # ticks ran after the 2 s outage and raised nothing
    r.wait(lambda s: [(a.kind, a.device) for a in s.alarms] == [("scale_fault", "D1-S2")])

    report(r, "scale:D1-S2", True)
    [(shelf, severity, alarm, _, detail)] = wait_rows(r, "device_recovered", 1, "recovery")
    assert (shelf, severity, alarm) == ("D1-S2", "info", 0)
    assert json.loads(detail)["alarm"] == "scale_fault"
    assert events(r, "scale_fault")[0][3] is None  # still for the operator to acknowledge

    # down again while that alarm is unacknowledged; a lock line goes down with it, so its alarm
    # shows the tick has looked at both outages
    report(r, "scale:D1-S2", False)
    report(r, f"locks:{r.cfg.door('D2').url}", False)
    clk.advance(12)
    [(door, *_)] = wait_rows(r, "lock_fault", 1, "lock alarm")
    assert door == "D2"  # named as the door watcher names a line's fault
    assert len(events(r, "scale_fault")) == 1
