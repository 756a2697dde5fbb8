"""The "8A/80" lock board protocol (hardware.md section 1): frames and bytes, no I/O.

Every frame is ``HEAD BOARD X Y XOR`` (5 bytes) except the "query all" reply (7 bytes);
the last byte is the XOR of all bytes before it. Both sides use this module: the driver
encodes requests and parses replies, a simulated board parses requests and encodes replies.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

OPEN = 0x8A  # head of "open" requests and their replies
QUERY = 0x80  # head of "query" requests and their replies
OPEN_CMD = 0x11  # 4th byte of an open request
QUERY_CMD = 0x33  # 4th byte of a query request (and last data byte of a query-all reply)
# Status bytes on the field convention (every outside source and the vendor manual agree):
# 00 = open, 11 = closed. A board wired the other way shows them swapped; the driver applies
# the door's ``status_inverted``, this module only carries the raw byte.
STATUS_OPEN = 0x00
STATUS_LOCKED = 0x11


# -- requests ----------------------------------------------------------------------------
@dataclass(frozen=True)
class OpenLock:
    board: int
    lock: int


@dataclass(frozen=True)
class OpenAll:
    board: int


@dataclass(frozen=True)
class QueryLock:
    board: int
    lock: int


@dataclass(frozen=True)
class QueryAll:
    board: int


# -- replies -----------------------------------------------------------------------------
@dataclass(frozen=True)
class LockStatus:
    """Reply to OpenLock or OpenAll (``opened=True``, head 8A) or QueryLock (head 80).

    ``status`` is the raw byte: 0x00 or 0x11, whose meaning depends on the wiring (the
    door's ``status_inverted``); the driver interprets it, not this module. A successful
    unlock is answered ``8A BB LL 00 XX``; "open all" (lock 0) by ``8A BB 00 00 XX``.
    """

    board: int
    lock: int
    status: int
    opened: bool = False


@dataclass(frozen=True)
class AllStatus:
    """Reply to QueryAll: ``mask`` (M3 M2 M1) bit 0 = lock 1 ... bit 23 = lock 24.

    A set bit means locked on the field convention (the same switch level as status 11).
    """

    board: int
    mask: int

    def locks(self) -> frozenset[int]:
        """The locks (counted from 1) whose bit is set (locked, unless wired inverted)."""
        return frozenset(i + 1 for i in range(24) if self.mask >> i & 1)


Request = OpenLock | OpenAll | QueryLock | QueryAll
Reply = LockStatus | AllStatus
Frame = Request | Reply


def xor(data: bytes) -> int:
    out = 0
    for b in data:
        out ^= b
    return out


def _seal(body: bytes) -> bytes:
    return body + bytes([xor(body)])


def encode(frame: Frame) -> bytes:
    """The bytes of one frame (request or reply)."""
    match frame:
        case OpenLock(board, lock):
            return _seal(bytes([OPEN, board, lock, OPEN_CMD]))
        case OpenAll(board):
            return _seal(bytes([OPEN, board, 0, OPEN_CMD]))
        case QueryLock(board, lock):
            return _seal(bytes([QUERY, board, lock, QUERY_CMD]))
        case QueryAll(board):
            return _seal(bytes([QUERY, board, 0, QUERY_CMD]))
        case LockStatus(board, lock, status, opened):
            return _seal(bytes([OPEN if opened else QUERY, board, lock, status]))
        case AllStatus(board, mask):
            m3, m2, m1 = (mask >> 16) & 0xFF, (mask >> 8) & 0xFF, mask & 0xFF
            return _seal(bytes([QUERY, board, m3, m2, m1, QUERY_CMD]))
    raise TypeError(f"not an 8A/80 frame: {frame!r}")


def reply_length(request: Request) -> int:
    return 7 if isinstance(request, QueryAll) else 5


def answers(request: Request, reply: Reply) -> bool:
    """Whether ``reply`` is the board's answer to ``request`` (not a stale one)."""
    match request, reply:
        case OpenLock(b, lock), LockStatus(rb, rl, _, True):
            return (b, lock) == (rb, rl)
        case OpenAll(b), LockStatus(rb, 0, _, True):
            return b == rb
        case QueryLock(b, lock), LockStatus(rb, rl, _, False):
            return (b, lock) == (rb, rl)
        case QueryAll(b), AllStatus(rb, _):
            return b == rb
    return False


def _decode_request(raw: bytes) -> Request | None:
    head, board, lock, cmd = raw[0], raw[1], raw[2], raw[3]
    if head == OPEN and cmd == OPEN_CMD:
        return OpenLock(board, lock) if lock else OpenAll(board)
    if head == QUERY and cmd == QUERY_CMD:
        return QueryLock(board, lock) if lock else QueryAll(board)
    return None


def _decode_reply(raw: bytes) -> Reply:
    if len(raw) == 7:
        return AllStatus(raw[1], raw[2] << 16 | raw[3] << 8 | raw[4])
    return LockStatus(raw[1], raw[2], raw[3], opened=raw[0] == OPEN)


class Parser:
    """Bytes in, checked frames out; resyncs on garbage, drops frames with a bad XOR.

    ``role="replies"`` (the driver) parses a board's replies: 5 and 7-byte replies begin
    alike, so call ``expect(request)`` before the reply arrives. With no request pending it
    takes whichever length checks (5 first). ``role="requests"`` (a simulated board)
    parses requests, always 5 bytes.
    """

    def __init__(self, role: Literal["replies", "requests"] = "replies"):
        self.role = role
        self._buf = bytearray()
        self._pending: Request | None = None

    def expect(self, request: Request | None) -> None:
        self._pending = request

    def reset(self) -> None:
        self._buf.clear()

    def feed(self, data: bytes) -> None:
        self._buf += data

    def _lengths(self) -> tuple[int, ...]:
        if self.role == "requests":
            return (5,)
        if self._pending is not None:
            return (reply_length(self._pending),)
        return (5, 7)

    def next_frame(self) -> Frame | None:
        """The next whole, checked frame, or None until more bytes arrive."""
        buf = self._buf
        while buf:
            if buf[0] not in (OPEN, QUERY):
                del buf[0]
                continue
            lengths = self._lengths()
            if len(buf) < min(lengths):
                return None
            for n in lengths:
                if len(buf) >= n and xor(buf[: n - 1]) == buf[n - 1]:
                    frame = self._decode(bytes(buf[:n]))
                    if frame is not None:
                        del buf[:n]
                        return frame
            if len(buf) < max(lengths):
                return None  # a longer frame may still check once its bytes arrive
            del buf[0]  # no frame starts here: resync on the next head byte
        return None

    def _decode(self, raw: bytes) -> Frame | None:
        if self.role == "requests":
            return _decode_request(raw)
        if len(raw) == 7 and (raw[0] != QUERY or raw[5] != QUERY_CMD):
            return None
        return _decode_reply(raw)
