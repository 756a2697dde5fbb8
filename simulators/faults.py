"""Faults switched on at run time through the control port (hardware.md section 5)."""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass

# silent-unlock: a door's board opens the lock but never answers the unlock (real Kerong CUs)
KINDS = ("drop", "corrupt", "delay", "silent", "silent-unlock", "stuck", "unplug")
_WITH_ARG = {"drop": "P", "corrupt": "P", "delay": "MS"}


@dataclass(frozen=True)
class Fault:
    kind: str
    value: float = 0.0  # probability for drop/corrupt, seconds for delay


def parse_fault(words: list[str]) -> Fault:
    """``["drop", "0.3"]`` -> Fault; ValueError says what is wrong."""
    if not words or words[0] not in KINDS:
        raise ValueError(f"KIND must be one of {', '.join(KINDS)}")
    kind, args = words[0], words[1:]
    if kind not in _WITH_ARG:
        if args:
            raise ValueError(f"{kind} takes no argument")
        return Fault(kind)
    if len(args) != 1:
        raise ValueError(f"{kind} needs {_WITH_ARG[kind]}")
    try:
        value = float(args[0])
    except ValueError:
        raise ValueError(f"{args[0]!r} is not a number") from None
    if kind == "delay":
        if value < 0:
            raise ValueError("MS must not be negative")
        return Fault(kind, value / 1000.0)
    if not 0.0 <= value <= 1.0:
        raise ValueError("P must be within 0..1")
    return Fault(kind, value)


class LineFaults:
    """The faults of one serial line, set per device on it (doors sharing a board line)."""

    def __init__(self, seed: int = 0):
        self._lock = threading.Lock()
        self._by_device: dict[str, dict[str, Fault]] = {}
        self._rng = random.Random(seed)

    def set(self, device: str, fault: Fault) -> None:
        with self._lock:
            self._by_device.setdefault(device, {})[fault.kind] = fault

    def clear(self, device: str) -> None:
        with self._lock:
            self._by_device.pop(device, None)

    def _value(self, kind: str, devices: tuple[str, ...] | None) -> float | None:
        with self._lock:
            found = [
                f.value
                for dev, faults in self._by_device.items()
                if devices is None or dev in devices
                for k, f in faults.items()
                if k == kind
            ]
        return max(found) if found else None

    def has(self, kind: str, devices: tuple[str, ...] | None = None) -> bool:
        return self._value(kind, devices) is not None

    def delay_s(self, devices: tuple[str, ...] | None = None) -> float:
        return self._value("delay", devices) or 0.0

    def mangle(self, data: bytes, devices: tuple[str, ...] | None = None) -> bytes:
        """Drop and corrupt bytes with the line's probabilities."""
        drop = self._value("drop", devices) or 0.0
        corrupt = self._value("corrupt", devices) or 0.0
        if not drop and not corrupt:
            return data
        out = bytearray()
        with self._lock:
            for b in data:
                if self._rng.random() < drop:
                    continue
                if self._rng.random() < corrupt:
                    b ^= self._rng.randrange(1, 256)
                out.append(b)
        return bytes(out)
