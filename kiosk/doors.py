"""Door watching: one thread per lock-board line polls the door sensors and pulses locks.

All I/O on one line happens on its thread (a serial line takes one request at a time), so an
unlock never interleaves with a poll. The watcher reports through ``post``: every change of a
door's "not latched" bit, every unlock's outcome, and every change of the line's health.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from kiosk.config import Door
from kiosk.hardware import HardwareError, LockBoard, LockBoardOffline


@dataclass(frozen=True)
class DoorSensed:
    door: str
    open: bool
    t: float


@dataclass(frozen=True)
class Unlocked:
    door: str
    ok: bool
    why: str = ""


@dataclass(frozen=True)
class LineHealth:
    doors: tuple[str, ...]
    fault: str | None  # None: answering again; else a reason code (lock_offline/lock_fault)
    why: str = ""


Post = Callable[[object], None]


def read_doors(board: LockBoard, doors: Sequence[Door]) -> dict[str, bool]:
    """Each door's "not latched" bit, one query per board (raises HardwareError)."""
    out: dict[str, bool] = {}
    for b in sorted({d.board for d in doors}):
        open_locks = board.open_locks(b)
        for d in doors:
            if d.board == b:
                out[d.id] = d.lock in open_locks
    return out


class DoorWatcher:
    def __init__(
        self,
        board: LockBoard,
        doors: Sequence[Door],
        post: Post,
        clock: Callable[[], float],
        period_s: float = 0.05,
    ):
        self.board = board
        self.doors = tuple(doors)
        self.post = post
        self.clock = clock
        self.period_s = period_s
        self._unlocks: queue.Queue[str] = queue.Queue()
        self._stop = threading.Event()
        self._known: dict[str, bool] = {}
        self._fault: str | None = None
        self._thread = threading.Thread(
            target=self._run, name=f"doors-{self.doors[0].id}", daemon=True
        )

    def start(self, known: dict[str, bool] | None = None, fault: str | None = None) -> None:
        """``known``: the doors' bits as last read; ``fault``: the line's fault at that read, so
        the first poll that answers reports the line healthy again (else nobody would)."""
        self._known = dict(known or {})
        self._fault = fault
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2.0)

    def unlock(self, door: str) -> None:
        self._unlocks.put(door)
        # a poll in progress finishes first; the unlock goes out right after it

    def _health(self, fault: str | None, why: str = "") -> None:
        if fault != self._fault:
            self._fault = fault
            self.post(LineHealth(tuple(d.id for d in self.doors), fault, why))

    def _run(self) -> None:
        by_id = {d.id: d for d in self.doors}
        while not self._stop.is_set():
            try:
                door_id = self._unlocks.get(timeout=self.period_s)
            except queue.Empty:
                door_id = None
            if door_id is not None:
                d = by_id[door_id]
                try:
                    self.board.unlock(d.board, d.lock)
                    self.post(Unlocked(door_id, True))
                    self._health(None)
                except HardwareError as e:
                    self.post(Unlocked(door_id, False, e.why))
                    self._health(_code(e), e.why)
            try:
                states = read_doors(self.board, self.doors)
            except HardwareError as e:
                self._health(_code(e), e.why)
                continue
            self._health(None)
            t = self.clock()
            for door, is_open in states.items():
                if self._known.get(door) != is_open:
                    self._known[door] = is_open
                    self.post(DoorSensed(door, is_open, t))


def _code(e: HardwareError) -> str:
    return "lock_offline" if isinstance(e, LockBoardOffline) else "lock_fault"
