"""The lock boards' side of the WKLY protocol (docs/internals.md, hardware section); no I/O.

Written apart from ``drivers/lock_wkly.py`` on purpose, like ``lock_frames.py`` for the other
two protocols: a mistake shared by both sides would pass every test. Frames are
``57 4B 4C 59 | LEN | BOARD | CMD | DATA... | XOR`` (LEN = the whole frame, XOR over every
byte before it); ``WklyRequestParser`` yields ``lock_frames.Request``s for the commands the
simulated board acts on (``82`` open one, ``86`` open all, ``83`` query one, ``84`` query
all); the others are read and dropped (a board without that feature answers nothing).
"""

from __future__ import annotations

from collections.abc import Callable

from simulators.lock_frames import Op, Request, xor

START = b"WKLY"  # 57 4B 4C 59
CHANNELS = 48
_OPS = {0x82: Op.OPEN, 0x86: Op.OPEN_ALL, 0x83: Op.QUERY, 0x84: Op.QUERY_ALL}


class WklyRequestParser:
    """Bytes in, requests out; a bad frame costs one byte of resynchronisation."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[Request]:
        self._buf += data
        out: list[Request] = []
        buf = self._buf
        while True:
            at = buf.find(START)
            if at < 0:
                del buf[: max(0, len(buf) - 3)]
                return out
            del buf[:at]
            if len(buf) < 5:
                return out
            n = buf[4]
            if n < 8:
                del buf[0]
                continue
            if len(buf) < n:
                return out
            frame = bytes(buf[:n])
            if xor(frame[:-1]) != frame[-1]:
                del buf[0]
                continue
            del buf[:n]
            board, cmd, data = frame[5], frame[6], frame[7:-1]
            op = _OPS.get(cmd)
            if op in (Op.OPEN, Op.QUERY) and len(data) == 1:
                out.append(Request(op, board, data[0], frame))
            elif op in (Op.OPEN_ALL, Op.QUERY_ALL) and not data:
                out.append(Request(op, board, 0, frame))


def frame(board: int, cmd: int, data: bytes) -> bytes:
    body = START + bytes([8 + len(data), board, cmd]) + data
    return body + bytes([xor(body)])


def reply_wkly(
    req: Request, unlatched: Callable[[int], bool], inverted: Callable[[int], bool]
) -> bytes:
    """The reply to ``req``: status 00, then the channel's state (00 open, 01 closed on the
    field's wiring; the other way round where ``inverted``), for channels 1..48."""

    def state(lock: int) -> int:
        return 0x00 if unlatched(lock) != inverted(lock) else 0x01

    cmd = req.raw[6]
    if req.op is Op.QUERY_ALL:
        return frame(req.board, cmd, bytes([0x00, CHANNELS, *map(state, range(1, CHANNELS + 1))]))
    if req.op is Op.OPEN_ALL:
        return frame(req.board, cmd, b"\x00")
    return frame(req.board, cmd, bytes([0x00, req.lock, state(req.lock)]))


def report_wkly(board: int, lock: int, unlatched: bool, inverted: bool) -> bytes:
    """The ``85`` frame a board sends unprompted when a channel changes (status 00 first)."""
    return frame(board, 0x85, bytes([0x00, lock, 0x00 if unlatched != inverted else 0x01]))
