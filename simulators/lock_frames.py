"""The lock boards' side of the two lock protocols (hardware.md sections 1 and 2); no I/O.

A board reads requests (always 5 bytes on both protocols) and writes replies. ``RequestParser``
finds requests in a byte stream, skipping garbage and frames with a bad check byte; the
``reply_*`` functions build the answers from the doors' "not latched" bits and each door's
wiring (``status_inverted``: false answers as the field's boards do).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from functools import reduce


class Op(enum.Enum):
    OPEN = "open"
    OPEN_ALL = "open_all"
    QUERY = "query"
    QUERY_ALL = "query_all"


@dataclass(frozen=True)
class Request:
    op: Op
    board: int
    lock: int  # counted from 1; 0 for the "all" requests
    raw: bytes


def xor(data: bytes) -> int:
    return reduce(lambda a, b: a ^ b, data, 0)


def cu_sum(data: bytes) -> int:
    return sum(data) & 0xFF


def _decode_8a80(frame: bytes) -> Request | None:
    head, board, lock, cmd, check = frame
    if check != xor(frame[:4]):
        return None
    if head == 0x8A and cmd == 0x11:
        return Request(Op.OPEN_ALL if lock == 0 else Op.OPEN, board, lock, frame)
    if head == 0x80 and cmd == 0x33:
        return Request(Op.QUERY_ALL if lock == 0 else Op.QUERY, board, lock, frame)
    return None


def _decode_cu(frame: bytes) -> Request | None:
    stx, addr, cmd, etx, check = frame
    if stx != 0x02 or etx != 0x03 or check != cu_sum(frame[:4]):
        return None
    board, index = addr >> 4, addr & 0x0F
    # 0x32 is the board-wide status other software sends: answered like 0x30
    op = {0x30: Op.QUERY_ALL, 0x31: Op.OPEN, 0x32: Op.QUERY_ALL, 0x33: Op.OPEN_ALL}.get(cmd)
    return Request(op, board, index + 1 if op is Op.OPEN else 0, frame) if op else None


_DECODERS: dict[str, tuple[frozenset[int], Callable[[bytes], Request | None]]] = {
    "8a80": (frozenset({0x8A, 0x80}), _decode_8a80),
    "kerong_cu": (frozenset({0x02}), _decode_cu),
}


class RequestParser:
    """Bytes in, requests out; a bad frame costs one byte of resynchronisation."""

    def __init__(self, protocol: str):
        self._heads, self._decode = _DECODERS[protocol]
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[Request]:
        self._buf += data
        out: list[Request] = []
        while self._buf:
            if self._buf[0] not in self._heads:
                del self._buf[0]
                continue
            if len(self._buf) < 5:
                break
            req = self._decode(bytes(self._buf[:5]))
            if req is None:
                del self._buf[0]
                continue
            del self._buf[:5]
            out.append(req)
        return out


def reply_8a80(
    req: Request, unlatched: Callable[[int], bool], inverted: Callable[[int], bool]
) -> bytes:
    """The 8A/80 reply to ``req``; ``unlatched(lock)`` and ``inverted(lock)`` per lock.

    The field's boards answer 00 = open, 11 = closed, and set a lock's bit in the query-all
    masks where its status is 11 (locked); an inverted door shows both the other way round.
    "Open all" (lock 0) is answered ``8A BB 00 00 XX``, as real boards do.
    """

    def status(lock: int) -> int:
        return 0x00 if unlatched(lock) != inverted(lock) else 0x11

    if req.op is Op.OPEN_ALL:
        body = bytes([0x8A, req.board, 0x00, 0x00])
        return body + bytes([xor(body)])
    if req.op is Op.QUERY_ALL:
        # The board reads one switch level per lock: a bit is set where S would be 11
        bits = sum(1 << (lock - 1) for lock in range(1, 25) if status(lock) == 0x11)
        body = bytes([0x80, req.board, (bits >> 16) & 0xFF, (bits >> 8) & 0xFF, bits & 0xFF, 0x33])
        return body + bytes([xor(body)])
    body = bytes([req.raw[0], req.board, req.lock, status(req.lock)])
    return body + bytes([xor(body)])


def reply_cu(
    req: Request,
    unlatched: Callable[[int], bool],
    present: Callable[[int], bool],
    inverted: Callable[[int], bool],
) -> bytes:
    """The Kerong CU status frame: hook bits (1 = locked, 1 = open where ``inverted``) and
    infrared bits (1 = item present), locks 1..16."""
    hooks = sum(1 << (lock - 1) for lock in range(1, 17) if unlatched(lock) == inverted(lock))
    items = sum(1 << (lock - 1) for lock in range(1, 17) if present(lock))
    body = bytes([0x02, req.raw[1], 0x35, hooks & 0xFF, hooks >> 8, items & 0xFF, items >> 8, 0x03])
    return body + bytes([cu_sum(body)])
