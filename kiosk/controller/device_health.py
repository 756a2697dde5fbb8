"""Device health for the centre: each device's latest state, kept in ``settings.device_health``.

The sync agent sends that setting as telemetry's ``devices``:
``{"<device>": {"ok": bool, "why": str, "since": "<RFC 3339 UTC>"}}``. Drivers report from
their own threads, so ``on_health`` only queues; the worker writes the setting between queue
items (never inside a sale's transaction), and only when a device's state really changed. A
failed write is logged and forgotten: telemetry is worth less than a sale.

A device not ok for ``DOWN_FOR_S`` on end raises the alarm its class already has (scale_fault,
lock_fault, scanner_fault, on the device name those alarms use, so one fault is one alarm
whoever saw it first); shorter outages (a glitch, a loaded machine) only reach telemetry. When
it answers again after that, an info event ``device_recovered`` records it; the alarm stays
open until an operator acknowledges it. The check runs from the controller's tick.

The CLI opens the devices before the controller exists; ``HealthRelay`` holds their first
reports until ``attach`` hands it the controller.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from kiosk import clock as wall
from kiosk import db as kdb
from kiosk import journal
from kiosk.controller.base import Base
from kiosk.hardware import DeviceHealth

log = logging.getLogger("kiosk.controller")

SETTING = "device_health"
DOWN_FOR_S = 10.0  # down this long on end pages an operator (drivers already debounce misses)
RECOVERED = "device_recovered"


@dataclass(frozen=True)
class HealthChange:
    """A driver's report, stamped with the wall time it was made."""

    health: DeviceHealth
    at: str


@dataclass(frozen=True)
class Outage:
    """A device down since ``since`` (the controller's clock), and the alarm it would raise."""

    since: float
    why: str
    kind: str
    device: str
    alarmed: bool = False


class HealthRelay:
    """The drivers' ``on_health``: holds reports until the controller is attached, in order."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._early: list[tuple[DeviceHealth, str]] = []
        self._to: Callable[[DeviceHealth, str | None], None] | None = None

    def __call__(self, h: DeviceHealth) -> None:
        with self._lock:
            if self._to is None:
                self._early.append((h, wall.now_iso()))
                return
            to = self._to
        to(h, None)

    def attach(self, to: Callable[[DeviceHealth, str | None], None]) -> None:
        with self._lock:  # under the lock so a report arriving now cannot overtake the early ones
            for h, at in self._early:
                to(h, at)
            self._early.clear()
            self._to = to


class DeviceHealthLog(Base):
    _devices: dict[str, dict[str, Any]] | None
    _outages: dict[str, Outage]
    device_down_s: float

    def on_health(self, h: DeviceHealth, at: str | None = None) -> None:
        """A driver's ``on_health``: safe from any thread, never blocks."""
        self._q.put(HealthChange(h, at or wall.iso(self.now())))

    def _on_device_health(self, c: HealthChange) -> None:
        self._track_outage(c)
        if self._devices is None:  # what the last run left: a restart is not a change
            try:
                kept = json.loads(kdb.get_setting(self.db, SETTING) or "{}")
            except (sqlite3.Error, ValueError):
                kept = {}
            self._devices = kept if isinstance(kept, dict) else {}
        h = c.health
        prev = self._devices.get(h.device)
        if prev is not None and prev.get("ok") == h.ok and prev.get("why") == h.why:
            return
        self._devices[h.device] = {"ok": h.ok, "why": h.why, "since": c.at}
        try:
            with kdb.transaction(self.db):
                kdb.set_setting(self.db, SETTING, json.dumps(self._devices, sort_keys=True))
        except sqlite3.Error as e:
            log.warning("device health not saved (%s): %s", h.device, e)

    # -- alarms ------------------------------------------------------------------------------------
    def _track_outage(self, c: HealthChange) -> None:
        h = c.health
        if not h.ok:
            alarm = self._alarm_of(h.device)
            if alarm is not None and h.device not in self._outages:
                self._outages[h.device] = Outage(self.clock(), h.why, *alarm)
            return
        o = self._outages.pop(h.device, None)
        if o is None or not o.alarmed:
            return
        detail = {"device": h.device, "alarm": o.kind, "down_s": round(self.clock() - o.since)}
        try:
            with kdb.transaction(self.db):
                journal.raise_event(
                    self.db,
                    RECOVERED,
                    c.at,
                    severity="info",
                    device=o.device,
                    detail=detail,
                    alarm=False,
                )
        except sqlite3.Error as e:
            log.warning("device recovery not saved (%s): %s", h.device, e)

    def _check_outages(self, now: float) -> None:
        """Alarm for each device down ``device_down_s`` on end, once per outage (and not again
        while the same alarm is still unacknowledged: ``journal.raise_event`` dedupes)."""
        for device, o in self._outages.items():
            if o.alarmed or now - o.since < self.device_down_s:
                continue
            # marked first: a failed write is not retried on every tick
            self._outages[device] = replace(o, alarmed=True)
            detail = {"device": device, "why": o.why, "down_s": round(now - o.since)}
            try:
                self._alarm(o.kind, device=o.device, detail=detail)
            except sqlite3.Error as e:
                log.warning("device alarm not saved (%s): %s", device, e)

    def _alarm_of(self, device: str) -> tuple[str, str] | None:
        """(kind, device) of the alarm for a driver's device name (``DeviceHealth.device``)."""
        if device == "scanner":
            return "scanner_fault", "scanner"
        if device == "scales":
            return "scale_fault", "scales"
        if device.startswith("scale:"):
            return "scale_fault", device.removeprefix("scale:")  # the shelf, as sessions name it
        if device.startswith("locks:"):  # the line's first door, as the door watcher names it
            url = device.removeprefix("locks:")
            return "lock_fault", next((d.id for d in self.cfg.doors if d.url == url), url)
        return None
