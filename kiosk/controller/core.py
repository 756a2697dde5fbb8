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

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from datetime import datetime
from pathlib import Path
from typing import Any

from kiosk import clock as wall
from kiosk import db as kdb
from kiosk import doors, journal, operators
from kiosk import intents as I
from kiosk import snapshot as S
from kiosk.config import Config
from kiosk.controller.authorising import Authorising
from kiosk.controller.device_health import DOWN_FOR_S, DeviceHealthLog, HealthChange
from kiosk.controller.door_session import DoorSession
from kiosk.controller.inbound import Inbound
from kiosk.controller.learning import Learning
from kiosk.controller.live import (
    EXPIRY_EVERY_S,
    HOUSEKEEPING_EVERY_S,
    INBOX_EVERY_S,
    MIN_FREE_BYTES,
    OPERATOR_IDLE_S,
    AuthAnswer,
    Code,
    Live,
    Stop,
)
from kiosk.controller.operator_work import OperatorWork
from kiosk.controller.recovery import Recovery
from kiosk.controller.scan_codes import ScanCodes
from kiosk.controller.settlement import Settlement
from kiosk.controller.shelf_plans import ShelfPlans
from kiosk.controller.snapshots import Snapshots
from kiosk.controller.stock_checks import StockChecks
from kiosk.hardware import (
    CodeSource,
    LockBoard,
    Reading,
    ScaleBus,
)
from kiosk.payments import PaymentPort
from kiosk.session_table import READY, Ev, step
from kiosk.snapshot import Reason
from kiosk.snapshot import SessionState as St

log = logging.getLogger("kiosk.controller")


class Controller(
    Recovery,
    Authorising,
    DoorSession,
    Settlement,
    Learning,
    ShelfPlans,
    StockChecks,
    Inbound,
    OperatorWork,
    Snapshots,
    DeviceHealthLog,
):
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
        device_down_s: float = DOWN_FOR_S,
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
        self.device_down_s = device_down_s
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
        self._to_learn = []
        self.scan_codes = None
        self._held: deque[Any] = deque()  # items set aside while an intent waited for readings
        self._devices: dict[str, dict[str, Any]] | None = None  # loaded on the first report
        self._outages = {}

    # == public API ================================================================================
    def start(self, wait_s: float = 15.0) -> None:
        """Recover, then serve; returns once recovery is done (or ``wait_s`` passed)."""
        self._thread.start()
        self._ready.wait(wait_s)

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self._q.put(Stop())
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
        self.scan_codes = ScanCodes(self.db, self.now)
        try:
            self._recover()
        except Exception:
            log.exception("recovery failed")
        self._ready.set()
        self._publish(force=True)
        while True:
            timeout = 0.05
            try:
                item = self._held.popleft() if self._held else self._q.get(timeout=timeout)
            except queue.Empty:
                item = None
            n = 0
            while item is not None:
                if isinstance(item, Stop):
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
                    item = self._held.popleft() if self._held else self._q.get_nowait()
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
        elif isinstance(item, HealthChange):
            self._on_device_health(item)
        elif isinstance(item, Code):
            self._on_code(item.text, None)
        elif isinstance(item, AuthAnswer):
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

    # == timers ====================================================================================
    def _tick(self, now: float) -> None:
        if self.state == St.IDLE and self.scan_codes is not None and self.scan_codes.due():
            self.scan_codes.rotate()  # the idle screen's code is replaced every few minutes
            self._dirty = True
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
        self._learn_when_still(now)
        self._check_outages(now)
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
