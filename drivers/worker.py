"""The one background thread a polling driver owns (the scale bus, the scanner)."""

from __future__ import annotations

import threading
from collections.abc import Callable


class Worker:
    """Started once, stopped (and joined) by ``stop``; the loop watches ``stopping``."""

    def __init__(self, name: str):
        self.name = name
        self.stopping = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None

    def start(self, target: Callable[..., None], *args: object) -> None:
        if self._thread is not None:
            raise RuntimeError(f"{self.name} already started")
        self.stopping.clear()
        self._thread = threading.Thread(target=target, args=args, name=self.name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self.stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout)
            self._thread = None
