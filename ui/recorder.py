"""A screenshot of each screen the app shows, for ``kiosk demo`` and anyone reviewing a flow.

Files are ``NN-<screen>.png`` in the order shown (``01-idle.png``, ``02-authorise.png`` ...).
The grab waits ``delay_s`` so the new screen has laid itself out and drawn at least one frame;
if another screen replaced it meanwhile, that screen's own grab covers it and this one is
dropped (a file named for a screen always shows that screen).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)


class ScreenRecorder:
    def __init__(self, folder: Path, current: Callable[[], str], delay_s: float = 0.4):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._current = current  # the screen manager's current screen name, when grabbing
        self.delay_s = delay_s
        self._shown = ""
        self._n = 0

    def shown(self, name: str) -> None:
        """Called after every ``show``; only a change of screen schedules a grab."""
        if name == self._shown:
            return
        self._shown = name
        self._n += 1
        n = self._n
        from kivy.clock import Clock

        Clock.schedule_once(lambda _dt: self._grab(n, name), self.delay_s)

    def _grab(self, n: int, name: str) -> None:
        if self._current() != name:
            log.info("screen %s gone before its screenshot", name)
            return
        from kivy.core.window import Window

        target = self.folder / f"{n:02d}-{name}.png"
        # Window.screenshot numbers what it writes: give it a scratch name, then rename, so
        # the final name appears only once the file is complete.
        made = Window.screenshot(str(self.folder / f".{n:02d}-{name}.png"))
        if made:
            os.replace(made, target)
            log.info("screenshot %s", target)
