"""``kiosk run``: the controller process, given devices the CLI opened.

Loads the cabinet key, starts the controller (recovery first), serves the control socket,
tells systemd it is ready and feeds its watchdog, and stops cleanly on SIGTERM/SIGINT.
The touchscreen (Step 6) attaches through ``ui_hook``: it receives the controller and runs
its own main loop in place of the headless wait.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from kiosk import db as kdb
from kiosk import notify, signing
from kiosk.config import Config
from kiosk.controller import Controller
from kiosk.hardware import CodeSource, LockBoard, ScaleBus
from kiosk.payments import PaymentPort

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


def serve(
    cfg: Config,
    db_path: Path,
    locks: Mapping[str, LockBoard],
    scales: ScaleBus,
    scanner: CodeSource | None,
    payments: PaymentPort | None,
    control: Path | None,
    ui_hook: Callable[[Controller], int] | None = None,
) -> int:
    from kiosk.control import ControlServer

    stop = threading.Event()
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
    ctl.start()
    server = ControlServer(ctl, control).start() if control else None
    notify.send("READY=1", "STATUS=serving")

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)
    try:
        if ui_hook is not None:
            return ui_hook(ctl)
        while not stop.wait(1.0):
            notify.send("WATCHDOG=1")
        return 0
    finally:
        notify.send("STOPPING=1")
        if server is not None:
            server.stop()
        ctl.stop()
        for board in {id(b): b for b in locks.values()}.values():
            try:
                board.close()
            except Exception:
                log.exception("closing a lock board")
