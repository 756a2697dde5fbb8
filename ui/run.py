"""The hook ``kiosk run`` (without ``--headless``) calls: the touchscreen on a running controller.

Blocks until an operator leaves the kiosk app (the menu's Exit tile), then returns 0.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any


def prepare_env(state_dir: Path) -> None:
    """Before Kivy is imported: its home in the state folder, no argv parsing."""
    home = Path(state_dir) / "kivy"
    home.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("KIVY_HOME", str(home))
    os.environ.setdefault("KIVY_NO_ARGS", "1")
    os.environ.setdefault("KIOSK_UI_CACHE", str(Path(state_dir) / "ui-cache"))


def open_touchscreen(
    controller: Any,
    config: Any,
    *,
    state_dir: Path | None = None,
    photos: Path | None = None,
    fullscreen: bool = True,
    size: tuple[int, int] | None = None,
    shots_dir: Path | None = None,
    tick: Callable[[], object] | None = None,
) -> int:
    """``controller``: ``kiosk.controller.Controller`` (snapshot/submit/subscribe);
    ``config``: ``kiosk.config.Config`` (cabinet, shelves, central URL).

    ``fullscreen=False``: a desktop window of ``size`` (width, height) that closing ends.
    ``shots_dir``: a screenshot of every screen shown, ``NN-<screen>.png`` (``ui.recorder``).
    SIGTERM/SIGINT end the app (after whatever the caller's own handlers do).
    ``tick``: called twice a second from Kivy's own loop (the watchdog: a hung UI stops it).
    """
    state = Path(state_dir) if state_dir else Path(config.database).parent
    prepare_env(state)
    from kivy.config import Config as KivyConfig

    if fullscreen:
        KivyConfig.set("graphics", "fullscreen", "auto")
    if size is not None:
        KivyConfig.set("graphics", "width", str(size[0]))
        KivyConfig.set("graphics", "height", str(size[1]))
    from ui import images
    from ui.app import KioskApp

    images.set_cache_dir(state / "ui-cache")
    app = KioskApp(
        controller,
        photos=photos,
        timezone=config.cabinet.timezone,
        shots_dir=shots_dir,
        animate=shots_dir is None,  # screenshots of whole screens, not of a fade
        closable=not fullscreen,
    )
    _stop_on_signals(app)
    if tick is not None:
        from kivy.clock import Clock

        def feed(_dt: float) -> None:
            tick()

        # Kivy's clock holds callbacks weakly; this frame keeps ``feed`` alive while app.run().
        Clock.schedule_interval(feed, 0.5)
    app.run()
    return 0


def _stop_on_signals(app: Any) -> None:
    """Kivy's loop never looks at the caller's stop flag: a signal must end the app itself.
    Handlers run on the main thread, which is the one running Kivy's loop."""
    from kivy.clock import Clock

    for sig in (signal.SIGTERM, signal.SIGINT):
        before = signal.getsignal(sig)

        def handler(signum: int, frame: Any, before: Any = before) -> None:
            if callable(before):
                before(signum, frame)
            Clock.schedule_once(lambda _dt: app.stop())

        signal.signal(sig, handler)
