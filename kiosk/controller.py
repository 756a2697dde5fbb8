"""The controller: door sessions, sales, operator work, alarms, and recovery after power loss.

One worker thread owns the state and the database connection. Hardware (scale readings, door
sensors, scanned codes), intents and timers arrive on one queue and are handled in order, so
nothing here needs a lock. Session states move only through ``kiosk.session_table.TABLE``.

The journal's order is what makes power loss harmless:
1. the session row, with the baseline weights, is committed before the lock is pulsed;
2. the sale, its items, inventory, events, the session's end and their outbox rows are one
   transaction, committed (synchronous=FULL) before the receipt is shown;
3. on start, doors and shelves are read first, then every unfinished session is finished from
   the current weights; ``sales.session`` is UNIQUE and the finishing transaction checks the
   session is still unfinished, so a sale is never recorded twice.
"""

from __future__ import annotations

import json
import logging
import queue
import shutil
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from kiosk import auth, doors, ids, journal, operators, restock
from kiosk import clock as wall
from kiosk import db as kdb
from kiosk import intents as I
from kiosk import snapshot as S
from kiosk.config import Config
from kiosk.hardware import (
    CodeKind,
    CodeSource,
    HardwareError,
    LockBoard,
    Reading,
    ScaleBus,
    classify,
)
from kiosk.payments import PaymentOffline, PaymentPort
from kiosk.session_table import ACTIVE, READY, Ev, step
from kiosk.snapshot import Reason
from kiosk.snapshot import SessionState as St

log = logging.getLogger("kiosk.controller")

RECEIPT_S = 10.0  # the receipt goes back to idle after this (or a tap)
CANCELLED_S = 4.0
OPERATOR_IDLE_S = 600.0  # an operator left logged in is logged out after this
PENDING_CARD_S = 60.0  # an operator card waits this long for its PIN
BASELINE_SAMPLES = 12
RING_S = 4.0  # recent readings kept per shelf (a new session's baseline comes from them)
FRESH_S = 2.5  # a shelf with no reading this recent is not weighing
INBOX_EVERY_S = 0.5
HOUSEKEEPING_EVERY_S = 2.0
EXPIRY_EVERY_S = 300.0
MIN_FREE_BYTES = 5_000_000  # under this a sale may not fit: refuse new sessions
INBOX_CMDS = ("session_authorized", "open_door", "refund", "reboot")


def division_for(capacity_g: int) -> float:
    """Transmitters show at most ~30000 divisions: heavy shelves count in 2 g or 5 g."""
    return 1.0 if capacity_g <= 30_000 else 2.0 if capacity_g <= 60_000 else 5.0


@dataclass
class Live:
    """The running session (worker thread only)."""

    id: str
    door: str
    kind: str  # sale | restock | maintenance
    method: str
    started_at: str
    account: str | None = None
    auth_id: str | None = None
    hold_fen: int | None = None
    operator: str | None = None
    code: str | None = None  # a payment code, only until it is authorised
    inbound: str | None = None  # the inbox row that opened it
    cmd_id: str | None = None
    catalog_version: int | None = None
    prices: dict[str, int] = field(default_factory=dict)
    baseline: dict[str, dict[str, Any]] = field(default_factory=dict)
    weigher: Any = None
    deadline: float | None = None
    open_alarm_at: float | None = None
    alarmed_open: bool = False
    unlocked: bool = False
    verdict: Any = None
    choice: int | None = None  # the customer's pick when confirming
    review: bool = False
    counts: dict[tuple[str, str], I.LaneCount] = field(default_factory=dict)
    counts_confirmed: bool = False
    settle_deadline: float | None = None
    closed_at: str | None = None
    opened_at: str | None = None


@dataclass
class _Stop:
    pass


class Controller:
    def __init__(
        self,
        config: Config,
        db_path: str | Path,
        locks: Mapping[str, LockBoard],
        scales: ScaleBus,
        scanner: CodeSource | None,
        payments: PaymentPort | None,
        clock: Callable[[], float] = time.monotonic,
        *,
        key: bytes | None = None,
        weigher_factory: Callable[[Sequence[Any]], Any] | None = None,
        now: Callable[[], datetime] = wall.now,
        on_reboot: Callable[[], None] | None = None,
        min_free_bytes: int = MIN_FREE_BYTES,
    ):
        self.cfg = config
        self.db_path = Path(db_path)
        self.locks = dict(locks)
        self.scales = scales
        self.scanner = scanner
        self.payments = payments
        self.clock = clock
        self.now = now
        self.key = key
        self.on_reboot = on_reboot
        self.min_free_bytes = min_free_bytes
        self._weigher_factory = weigher_factory
        self.tz = config.cabinet.timezone
        self._q: queue.Queue[Any] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="controller", daemon=True)
        self._subs: list[Callable[[S.Snapshot], None]] = []
        self._snap = S.Snapshot(
            state=St.IDLE,
            seq=0,
            cabinet=S.CabinetView(config.cabinet.id, config.cabinet.name, config.cabinet.location),
            out_of_service=Reason.STARTING,
        )
        self._ready = threading.Event()
        self._stopped = False
        # worker-thread state
        self.db: Any = None
        self.state: St = St.IDLE
        self.live: Live | None = None
        self.door_open: dict[str, bool] = {}
        self.door_fault: dict[str, str] = {}
        self.last: dict[str, Reading] = {}
        self.ring: dict[str, deque[Reading]] = {s.id: deque() for s in config.shelves}
        self.shelf_fault: dict[str, str] = {}
        self.refusal: str | None = None
        self.oos: str | None = Reason.STARTING
        self.receipt: S.Receipt | None = None
        self.state_deadline: float | None = None
        self.operator: operators.Operator | None = None
        self.operator_since: str | None = None
        self.operator_seen: float = 0.0
        self.pending_card: tuple[str, float] | None = None
        self.pending_inbound: set[str] = set()
        self.watchers: list[doors.DoorWatcher] = []
        self._watcher_of: dict[str, doors.DoorWatcher] = {}
        self._seq = 0
        self._dirty = True
        self._dirty_static = True
        self._readings_dirty = False
        self._last_publish = 0.0
        self._next_inbox = 0.0
        self._next_house = 0.0
        self._next_expiry = 0.0
        self._static: dict[str, Any] = {}
        self._products: dict[str, journal.ProductInfo] = {}
        self._planogram_warnings: tuple[str, ...] = ()

    # == public API ================================================================================
    def start(self, wait_s: float = 15.0) -> None:
        """Recover, then serve; returns once recovery is done (or ``wait_s`` passed)."""
        self._thread.start()
        self._ready.wait(wait_s)

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self._q.put(_Stop())
        self._thread.join(timeout=5.0)

    def snapshot(self) -> S.Snapshot:
        return self._snap

    def subscribe(self, callback: Callable[[S.Snapshot], None]) -> None:
        """``callback(snapshot)`` after each change, on the controller's thread."""
        self._subs.append(callback)

    def submit(self, intent: I.Intent, timeout_s: float = 30.0) -> I.Result:
        if isinstance(intent, I.State):
            return I.Result(True, data={"snapshot": S.as_dict(self._snap)})
        fut: Future[I.Result] = Future()
        self._q.put((intent, fut))
        try:
            return fut.result(timeout=timeout_s)
        except TimeoutError:
            return I.Result.refused(Reason.BUSY, "the controller did not answer in time")

    # == the worker ================================================================================
    def _run(self) -> None:
        self.db = kdb.open_db(self.db_path)
        self._products = journal.products(self.db)
        try:
            self._recover()
        except Exception:
            log.exception("recovery failed")
        self._ready.set()
        self._publish(force=True)
        while True:
            timeout = 0.05
            try:
                item = self._q.get(timeout=timeout)
            except queue.Empty:
                item = None
            n = 0
            while item is not None:
                if isinstance(item, _Stop):
                    self._shutdown()
                    return
                try:
                    self._handle(item)
                except Exception:
                    log.exception("while handling %r", type(item).__name__)
                n += 1
                if n > 500:
                    break
                try:
                    item = self._q.get_nowait()
                except queue.Empty:
                    item = None
            try:
                self._tick(self.clock())
            except Exception:
                log.exception("tick")
            self._publish()

    def _shutdown(self) -> None:
        for w in self.watchers:
            w.stop()
        for stop in (self.scales.stop, *(([self.scanner.stop]) if self.scanner else [])):
            try:
                stop()
            except Exception:
                log.exception("stopping a device")
        self.db.conn.close()

    def _post(self, item: object) -> None:
        self._q.put(item)

    def _handle(self, item: Any) -> None:
        if isinstance(item, Reading):
            self._on_reading(item)
        elif isinstance(item, doors.DoorSensed):
            self._on_door(item.door, item.open, item.t)
        elif isinstance(item, doors.Unlocked):
            self._on_unlocked(item)
        elif isinstance(item, doors.LineHealth):
            self._on_line_health(item)
        elif isinstance(item, _Code):
            self._on_code(item.text, None)
        elif isinstance(item, _AuthAnswer):
            self._on_auth_answer(item)
        elif isinstance(item, tuple) and isinstance(item[0], I.Intent):
            intent, fut = item
            try:
                res = self._on_intent(intent)
            except Exception as e:  # an intent never kills the controller
                log.exception("intent %s", intent.name)
                res = I.Result.refused(Reason.BAD_REQUEST, str(e))
            self._dirty = True
            fut.set_result(res)

    # -- the state table -------------------------------------------------------------------------
    def _fire(self, ev: Ev, **ctx: Any) -> bool:
        move = step(self.state, ev)
        if move is None:
            log.debug("event %s ignored in %s", ev, self.state)
            return False
        nxt, action = move
        log.info("%s --%s--> %s (%s)", self.state, ev, nxt, action)
        self.state = nxt
        self._dirty = True
        getattr(self, f"_do_{action}")(**ctx)
        return True

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
                    self.door_fault[d.id] = _lock_code(e)
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
            w.start(known.get(key))
        if self.scanner is not None:
            try:
                self.scanner.start(lambda code: self._post(_Code(code.text)))
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
            live.verdict = _VerdictMemo.loads(row.verdict_json)
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

    # == authorisation =============================================================================
    def _on_code(self, text: str, door: str | None) -> I.Result:
        code = classify(text)
        if code.kind is CodeKind.STAFF_CARD:
            account = self._card_account(code.text)
            if account is not None:
                op = operators.by_card(self.db.conn, account)
                if op is not None:
                    self.pending_card = (account, self.clock())
                    return I.Result(False, Reason.PIN_REQUIRED, data={"operator": op.name})
            return self._begin("card", door, code=code.text)
        if code.kind.is_payment:
            return self._begin("payment_code", door, code=code.text)
        self._refuse(Reason.UNKNOWN_CODE, "payment_code", None)
        return I.Result.refused(Reason.UNKNOWN_CODE)

    def _card_account(self, uid: str) -> str | None:
        if self.key is None:
            return None
        from kiosk.signing import card_account

        return card_account(self.key, uid)

    def _begin(
        self,
        method: str,
        door: str | None,
        *,
        code: str | None = None,
        session: str | None = None,
        account: str | None = None,
        hold_fen: int | None = None,
        inbound: str | None = None,
        cmd_id: str | None = None,
        kind: str = "sale",
        operator: str | None = None,
    ) -> I.Result:
        if self.state not in READY:
            return I.Result.refused(Reason.BUSY)
        why = self._cannot_open(door)
        door_id = door or self._default_door()
        if why is None and door_id is None:
            why = self._door_problem(self.cfg.doors[0].id) or Reason.DOOR_OPEN
        if why is not None:
            self._refuse(why, method, account)
            return I.Result.refused(why)
        assert door_id is not None
        self.live = Live(
            id=session or ids.uuid7(),
            door=door_id,
            kind=kind,
            method=method,
            started_at=wall.now_iso(),
            account=account,
            hold_fen=hold_fen,
            operator=operator,
            code=code,
            inbound=inbound,
            cmd_id=cmd_id,
        )
        self.refusal = None
        self._fire(Ev.AUTH_START)
        if self.state == St.IDLE:  # refused synchronously
            return I.Result.refused(self.refusal or Reason.BAD_REQUEST)
        return I.Result(
            True,
            data={
                "session": self.live.id if self.live else None,
                "door": door_id,
                "state": str(self.state),
            },
        )

    def _cannot_open(self, door: str | None) -> str | None:
        if self.oos is not None and self.oos in (Reason.STORAGE_FULL, Reason.STARTING):
            return self.oos
        if door is not None:
            if door not in {d.id for d in self.cfg.doors}:
                return Reason.NO_SUCH_DOOR
            return self._door_problem(door)
        return None

    def _door_problem(self, door: str) -> str | None:
        if door in self.door_fault:
            return self.door_fault[door]
        if self.door_open.get(door):
            return Reason.DOOR_OPEN
        for s in self.cfg.shelves_of(door):
            r = self.last.get(s.id)
            if r is None or r.grams is None or self.clock() - r.t > FRESH_S:
                return Reason.SCALE_FAULT
        return None

    def _default_door(self) -> str | None:
        for d in self.cfg.doors:
            if self._door_problem(d.id) is None:
                return d.id
        return None

    def _do_authorise(self) -> None:
        live = self.live
        assert live is not None
        self.receipt = None
        if live.method == "card":
            self._authorise_card(live)
        elif live.method == "payment_code":
            if self.payments is None:
                self._fire(Ev.AUTH_REFUSED, why=Reason.PAYMENT_UNAVAILABLE)
                return
            hold = max(1, self._door_value(live.door))
            live.hold_fen = hold
            code, port, sid = live.code or "", self.payments, live.id
            live.code = None  # never kept longer than the question takes

            def ask() -> None:
                try:
                    a = port.authorize(sid, code, hold)
                    self._post(_AuthAnswer(sid, a.ok, a.auth_id, a.why, offline=False))
                except PaymentOffline as e:
                    self._post(_AuthAnswer(sid, False, None, str(e), offline=True))
                except Exception as e:  # a broken port is "offline" to the customer
                    log.exception("payment port")
                    self._post(_AuthAnswer(sid, False, None, str(e), offline=True))

            threading.Thread(target=ask, name="authorize", daemon=True).start()
        else:  # scan_to_open (the platform authorised it) and operator sessions
            self._fire(Ev.AUTH_OK)

    def _authorise_card(self, live: Live) -> None:
        if self.key is None:
            self._fire(Ev.AUTH_REFUSED, why=Reason.CARD_UNKNOWN)
            return
        d = auth.check_card(
            self.db.conn,
            self.key,
            live.code or "",
            now=self.now(),
            tz=self.tz,
            default_limit_fen=self.cfg.limits.card_offline_limit_fen,
        )
        live.code = None
        live.account = d.account
        if not d.ok:
            self._fire(Ev.AUTH_REFUSED, why=d.why)
            return
        live.hold_fen = d.remaining_fen
        self._fire(Ev.AUTH_OK)

    def _on_auth_answer(self, a: _AuthAnswer) -> None:
        live = self.live
        if live is None or live.id != a.session or self.state != St.AUTHORISING:
            if a.ok and a.auth_id and self.payments is not None:
                self._capture_or_keep(a.auth_id, a.session, 0)  # nobody waits: release it
            return
        if a.ok:
            live.auth_id = a.auth_id
            self._fire(Ev.AUTH_OK)
        else:
            self._fire(
                Ev.AUTH_REFUSED, why=Reason.NETWORK_DOWN if a.offline else Reason.PAYMENT_DECLINED
            )

    def _do_refused(self, why: str = Reason.BAD_REQUEST) -> None:
        live = self.live
        self.live = None
        if live is not None:
            self._refuse(why, live.method, live.account, inbound=live.inbound, cmd_id=live.cmd_id)

    def _refuse(
        self,
        why: str,
        method: str,
        account: str | None,
        *,
        inbound: str | None = None,
        cmd_id: str | None = None,
    ) -> None:
        self.refusal = why
        self._dirty = True
        with kdb.transaction(self.db):
            auth.record_attempt(self.db.conn, method, account, False, why, None, wall.now_iso())
            if inbound is not None:
                self._inbound_done(inbound, cmd_id, False, why)

    # == the session ===============================================================================
    def _do_journal_and_unlock(self) -> None:
        live = self.live
        assert live is not None
        at = wall.now_iso()
        live.catalog_version = journal.catalog_version(self.db)
        live.prices = self._prices_at(live.door, live.started_at)
        live.baseline = {}
        for s in self.cfg.shelves_of(live.door):
            recent = [r.grams for r in self.ring.get(s.id, ()) if r.grams is not None]
            recent = recent[-BASELINE_SAMPLES:]
            # the latest samples: a shelf touched by the last session may still be creeping
            live.baseline[s.id] = {"g": _mean(recent[-4:]), "samples": recent}
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
                    verdict_json=_VerdictMemo.dumps(live.verdict),
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
        else:
            self._record_operator_session(live)
        self.state_deadline = self.clock() + RECEIPT_S
        self._dirty_static = True

    def _record_sale(self, live: Live) -> None:
        v = live.verdict
        at = wall.now_iso()
        review = live.review
        if v is None:  # nothing to weigh from (no weigher): nothing charged
            basket_taken: dict[str, int] = {}
            moves: tuple = ()
            foreign: tuple[str, ...] = ()
            faults: tuple[str, ...] = ()
            confidence = 0.0
        else:
            basket = None
            if v.uncertain and len(v.candidates) >= 2:
                cands = _cheaper_first(v.candidates)
                if live.choice is not None and 0 <= live.choice < len(cands):
                    basket = cands[live.choice]
                else:  # no answer, or "none of these": the cheaper one, and staff review it
                    basket = cands[0]
                    review = True
            if basket is None:
                basket_taken, moves, foreign = dict(v.taken), tuple(v.misplaced), tuple(v.foreign)
            else:
                basket_taken, moves, foreign = (
                    dict(basket.taken),
                    tuple(basket.misplaced),
                    tuple(basket.foreign),
                )
            faults = tuple(v.fault)
            confidence = float(v.confidence)
        basket_taken = {k: n for k, n in basket_taken.items() if n > 0}
        items = []
        for sku, qty in sorted(basket_taken.items()):
            p = self._products.get(sku)
            price = live.prices.get(sku)
            if price is None:
                price = journal.price_at(self.db, sku, live.started_at) or 0
            items.append((sku, qty, price, p.cert_no if p else "", p.supplier if p else ""))
        total = sum(q * pr for _, q, pr, _, _ in items)
        status = "deferred"
        if live.method == "payment_code" and live.auth_id:
            ok = self._try_capture(live.auth_id, total)
            status = "captured" if ok else ("failed" if ok is False else "deferred")
        sale_id = ids.uuid7()
        outcome = "sold" if items else "nothing_taken"
        with kdb.transaction(self.db):
            if not self._still_open(live.id):
                return
            if items:
                self.db.conn.execute(
                    "INSERT INTO sales (id, session, door, opened_at, closed_at, total_fen, method,"
                    " account, payment_status, confidence, catalog_version, review, created_at)"
                    " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (
                        sale_id,
                        live.id,
                        live.door,
                        live.opened_at or live.started_at,
                        live.closed_at or at,
                        total,
                        live.method,
                        live.account,
                        status,
                        confidence,
                        live.catalog_version,
                        int(review),
                        at,
                    ),
                )
                for sku, qty, price, cert, sup in items:
                    self.db.conn.execute(
                        "INSERT INTO sale_items (sale, sku, qty, unit_price_fen, cert_no, supplier)"
                        " VALUES (?,?,?,?,?,?)",
                        (sale_id, sku, qty, price, cert, sup),
                    )
                body = {
                    "id": sale_id,
                    "session": live.id,
                    "door": live.door,
                    "opened_at": live.opened_at or live.started_at,
                    "closed_at": live.closed_at or at,
                    "items": [
                        {"sku": s, "qty": q, "unit_price_fen": p, "cert_no": c, "supplier": u}
                        for s, q, p, c, u in items
                    ],
                    "total_fen": total,
                    "payment": {"method": live.method, "account": live.account, "status": status},
                    "confidence": round(confidence, 4),
                    "catalog_version": live.catalog_version,
                    "review": review,
                }
                journal.outbox(self.db, "sale", body, at)
            changed = self._apply_inventory(live.door, basket_taken, moves, at)
            if changed:
                journal.outbox(
                    self.db,
                    "inventory",
                    {"session": live.id, "reason": "sale", "lanes": changed},
                    at,
                )
            for shelf in foreign:
                self._alarm("foreign_object", device=shelf, detail={"session": live.id}, tx=False)
            for m in moves:
                self._alarm(
                    "misplaced_item",
                    device=m.dst,
                    severity="warning",
                    detail={"session": live.id, "sku": m.sku, "from": m.src, "to": m.dst},
                    tx=False,
                    dedupe=False,
                )
            for shelf in faults:
                why = (v.faults_why or {}).get(shelf, "") if v is not None else ""
                self._alarm(
                    "scale_fault", device=shelf, detail={"session": live.id, "why": why}, tx=False
                )
            self._low_stock_alarms(live.door)
            if live.method == "payment_code" and live.auth_id and status != "captured":
                self._keep_capture(live.auth_id, live.id, total, at)
            journal.update_session(
                self.db,
                live.id,
                state="finished",
                finished_at=at,
                outcome=outcome,
                verdict_json=_VerdictMemo.dumps(v) if v is not None else None,
            )
            journal.outbox(
                self.db,
                "session",
                {**journal.session_body(self.db, live.id), **({"sale": sale_id} if items else {})},
                at,
            )
        if items:
            self.receipt = self._receipt(sale_id, live, items, total, status, review, at)
        else:
            self.receipt = None
            # nothing taken: shown like a cancelled session ("nothing charged")
            self.state = St.CANCELLED
            self.state_deadline = self.clock() + CANCELLED_S

    def _record_operator_session(self, live: Live) -> None:
        at = wall.now_iso()
        with kdb.transaction(self.db):
            if not self._still_open(live.id):
                return
            changed = []
            if live.kind == "restock":
                changed = self._apply_counts(live, at)
                if changed:
                    journal.outbox(
                        self.db,
                        "inventory",
                        {"session": live.id, "reason": "restock", "lanes": changed},
                        at,
                    )
                operators.audit(
                    self.db.conn,
                    live.operator,
                    "restock",
                    {"session": live.id, "door": live.door, "lanes": changed},
                    at,
                )
            journal.update_session(
                self.db, live.id, state="finished", finished_at=at, outcome=live.kind
            )
            journal.outbox(self.db, "session", journal.session_body(self.db, live.id), at)
        self.receipt = None

    def _still_open(self, session: str) -> bool:
        row = self.db.conn.execute(
            "SELECT finished_at FROM sessions WHERE id = ?", (session,)
        ).fetchone()
        return row is not None and row[0] is None

    def _do_clear(self) -> None:
        self.live = None
        self.state_deadline = None
        self._update_oos()

    # -- payments --------------------------------------------------------------------------------
    def _try_capture(self, auth_id: str, amount: int) -> bool | None:
        """True captured, False refused by the platform, None not reached (kept pending)."""
        if self.payments is None:
            return None
        try:
            return bool(self.payments.capture(auth_id, amount))
        except PaymentOffline:
            return None
        except Exception:
            log.exception("capture")
            return None

    def _keep_capture(self, auth_id: str, session: str, amount: int, at: str) -> None:
        self.db.conn.execute(
            "INSERT INTO captures (auth_id, session, amount_fen, state, tries, updated_at)"
            " VALUES (?, ?, ?, 'pending', 1, ?) ON CONFLICT(auth_id) DO NOTHING",
            (auth_id, session, amount, at),
        )

    def _capture_or_keep(
        self, auth_id: str, session: str, amount: int, record: bool = True
    ) -> None:
        if self._try_capture(auth_id, amount) is None and record:
            with kdb.transaction(self.db):
                self._keep_capture(auth_id, session, amount, wall.now_iso())

    # -- inventory ---------------------------------------------------------------------------------
    def _door_lanes(self, door: str) -> list[journal.LaneRow]:
        return [ln for ln in journal.lanes(self.db) if ln.door == door]

    def _apply_inventory(
        self, door: str, taken: Mapping[str, int], moves: Sequence[Any], at: str
    ) -> list[dict[str, Any]]:
        lanes = {(ln.shelf, ln.sku): ln.count for ln in self._door_lanes(door)}
        before = dict(lanes)
        for sku, n in taken.items():
            left = n
            for key in sorted((k for k in lanes if k[1] == sku), key=lambda k: -lanes[k]):
                take = min(left, lanes[key])
                lanes[key] -= take
                left -= take
                if left == 0:
                    break
        for m in moves:
            src, dst = (m.src, m.sku), (m.dst, m.sku)
            lanes[src] = max(0, lanes.get(src, 0) - 1)
            lanes[dst] = lanes.get(dst, 0) + 1
        changed = []
        for (shelf, sku), count in lanes.items():
            if before.get((shelf, sku)) != count:
                journal.set_count(self.db, shelf, sku, count, at)
                changed.append({"shelf": shelf, "sku": sku, "count": count})
        return changed

    def _apply_counts(self, live: Live, at: str) -> list[dict[str, Any]]:
        view = self._restock_view()
        today = self._today()
        changed = []
        for lane in view.lanes if view else ():
            c = live.counts.get((lane.shelf, lane.sku))
            count = (
                c.count
                if c is not None
                else (lane.weighed if lane.weighed is not None else lane.expected)
            )
            expires = (c.expires_on if c is not None and c.expires_on else None) or lane.expires_on
            grew = count > lane.expected
            journal.set_count(
                self.db,
                lane.shelf,
                lane.sku,
                count,
                at,
                expires_on=expires if grew else None,
                keep_expiry=not grew,
            )
            changed.append(
                {
                    "shelf": lane.shelf,
                    "sku": lane.sku,
                    "count": count,
                    **({"expires_on": expires} if grew else {}),
                }
            )
            if count > 0:
                self.db.conn.execute(
                    "UPDATE events SET acked_at = ?, acked_by = 'restock' WHERE acked_at IS NULL"
                    " AND device = ? AND kind IN ('low_stock', 'expired', 'expiring')",
                    (at, f"{lane.shelf}/{lane.sku}"),
                )
        del today
        return changed

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

    # -- weighing ----------------------------------------------------------------------------------
    def _new_weigher(
        self, door: str, prices: Mapping[str, int], synthetic: Mapping[str, Any] | None = None
    ) -> Any:
        from kiosk.weighing.model import LaneStock, ShelfPlan

        factory = self._weigher_factory
        if factory is None:
            from kiosk.weighing.session import SessionWeigher

            factory = SessionWeigher
        lanes = self._door_lanes(door)
        plans = []
        for s in self.cfg.shelves_of(door):
            stock = []
            for ln in lanes:
                p = self._products.get(ln.sku)
                if ln.shelf != s.id or p is None:
                    continue
                sd = p.unit_sd_g
                uw = self.db.conn.execute(
                    "SELECT mean_g, sd_g FROM unit_weights WHERE sku = ?", (ln.sku,)
                ).fetchone()
                unit = float(uw[0]) if uw else float(p.unit_g)
                sd = float(uw[1]) if uw else float(sd)
                stock.append(LaneStock(ln.sku, unit, sd, prices.get(ln.sku, p.price_fen), ln.count))
            plans.append(
                ShelfPlan(s.id, tuple(stock), division_for(s.capacity_g), float(s.capacity_g))
            )
        w = factory(plans)
        if synthetic:
            t0 = self.clock() - 1.5
            for sid, b in synthetic.items():
                samples = [g for g in (b.get("samples") or []) if g is not None] or (
                    [b["g"]] * 8 if b.get("g") is not None else []
                )
                for i, g in enumerate(samples):
                    w.feed(sid, t0 + i * (1.4 / max(1, len(samples))), float(g), True)
        return w

    def _prices_at(self, door: str, at: str) -> dict[str, int]:
        out = {}
        for ln in self._door_lanes(door):
            p = _price_at(self.db, ln.sku, at)
            if p is not None:
                out[ln.sku] = p
        return out

    def _door_value(self, door: str) -> int:
        prices = self._prices_at(door, wall.now_iso())
        return sum(ln.count * prices.get(ln.sku, 0) for ln in self._door_lanes(door))

    def _door_of_shelf(self, shelf: str) -> str | None:
        for s in self.cfg.shelves:
            if s.id == shelf:
                return s.door
        return None

    # == timers ====================================================================================
    def _tick(self, now: float) -> None:
        live = self.live
        if live is not None:
            if self.state == St.UNLOCKING and live.deadline is not None and now >= live.deadline:
                self._fire(Ev.UNLOCK_TIMEOUT, why=Reason.DOOR_NOT_PULLED)
            elif (
                self.state == St.OPEN
                and live.open_alarm_at is not None
                and now >= live.open_alarm_at
                and not live.alarmed_open
            ):
                self._fire(Ev.OPEN_TOO_LONG)
            elif self.state == St.SETTLING and live.kind == "sale":
                force = live.settle_deadline is not None and now >= live.settle_deadline
                self._settle_now(now, force=force)
            elif self.state == St.CONFIRMING and live.deadline is not None and now >= live.deadline:
                if live.kind == "sale":
                    live.review = True
                self._fire(Ev.CONFIRM_TIMEOUT)
        if (
            self.state in (St.SETTLED, St.CANCELLED)
            and self.state_deadline is not None
            and now >= self.state_deadline
        ):
            self._fire(Ev.DISMISS)
        if (
            self.operator is not None
            and now - self.operator_seen > OPERATOR_IDLE_S
            and self.state in READY
        ):
            self._logout("idle")
        if now >= self._next_inbox:
            self._next_inbox = now + INBOX_EVERY_S
            self._poll_inbox()
        if now >= self._next_house:
            self._next_house = now + HOUSEKEEPING_EVERY_S
            self._update_oos()
            self._dirty_static = True
            self._refresh_catalog()
        if now >= self._next_expiry:
            self._next_expiry = now + EXPIRY_EVERY_S
            self._check_expiry()

    def _refresh_catalog(self) -> None:
        v = journal.catalog_version(self.db)
        if v != self._static.get("catalog_version_seen"):
            self._static["catalog_version_seen"] = v
            self._products = journal.products(self.db)

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

    # == inbox (commands the sync agent checked and stored) ========================================
    def _poll_inbox(self) -> None:
        rows = self.db.conn.execute(
            "SELECT id, ref, payload FROM inbound WHERE kind = 'cmd' AND status ="
            " 'new' ORDER BY received_at, id"
        ).fetchall()
        for inbound_id, ref, payload in rows:
            try:
                cmd = json.loads(payload)
                name = cmd.get("cmd")
                args = cmd.get("args") or {}
                cmd_id = cmd.get("cmd_id") or ref
            except (ValueError, AttributeError):
                continue
            if name not in INBOX_CMDS:
                continue  # the sync agent applies the others
            if name in ("session_authorized", "open_door") and self.state not in READY:
                continue  # wait for the current session to end
            self._run_cmd(inbound_id, cmd_id, name, args)

    def _run_cmd(self, inbound_id: str, cmd_id: str, name: str, args: dict[str, Any]) -> None:
        if name == "session_authorized":
            door = args.get("door")
            res = self._begin(
                "scan_to_open",
                door,
                session=args.get("session"),
                account=args.get("account"),
                hold_fen=args.get("limit_fen"),
                inbound=inbound_id,
                cmd_id=cmd_id,
            )
            if not res.ok and self.state in READY and self._inbound_new(inbound_id):
                with kdb.transaction(self.db):
                    self._inbound_done(inbound_id, cmd_id, False, res.code)
        elif name == "open_door":
            res = self._begin(
                "operator", args.get("door"), kind="maintenance", inbound=inbound_id, cmd_id=cmd_id
            )
            if not res.ok and self._inbound_new(inbound_id):
                with kdb.transaction(self.db):
                    self._inbound_done(inbound_id, cmd_id, False, res.code)
        elif name == "refund":
            items = tuple(I.RefundItem(i["sku"], int(i["qty"])) for i in args.get("items") or ())
            r = I.Refund(
                sale=str(args.get("sale", "")),
                items=items,
                amount_fen=args.get("amount_fen"),
                reason=str(args.get("reason", "")),
            )
            res = self._refund(r, actor=f"central:{cmd_id}", inbound=(inbound_id, cmd_id))
            if not res.ok:
                with kdb.transaction(self.db):
                    self._inbound_done(inbound_id, cmd_id, False, res.code)
        elif name == "reboot":
            with kdb.transaction(self.db):
                self._inbound_done(inbound_id, cmd_id, True, "rebooting")
            if self.on_reboot is not None:
                self.on_reboot()

    def _inbound_new(self, inbound_id: str) -> bool:
        row = self.db.conn.execute(
            "SELECT status FROM inbound WHERE id = ?", (inbound_id,)
        ).fetchone()
        return row is not None and row[0] == "new"

    def _inbound_done(self, inbound_id: str, cmd_id: str | None, ok: bool, detail: str) -> None:
        at = wall.now_iso()
        self.db.conn.execute(
            "UPDATE inbound SET status = 'done', handled_at = ?, why = ? WHERE id = ?",
            (at, None if ok else detail, inbound_id),
        )
        journal.outbox(self.db, "cmd_result", {"cmd_id": cmd_id, "ok": ok, "detail": detail}, at)

    # == intents ===================================================================================
    def _on_intent(self, it: I.Intent) -> I.Result:
        if it.operator_only:
            if self.operator is None:
                return I.Result.refused(Reason.NOT_LOGGED_IN)
            self.operator_seen = self.clock()
        handler = getattr(self, f"_i_{it.name}", None)
        if handler is None:
            return I.Result.refused(Reason.BAD_REQUEST, f"{it.name} is not handled")
        return handler(it)

    def _i_scan(self, it: I.Scan) -> I.Result:
        return self._on_code(it.text, it.door)

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

    def _i_operator_login(self, it: I.OperatorLogin) -> I.Result:
        account = None
        if it.card:
            account = self._card_account(classify(it.card).text)
            if account is None:
                return I.Result.refused(Reason.UNKNOWN_OPERATOR)
        elif self.pending_card and self.clock() - self.pending_card[1] < PENDING_CARD_S:
            account = self.pending_card[0]
        if it.pin is None:
            if account and operators.by_card(self.db.conn, account):
                self.pending_card = (account, self.clock())
                return I.Result(False, Reason.PIN_REQUIRED)
            return I.Result.refused(Reason.UNKNOWN_OPERATOR)
        with kdb.transaction(self.db):
            res = operators.login(self.db.conn, account, it.pin, self.now())
        if not res.ok:
            return I.Result(
                False, res.why, data={"locked_until": res.locked_until} if res.locked_until else {}
            )
        self.pending_card = None
        self.operator = res.operator
        self.operator_since = wall.now_iso()
        self.operator_seen = self.clock()
        return I.Result(True, data={"operator": res.operator.name if res.operator else ""})

    def _i_operator_logout(self, it: I.OperatorLogout) -> I.Result:
        self._logout("logout")
        return I.Result(True)

    def _logout(self, why: str) -> None:
        if self.operator is None:
            return
        with kdb.transaction(self.db):
            operators.audit(self.db.conn, self.operator.id, "logout", {"why": why}, wall.now_iso())
        self.operator = None
        self._dirty = True

    def _i_open_door_for_restock(self, it: I.OpenDoorForRestock) -> I.Result:
        assert self.operator is not None
        return self._begin("operator", it.door, kind="restock", operator=self.operator.id)

    def _i_open_door(self, it: I.OpenDoor) -> I.Result:
        assert self.operator is not None
        return self._begin("operator", it.door, kind="maintenance", operator=self.operator.id)

    def _i_confirm_counts(self, it: I.ConfirmCounts) -> I.Result:
        live = self.live
        if (
            live is None
            or live.kind != "restock"
            or live.door != it.door
            or self.state not in (St.OPEN, St.SETTLING, St.CONFIRMING, St.UNLOCKING)
        ):
            return I.Result.refused(Reason.NOT_RESTOCKING)
        for c in it.counts:
            if c.count < 0:
                return I.Result.refused(Reason.BAD_REQUEST, "a count is never negative")
            live.counts[(c.shelf, c.sku)] = c
        live.counts_confirmed = True
        if self.state == St.CONFIRMING:
            self._fire(Ev.CONFIRMED)
            return I.Result(True, data={"finished": True})
        return I.Result(True, data={"finished": False})

    def _i_calibrate(self, it: I.Calibrate) -> I.Result:
        assert self.operator is not None
        if it.shelf not in {s.id for s in self.cfg.shelves}:
            return I.Result.refused(Reason.NO_SUCH_SHELF)
        before = self.last.get(it.shelf)
        try:
            if it.step == "zero":
                self.scales.zero(it.shelf)
            elif it.step == "known" and it.known_g and it.known_g > 0:
                self.scales.calibrate(it.shelf, int(it.known_g))
            else:
                return I.Result.refused(
                    Reason.BAD_REQUEST, "step is zero, or known with known_g > 0"
                )
        except HardwareError as e:
            return I.Result.refused(Reason.SCALE_FAULT, e.why)
        at = wall.now_iso()
        with kdb.transaction(self.db):
            self.db.conn.execute(
                "INSERT INTO calibrations (id, shelf, at, kind, known_g, operator)"
                " VALUES (?,?,?,?,?,?)",
                (
                    ids.uuid7(),
                    it.shelf,
                    at,
                    "zero" if it.step == "zero" else "gain",
                    it.known_g,
                    self.operator.id,
                ),
            )
            operators.audit(
                self.db.conn,
                self.operator.id,
                f"calibrate_{it.step}",
                {
                    "shelf": it.shelf,
                    "known_g": it.known_g,
                    "before_g": before.grams if before else None,
                },
                at,
            )
        err = None
        if before is not None and before.grams is not None:
            err = before.grams - (0.0 if it.step == "zero" else float(it.known_g or 0))
        return I.Result(True, data={"shelf": it.shelf, "before_error_g": err})

    def _i_set_planogram(self, it: I.SetPlanogram) -> I.Result:
        assert self.operator is not None
        shelf = next((s for s in self.cfg.shelves if s.id == it.shelf), None)
        if shelf is None:
            return I.Result.refused(Reason.NO_SUCH_SHELF)
        for ln in it.lanes:
            if ln.sku not in self._products:
                return I.Result.refused(Reason.NO_SUCH_PRODUCT, ln.sku)
        warnings = self._warnings_for(shelf, it.lanes)
        if warnings and not it.force:
            return I.Result(
                False, Reason.INDISTINGUISHABLE, "; ".join(warnings), data={"warnings": warnings}
            )
        at = wall.now_iso()
        with kdb.transaction(self.db):
            self.db.conn.execute("DELETE FROM planogram WHERE shelf = ?", (it.shelf,))
            for ln in it.lanes:
                self.db.conn.execute(
                    "INSERT INTO planogram (shelf, sku, door, low_stock) VALUES (?,?,?,?)",
                    (it.shelf, ln.sku, shelf.door, ln.low_stock),
                )
                self.db.conn.execute(
                    "INSERT INTO inventory (shelf, sku, count, updated_at) VALUES"
                    " (?,?,0,?) ON CONFLICT DO NOTHING",
                    (it.shelf, ln.sku, at),
                )
            operators.audit(
                self.db.conn,
                self.operator.id,
                "planogram",
                {"shelf": it.shelf, "lanes": [ln.sku for ln in it.lanes], "warnings": warnings},
                at,
            )
        self._planogram_warnings = tuple(warnings)
        self._dirty_static = True
        return I.Result(True, data={"warnings": warnings})

    def _warnings_for(self, shelf: Any, lanes: Sequence[I.PlanogramLane]) -> list[str]:
        from kiosk.weighing.model import LaneStock, ShelfPlan

        stock = tuple(
            LaneStock(
                ln.sku,
                float(self._products[ln.sku].unit_g),
                float(self._products[ln.sku].unit_sd_g),
                self._products[ln.sku].price_fen,
                1,
            )
            for ln in lanes
        )
        plan = ShelfPlan(shelf.id, stock, division_for(shelf.capacity_g), float(shelf.capacity_g))
        try:
            from kiosk.weighing import planogram_warnings  # type: ignore[attr-defined]
        except ImportError:
            return _simple_warnings(plan)
        return [str(w) for w in planogram_warnings([plan])]

    def _i_ack_alarm(self, it: I.AckAlarm) -> I.Result:
        assert self.operator is not None
        at = wall.now_iso()
        with kdb.transaction(self.db):
            cur = self.db.conn.execute(
                "UPDATE events SET acked_at = ?, acked_by = ? WHERE id = ? AND alarm ="
                " 1 AND acked_at IS NULL",
                (at, self.operator.id, it.alarm),
            )
            if cur.rowcount == 0:
                return I.Result.refused(Reason.NO_SUCH_ALARM)
            operators.audit(self.db.conn, self.operator.id, "ack_alarm", {"alarm": it.alarm}, at)
        self._dirty_static = True
        return I.Result(True)

    def _i_refund(self, it: I.Refund) -> I.Result:
        assert self.operator is not None
        return self._refund(it, actor=self.operator.id)

    def _refund(self, it: I.Refund, actor: str, inbound: tuple[str, str] | None = None) -> I.Result:
        sale = self.db.conn.execute(
            "SELECT total_fen FROM sales WHERE id = ?", (it.sale,)
        ).fetchone()
        if sale is None:
            return I.Result.refused(Reason.NO_SUCH_SALE)
        prices = dict(
            self.db.conn.execute(
                "SELECT sku, unit_price_fen FROM sale_items WHERE sale = ?", (it.sale,)
            ).fetchall()
        )
        qtys = dict(
            self.db.conn.execute(
                "SELECT sku, qty FROM sale_items WHERE sale = ?", (it.sale,)
            ).fetchall()
        )
        done = self.db.conn.execute(
            "SELECT COALESCE(SUM(amount_fen), 0) FROM adjustments WHERE sale = ?", (it.sale,)
        ).fetchone()[0]
        if it.amount_fen is not None:
            amount = int(it.amount_fen)
        elif it.items:
            for i in it.items:
                if i.sku not in prices or i.qty <= 0 or i.qty > qtys[i.sku]:
                    return I.Result.refused(
                        Reason.BAD_REQUEST, f"{i.sku} x{i.qty} is not in the sale"
                    )
            amount = sum(prices[i.sku] * i.qty for i in it.items)
        else:
            amount = int(sale[0]) - int(done)
        if amount <= 0 or amount + int(done) > int(sale[0]):
            return I.Result.refused(
                Reason.REFUND_TOO_LARGE, f"refundable: {int(sale[0]) - int(done)} fen"
            )
        adj_id = ids.uuid7()
        at = wall.now_iso()
        items = [{"sku": i.sku, "qty": i.qty} for i in it.items]
        with kdb.transaction(self.db):
            self.db.conn.execute(
                "INSERT INTO adjustments (id, sale, amount_fen, items_json, reason,"
                " actor, created_at) VALUES (?,?,?,?,?,?,?)",
                (adj_id, it.sale, amount, json.dumps(items), it.reason or "refund", actor, at),
            )
            journal.outbox(
                self.db,
                "adjustment",
                {
                    "id": adj_id,
                    "sale": it.sale,
                    "amount_fen": amount,
                    "items": items,
                    "reason": it.reason or "refund",
                    "actor": actor,
                },
                at,
            )
            operators.audit(
                self.db.conn,
                None if actor.startswith("central:") else actor,
                "refund",
                {"sale": it.sale, "amount_fen": amount, "adjustment": adj_id},
                at,
            )
            if inbound is not None:
                self._inbound_done(inbound[0], inbound[1], True, f"adjustment {adj_id}")
        return I.Result(True, data={"adjustment": adj_id, "amount_fen": amount})

    # == snapshots =================================================================================
    def _publish(self, force: bool = False) -> None:
        now = self.clock()
        if not (force or self._dirty):
            # readings and background refreshes alone publish at a calm rate
            calm = now - self._last_publish >= 0.5
            if not (calm and (self._readings_dirty or self._dirty_static)):
                return
        self._readings_dirty = False
        if self._dirty_static or force:
            self._static_parts()
            self._dirty_static = False
        self._dirty = False
        self._last_publish = now
        self._seq += 1
        snap = self._build(now)
        self._snap = snap
        for cb in list(self._subs):
            try:
                cb(snap)
            except Exception:
                log.exception("snapshot subscriber")

    def _static_parts(self) -> None:
        db = self.db.conn
        self._static["alarms"] = tuple(
            S.AlarmView(r[0], r[1], r[2], r[3], r[4], json.loads(r[5] or "{}"), r[6] is not None)
            for r in journal.open_alarms(self.db)
        )
        self._static["products"], self._static["categories"] = self._product_wall()
        backlog = db.execute("SELECT COUNT(*) FROM outbox WHERE state = 'pending'").fetchone()[0]
        dead = db.execute("SELECT COUNT(*) FROM outbox WHERE state = 'dead'").fetchone()[0]
        last = db.execute("SELECT MAX(delivered_at) FROM outbox").fetchone()[0]
        last = kdb.get_setting(self.db, "last_contact", last) or last
        self._static["sync"] = S.SyncView(backlog, dead, last, journal.catalog_version(self.db))
        lo, hi = auth.day_bounds(self._today(), self.tz)
        c, tot = db.execute(
            "SELECT COUNT(*), COALESCE(SUM(total_fen), 0) FROM sales WHERE"
            " closed_at >= ? AND closed_at < ?",
            (lo, hi),
        ).fetchone()
        review = tuple(
            r[0]
            for r in db.execute(
                "SELECT id FROM sales WHERE review = 1 ORDER BY created_at DESC LIMIT 50"
            )
        )
        self._static["sales"] = S.SalesView(c, tot, review)

    def _product_wall(self) -> tuple[tuple[S.ProductView, ...], tuple[S.CategoryView, ...]]:
        db = self.db.conn
        today = self._today().isoformat()
        lanes = journal.lanes(self.db)
        stock: dict[str, int] = {}
        expired: set[str] = set()
        doors_of: dict[str, set[str]] = {}
        faulty: set[str] = set()
        for ln in lanes:
            doors_of.setdefault(ln.sku, set()).add(ln.door)
            if ln.expires_on and ln.expires_on[:10] < today:
                expired.add(ln.sku)
                continue
            if ln.shelf in self.shelf_fault:
                faulty.add(ln.sku)
                continue
            stock[ln.sku] = stock.get(ln.sku, 0) + ln.count
        rows = db.execute(
            "SELECT p.sku, p.zh, p.en, p.category, p.supplier, COALESCE(s.zh, ''),"
            " COALESCE(s.kind, ''),"
            " COALESCE(s.county, ''), COALESCE(s.town, ''), p.cert_no, p.price_fen"
            " FROM products p LEFT JOIN suppliers s ON s.id = p.supplier ORDER BY p.category, p.sku"
        ).fetchall()
        out = []
        for r in rows:
            sku = r[0]
            if sku not in doors_of:
                continue
            n = stock.get(sku, 0)
            why = None
            if n <= 0:
                why = (
                    "expired" if sku in expired else "scale_fault" if sku in faulty else "sold_out"
                )
            out.append(
                S.ProductView(
                    sku=sku,
                    zh=r[1],
                    en=r[2],
                    category=r[3],
                    supplier=r[4],
                    supplier_zh=r[5],
                    supplier_kind=r[6],
                    county=r[7],
                    town=r[8],
                    cert_no=r[9],
                    certified=bool(r[9]),
                    price_fen=int(r[10]),
                    stock=n,
                    available=n > 0,
                    why_unavailable=why,
                    doors=tuple(sorted(doors_of[sku])),
                )
            )
        cats = tuple(
            S.CategoryView(*r) for r in db.execute("SELECT id, zh, en FROM categories ORDER BY id")
        )
        return tuple(out), cats

    def _restock_view(self) -> S.RestockView | None:
        live = self.live
        if live is None or live.kind != "restock":
            return None
        today = self._today()
        lanes = self._door_lanes(live.door)
        out = []
        for s in self.cfg.shelves_of(live.door):
            mine = [ln for ln in lanes if ln.shelf == s.id and ln.sku in self._products]
            units = [
                restock.LaneUnit(
                    ln.sku,
                    ln.count,
                    self._products[ln.sku].unit_g,
                    self._products[ln.sku].unit_sd_g,
                )
                for ln in mine
            ]
            base = (live.baseline.get(s.id) or {}).get("g")
            now_r = self.last.get(s.id)
            counted = None
            if base is not None and now_r is not None and now_r.grams is not None:
                counted = restock.weighed_counts(units, now_r.grams - base)
            for ln in mine:
                p = self._products[ln.sku]
                out.append(
                    S.RestockLane(
                        shelf=s.id,
                        sku=ln.sku,
                        zh=p.zh,
                        en=p.en,
                        expected=ln.count,
                        weighed=counted.counts.get(ln.sku) if counted else None,
                        exact=bool(counted and counted.exact),
                        expires_on=restock.default_expiry(today, p.shelf_life_days),
                    )
                )
        return S.RestockView(live.id, live.door, tuple(out))

    def _build(self, now: float) -> S.Snapshot:
        live = self.live
        sess = None
        cands: tuple[S.BasketView, ...] = ()
        if live is not None and self.state not in (St.IDLE,):
            deadline = (
                live.deadline
                if self.state in (St.UNLOCKING, St.CONFIRMING)
                else (live.open_alarm_at if self.state == St.OPEN else None)
            )
            sess = S.OpenSession(
                id=live.id,
                door=live.door,
                kind=live.kind,
                method=live.method,
                state=str(self.state),
                started_at=live.started_at,
                deadline=deadline,
                remaining_s=None if deadline is None else max(0.0, deadline - now),
                door_open_too_long=live.alarmed_open,
            )
            if self.state == St.CONFIRMING and live.verdict is not None and live.kind == "sale":
                cands = tuple(
                    self._basket_view(i, b, live)
                    for i, b in enumerate(_cheaper_first(live.verdict.candidates))
                )
        door_views = tuple(
            S.DoorView(
                d.id,
                bool(self.door_open.get(d.id)),
                live.id if live and live.door == d.id and self.state in ACTIVE else None,
                self.door_fault.get(d.id),
            )
            for d in self.cfg.doors
        )
        shelves = tuple(
            S.ShelfView(
                s.id,
                s.door,
                self.last[s.id].grams if s.id in self.last else None,
                bool(self.last[s.id].stable) if s.id in self.last else False,
                self.shelf_fault.get(s.id),
            )
            for s in self.cfg.shelves
        )
        op = (
            S.OperatorView(self.operator.id, self.operator.name, self.operator_since or "")
            if self.operator
            else None
        )
        state = str(self.state)
        if self.state == St.IDLE and self.oos is not None:
            state = St.OUT_OF_SERVICE
        return S.Snapshot(
            state=state,
            seq=self._seq,
            cabinet=self._snap.cabinet,
            session=sess,
            doors=door_views,
            shelves=shelves,
            alarms=self._static.get("alarms", ()),
            receipt=self.receipt,
            candidates=cands,
            refusal=self.refusal,
            out_of_service=self.oos,
            operator=op,
            restock=self._restock_view(),
            products=self._static.get("products", ()),
            categories=self._static.get("categories", ()),
            sync=self._static.get("sync", S.SyncView()),
            sales=self._static.get("sales", S.SalesView()),
            planogram_warnings=self._planogram_warnings,
        )

    def _basket_view(self, index: int, b: Any, live: Live) -> S.BasketView:
        items = []
        for sku, qty in sorted(dict(b.taken).items()):
            if qty <= 0:
                continue
            p = self._products.get(sku)
            price = live.prices.get(sku, p.price_fen if p else 0)
            items.append(
                S.ItemView(sku, p.zh if p else sku, p.en if p else sku, qty, price, price * qty)
            )
        return S.BasketView(index, tuple(items), sum(i.line_fen for i in items))

    def _receipt(
        self,
        sale_id: str,
        live: Live,
        items: list[tuple],
        total: int,
        status: str,
        review: bool,
        at: str,
    ) -> S.Receipt:
        views = []
        sups: dict[str, S.SupplierView] = {}
        for sku, qty, price, _cert, sup in items:
            p = self._products.get(sku)
            views.append(
                S.ItemView(sku, p.zh if p else sku, p.en if p else sku, qty, price, price * qty)
            )
            if sup and sup not in sups:
                r = self.db.conn.execute(
                    "SELECT id, zh, kind, town, households FROM suppliers WHERE id = ?", (sup,)
                ).fetchone()
                if r:
                    sups[sup] = S.SupplierView(r[0], r[1], r[2], r[3] or "", int(r[4] or 0))
        return S.Receipt(
            sale=sale_id,
            session=live.id,
            door=live.door,
            items=tuple(views),
            total_fen=total,
            method=live.method,
            payment_status=status,
            suppliers=tuple(sups.values()),
            households=sum(s.households for s in sups.values()),
            review=review,
            closed_at=live.closed_at or at,
        )


# == helpers ========================================================================
@dataclass(frozen=True)
class _Code:
    text: str


@dataclass(frozen=True)
class _AuthAnswer:
    session: str
    ok: bool
    auth_id: str | None
    why: str
    offline: bool


def _lock_code(e: HardwareError) -> str:
    from kiosk.hardware import LockBoardOffline

    return Reason.LOCK_OFFLINE if isinstance(e, LockBoardOffline) else Reason.LOCK_FAULT


def _mean(xs: Sequence[float | None]) -> float | None:
    vals = [x for x in xs if x is not None]
    return sum(vals) / len(vals) if vals else None


def _cheaper_first(cands: Sequence[Any]) -> list[Any]:
    return sorted(cands, key=lambda b: (b.charge_fen, -b.score))


def _price_at(db: Any, sku: str, at: str) -> int | None:
    try:
        from kiosk import catalog

        return int(catalog.price_at(db, sku, at))
    except LookupError:  # no price yet at that time: the product's current price
        return journal.price_at(db, sku, at)


def _simple_warnings(plan: Any) -> list[str]:
    """Fallback: two lanes whose unit weights are within 3 sd of each other (or of 2x)."""
    out = []
    st = list(plan.stock)
    for i, a in enumerate(st):
        for b in st[i + 1 :]:
            for ka, kb in ((1, 1), (2, 1), (1, 2)):
                sd = (
                    3 * ((ka * a.unit_sd_g) ** 2 + (kb * b.unit_sd_g) ** 2) ** 0.5
                    + plan.division_g * 2
                )
                if abs(ka * a.unit_g - kb * b.unit_g) <= sd:
                    out.append(f"{plan.id}: {ka} x {a.sku} and {kb} x {b.sku} weigh the same")
    return out


class _VerdictMemo:
    """A verdict kept in ``sessions.verdict_json`` (for review, and for recovery in confirming)."""

    @staticmethod
    def dumps(v: Any) -> str:
        def basket(b: Any) -> dict[str, Any]:
            return {
                "taken": dict(b.taken),
                "misplaced": [{"sku": m.sku, "src": m.src, "dst": m.dst} for m in b.misplaced],
                "foreign": list(b.foreign),
                "charge_fen": b.charge_fen,
                "score": b.score,
            }

        return json.dumps(
            {
                "taken": dict(v.taken),
                "misplaced": [{"sku": m.sku, "src": m.src, "dst": m.dst} for m in v.misplaced],
                "foreign": list(v.foreign),
                "fault": list(v.fault),
                "uncertain": v.uncertain,
                "confidence": v.confidence,
                "decided_s": v.decided_s,
                "candidates": [basket(b) for b in v.candidates],
                "faults_why": dict(v.faults_why or {}),
            }
        )

    @staticmethod
    def loads(text: str) -> Any:
        from kiosk.weighing.model import Basket, Move, Verdict

        d = json.loads(text)

        def moves(xs: list[dict[str, str]]) -> tuple[Move, ...]:
            return tuple(Move(m["sku"], m["src"], m["dst"]) for m in xs)

        return Verdict(
            taken=d["taken"],
            misplaced=moves(d["misplaced"]),
            foreign=tuple(d["foreign"]),
            fault=tuple(d["fault"]),
            uncertain=d["uncertain"],
            confidence=d["confidence"],
            decided_s=d["decided_s"],
            candidates=tuple(
                Basket(
                    b["taken"],
                    moves(b["misplaced"]),
                    tuple(b["foreign"]),
                    b["charge_fen"],
                    b["score"],
                )
                for b in d["candidates"]
            ),
            faults_why=d.get("faults_why"),
        )
