"""A screenshot of each screen the app shows, for ``kiosk demo`` and anyone reviewing a flow.

Files are ``NN-<screen>.png`` in the order shown (``01-idle.png``, ``02-authorise.png`` ...).
The screen widget itself is rendered (``export_to_png``), not the window: a screen the
controller passes through in a tenth of a second (authorise, while the lock releases) is still
recorded, as it was painted, after it has been replaced. The grab waits a few frames so its
layout and text have settled. Record without screen transitions (a fade would be half drawn).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
SETTLE_FRAMES = 3  # layouts and label textures update over the next frames


class ScreenRecorder:
    def __init__(self, folder: Path, screen: Callable[[str], Any]):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._screen = screen  # name -> the screen widget
        self._shown = ""
        self._n = 0

    def shown(self, name: str) -> None:
        """Called after every ``show``; only a change of screen makes a screenshot."""
        if name == self._shown:
            return
        self._shown = name
        self._n += 1
        self._after_frames(SETTLE_FRAMES, self._n, name)

    def _after_frames(self, frames: int, n: int, name: str) -> None:
        from kivy.clock import Clock

        if frames == 0:
            self._grab(n, name)
        else:  # a timeout of 0 runs after the next frame
            Clock.schedule_once(lambda _dt: self._after_frames(frames - 1, n, name), 0)

    def _grab(self, n: int, name: str) -> None:
        target = self.folder / f"{n:02d}-{name}.png"
        scratch = self.folder / f".{n:02d}-{name}.png"  # the final name appears complete
        screen = self._screen(name)
        # A screen draws no background (the window's clear colour is it): paint one for the file.
        from kivy.graphics import Color, Rectangle

        from ui import theme

        bg = (Color(*theme.BG), Rectangle(pos=screen.pos, size=screen.size))
        for i, ins in enumerate(bg):
            screen.canvas.before.insert(i, ins)
        try:
            screen.export_to_png(str(scratch))
        finally:
            for ins in bg:
                screen.canvas.before.remove(ins)
        os.replace(scratch, target)
        log.info("screenshot %s", target)
