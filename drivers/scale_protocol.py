"""The weighing transmitters' register map (hardware.md section 3): typed values, no I/O.

Modbus framing and CRC belong to pymodbus; this module only turns holding registers into
typed values and back, so the driver and a simulated transmitter agree on one map.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

STATUS = 0x0008  # u16 status bits
WEIGHT = 0x0050  # i32, 2 registers high word first: gross weight in divisions
DIVISION = 0x0058  # u16: grams per division (1, 2, 5)
ZERO = 0x0026  # write 1: zero calibration at the current load
CALIBRATE = 0x002A  # u32, 2 registers: known load in grams, gain calibration

UNSTABLE = 1 << 5
OVERLOAD = 1 << 6
AT_ZERO = 1 << 7


@dataclass(frozen=True)
class Status:
    unstable: bool
    overload: bool
    at_zero: bool

    @property
    def stable(self) -> bool:
        return not self.unstable


def decode_status(register: int) -> Status:
    """Status bits of register 0x0008 (sign and decimal bits repeat 0x0050: ignored)."""
    return Status(
        unstable=bool(register & UNSTABLE),
        overload=bool(register & OVERLOAD),
        at_zero=bool(register & AT_ZERO),
    )


def encode_status(status: Status) -> int:
    return (
        (UNSTABLE if status.unstable else 0)
        | (OVERLOAD if status.overload else 0)
        | (AT_ZERO if status.at_zero else 0)
    )


def _check16(registers: Sequence[int], n: int) -> None:
    if len(registers) != n or any(not 0 <= r <= 0xFFFF for r in registers):
        raise ValueError(f"expected {n} registers of 16 bits, got {list(registers)!r}")


def decode_u32(registers: Sequence[int]) -> int:
    _check16(registers, 2)
    return registers[0] << 16 | registers[1]


def decode_i32(registers: Sequence[int]) -> int:
    """Two registers, high word first, two's complement."""
    value = decode_u32(registers)
    return value - (1 << 32) if value & 0x8000_0000 else value


def encode_u32(value: int) -> list[int]:
    if not 0 <= value < 1 << 32:
        raise ValueError(f"{value} does not fit in u32")
    return [value >> 16, value & 0xFFFF]


def encode_i32(value: int) -> list[int]:
    if not -(1 << 31) <= value < 1 << 31:
        raise ValueError(f"{value} does not fit in i32")
    return encode_u32(value & 0xFFFF_FFFF)


def decode_division(register: int) -> int:
    """Grams per division; 0 (a blank transmitter) is refused rather than weighing zero."""
    if register <= 0:
        raise ValueError(f"division {register} g is not usable")
    return register


def grams(divisions: int, division_g: int) -> float:
    return float(divisions * division_g)
