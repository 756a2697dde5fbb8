"""Device health for the centre: each device's latest state, kept in ``settings.device_health``.

The sync agent sends that setting as telemetry's ``devices``:
``{"<device>": {"ok": bool, "why": str, "since": "<RFC 3339 UTC>"}}``. Drivers report from
their own threads, so ``on_health`` only queues; the worker writes the setting between queue
items (never inside a sale's transaction), and only when a device's state really changed. A
failed write is logged and forgotten: telemetry is worth less than a sale.

The CLI opens the devices before the controller exists; ``HealthRelay`` holds their first
reports until ``attach`` hands it the controller.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kiosk import clock as wall
from kiosk import db as kdb
from kiosk.controller.base import Base
from kiosk.hardware import DeviceHealth

log = logging.getLogger("kiosk.controller")

SETTING = "device_health"


@dataclass(frozen=True)
class HealthChange:
    """A driver's report, stamped with the wall time it was made."""

    health: DeviceHealth
    at: str


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

    def on_health(self, h: DeviceHealth, at: str | None = None) -> None:
        """A driver's ``on_health``: safe from any thread, never blocks."""
        self._q.put(HealthChange(h, at or wall.iso(self.now())))

    def _on_device_health(self, c: HealthChange) -> None:
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
