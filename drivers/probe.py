"""``kiosk probe``: what answers on a bus, found with status queries only (never an unlock).

Lock boards: each address in the protocol's range gets its board-wide status query once
(8A/80 "query all", Kerong ``0x30``, WKLY ``84``); a board that answers is listed with its
lock count and the doors open on the field's wiring. Weighing transmitters: each Modbus id
gets one read of its division register, then its weight; a full scan of ids 1..247 at 9600
baud stays under 30 s because each silent id costs one short timeout (``modbus_timeout_s``)
and no retry. ``skeleton`` turns what was found into ``[[doors]]`` / ``[[shelves]]`` entries.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from drivers.lock_link import wire_time

# Addressing per protocol (kiosk.config's BOARD_RANGE, repeated: drivers do not import config
# tables) and how many locks a board-wide status shows.
BOARDS = {"8a80": range(1, 33), "kerong_cu": range(0, 16), "wkly": range(0, 32)}
MODBUS_IDS = range(1, 248)
# A transmitter answers within a few character times of the request's end; 50 ms on top of
# both frames' wire time leaves room for a slow one and keeps 247 silent ids under 30 s.
MODBUS_ANSWER_S = 0.05
MODBUS_FRAMES = 8 + 7  # read-1-register request, its reply (bytes)


@dataclass(frozen=True)
class BoardFound:
    address: int
    locks: int  # how many locks the board's status covers
    open_locks: tuple[int, ...]  # on the field's wiring (status_inverted = false)


@dataclass(frozen=True)
class TransmitterFound:
    slave: int
    grams: float
    division_g: int


def probe_locks(
    protocol: str, url: str, baud: int, boards: Iterable[int] | None = None, answer_s: float = 0.1
) -> list[BoardFound]:
    """Every board on the line that answers a status query (each asked once, no retry)."""
    from drivers import lock_8a80 as a8
    from drivers import lock_kerong as cu
    from drivers import lock_wkly as wk
    from drivers.lock_link import LockLink
    from drivers.lock_wkly_link import WklyLink
    from kiosk.hardware import LockBoardOffline

    if protocol not in BOARDS:
        raise ValueError(f"unknown lock protocol {protocol!r}")
    codec = {"8a80": a8, "kerong_cu": cu}.get(protocol)
    link = (
        WklyLink(url, baud, retries=0, answer_s=answer_s)
        if codec is None
        else LockLink(codec, url, baud, retries=0, answer_s=answer_s)
    )
    found: list[BoardFound] = []
    try:
        for board in BOARDS[protocol] if boards is None else boards:
            try:
                if protocol == "8a80":
                    mask = link.transact(a8.QueryAll(board)).mask
                    # a set bit is locked on the field's wiring
                    opened = [n for n in range(1, 25) if not mask >> (n - 1) & 1]
                    found.append(BoardFound(board, 24, tuple(opened)))
                elif protocol == "kerong_cu":
                    reply = link.transact(cu.Status(board))
                    opened = [n for n in range(1, 17) if not reply.hooked(n)]
                    found.append(BoardFound(board, 16, tuple(opened)))
                else:
                    reply = link.transact(wk.query_all(board))
                    if not isinstance(reply, wk.AllStates):
                        continue
                    states = reply.states
                    opened = [n for n, s in enumerate(states, 1) if s == wk.STATE_OPEN]
                    found.append(BoardFound(board, len(states), tuple(opened)))
            except LockBoardOffline:
                if not link.connected:  # the port itself is gone: no board will answer
                    raise
    finally:
        link.close()
    return found


def modbus_timeout_s(baud: int, answer_s: float = MODBUS_ANSWER_S) -> float:
    """How long the scan waits for one id: both frames' wire time and ``answer_s``."""
    return answer_s + wire_time(MODBUS_FRAMES, baud)


def modbus_scan_budget_s(baud: int, ids: int = len(MODBUS_IDS)) -> float:
    """The longest a scan of ``ids`` silent ids takes (each: the request, then the timeout)."""
    return ids * (wire_time(8, baud) + modbus_timeout_s(baud))


def probe_transmitters(
    url: str, baud: int, ids: Iterable[int] | None = None, answer_s: float = MODBUS_ANSWER_S
) -> list[TransmitterFound]:
    """Every weighing transmitter that answers: its weight and division."""
    import logging

    from pymodbus.exceptions import ModbusException

    from drivers import scale_protocol as sp
    from drivers.scales import QuickSerialClient

    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)  # a silent id is no error here
    client = QuickSerialClient(
        url, baudrate=baud, timeout=modbus_timeout_s(baud, answer_s), retries=0, reconnect_delay=0
    )
    if not client.connect():
        raise OSError(f"cannot open {url}")
    found: list[TransmitterFound] = []
    try:
        for slave in MODBUS_IDS if ids is None else ids:
            try:
                rr = client.read_holding_registers(sp.DIVISION, count=1, device_id=slave)
                if rr.isError():
                    continue
                division = sp.decode_division(rr.registers[0])
                rr = client.read_holding_registers(sp.WEIGHT, count=2, device_id=slave)
                if rr.isError():
                    continue
                grams = sp.grams(sp.decode_i32(rr.registers), division)
            except (ModbusException, ValueError, IndexError):
                continue  # nobody there, or not a transmitter this project reads
            found.append(TransmitterFound(slave, grams, division))
    finally:
        client.close()
    return found


def skeleton(
    protocol: str, url: str, baud: int, found: list[BoardFound] | list[TransmitterFound]
) -> str:
    """``[[doors]]`` (one per lock) or ``[[shelves]]`` (one per transmitter) to fill in."""
    out: list[str] = []
    for item in found:
        if isinstance(item, BoardFound):
            for lock in range(1, item.locks + 1):
                out += [
                    "[[doors]]",
                    f'id = "B{item.address}-L{lock}"',
                    f'protocol = "{protocol}"',
                    f'url = "{url}"',
                    f"baud = {baud}",
                    f"board = {item.address}",
                    f"lock = {lock}",
                    "status_inverted = false  # check: a closed door must read closed",
                    "",
                ]
        else:
            out += [
                "[[shelves]]",
                f'id = "S{item.slave}"',
                'door = ""  # the [[doors]] id this shelf is behind',
                f"slave = {item.slave}",
                "capacity_g = 0  # the load cell's rated load",
                "lanes = []",
                "",
            ]
    return "\n".join(out)


def report(protocol: str, found: list[BoardFound] | list[TransmitterFound]) -> list[str]:
    """One line per board or transmitter found, for the installer."""
    lines = []
    for item in found:
        if isinstance(item, BoardFound):
            opened = ", ".join(map(str, item.open_locks)) or "none"
            lines.append(f"{protocol} board {item.address}: {item.locks} locks, open: {opened}")
        else:
            lines.append(
                f"transmitter {item.slave}: {item.grams:g} g, division {item.division_g} g"
            )
    return lines
