"""The "WKLY" lock board protocol (docs/internals.md, "Lock boards as they really behave"):
frames and bytes, no I/O.

Every frame is ``57 4B 4C 59 | LEN | BOARD | CMD | DATA... | XOR``: LEN is the whole frame's
length (8 + data bytes), BOARD 0..31, XOR over every byte before it (the start code
included). A reply has the request's layout and CMD, with a status byte first in DATA
(``00`` success, ``FF`` failure). Channels count from 1; a channel's state is ``00`` open,
``01`` closed, ``FF`` error (on the field's wiring: the driver applies ``status_inverted``).
The board may also send ``85`` (a channel changed) unprompted, at any time. Both sides use
this module: the driver encodes requests and parses replies, a test board the reverse.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

START = bytes.fromhex("57 4B 4C 59")
MIN_LEN = 8  # start code, LEN, BOARD, CMD, XOR: a frame without data
MAX_LEN = 8 + 2 + 255  # the longest a LEN byte allows: never wait for more than this

OPEN_SEVERAL = 0x80
FLASH = 0x81
OPEN_ONE = 0x82
QUERY_ONE = 0x83
QUERY_ALL = 0x84
REPORT = 0x85  # sent by the board unprompted: a channel changed
OPEN_ALL = 0x86
OPEN_SEQUENCE = 0x87
KEEP_OPEN = 0x88
CLOSE = 0x89

SUCCESS = 0x00
FAILURE = 0xFF
STATE_OPEN = 0x00
STATE_CLOSED = 0x01
STATE_ERROR = 0xFF
CHANNELS = 48  # channels 1..48 on the boards this project supports


# -- requests ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Command:
    """A request: ``cmd`` and its data bytes as sent (the generic form of every command)."""

    board: int
    cmd: int
    data: tuple[int, ...] = ()


def open_one(board: int, channel: int) -> Command:
    return Command(board, OPEN_ONE, (channel,))


def query_one(board: int, channel: int) -> Command:
    return Command(board, QUERY_ONE, (channel,))


def query_all(board: int) -> Command:
    return Command(board, QUERY_ALL)


def open_all(board: int) -> Command:
    return Command(board, OPEN_ALL)


def open_several(board: int, channels: tuple[int, ...], *, in_sequence: bool = False) -> Command:
    return Command(
        board, OPEN_SEQUENCE if in_sequence else OPEN_SEVERAL, (len(channels), *channels)
    )


# -- what a board sends ------------------------------------------------------------------
@dataclass(frozen=True)
class ChannelState:
    """Reply to ``82``/``83`` (``cmd`` says which), or an unprompted ``85`` report.

    ``state`` is the raw byte (00 open, 01 closed, FF error on field wiring)."""

    board: int
    cmd: int
    channel: int
    state: int
    status: int = SUCCESS


@dataclass(frozen=True)
class AllStates:
    """Reply to ``84``: one raw state byte per channel, channel 1 first."""

    board: int
    states: tuple[int, ...]
    status: int = SUCCESS


@dataclass(frozen=True)
class Ack:
    """Reply to any other command: its status byte and whatever data followed it."""

    board: int
    cmd: int
    status: int = SUCCESS
    data: tuple[int, ...] = ()


Reply = ChannelState | AllStates | Ack
Frame = Command | Reply


def xor(data: bytes) -> int:
    out = 0
    for b in data:
        out ^= b
    return out


def _seal(board: int, cmd: int, data: tuple[int, ...] | list[int]) -> bytes:
    body = START + bytes([MIN_LEN + len(data), board, cmd, *data])
    return body + bytes([xor(body)])


def encode(frame: Frame) -> bytes:
    """The bytes of one frame (request or reply)."""
    match frame:
        case Command(board, cmd, data):
            return _seal(board, cmd, data)
        case ChannelState(board, cmd, channel, state, status):
            return _seal(board, cmd, (status, channel, state))
        case AllStates(board, states, status):
            return _seal(board, QUERY_ALL, (status, len(states), *states))
        case Ack(board, cmd, status, data):
            return _seal(board, cmd, (status, *data))
    raise TypeError(f"not a WKLY frame: {frame!r}")


def reply_length(request: Command) -> int:
    """The longest reply ``request`` may get (for the link's wire-time allowance)."""
    if request.cmd in (OPEN_ONE, QUERY_ONE):
        return MIN_LEN + 3
    if request.cmd == QUERY_ALL:
        return MIN_LEN + 2 + CHANNELS
    return MIN_LEN + 1


def answers(request: Command, reply: Reply) -> bool:
    """Whether ``reply`` is the board's answer to ``request`` (not a report, not stale)."""
    if reply.board != request.board:
        return False
    match reply:
        case ChannelState(_, cmd, channel, _, _):
            return cmd == request.cmd and request.data[:1] == (channel,)
        case AllStates():
            return request.cmd == QUERY_ALL
        case Ack(_, cmd, _, _):
            return cmd == request.cmd
    return False


def _decode_reply(board: int, cmd: int, data: bytes) -> Reply | None:
    if cmd == REPORT and len(data) == 2:
        # a report may come without the status byte (ch, state), as the board family's
        # manual writes it; with one it has a reply's layout: both are read
        return ChannelState(board, cmd, data[0], data[1])
    if not data:
        return None
    status, rest = data[0], data[1:]
    if cmd in (OPEN_ONE, QUERY_ONE, REPORT) and len(rest) == 2:
        return ChannelState(board, cmd, rest[0], rest[1], status)
    if cmd == QUERY_ALL and rest and len(rest) == 1 + rest[0]:
        return AllStates(board, tuple(rest[1:]), status)
    return Ack(board, cmd, status, tuple(rest))


class Parser:
    """Bytes in, checked frames out; resyncs on garbage, drops frames with a bad XOR.

    ``role="replies"`` (the driver) yields what boards send (replies and ``85`` reports);
    ``role="requests"`` (a test board) yields ``Command``s. LEN makes every frame
    self-delimiting, so ``expect`` is only there for symmetry with the other parsers.
    """

    def __init__(self, role: Literal["replies", "requests"] = "replies"):
        self.role = role
        self._buf = bytearray()

    def expect(self, request: Command | None) -> None:
        pass

    def reset(self) -> None:
        self._buf.clear()

    def feed(self, data: bytes) -> None:
        self._buf += data

    def next_frame(self) -> Frame | None:
        """The next whole, checked frame, or None until more bytes arrive."""
        buf = self._buf
        while buf:
            at = buf.find(START)
            if at < 0:
                del buf[: max(0, len(buf) - len(START) + 1)]  # keep a start code's beginning
                return None
            del buf[:at]
            if len(buf) < len(START) + 1:
                return None
            n = buf[4]
            if n < MIN_LEN:
                del buf[0]
                continue
            if len(buf) < n:
                return None
            if xor(buf[: n - 1]) != buf[n - 1]:
                del buf[0]  # not a frame: resync on the next start code
                continue
            raw = bytes(buf[:n])
            frame = self._decode(raw[5], raw[6], raw[7 : n - 1])
            del buf[:n]
            if frame is not None:
                return frame
        return None

    def _decode(self, board: int, cmd: int, data: bytes) -> Frame | None:
        if self.role == "requests":
            return Command(board, cmd, tuple(data))
        return _decode_reply(board, cmd, data)
