"""Drivers for the cabinet's hardware: kiosk.hardware's interfaces over serial lines.

The CLI calls these factories (lazily); nothing in ``kiosk/`` imports this package.
"""

from __future__ import annotations

from collections.abc import Callable, Collection

from kiosk.hardware import CodeSource, DeviceHealth, LockBoard, ScaleBus

HealthCallback = Callable[[DeviceHealth], None]


def open_lock_board(
    protocol: str,
    url: str,
    baud: int,
    on_health: HealthCallback | None = None,
    *,
    inverted: Collection[tuple[int, int]] = (),
    on_change: Callable[[int, int, bool], None] | None = None,
) -> LockBoard:
    """The lock boards on one serial line (call once per distinct url).

    ``protocol`` is ``"8a80"``, ``"kerong_cu"`` or ``"wkly"``; ``inverted`` holds the (board,
    lock) of the doors whose configuration says ``status_inverted = true`` (wired the other
    way). ``on_change(board, lock, is_open)``: a WKLY board's unprompted report (``85``), as it
    arrives (the other protocols never send one).
    """
    from drivers import lock_8a80, lock_kerong
    from drivers.lock_link import Board8A80, BoardKerongCU, LockLink

    if protocol == "8a80":
        return Board8A80(LockLink(lock_8a80, url, baud, on_health=on_health), inverted)
    if protocol == "kerong_cu":
        return BoardKerongCU(LockLink(lock_kerong, url, baud, on_health=on_health), inverted)
    if protocol == "wkly":
        from drivers.lock_wkly_link import BoardWKLY, WklyLink

        return BoardWKLY(WklyLink(url, baud, on_health=on_health), inverted, on_change)
    raise ValueError(f"unknown lock protocol {protocol!r}")


def open_scale_bus(
    url: str,
    baud: int,
    shelves: dict[str, int],
    timeout_s: float = 0.1,
    on_health: HealthCallback | None = None,
) -> ScaleBus:
    """Every shelf's transmitter on one Modbus RTU bus; ``shelves`` maps shelf id -> slave id.
    Nothing is polled until ``start``."""
    from drivers.scales import ModbusScaleBus

    return ModbusScaleBus(url, baud, shelves, timeout_s, on_health)


def open_scanner(url: str, baud: int = 9600, on_health: HealthCallback | None = None) -> CodeSource:
    """The code scanner; nothing is read until ``start``.

    ``evdev:/dev/input/...``: a USB keyboard scanner's input device (Linux), grabbed; any
    other URL is a serial port (pyserial URL or device path).
    """
    if url.startswith("evdev:"):
        from drivers.evdev_scanner import EvdevScanner

        return EvdevScanner(url, on_health)
    from drivers.scanner import SerialScanner

    return SerialScanner(url, baud, on_health)
