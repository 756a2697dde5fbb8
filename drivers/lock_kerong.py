"""The Kerong "CU" lock board protocol (hardware.md section 2): frames and bytes, no I/O.

Request ``02 ADDR CMD 03 SUM``; every reply is the 9-byte status frame
``02 ADDR 35 H1 H2 I1 I2 03 SUM``, though several real boards send none to an unlock (0x31);
SUM = sum of the bytes before it & 0xFF. ADDR's high nibble is the board (0..15), its low
nibble the lock index (0..15). Locks are counted from 1 here as in the configuration (lock 1
is index 0 on the wire). Both sides use this module.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

STX = 0x02
ETX = 0x03
STATUS = 0x30
UNLOCK = 0x31
STATUS_ALL = 0x32  # board-wide status, used by other software; answered like 0x30
UNLOCK_ALL = 0x33
REPLY = 0x35


@dataclass(frozen=True)
class Status:
    board: int


@dataclass(frozen=True)
class StatusAll:
    board: int


@dataclass(frozen=True)
class Unlock:
    board: int
    lock: int  # 1..16


@dataclass(frozen=True)
class UnlockAll:
    board: int


@dataclass(frozen=True)
class BoardStatus:
    """The status frame. ``hooks``/``infrared`` bit 0 = lock 1 ... bit 15 = lock 16.

    A hook bit set means locked on the field convention (four of five independent
    implementations; the old spec's "1 = open" was wrong); a board wired the other way
    shows it inverted, which the driver applies (``status_inverted``), not this module.
    An infrared bit set means an item is present. ``echo`` is the low nibble of ADDR as
    sent (kept for round trips).
    """

    board: int
    hooks: int
    infrared: int = 0
    echo: int = 0

    def hooked_locks(self) -> frozenset[int]:
        """The locks whose hook bit is set."""
        return frozenset(i + 1 for i in range(16) if self.hooks >> i & 1)

    def hooked(self, lock: int) -> bool:
        return bool(self.hooks >> (lock - 1) & 1)


Request = Status | StatusAll | Unlock | UnlockAll
Reply = BoardStatus
Frame = Request | Reply


def checksum(data: bytes) -> int:
    return sum(data) & 0xFF


def _seal(body: bytes) -> bytes:
    return body + bytes([checksum(body)])


def _addr(board: int, index: int = 0) -> int:
    if not 0 <= board <= 15 or not 0 <= index <= 15:
        raise ValueError(f"board {board} / lock index {index} outside 0..15")
    return board << 4 | index


def encode(frame: Frame) -> bytes:
    """The bytes of one frame (request or reply)."""
    match frame:
        case Status(board):
            return _seal(bytes([STX, _addr(board), STATUS, ETX]))
        case StatusAll(board):
            return _seal(bytes([STX, _addr(board), STATUS_ALL, ETX]))
        case Unlock(board, lock):
            return _seal(bytes([STX, _addr(board, lock - 1), UNLOCK, ETX]))
        case UnlockAll(board):
            return _seal(bytes([STX, _addr(board), UNLOCK_ALL, ETX]))
        case BoardStatus(board, hooks, infrared, echo):
            body = [STX, _addr(board, echo), REPLY, hooks & 0xFF, hooks >> 8 & 0xFF]
            body += [infrared & 0xFF, infrared >> 8 & 0xFF, ETX]
            return _seal(bytes(body))
    raise TypeError(f"not a Kerong CU frame: {frame!r}")


def reply_length(request: Request) -> int:
    return 9


def answers(request: Request, reply: Reply) -> bool:
    """Whether ``reply`` comes from the board ``request`` addressed."""
    return isinstance(reply, BoardStatus) and reply.board == request.board


_REQUESTS = {STATUS: Status, STATUS_ALL: StatusAll, UNLOCK_ALL: UnlockAll}


def _decode(raw: bytes) -> Frame | None:
    board, index = raw[1] >> 4, raw[1] & 0x0F
    if len(raw) == 9:
        if raw[2] != REPLY:
            return None
        return BoardStatus(board, raw[4] << 8 | raw[3], raw[6] << 8 | raw[5], echo=index)
    if raw[2] == UNLOCK:
        return Unlock(board, index + 1)
    if raw[2] in _REQUESTS:
        return _REQUESTS[raw[2]](board)
    return None


class Parser:
    """Bytes in, checked frames out; resyncs on garbage, drops frames with a bad SUM.

    ``role="replies"`` parses 9-byte status frames (the driver); ``role="requests"``
    parses 5-byte requests (a simulated board). ``expect`` exists for symmetry with the
    8A/80 parser: every reply here has the same length.
    """

    def __init__(self, role: Literal["replies", "requests"] = "replies"):
        self.length = 9 if role == "replies" else 5
        self._buf = bytearray()

    def expect(self, request: Request | None) -> None:
        pass

    def reset(self) -> None:
        self._buf.clear()

    def feed(self, data: bytes) -> None:
        self._buf += data

    def next_frame(self) -> Frame | None:
        buf, n = self._buf, self.length
        while buf:
            if buf[0] != STX:
                del buf[0]
                continue
            if len(buf) < n:
                return None
            if buf[n - 2] == ETX and checksum(buf[: n - 1]) == buf[n - 1]:
                frame = _decode(bytes(buf[:n]))
                if frame is not None:
                    del buf[:n]
                    return frame
            del buf[0]  # not a frame: resync on the next STX
        return None
