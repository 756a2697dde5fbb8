"""Recovery after power loss: doors and shelves first, then the journal's unfinished sessions."""

from __future__ import annotations

import logging
import queue
import time

from kiosk import clock as wall
from kiosk import doors, journal
from kiosk.controller.base import Base
from kiosk.controller.live import (
    BASELINE_SAMPLES,
    Code,
    Live,
    VerdictMemo,
    lock_code,
)
from kiosk.hardware import (
    HardwareError,
    LockBoard,
    Reading,
)
from kiosk.session_table import Ev
from kiosk.snapshot import SessionState as St

log = logging.getLogger("kiosk.controller")


class Recovery(Base):
    # == recovery ==================================================================================
    def _recover(self) -> None:
        t = self.clock()
        # 1. doors first: the lock board tells which doors are really unlatched now
        by_board: dict[int, tuple[LockBoard, list]] = {}
        for d in self.cfg.doors:
            board = self.locks.get(d.id)
            if board is not None:
                by_board.setdefault(id(board), (board, []))[1].append(d)
        known: dict[int, dict[str, bool]] = {}
        for key, (board, ds) in by_board.items():
            try:
                known[key] = doors.read_doors(board, ds)
            except HardwareError as e:
                known[key] = {}
                for d in ds:
                    self.door_fault[d.id] = lock_code(e)
                self._alarm("lock_fault", device=ds[0].id, detail={"why": e.why})
            self.door_open.update(known[key])
        # 2. shelves: start the bus and wait for a reading from each (bounded)
        self.scales.start(self._post)
        deadline = t + min(5.0, self.cfg.limits.settle_timeout_s)
        while self.clock() < deadline and not all(
            len(self.ring.get(s.id, ())) >= BASELINE_SAMPLES for s in self.cfg.shelves
        ):
            try:
                item = self._q.get(timeout=0.05)
            except queue.Empty:
                continue
            if isinstance(item, Reading):
                self._on_reading(item)
            else:
                self._q.put(item)  # not yet: handled once recovery is done
                time.sleep(0.01)
        # 3. the journal: finish every session left open, from the current weights
        unfinished = journal.unfinished_sessions(self.db)
        for row in unfinished[:-1]:  # an older one cannot still be running: close it now
            self._resume(row, force_close=True)
        if unfinished:
            self._resume(unfinished[-1], force_close=False)
        # 4. doors unlatched with no session to account for them raise an alarm
        for d in self.cfg.doors:
            if self.door_open.get(d.id) and (self.live is None or self.live.door != d.id):
                self._alarm("door_open_at_start", device=d.id, detail={"door": d.id})
        for key, (board, ds) in by_board.items():
            w = doors.DoorWatcher(board, ds, self._post, self.clock)
            for d in ds:
                self._watcher_of[d.id] = w
            self.watchers.append(w)
            w.start(known.get(key), fault=self.door_fault.get(ds[0].id))
        if self.scanner is not None:
            try:
                self.scanner.start(lambda code: self._post(Code(code.text)))
            except HardwareError as e:
                self._alarm("scanner_fault", device="scanner", detail={"why": e.why})
        self._check_expiry()
        self._update_oos()

    def _resume(self, row: journal.SessionRow, force_close: bool) -> None:
        """Finish (or continue) a session found unfinished in the journal."""
        log.warning("recovering session %s (%s, state %s)", row.id, row.kind, row.state)
        live = Live(
            id=row.id,
            door=row.door,
            kind=row.kind,
            method=row.method,
            started_at=row.started_at,
            account=row.account,
            auth_id=row.auth_id,
            hold_fen=row.hold_fen,
            operator=row.operator,
            catalog_version=row.catalog_version,
            baseline=row.baseline,
            unlocked=True,
            opened_at=row.unlocked_at or row.started_at,
        )
        live.prices = self._prices_at(row.door, row.started_at)
        self.live = live
        now = self.clock()
        if row.kind == "sale":
            live.weigher = self._new_weigher(row.door, live.prices, synthetic=row.baseline)
            live.weigher.door_opened(now - 0.05)
        if row.verdict_json and row.kind == "sale":
            # it was waiting for the customer's pick: nobody is there any more
            live.verdict = VerdictMemo.loads(row.verdict_json)
            live.review = True
            self.state = St.CONFIRMING
            self._fire(Ev.CONFIRM_TIMEOUT)
            return
        if self.door_open.get(row.door) and not force_close:
            self.state = St.OPEN
            live.open_alarm_at = now + self.cfg.limits.door_open_alarm_s
            return
        self.state = St.OPEN
        live.closed_at = wall.now_iso()
        self._fire(Ev.DOOR_CLOSED, t=now)
        if force_close and live.weigher is not None:
            self._settle_now(now, force=True)
