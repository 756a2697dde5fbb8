"""A USB keyboard scanner read straight from its Linux input device (``evdev:/dev/input/...``).

``EventDecoder`` is the protocol (the kernel's raw ``struct input_event`` bytes in, codes out,
no I/O): it keeps the shift state, maps key codes to characters as a US keyboard layout does
(scanners ship set to it) and hands them to ``kiosk.keystrokes.KeystrokeAssembler`` with the
kernel's own timestamps. ``EvdevScanner`` is the link: a thread opens the device, grabs it
(EVIOCGRAB, so the scanner's keystrokes reach no console, login prompt or touchscreen app),
reads events, and reopens it with backoff when the scanner is unplugged.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import select
import struct
from collections.abc import Callable

from drivers.lock_link import Backoff, HealthReporter
from drivers.worker import Worker
from kiosk.hardware import Code, DeviceHealth, classify
from kiosk.keystrokes import KeystrokeAssembler

log = logging.getLogger(__name__)

# struct input_event on 64-bit Linux (linux/input.h): struct timeval (two longs), __u16 type,
# __u16 code, __s32 value: 24 bytes. Native sizes: the kernel writes the machine's own layout.
EVENT = struct.Struct("@llHHi")
EV_KEY = 0x01
PRESS, RELEASE, REPEAT = 1, 0, 2
# _IOW('E', 0x90, int) from linux/input.h: grab (1) or release (0) the device for this fd.
EVIOCGRAB = 0x40044590

KEY_LEFTSHIFT, KEY_RIGHTSHIFT = 42, 54
ENTER_KEYS = frozenset({28, 96})  # KEY_ENTER, KEY_KPENTER
# linux/input-event-codes.h key code -> (unshifted, shifted) on a US layout
_ROWS = {
    2: "1!2@3#4$5%6^7&8*9(0)-_=+",
    16: "qQwWeErRtTyYuUiIoOpP[{]}",
    30: "aAsSdDfFgGhHjJkKlL;:'\"`~",
    43: "\\|zZxXcCvVbBnNmM,<.>/?",
}
KEYMAP: dict[int, tuple[str, str]] = {
    first + i // 2: (row[i], row[i + 1])
    for first, row in _ROWS.items()
    for i in range(0, len(row), 2)
}
KEYMAP[57] = (" ", " ")  # KEY_SPACE
# The keypad (NumLock on: how scanners set to "keypad emulation" type digits)
for _code, _ch in zip(
    (71, 72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 83, 98, 55), "789-456+1230./*", strict=True
):
    KEYMAP[_code] = (_ch, _ch)


class EventDecoder:
    """Raw input events in (any chunking), scanned lines out."""

    def __init__(self, assembler: KeystrokeAssembler | None = None):
        self.keys = assembler or KeystrokeAssembler()
        self._buf = bytearray()
        self._shift: set[int] = set()

    def feed(self, data: bytes) -> list[str]:
        self._buf += data
        n = len(self._buf) - len(self._buf) % EVENT.size
        out: list[str] = []
        for sec, usec, etype, code, value in EVENT.iter_unpack(bytes(self._buf[:n])):
            if etype != EV_KEY:
                continue  # EV_SYN and EV_MSC (scan codes) carry nothing a code needs
            t = sec + usec / 1e6
            if code in (KEY_LEFTSHIFT, KEY_RIGHTSHIFT):
                (self._shift.add if value != RELEASE else self._shift.discard)(code)
            elif value == RELEASE:
                continue
            elif code in ENTER_KEYS:
                line = self.keys.enter(t)
                if line is not None:
                    out.append(line)
            elif code in KEYMAP:
                self.keys.char(KEYMAP[code][1 if self._shift else 0], t)
        del self._buf[:n]
        return out

    def reset(self) -> None:
        self._buf.clear()
        self._shift.clear()
        self.keys.reset()


def device_path(url: str) -> str:
    """``evdev:/dev/input/by-id/...`` -> the device's path."""
    return url.removeprefix("evdev:")


def grab(fd: int) -> None:
    """Take the device for this fd alone (released when the fd closes)."""
    fcntl.ioctl(fd, EVIOCGRAB, 1)


class EvdevScanner:
    """kiosk.hardware.CodeSource over a keyboard scanner's input device (Linux only)."""

    def __init__(
        self,
        url: str,
        on_health: Callable[[DeviceHealth], None] | None = None,
        *,
        grab: Callable[[int], None] = grab,
    ):
        self.url = url
        self._grab = grab
        self.path = device_path(url)
        self.health = HealthReporter("scanner", on_health)
        self._worker = Worker("scanner")
        self._stop = self._worker.stopping
        self._fd: int | None = None
        self._backoff = Backoff(first=0.1, most=2.0)

    def start(self, on_code: Callable[[Code], None]) -> None:
        self._worker.start(self._run, on_code)

    def stop(self) -> None:
        self._worker.stop()

    def _open(self) -> int:
        fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)
        try:
            self._grab(fd)
        except OSError:
            os.close(fd)  # EBUSY: something else grabbed it first; keys would go both ways
            raise
        return fd

    def _run(self, on_code: Callable[[Code], None]) -> None:
        decoder = EventDecoder()
        while not self._stop.is_set():
            if self._fd is None:
                if not self._backoff.ready():
                    self._stop.wait(self._backoff.wait_s())
                    continue
                try:
                    self._fd = self._open()
                except OSError as e:
                    self._backoff.failed()
                    self.health.report(False, f"cannot open {self.path}: {e.strerror or e}")
                    continue
                self._backoff.succeeded()
                self.health.report(True)
                decoder.reset()  # half a code from before the gap is not a code
            try:
                # 0.1 s: how long ``stop`` may wait for this thread
                ready, _, _ = select.select([self._fd], [], [], 0.1)
                if not ready:
                    continue
                data = os.read(self._fd, EVENT.size * 64)
                if not data:  # an input device never ends; a file that does is gone
                    raise OSError("end of file")
            except BlockingIOError:
                continue
            except OSError as e:  # ENODEV: unplugged
                self._close()
                self._backoff.failed()
                self.health.report(False, f"device lost: {e.strerror or e}")
                continue
            for line in decoder.feed(data):
                try:
                    on_code(classify(line))
                except Exception:  # a consumer's bug must not deafen the scanner
                    log.exception("on_code failed")
        self._close()

    def _close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)  # closing also releases the grab
