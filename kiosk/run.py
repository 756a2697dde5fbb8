"""``kiosk run``: the controller process, given devices the CLI opened.

Loads the cabinet key, starts the controller (recovery first), serves the control socket,
tells systemd it is ready and feeds its watchdog, and stops cleanly on SIGTERM/SIGINT.
The touchscreen (Step 6) attaches through ``ui_hook``: it receives the controller and a
``tick`` to call from its own main loop, which runs in place of the headless wait.

The watchdog vouches for two loops: the one calling ``tick`` (this main thread, or Kivy's)
and the controller's worker thread, which does the real work. ``LoopHeartbeat`` pings only
when the worker's snapshot ``seq`` moved since the last tick: the worker publishes at least
every 2 s while it turns (housekeeping), so a stuck worker or a stuck UI stops the pings.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from kiosk import db as kdb
from kiosk import logs, notify, signing
from kiosk.config import Config
from kiosk.controller import Controller
from kiosk.controller.device_health import HealthRelay
from kiosk.hardware import CodeSource, LockBoard, ScaleBus
from kiosk.payments import PaymentPort
from kiosk.snapshot import Snapshot

log = logging.getLogger("kiosk.run")


def cabinet_key(cfg: Config, db_path: Path) -> bytes | None:
    """The key for card hashes: the configuration's key_file, else the one ``db init`` noted."""
    path = cfg.central.key_file
    if path is None:
        d = kdb.open_db(db_path)
        try:
            noted = kdb.get_setting(d, "key_file")
        finally:
            d.close()
        path = Path(noted) if noted else None
    if path is None:
        log.warning("no key file: staff cards cannot be checked")
        return None
    return signing.load_key(path)


class LoopHeartbeat:
    """Feeds systemd's watchdog while the controller's worker loop (and the caller's) turn."""

    def __init__(self, controller: Controller, dog: notify.Watchdog | None = None):
        self.ctl = controller
        self.dog = notify.Watchdog() if dog is None else dog
        self._seen = -1
        self._moved = False  # the worker published since the last ping
        self._status = ""

    def tick(self) -> bool:
        """Call once per turn of the caller's loop; returns whether a ping went out."""
        snap = self.ctl.snapshot()
        text = status_line(snap)
        if text != self._status:
            self._status = text
            notify.status(text)
        if snap.seq != self._seen:
            self._seen = snap.seq
            self._moved = True
        if not self._moved:
            return False  # the worker has not published since the last ping
        pinged = self.dog.tick()
        if pinged:
            self._moved = False
        return pinged


def status_line(snap: Snapshot) -> str:
    """What ``systemctl status kiosk`` shows: state, doors, session, alarms, backlog."""
    doors = ",".join(
        f"{d.id}:{'fault' if d.fault else 'open' if d.open else 'shut'}" for d in snap.doors
    )
    parts = [f"state={snap.state}", f"doors={doors or '-'}"]
    if snap.session is not None:
        parts.append(f"session={snap.session.kind}@{snap.session.door}")
    if snap.out_of_service:
        parts.append(f"out_of_service={snap.out_of_service}")
    open_alarms = sum(1 for a in snap.alarms if not a.acked)
    parts += [f"alarms={open_alarms}", f"backlog={snap.sync.backlog}"]
    return " ".join(parts)


def serve(
    cfg: Config,
    db_path: Path,
    locks: Mapping[str, LockBoard],
    scales: ScaleBus,
    scanner: CodeSource | None,
    payments: PaymentPort | None,
    control: Path | None,
    ui_hook: Callable[..., int] | None = None,
    health: HealthRelay | None = None,
) -> int:
    """Run until SIGTERM/SIGINT (or a reboot command); 0 after a clean stop.

    ``ui_hook(controller, tick=...)`` runs the touchscreen's loop; it must call ``tick()``
    about twice a second from that loop (never from a thread of its own).
    """
    from kiosk.control import ControlServer
    from kiosk.snapshot_log import SnapshotLog

    stop = threading.Event()
    signals: list[str] = []

    def on_signal(signum: int, frame: Any) -> None:
        signals.append(signal.Signals(signum).name)  # logged by the main loop, not in here
        stop.set()

    # Before the slow start: a SIGTERM during recovery must still stop cleanly.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)
    hang = notify.DebugHang()
    ctl = Controller(
        cfg,
        db_path,
        locks,
        scales,
        scanner,
        payments,
        key=cabinet_key(cfg, db_path),
        on_reboot=stop.set,
    )
    if health is not None:  # the drivers' reports, held since the devices were opened
        health.attach(ctl.on_health)
    ctl.subscribe(SnapshotLog())
    ctl.subscribe(lambda _snap: hang.check())  # on the worker thread: the loop that works
    published = threading.Event()
    ctl.subscribe(lambda _snap: published.set())
    ctl.start()
    published.wait(2.0)  # the first snapshot after recovery: what READY reports
    server = ControlServer(ctl, control).start() if control else None
    heartbeat = LoopHeartbeat(ctl)
    snap = ctl.snapshot()
    logs.log(
        "ready",
        cabinet=cfg.cabinet.id,
        doors=len(cfg.doors),
        shelves=len(cfg.shelves),
        state=snap.state,
        out_of_service=snap.out_of_service,
        watchdog_s=heartbeat.dog.interval,
    )
    notify.ready(status_line(snap))
    try:
        if ui_hook is not None and not stop.is_set():
            return ui_hook(ctl, tick=heartbeat.tick)
        while not stop.wait(0.5):
            heartbeat.tick()
        return 0
    finally:
        logs.log("stopping", signal=signals[0] if signals else None)
        notify.stopping("stopping: closing the journal and the serial lines")
        if server is not None:
            server.stop()
        # The worker finishes the item in hand (a session's rows are committed by then, or
        # never started) and closes the scale bus, the scanner and the database.
        ctl.stop()
        for board in {id(b): b for b in locks.values()}.values():
            try:
                board.close()
            except Exception:
                log.exception("closing a lock board")
        logs.log("stopped", state=ctl.snapshot().state)
