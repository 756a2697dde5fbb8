"""Record ids: UUIDv7 text (RFC 9562), so ids made later sort later."""

from __future__ import annotations

import os
import threading
import time
import uuid

_lock = threading.Lock()
_last = 0  # last value handed out: ids are strictly increasing within a process


def uuid7() -> str:
    """A time-ordered UUID version 7 as text.

    Two calls in the same millisecond would otherwise order at random; bumping the
    previous value keeps ``ORDER BY id`` equal to creation order within one process.
    """
    global _last
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big") & ((1 << 74) - 1)
    # layout: 48-bit ms | ver(4)=7 | 12 bits | var(2)=0b10 | 62 bits
    value = (
        (ms << 80) | (0x7 << 76) | ((rand >> 62) << 64) | (0b10 << 62) | (rand & ((1 << 62) - 1))
    )
    with _lock:
        if value <= _last:
            value = _next_after(_last)
        _last = value
    return str(uuid.UUID(int=value))


def _next_after(value: int) -> int:
    """The next valid v7 value after ``value`` (skip the fixed version and variant bits)."""
    low = (value & ((1 << 62) - 1)) + 1
    if low < (1 << 62):
        return (value & ~((1 << 62) - 1)) | low
    rand_a = ((value >> 64) & 0xFFF) + 1  # carry into the 12 bits after the version
    ms = value >> 80
    if rand_a > 0xFFF:
        ms, rand_a = ms + 1, 0
    return (ms << 80) | (0x7 << 76) | (rand_a << 64) | (0b10 << 62)
