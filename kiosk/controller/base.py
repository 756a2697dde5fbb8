"""What every part of the controller shares: the worker thread's state, declared once.

``Controller`` (kiosk/controller/core.py) is made of one mixin per job (recovery, authorising,
the door session, settlement, operator work, stock checks, inbound commands, snapshots); each
reads and writes this state on the controller's one worker thread, so none of it is locked.
"""

from __future__ import annotations

import queue
from collections import deque
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from kiosk import doors, journal, operators
from kiosk import snapshot as S
from kiosk.config import Config
from kiosk.controller.live import Live
from kiosk.controller.scan_codes import ScanCodes
from kiosk.hardware import CodeSource, LockBoard, Reading, ScaleBus
from kiosk.payments import PaymentPort
from kiosk.snapshot import SessionState as St


class Base:
    # wiring (set once by the constructor)
    cfg: Config
    db_path: Path
    locks: dict[str, LockBoard]
    scales: ScaleBus
    scanner: CodeSource | None
    payments: PaymentPort | None
    clock: Callable[[], float]
    now: Callable[[], datetime]
    key: bytes | None
    on_reboot: Callable[[], None] | None
    min_free_bytes: int
    tz: str
    _weigher_factory: Callable[..., Any] | None
    _q: queue.Queue[Any]
    _held: deque[Any]
    _snap: S.Snapshot
    _subs: list[Callable[[S.Snapshot], None]]
    # worker-thread state
    db: Any
    state: St
    live: Live | None
    door_open: dict[str, bool]
    door_fault: dict[str, str]
    last: dict[str, Reading]
    ring: dict[str, deque[Reading]]
    shelf_fault: dict[str, str]
    refusal: str | None
    oos: str | None
    receipt: S.Receipt | None
    state_deadline: float | None
    operator: operators.Operator | None
    operator_since: str | None
    operator_seen: float
    pending_card: tuple[str, float] | None
    watchers: list[doors.DoorWatcher]
    _watcher_of: dict[str, doors.DoorWatcher]
    scan_codes: ScanCodes | None
    _seq: int
    _dirty: bool
    _dirty_static: bool
    _readings_dirty: bool
    _last_publish: float
    _static: dict[str, Any]
    _products: dict[str, journal.ProductInfo]
