"""Alarms, and the checks that raise them: low stock, expiring and expired goods, free disk."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Mapping
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

from kiosk import clock as wall
from kiosk import db as kdb
from kiosk import journal
from kiosk.controller.base import Base
from kiosk.session_table import ACTIVE
from kiosk.snapshot import Reason

log = logging.getLogger("kiosk.controller")


class StockChecks(Base):
    def _low_stock_alarms(self, door: str) -> None:
        for ln in self._door_lanes(door):
            if ln.count <= ln.low_stock:
                self._alarm(
                    "low_stock",
                    device=f"{ln.shelf}/{ln.sku}",
                    severity="warning",
                    detail={"shelf": ln.shelf, "sku": ln.sku, "count": ln.count},
                    tx=False,
                )

    def _check_expiry(self) -> None:
        today = self._today()
        soon = date.fromordinal(today.toordinal() + 2)
        for ln in journal.lanes(self.db):
            if not ln.expires_on or ln.count <= 0:
                continue
            exp = date.fromisoformat(ln.expires_on[:10])
            dev = f"{ln.shelf}/{ln.sku}"
            if exp < today:
                self._alarm(
                    "expired",
                    device=dev,
                    detail={"shelf": ln.shelf, "sku": ln.sku, "expires_on": ln.expires_on},
                )
            elif exp <= soon:
                self._alarm(
                    "expiring",
                    device=dev,
                    severity="warning",
                    detail={"shelf": ln.shelf, "sku": ln.sku, "expires_on": ln.expires_on},
                )
        self._dirty_static = True

    def _today(self) -> date:
        return self.now().astimezone(ZoneInfo(self.tz)).date()

    # -- alarms ------------------------------------------------------------------------------------
    def _alarm(
        self,
        kind: str,
        *,
        device: str | None = None,
        detail: Mapping[str, Any] | None = None,
        severity: str = "alarm",
        tx: bool = True,
        dedupe: bool = True,
    ) -> str | None:
        self._dirty = True
        self._dirty_static = True
        log.warning("alarm %s %s %s", kind, device or "", dict(detail or {}))
        at = wall.now_iso()
        if not tx:
            return journal.raise_event(
                self.db, kind, at, severity=severity, device=device, detail=detail, dedupe=dedupe
            )
        with kdb.transaction(self.db):
            return journal.raise_event(
                self.db, kind, at, severity=severity, device=device, detail=detail, dedupe=dedupe
            )

    def _update_oos(self) -> None:
        prev = self.oos
        try:
            free = shutil.disk_usage(self.db_path.parent).free
        except OSError:
            free = self.min_free_bytes
        if free < self.min_free_bytes:
            self.oos = Reason.STORAGE_FULL
            if prev != Reason.STORAGE_FULL:
                try:
                    self._alarm("storage_low", device="disk", detail={"free_bytes": free})
                except Exception:
                    log.exception("cannot even record the storage alarm")
        elif all(self._door_problem(d.id) is not None for d in self.cfg.doors) and not (
            self.live and self.state in ACTIVE
        ):
            problems = [self._door_problem(d.id) for d in self.cfg.doors]
            self.oos = problems[0] if problems else None
        else:
            self.oos = None
        if self.oos != prev:
            self._dirty = True
