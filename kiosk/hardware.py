"""What the core needs from the cabinet's hardware: small interfaces, typed events, errors.

``drivers/`` implements these over serial lines; ``simulators/`` stands in for the devices
(speaking the same bytes), never for these interfaces. The core imports no driver: the CLI
wires a driver to the controller.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol


# -- errors: every driver translates its own failures into these, once ----------------------
class HardwareError(Exception):
    """A device did not do what was asked. ``device`` names it for alarms and logs."""

    def __init__(self, device: str, why: str):
        self.device = device
        self.why = why
        super().__init__(f"{device}: {why}")


class LockBoardOffline(HardwareError):
    """The lock board did not answer (after the driver's bounded retries)."""


class LockFault(HardwareError):
    """The lock board answered, but not as the protocol says it should."""


class ScaleFault(HardwareError):
    """A weighing transmitter is silent, overloaded or out of range."""


class ScannerOffline(HardwareError):
    """The code scanner's port is gone."""


# -- locks -----------------------------------------------------------------------------------
class LockBoard(Protocol):
    """One lock board line (one serial port; several boards may share it).

    ``open`` means "door not latched": the lock only pulses, and relatches mechanically when
    the door is pushed shut, so this bit is the door sensor the controller watches.
    """

    def unlock(self, board: int, lock: int) -> bool:
        """Pulse one lock; return whether the board reports it open now."""
        ...

    def unlock_all(self, board: int) -> None: ...

    def is_open(self, board: int, lock: int) -> bool: ...

    def open_locks(self, board: int) -> frozenset[int]:
        """The locks (counted from 1) of ``board`` whose door is not latched."""
        ...

    def close(self) -> None: ...


# -- scales ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Reading:
    """One answer (or missed answer) of a shelf's weighing transmitter.

    ``t`` is the monotonic clock (seconds) when the answer arrived; ``grams`` is None when
    the transmitter did not answer or reported a fault (``fault`` says which).
    """

    shelf: str
    t: float
    grams: float | None
    stable: bool = False
    fault: str | None = None


class ScaleBus(Protocol):
    """Every shelf's transmitter on one Modbus RTU bus, polled round-robin."""

    def start(self, on_reading: Callable[[Reading], None]) -> None:
        """Poll every shelf in the background; call ``on_reading`` for each answer or miss."""
        ...

    def zero(self, shelf: str) -> None:
        """Zero calibration at the shelf's current (empty) load."""
        ...

    def calibrate(self, shelf: str, known_g: int) -> None:
        """Gain calibration: the shelf now carries ``known_g`` grams."""
        ...

    def stop(self) -> None: ...


# -- codes -----------------------------------------------------------------------------------
class CodeKind(enum.Enum):
    STAFF_CARD = "staff_card"
    WECHAT = "wechat"
    ALIPAY = "alipay"
    UNKNOWN = "unknown"

    @property
    def is_payment(self) -> bool:
        return self in (CodeKind.WECHAT, CodeKind.ALIPAY)


@dataclass(frozen=True)
class Code:
    kind: CodeKind
    text: str

    def __repr__(self) -> str:  # card numbers and payment codes never reach a log in clear
        return f"Code({self.kind.value}, {len(self.text)} chars)"


_CARD = re.compile(r"[0-9A-F]{8}|[0-9A-F]{14}")
_PAYMENT = re.compile(r"\d{18}")


def classify(text: str) -> Code:
    """Tell a scanned line's kind (hardware.md section 4). Card UIDs are upper-cased."""
    text = text.strip()
    upper = text.upper()
    if _CARD.fullmatch(upper):
        return Code(CodeKind.STAFF_CARD, upper)
    if _PAYMENT.fullmatch(text):
        prefix = int(text[:2])
        if 10 <= prefix <= 15:
            return Code(CodeKind.WECHAT, text)
        if 25 <= prefix <= 30:
            return Code(CodeKind.ALIPAY, text)
    return Code(CodeKind.UNKNOWN, text)


class CodeSource(Protocol):
    """The scanner (or a keyboard-wedge scanner feeding the touchscreen)."""

    def start(self, on_code: Callable[[Code], None]) -> None: ...

    def stop(self) -> None: ...


# -- health ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class DeviceHealth:
    """A device went down or came back; drivers report each change once."""

    device: str  # "locks:<url>", "scales", "scale:<shelf>", "scanner"
    ok: bool
    why: str = ""
