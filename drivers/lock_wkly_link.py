"""WKLY lock boards over a serial line: a link that reads the line continuously, and the
LockBoard over it.

A WKLY board may send ``85`` (a channel changed) at any time, also between a request and its
reply, so unlike ``LockLink`` this link never flushes the input before a request (that would
throw a report away): a request's exchange reads everything, keeps the frame that answers it
and hands every other one (a report, a late reply) to ``on_frame``. Between requests a
listener thread reads the open port, so a report updates the door's state at once rather
than at the next request. One request in flight, retries, reopen with backoff and "an unlock
is sent once" are ``LockLink``'s.
"""

from __future__ import annotations

import select
import threading
import time
from collections.abc import Callable, Collection
from typing import Any

from drivers import lock_wkly as wk
from drivers.lock_link import PORT_ERRORS, LockLink, _confirm_unlock
from kiosk.hardware import LockFault

_KNOWN = (wk.STATE_OPEN, wk.STATE_CLOSED)
StateCallback = Callable[[int, int, bool], None]  # board, lock, is the door open


class WklyLink(LockLink):
    """``LockLink`` for the WKLY codec, plus the listener thread (see the module's doc)."""

    def __init__(self, url: str, baud: int, **kwargs: Any):
        super().__init__(wk, url, baud, **kwargs)
        self.on_frame: Callable[[wk.Reply], None] = lambda frame: None
        self._stopping = threading.Event()
        self._listener = threading.Thread(target=self._listen, name="wkly-listen", daemon=True)
        self._listener.start()

    def close(self) -> None:
        self._stopping.set()
        self._listener.join(timeout=2)
        super().close()

    def _exchange(self, port: Any, request: Any, data: bytes, timeout: float) -> Any:
        # No reset_input_buffer here: a report waiting in the buffer is news, not noise.
        self._drain(port)
        port.write(data)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            chunk = port.read(max(1, port.in_waiting))
            if not chunk:
                continue
            self._parser.feed(chunk)
            while (frame := self._parser.next_frame()) is not None:
                if wk.answers(request, frame):
                    self.on_frame(frame)
                    return frame
                self.on_frame(frame)  # a report, or a late answer to an earlier request
        return None

    def _drain(self, port: Any) -> None:
        """Hand over whatever arrived since the listener last looked (called holding the lock)."""
        waiting = port.in_waiting
        if waiting:
            self._parser.feed(port.read(waiting))
        while (frame := self._parser.next_frame()) is not None:
            self.on_frame(frame)

    def _listen(self) -> None:
        # Only a port a request has opened is read: opening (and its backoff and health
        # reports) stays with transact(), so the listener never fights it.
        while not self._stopping.is_set():
            port = self._port
            try:
                fd = port.fileno() if port is not None else None
            except (AttributeError, *PORT_ERRORS):
                fd = None  # a URL without a file descriptor: read at the next request
            if fd is None:
                self._stopping.wait(0.05)
                continue
            try:
                ready, _, _ = select.select([fd], [], [], 0.05)
            except (OSError, ValueError):  # closed under us: the next turn sees it
                continue
            if not ready:
                continue
            with self._lock:
                if self._port is not port:
                    continue
                try:
                    self._drain(port)
                except PORT_ERRORS as e:
                    self._drop_port(f"port lost: {e}")


class BoardWKLY:
    """kiosk.hardware.LockBoard over the WKLY protocol, channels 1..48.

    ``inverted`` holds the (board, lock) doors wired the other way (``status_inverted``):
    state 00 means closed there, 01 open. Every state the board sends (a reply or an
    unprompted ``85``) updates ``reported``; ``on_change(board, lock, is_open)`` is called for
    each ``85`` as it arrives.
    """

    def __init__(
        self,
        link: WklyLink,
        inverted: Collection[tuple[int, int]] = (),
        on_change: StateCallback | None = None,
    ):
        self.link = link
        self._inverted = frozenset(inverted)
        self._on_change = on_change
        self._reported: dict[tuple[int, int], bool] = {}
        link.on_frame = self._seen

    def _open(self, board: int, lock: int, state: int) -> bool:
        if state not in (wk.STATE_OPEN, wk.STATE_CLOSED):
            raise LockFault(self.link.device, f"board {board} lock {lock}: state {state:#04x}")
        return (state == wk.STATE_OPEN) != ((board, lock) in self._inverted)

    def _seen(self, frame: wk.Reply) -> None:
        """Called by the link (its lock held) for every frame a board sends."""
        match frame:
            case wk.ChannelState(board, cmd, lock, state, wk.SUCCESS) if state in _KNOWN:
                self._reported[(board, lock)] = is_open = self._open(board, lock, state)
                if cmd == wk.REPORT and self._on_change is not None:
                    self._on_change(board, lock, is_open)
            case wk.AllStates(board, states, wk.SUCCESS):
                for lock, state in enumerate(states, 1):
                    if state in _KNOWN:
                        self._reported[(board, lock)] = self._open(board, lock, state)

    def reported(self, board: int, lock: int) -> bool | None:
        """The door's last state a board sent (None: nothing heard yet)."""
        return self._reported.get((board, lock))

    def _state(self, reply: wk.Reply, board: int, lock: int) -> bool:
        if not isinstance(reply, wk.ChannelState) or reply.status != wk.SUCCESS:
            raise LockFault(self.link.device, f"board {board} lock {lock}: command failed")
        return self._open(board, lock, reply.state)

    def unlock(self, board: int, lock: int) -> bool:
        request = wk.open_one(board, lock)
        reply = self.link.transact(request, once=True)  # each copy pulses the lock again
        if (
            isinstance(reply, wk.ChannelState)
            and reply.status == wk.SUCCESS
            and reply.state in _KNOWN
            and self._open(board, lock, reply.state)
        ):
            return True
        return _confirm_unlock(self.link, request, lambda: self.is_open(board, lock))

    def unlock_all(self, board: int) -> None:
        self.link.transact(wk.open_all(board), once=True)

    def is_open(self, board: int, lock: int) -> bool:
        return self._state(self.link.transact(wk.query_one(board, lock)), board, lock)

    def open_locks(self, board: int) -> frozenset[int]:
        reply = self.link.transact(wk.query_all(board))
        if not isinstance(reply, wk.AllStates) or reply.status != wk.SUCCESS:
            raise LockFault(self.link.device, f"board {board}: query all failed")
        return frozenset(
            lock
            for lock, state in enumerate(reply.states, 1)
            if state != wk.STATE_ERROR and self._open(board, lock, state)
        )

    def close(self) -> None:
        self.link.close()
