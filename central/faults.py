"""Faults a simulated centre (``kiosk central --simulate``) can be told to have.

Set with ``POST /admin/faults`` (or ``CentralService.set_faults`` in tests); ``{}`` clears
them. Counted faults are used up one at a time (-1: for ever):

- ``drop_acks``: N batches stored but not answered (MQTT: no ack; HTTP: connection closed);
- ``http_500``: N cabinet requests answered 500;
- ``http_429``: N cabinet requests answered 429 with ``Retry-After: 1``;
- ``stall_s``: answers delayed by this long;
- ``disconnect``: the centre's MQTT clients leave the broker for this many seconds;
- ``duplicates``: everything sent down on MQTT is sent twice.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any


@dataclass(frozen=True)
class FaultSettings:
    drop_acks: int = 0
    http_500: int = 0
    http_429: int = 0
    stall_s: float = 0.0
    disconnect: float = 0.0
    duplicates: bool = False

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


_TYPES: dict[str, type | tuple[type, ...]] = {
    "drop_acks": int,
    "http_500": int,
    "http_429": int,
    "stall_s": (int, float),
    "disconnect": (int, float),
    "duplicates": bool,
}
_COUNTED = ("drop_acks", "http_500", "http_429")


def parse_faults(data: Any) -> FaultSettings:
    """``FaultSettings`` from a JSON object; ``ValueError`` naming the first bad entry."""
    if not isinstance(data, dict):
        raise ValueError("faults are a JSON object")
    for k, v in data.items():
        if k not in _TYPES:
            raise ValueError(f"unknown fault {k!r}")
        want = _TYPES[k]
        if isinstance(v, bool) != (want is bool) or not isinstance(v, want):
            raise ValueError(f"{k}: bad value {v!r}")
        if k in _COUNTED and v < -1:
            raise ValueError(f"{k}: a count, or -1 for ever")
        if k in ("stall_s", "disconnect") and not 0 <= v <= 3600:
            raise ValueError(f"{k}: 0..3600 seconds")
    return FaultSettings(**data)


class Faults:
    """The faults in force, shared by the HTTP and MQTT sides (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._now = FaultSettings()
        self._listeners: list[Callable[[FaultSettings], None]] = []

    @property
    def current(self) -> FaultSettings:
        return self._now

    def set(self, faults: FaultSettings) -> None:
        with self._lock:
            self._now = faults
            listeners = list(self._listeners)
        for listener in listeners:
            listener(faults)

    def on_set(self, listener: Callable[[FaultSettings], None]) -> None:
        """``listener(faults)`` after every ``set`` (the MQTT side acts on ``disconnect``)."""
        with self._lock:
            self._listeners.append(listener)

    def take(self, name: str) -> bool:
        """Use up one of a counted fault: True when it applies to this request or batch."""
        with self._lock:
            n = getattr(self._now, name)
            if n == 0:
                return False
            if n > 0:
                self._now = replace(self._now, **{name: n - 1})
            return True
