"""Codes from a scanner that is a USB keyboard: key events in, whole codes out (no I/O).

A keyboard-wedge scanner "types" its code and presses Enter. ``KeystrokeAssembler`` tells
that apart from a person at a keyboard by speed: it emits the characters typed since the
last Enter only when every gap between them (and before the Enter) was short. Both the
touchscreen app (Kivy key events) and ``drivers/evdev_scanner.py`` (the kernel's input
events) feed it.
"""

from __future__ import annotations

# A scanner types a whole 8..18-character code in about 20-50 ms (1-5 ms a key; some models
# have a configurable inter-key delay, rarely over 20 ms). A person leaves 100-300 ms between
# keys, a very fast typist rarely under 60 ms for a whole run of keys. 50 ms keeps both apart
# with room for a UI frame that delivers a burst late. Tuning: raise it for a scanner set to a
# slow inter-key delay; lower it only if people manage to "scan" by typing.
MAX_GAP_S = 0.05
MIN_LEN = 4  # a scanner's shortest code (card UIDs are 8 characters); fewer is a stray key
MAX_LEN = 256  # like the serial scanner's line: longer without an Enter is noise


class KeystrokeAssembler:
    """Feed characters and Enters with their times (seconds, any monotonic clock)."""

    def __init__(
        self, max_gap_s: float = MAX_GAP_S, min_len: int = MIN_LEN, max_len: int = MAX_LEN
    ):
        self.max_gap_s = max_gap_s
        self.min_len = min_len
        self.max_len = max_len
        self._buf: list[str] = []
        self._last: float | None = None

    def char(self, ch: str, t: float) -> None:
        """One printable character typed at ``t``."""
        if self._last is not None and t - self._last > self.max_gap_s:
            self._buf.clear()  # a slow key: whatever came before was a person, not a scan
        self._last = t
        if len(self._buf) >= self.max_len:
            self._buf.clear()
        self._buf.append(ch)

    def enter(self, t: float) -> str | None:
        """Enter pressed at ``t``: the code if the burst before it was a scanner's, else None."""
        fast = self._last is not None and t - self._last <= self.max_gap_s
        text = "".join(self._buf)
        self.reset()
        if fast and len(text) >= self.min_len:
            return text
        return None

    def reset(self) -> None:
        self._buf.clear()
        self._last = None
