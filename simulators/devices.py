"""Lock board lines and the code scanner, speaking hardware.md's bytes on ptys."""

from __future__ import annotations

import contextlib
import threading
import time
from functools import partial
from pathlib import Path

from kiosk.config import Door
from simulators.faults import LineFaults
from simulators.lock_frames import Op, Request, RequestParser, reply_8a80, reply_cu
from simulators.lock_wkly_board import WklyRequestParser, reply_wkly, report_wkly
from simulators.model import CabinetModel
from simulators.serial_line import DeviceThread


class LockLineSim(DeviceThread):
    """Every lock board on one RS-485 line (the doors whose config ``url`` is the same).

    Faults set on any of the line's doors act on the whole line (it is one cable), except
    ``stuck``, which the model applies to one door's sensor, and ``silent-unlock``: that
    door's board opens the lock on an unlock but answers nothing, as several real Kerong
    boards do (queries are still answered).
    """

    def __init__(self, doors: list[Door], model: CabinetModel, link: Path | None, seed: int):
        protocols = {d.protocol for d in doors}
        if len(protocols) != 1:
            raise ValueError(
                f"doors {', '.join(d.id for d in doors)} share a line but not a protocol"
            )
        super().__init__(f"locks-{doors[0].id}", link, doors[0].baud, LineFaults(seed))
        self.protocol = doors[0].protocol
        self.door_ids = tuple(d.id for d in doors)
        self._model = model
        self._doors = {(d.board, d.lock): d for d in doors}
        self._boards = {d.board for d in doors}
        self._parser = (
            WklyRequestParser() if self.protocol == "wkly" else RequestParser(self.protocol)
        )
        # unlock requests that reached each door's board (a silent board's too): every one
        # is a pulse on a real board, so tests count them
        self.unlocks_heard: dict[str, int] = dict.fromkeys(self.door_ids, 0)
        self._watching = threading.Event()
        self._watcher: threading.Thread | None = None

    def start(self) -> None:
        super().start()
        if self.protocol == "wkly":
            self._watcher = threading.Thread(
                target=self._watch_doors, name=f"sim-{self.name}-reports", daemon=True
            )
            self._watcher.start()

    def stop(self) -> None:
        self._watching.set()
        if self._watcher is not None:
            self._watcher.join(timeout=5)
        super().stop()

    def _watch_doors(self) -> None:
        """A WKLY board reports each change of a channel unprompted (85). The model has no
        events (a pulsed latch also relatches by itself), so the sensors are sampled."""
        last = {key: self._unlatched(*key) for key in self._doors}
        while not self._watching.wait(0.02):
            for (board, lock), d in self._doors.items():
                now = self._unlatched(board, lock)
                if now == last[(board, lock)]:
                    continue
                last[(board, lock)] = now
                report = report_wkly(board, lock, now, d.status_inverted)
                with contextlib.suppress(TimeoutError):  # stopping: nobody to tell
                    self.call(lambda r=report: self._send_report(r))

    def _send_report(self, data: bytes) -> None:
        if not self.faults.has("silent"):
            self.write(self.faults.mangle(data))

    def on_data(self, fd: int, data: bytes, at: float) -> None:
        for req in self._parser.feed(self.faults.mangle(data)):
            self._count_unlock(req)
            if req.board not in self._boards or self.faults.has("silent"):
                continue  # no such board on this line, or a dead one: no answer
            done_at = at + self.pacer.wire_s(len(req.raw))  # the request's own wire time
            reply = self._handle(req)
            if self._silent_unlock(req):
                continue  # the lock was pulsed; the board says nothing
            self.write(self.faults.mangle(reply), since=done_at + self.faults.delay_s())

    def _count_unlock(self, req: Request) -> None:
        for (board, lock), d in self._doors.items():
            if board == req.board and (
                req.op is Op.OPEN_ALL or (req.op is Op.OPEN and lock == req.lock)
            ):
                self.unlocks_heard[d.id] += 1

    def _silent_unlock(self, req: Request) -> bool:
        if req.op is Op.OPEN:
            d = self._door(req.board, req.lock)
            return d is not None and self.faults.has("silent-unlock", (d.id,))
        if req.op is Op.OPEN_ALL:
            ids = tuple(d.id for (b, _), d in self._doors.items() if b == req.board)
            return self.faults.has("silent-unlock", ids)
        return False

    def _inverted(self, board: int, lock: int) -> bool:
        d = self._door(board, lock)
        return d is not None and d.status_inverted

    def _door(self, board: int, lock: int) -> Door | None:
        return self._doors.get((board, lock))

    def _unlatched(self, board: int, lock: int) -> bool:
        d = self._door(board, lock)
        return d is not None and self._model.unlatched(d.id)

    def _handle(self, req: Request) -> bytes:
        b = req.board
        if req.op is Op.OPEN:
            if d := self._door(b, req.lock):
                self._model.pulse(d.id)
        elif req.op is Op.OPEN_ALL:
            for (board, _), d in self._doors.items():
                if board == b:
                    self._model.pulse(d.id)
        unlatched, inverted = partial(self._unlatched, b), partial(self._inverted, b)
        if self.protocol == "8a80":
            return reply_8a80(req, unlatched, inverted)
        if self.protocol == "wkly":
            return reply_wkly(req, unlatched, inverted)
        return reply_cu(req, unlatched, partial(self._stocked, b), inverted)

    def _stocked(self, board: int, lock: int) -> bool:
        """The CU board's infrared bit: something is on the door's shelves."""
        d = self._door(board, lock)
        if d is None:
            return False
        shelves = self._model.state()["shelves"]
        return any(
            any(s["items"].values())
            for sid, s in shelves.items()  # type: ignore[union-attr]
            if self._model.shelves[sid].shelf.door == d.id
        )


class ScannerSim(DeviceThread):
    """A serial scanner: each code it reads goes out as ASCII + CR LF."""

    def __init__(self, link: Path | None, baud: int, seed: int):
        super().__init__("scanner", link, baud, LineFaults(seed))

    def scan(self, code: str) -> None:
        self.call(lambda: self._send(code))

    def _send(self, code: str) -> None:
        if self.faults.has("silent"):
            return
        delay = self.faults.delay_s()
        data = self.faults.mangle(code.encode("ascii") + b"\r\n")
        self.write(data, since=time.monotonic() + delay)

    def on_data(self, fd: int, data: bytes, at: float) -> None:
        pass  # a scanner ignores what the host sends
