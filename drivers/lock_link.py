"""Lock boards over a serial line: the link that owns the port, and one LockBoard per protocol.

``LockLink`` keeps one request in flight (several doors share an RS-485 line), waits for the
matching reply for about 100 ms plus the bytes' wire time, retries queries a bounded number of
times, and reopens the port with backoff when the device disappears. An unlock is never
retried: each one pulses the lock again (several real Kerong boards never answer one), so it
is sent once and confirmed with a status query. Failures become the core's
``LockBoardOffline`` / ``LockFault`` here, once. A door is never reported latched unless the
board said so: no answer raises, it never returns False.
"""

from __future__ import annotations

import contextlib
import termios
import threading
import time
from collections.abc import Callable, Collection
from types import ModuleType
from typing import Any

import serial

from drivers import lock_8a80, lock_kerong
from kiosk.hardware import DeviceHealth, LockBoardOffline, LockFault

PORT_ERRORS = (OSError, serial.SerialException, termios.error)
Opener = Callable[..., Any]  # serial.serial_for_url's signature


def wire_time(n_bytes: int, baud: int) -> float:
    """Seconds ``n_bytes`` take on the wire at 8N1 (10 bits a byte)."""
    return n_bytes * 10 / baud


class Backoff:
    """Delay between attempts to reopen a lost port: doubles from ``first`` up to ``most``."""

    def __init__(self, first: float = 0.05, most: float = 2.0):
        self.first, self.most = first, most
        self.delay = 0.0
        self.next_at = 0.0

    def ready(self) -> bool:
        return time.monotonic() >= self.next_at

    def wait_s(self) -> float:
        return max(0.0, self.next_at - time.monotonic())

    def failed(self) -> None:
        self.delay = min(self.most, self.delay * 2 or self.first)
        self.next_at = time.monotonic() + self.delay

    def succeeded(self) -> None:
        self.delay, self.next_at = 0.0, 0.0


class HealthReporter:
    """Calls ``on_health`` once per change of a device's state (the first state included)."""

    def __init__(self, device: str, on_health: Callable[[DeviceHealth], None] | None):
        self.device = device
        self._on_health = on_health
        self.ok: bool | None = None

    def report(self, ok: bool, why: str = "") -> None:
        if ok == self.ok:
            return
        self.ok = ok
        if self._on_health is not None:
            self._on_health(DeviceHealth(self.device, ok, why))


class LockLink:
    """One serial line to one or more lock boards speaking ``codec`` (a protocol module)."""

    def __init__(
        self,
        codec: ModuleType,
        url: str,
        baud: int,
        *,
        on_health: Callable[[DeviceHealth], None] | None = None,
        retries: int = 3,
        answer_s: float = 0.1,
        opener: Opener = serial.serial_for_url,
    ):
        self.codec = codec
        self.url = url
        self.baud = baud
        self.device = f"locks:{url}"
        self.retries = retries
        self.answer_s = answer_s
        self._opener = opener
        self._lock = threading.Lock()
        self._port: Any = None
        self._parser = codec.Parser("replies")
        self._backoff = Backoff()
        self.health = HealthReporter(self.device, on_health)

    # -- the port ---------------------------------------------------------------------------
    def _open(self) -> Any:
        if self._port is not None:
            return self._port
        if (wait := self._backoff.wait_s()) > self.answer_s:
            raise LockBoardOffline(self.device, "port unavailable (retrying)")
        time.sleep(wait)  # a short backoff is cheaper to wait out than to fail on
        try:
            # a short read timeout: transact() loops until its own deadline
            self._port = self._opener(self.url, baudrate=self.baud, timeout=0.01)
        except Exception as e:  # pyserial raises more than SerialException on open
            self._backoff.failed()
            self.health.report(False, f"cannot open port: {e}")
            raise LockBoardOffline(self.device, f"cannot open port: {e}") from e
        self._backoff.succeeded()
        return self._port

    def _drop_port(self, why: str) -> None:
        port, self._port = self._port, None
        if port is not None:
            with contextlib.suppress(PORT_ERRORS):
                port.close()
        self._backoff.failed()
        self.health.report(False, why)

    @property
    def connected(self) -> bool:
        """Whether the port is open (a missing answer leaves it open; a lost port does not)."""
        return self._port is not None

    def close(self) -> None:
        with self._lock:
            port, self._port = self._port, None
            if port is not None:
                with contextlib.suppress(PORT_ERRORS):
                    port.close()

    # -- one request, its reply ------------------------------------------------------------
    def timeout_s(self, request: Any) -> float:
        n = len(self.codec.encode(request)) + self.codec.reply_length(request)
        return self.answer_s + wire_time(n, self.baud)

    def transact(self, request: Any, *, reply_required: bool = True, once: bool = False) -> Any:
        """Send ``request``; return the reply that answers it (None if none came and none
        was required). Raises LockBoardOffline after the bounded retries.

        ``once``: send it at most one time, also when the port fails mid-write (an unlock:
        a second copy would pulse the lock again); no reply then returns None."""
        data = self.codec.encode(request)
        timeout = self.timeout_s(request)
        why = "no answer"
        with self._lock:
            for _ in range(1 if once or not reply_required else 1 + self.retries):
                port = self._open()
                try:
                    reply = self._exchange(port, request, data, timeout)
                except PORT_ERRORS as e:
                    why = f"port lost: {e}"
                    self._drop_port(why)
                    continue
                if reply is not None:
                    self.health.report(True)
                    return reply
                if once or not reply_required:
                    return None
            if why == "no answer":
                self.health.report(False, why)
            raise LockBoardOffline(self.device, f"{why} to {request!r}")

    def _exchange(self, port: Any, request: Any, data: bytes, timeout: float) -> Any:
        parser = self._parser
        port.reset_input_buffer()  # a late reply to an earlier request is stale now
        parser.reset()
        parser.expect(request)
        port.write(data)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            chunk = port.read(max(1, port.in_waiting))
            if not chunk:
                continue
            parser.feed(chunk)
            while (frame := parser.next_frame()) is not None:
                if self.codec.answers(request, frame):
                    return frame
        return None


def _confirm_unlock(link: LockLink, request: Any, confirmed: Callable[[], bool]) -> bool:
    """After an unlock sent once: the board's state from a fresh status query.

    A board that stays silent on the query too is a fault (LockBoardOffline), never a
    reason to pulse the lock a second time."""
    try:
        return confirmed()
    except LockBoardOffline as e:
        raise LockBoardOffline(
            link.device, f"{request!r} sent once; no status came back to confirm it ({e.why})"
        ) from e


class Board8A80:
    """kiosk.hardware.LockBoard over the 8A/80 protocol.

    ``inverted`` holds the (board, lock) doors wired the other way (``status_inverted``):
    status 11 means open there instead of 00. Their bit in a "query all" mask is inverted
    too: the board reports the same switch level in both replies.
    """

    def __init__(self, link: LockLink, inverted: Collection[tuple[int, int]] = ()):
        self.link = link
        self._inverted = frozenset(inverted)

    def _is_open(self, board: int, lock: int, status: int) -> bool:
        if status not in (lock_8a80.STATUS_OPEN, lock_8a80.STATUS_LOCKED):
            raise LockFault(self.link.device, f"board {board} lock {lock}: status {status:#04x}")
        return (status == lock_8a80.STATUS_OPEN) != ((board, lock) in self._inverted)

    def unlock(self, board: int, lock: int) -> bool:
        request = lock_8a80.OpenLock(board, lock)
        reply = self.link.transact(request, once=True)
        if reply is not None and self._is_open(board, lock, reply.status):
            return True  # the unlock's own reply carries the lock's status
        return _confirm_unlock(self.link, request, lambda: self.is_open(board, lock))

    def unlock_all(self, board: int) -> None:
        # Real boards answer with one 5-byte reply (8A BB 00 00 XX); none is not an error.
        self.link.transact(lock_8a80.OpenAll(board), once=True)

    def is_open(self, board: int, lock: int) -> bool:
        reply = self.link.transact(lock_8a80.QueryLock(board, lock))
        return self._is_open(board, lock, reply.status)

    def open_locks(self, board: int) -> frozenset[int]:
        reply = self.link.transact(lock_8a80.QueryAll(board))
        mask = reply.mask
        for b, lock in self._inverted:
            if b == board:
                mask ^= 1 << (lock - 1)
        # a set bit is "locked" on the field convention: the open locks are the clear ones
        return frozenset(range(1, 25)) - lock_8a80.AllStatus(board, mask).locks()

    def close(self) -> None:
        self.link.close()


class BoardKerongCU:
    """kiosk.hardware.LockBoard over the Kerong CU protocol (every reply is the status).

    A hook bit of 1 means locked; ``inverted`` holds the (board, lock) doors wired the other
    way (``status_inverted``), where 1 means open.
    """

    def __init__(self, link: LockLink, inverted: Collection[tuple[int, int]] = ()):
        self.link = link
        self._inverted = frozenset(inverted)

    def _is_open(self, reply: lock_kerong.BoardStatus, lock: int) -> bool:
        return reply.hooked(lock) == ((reply.board, lock) in self._inverted)

    def unlock(self, board: int, lock: int) -> bool:
        request = lock_kerong.Unlock(board, lock)
        # Several real boards never answer 0x31: the lock opens and nothing comes back.
        reply = self.link.transact(request, once=True)
        if reply is not None and self._is_open(reply, lock):
            return True
        return _confirm_unlock(self.link, request, lambda: self.is_open(board, lock))

    def unlock_all(self, board: int) -> None:
        self.link.transact(lock_kerong.UnlockAll(board), once=True)

    def is_open(self, board: int, lock: int) -> bool:
        return self._is_open(self.link.transact(lock_kerong.Status(board)), lock)

    def open_locks(self, board: int) -> frozenset[int]:
        reply = self.link.transact(lock_kerong.Status(board))
        return frozenset(lock for lock in range(1, 17) if self._is_open(reply, lock))

    def close(self) -> None:
        self.link.close()
