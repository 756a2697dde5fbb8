"""The door session's actions (named in kiosk.session_table) and the hardware events and customer
intents that drive them."""

from __future__ import annotations

import dataclasses
import logging
from collections import deque
from typing import Any

from kiosk import auth, doors, journal, operators
from kiosk import clock as wall
from kiosk import db as kdb
from kiosk import intents as I
from kiosk.controller.base import Base
from kiosk.controller.live import (
    BASELINE_LEVEL_SAMPLES,
    BASELINE_SAMPLES,
    CANCELLED_S,
    OPERATOR_DONE_S,
    RECEIPT_S,
    RING_S,
    VerdictMemo,
    close_call,
    mean,
)
from kiosk.hardware import (
    Reading,
)
from kiosk.session_table import ACTIVE, Ev
from kiosk.snapshot import Reason
from kiosk.snapshot import SessionState as St

log = logging.getLogger("kiosk.controller")


class DoorSession(Base):
    # == hardware events ===========================================================================
    def _on_reading(self, r: Reading) -> None:
        prev = self.last.get(r.shelf)
        self.last[r.shelf] = r
        ring = self.ring.setdefault(r.shelf, deque())
        ring.append(r)
        while ring and r.t - ring[0].t > RING_S:
            ring.popleft()
        if r.grams is not None:
            if self.shelf_fault.pop(r.shelf, None) is not None:
                self._dirty = True
        elif prev is not None and prev.grams is None and r.shelf not in self.shelf_fault:
            # one missed answer is noise; two in a row is a fault worth showing
            self.shelf_fault[r.shelf] = r.fault or "missing"
            self._dirty = True
        self._readings_dirty = True
        live = self.live
        feeding = live is not None and live.weigher is not None and self.state in ACTIVE
        if feeding and self._door_of_shelf(r.shelf) == live.door:
            live.weigher.feed(r.shelf, r.t, r.grams, r.stable)

    def _on_door(self, door: str, is_open: bool, t: float) -> None:
        was = self.door_open.get(door)
        self.door_open[door] = is_open
        self._dirty = True
        live = self.live
        mine = live is not None and live.door == door and self.state in (St.UNLOCKING, St.OPEN)
        if is_open:
            if mine and self.state == St.UNLOCKING:
                self._fire(Ev.DOOR_OPENED, t=t)
            elif not mine and was is False:
                self._alarm("door_forced", device=door, detail={"door": door})
        elif mine and self.state == St.OPEN:
            self._fire(Ev.DOOR_CLOSED, t=t)
        self._update_oos()

    def _on_unlocked(self, u: doors.Unlocked) -> None:
        live = self.live
        if live is None or live.door != u.door or self.state != St.UNLOCKING:
            return
        if not u.ok:
            self._alarm("lock_fault", device=u.door, detail={"why": u.why})
            self._fire(Ev.UNLOCK_FAILED, why=Reason.LOCK_FAULT)
            return
        live.unlocked = True
        with kdb.transaction(self.db):
            journal.update_session(self.db, live.id, unlocked_at=wall.now_iso())

    def _on_line_health(self, h: doors.LineHealth) -> None:
        for d in h.doors:
            if h.fault is None:
                self.door_fault.pop(d, None)
            else:
                self.door_fault[d] = h.fault
        if h.fault is not None:
            self._alarm(
                "lock_fault", device=h.doors[0], detail={"why": h.why, "doors": list(h.doors)}
            )
        self._update_oos()
        self._dirty = True

    # == the session ===============================================================================
    def _do_journal_and_unlock(self) -> None:
        live = self.live
        assert live is not None
        at = wall.now_iso()
        live.catalog_version = journal.catalog_version(self.db)
        live.prices = self._prices_at(live.door, live.started_at)
        self._learn_when_still(self.clock(), door=live.door)  # before the baseline moves on
        live.baseline = {}
        for s in self.cfg.shelves_of(live.door):
            recent = [r.grams for r in self.ring.get(s.id, ()) if r.grams is not None]
            recent = recent[-BASELINE_SAMPLES:]
            # the latest samples: a shelf touched by the last session may still be creeping
            live.baseline[s.id] = {"g": mean(recent[-BASELINE_LEVEL_SAMPLES:]), "samples": recent}
        if live.kind == "sale":
            live.weigher = self._new_weigher(live.door, live.prices)
            for s in self.cfg.shelves_of(live.door):
                for r in self.ring.get(s.id, ()):
                    live.weigher.feed(r.shelf, r.t, r.grams, r.stable)
        row = journal.SessionRow(
            id=live.id,
            door=live.door,
            kind=live.kind,
            method=live.method,
            account=live.account,
            auth_id=live.auth_id,
            hold_fen=live.hold_fen,
            operator=live.operator,
            state="unlocking",
            started_at=live.started_at,
            unlocked_at=None,
            closed_at=None,
            catalog_version=live.catalog_version,
            baseline=live.baseline,
            verdict_json=None,
        )
        try:
            with kdb.transaction(self.db):
                journal.insert_session(self.db, row)
                if self.scan_codes is not None:  # the idle screen and its code are gone
                    if live.method == "scan_to_open":
                        self.scan_codes.use(live.id)
                    else:
                        self.scan_codes.retire()
                auth.record_attempt(
                    self.db.conn, live.method, live.account, True, None, live.id, at
                )
                if live.kind != "sale":
                    operators.audit(
                        self.db.conn,
                        live.operator,
                        f"open_{live.kind}",
                        {"door": live.door, "session": live.id},
                        at,
                    )
                if live.inbound is not None:
                    self._inbound_done(live.inbound, live.cmd_id, True, f"session {live.id}")
        except Exception as e:  # the disk cannot take the journal: no door opens
            log.exception("journal write failed")
            self.oos = Reason.STORAGE_FULL
            self.live = None
            self.state = St.IDLE
            self.refusal = Reason.STORAGE_FULL
            if live.auth_id:
                self._capture_or_keep(live.auth_id, live.id, 0, record=False)
            log.error("refusing sessions: %s", e)
            return
        live.deadline = self.clock() + self.cfg.limits.unlock_timeout_s
        w = self._watcher_of.get(live.door)
        if w is None:
            self._fire(Ev.UNLOCK_FAILED, why=Reason.LOCK_OFFLINE)
            return
        w.unlock(live.door)

    def _do_door_opened(self, t: float) -> None:
        live = self.live
        assert live is not None
        live.deadline = None
        live.open_alarm_at = self.clock() + self.cfg.limits.door_open_alarm_s
        live.opened_at = wall.now_iso()
        if live.weigher is not None:
            live.weigher.door_opened(t)
        fields: dict[str, Any] = {"state": "open"}
        if not live.unlocked:  # the door sensor can beat the board's answer to the pulse
            live.unlocked = True
            fields["unlocked_at"] = live.opened_at
        with kdb.transaction(self.db):
            journal.update_session(self.db, live.id, **fields)

    def _do_door_left_open(self) -> None:
        live = self.live
        assert live is not None
        live.alarmed_open = True
        self._alarm(
            "door_left_open",
            device=live.door,
            detail={"door": live.door, "session": live.id},
            dedupe=False,
        )

    def _do_door_closed(self, t: float) -> None:
        live = self.live
        assert live is not None
        live.closed_at = live.closed_at or wall.now_iso()
        live.settle_deadline = self.clock() + self.cfg.limits.settle_timeout_s
        if live.weigher is not None:
            live.weigher.door_closed(t)
        with kdb.transaction(self.db):
            journal.update_session(self.db, live.id, state="settling", closed_at=live.closed_at)
        if live.kind == "restock":
            self._fire(Ev.NEED_COUNTS)
            if live.counts_confirmed:
                self._fire(Ev.CONFIRMED)
        elif live.kind == "maintenance":
            self._fire(Ev.VERDICT_SURE)

    def _settle_now(self, now: float, force: bool = False) -> None:
        live = self.live
        if live is None or live.weigher is None or self.state != St.SETTLING:
            return
        v = live.weigher.decide_now(now) if force else live.weigher.poll(now)
        if v is None:
            return
        if not v.uncertain and close_call(v):
            v = dataclasses.replace(v, uncertain=True)
        live.verdict = v
        if v.uncertain and len(v.candidates) >= 2:
            self._fire(Ev.VERDICT_UNSURE)
        else:
            self._fire(Ev.VERDICT_SURE)

    def _do_ask(self) -> None:
        live = self.live
        assert live is not None
        live.deadline = self.clock() + self.cfg.limits.confirm_timeout_s
        if live.verdict is not None:
            with kdb.transaction(self.db):
                journal.update_session(
                    self.db,
                    live.id,
                    state="confirming",
                    verdict_json=VerdictMemo.dumps(live.verdict),
                )

    def _do_cancel_session(self, why: str = Reason.DOOR_NOT_PULLED) -> None:
        live = self.live
        assert live is not None
        at = wall.now_iso()
        with kdb.transaction(self.db):
            if not self._still_open(live.id):
                return
            journal.update_session(
                self.db, live.id, state="cancelled", finished_at=at, outcome="cancelled"
            )
            if live.auth_id:
                self._keep_capture(live.auth_id, live.id, 0, at)
            journal.outbox(self.db, "session", journal.session_body(self.db, live.id), at)
        self.refusal = why
        self.state_deadline = self.clock() + CANCELLED_S
        if live.auth_id:
            self._try_capture(live.auth_id, 0)

    def _do_record(self) -> None:
        """Finish the session: one transaction with everything it produced."""
        live = self.live
        assert live is not None
        if live.kind == "sale":
            self._record_sale(live)
            self.state_deadline = self.clock() + RECEIPT_S
        else:
            self._record_operator_session(live)
            self.state_deadline = self.clock() + OPERATOR_DONE_S
        self._dirty_static = True

    def _still_open(self, session: str) -> bool:
        row = self.db.conn.execute(
            "SELECT finished_at FROM sessions WHERE id = ?", (session,)
        ).fetchone()
        return row is not None and row[0] is None

    def _do_clear(self) -> None:
        self.live = None
        self.state_deadline = None
        self._update_oos()
        if self.scan_codes is not None:  # back to idle: a fresh code for the next customer
            self.scan_codes.rotate()

    def _i_confirm_basket(self, it: I.ConfirmBasket) -> I.Result:
        live = self.live
        if self.state != St.CONFIRMING or live is None or live.kind != "sale":
            return I.Result.refused(Reason.NOTHING_TO_CONFIRM)
        n = len(live.verdict.candidates) if live.verdict is not None else 0
        if it.choice is not None and not 0 <= it.choice < n:
            return I.Result.refused(Reason.BAD_CHOICE, f"choose 0..{n - 1}")
        live.choice = it.choice
        if it.choice is None:
            live.review = True
        self._fire(Ev.CONFIRMED)
        r = self.receipt
        return I.Result(
            True, data={"sale": r.sale if r else None, "total_fen": r.total_fen if r else 0}
        )

    def _i_cancel(self, it: I.Cancel) -> I.Result:
        if not self._fire(Ev.CANCEL, why=Reason.CANCELLED):
            return I.Result.refused(Reason.BUSY, f"cannot cancel in {self.state}")
        return I.Result(True)

    def _i_dismiss_receipt(self, it: I.DismissReceipt) -> I.Result:
        self._fire(Ev.DISMISS)
        return I.Result(True)
