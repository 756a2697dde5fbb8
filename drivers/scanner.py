"""The code scanner: ASCII lines over serial (hardware.md section 4).

``LineSplitter`` is the protocol (bytes in, lines out, no I/O); ``SerialScanner`` is the
link: a thread reads the port, classifies each line with ``kiosk.hardware.classify`` and
reopens the port with backoff when the scanner disappears.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from typing import Any

import serial

from drivers.lock_link import PORT_ERRORS, Backoff, HealthReporter
from drivers.worker import Worker
from kiosk.hardware import Code, DeviceHealth, classify

log = logging.getLogger(__name__)

MAX_LINE = 256  # a line this long without an end is noise, not a code


class LineSplitter:
    """Splits a byte stream into lines ending in CR, LF or CR LF; empty lines are dropped.

    Bytes that are not ASCII are dropped (a glitch on the line, not part of any code).
    """

    def __init__(self, max_line: int = MAX_LINE):
        self.max_line = max_line
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[str]:
        lines: list[str] = []
        for b in data:
            if b in (0x0D, 0x0A):
                if self._buf:
                    lines.append(self._buf.decode("ascii"))
                    self._buf.clear()
            elif 0x20 <= b < 0x7F:
                if len(self._buf) >= self.max_line:
                    self._buf.clear()
                self._buf.append(b)
        return lines

    def reset(self) -> None:
        self._buf.clear()


class SerialScanner:
    """kiosk.hardware.CodeSource over a serial scanner."""

    def __init__(
        self,
        url: str,
        baud: int = 9600,
        on_health: Callable[[DeviceHealth], None] | None = None,
        *,
        opener: Callable[..., Any] = serial.serial_for_url,
    ):
        self.url = url
        self.baud = baud
        self._opener = opener
        self.health = HealthReporter("scanner", on_health)
        self._worker = Worker("scanner")
        self._stop = self._worker.stopping
        self._port: Any = None
        self._backoff = Backoff(first=0.1, most=2.0)

    def start(self, on_code: Callable[[Code], None]) -> None:
        self._worker.start(self._run, on_code)

    def stop(self) -> None:
        self._worker.stop()

    def _run(self, on_code: Callable[[Code], None]) -> None:
        splitter = LineSplitter()
        while not self._stop.is_set():
            if self._port is None:
                if not self._backoff.ready():
                    self._stop.wait(self._backoff.wait_s())
                    continue
                try:
                    self._port = self._opener(self.url, baudrate=self.baud, timeout=0.1)
                except Exception as e:  # pyserial raises more than SerialException on open
                    self._backoff.failed()
                    self.health.report(False, f"cannot open {self.url}: {e}")
                    continue
                self._backoff.succeeded()
                self.health.report(True)
                splitter.reset()  # half a line from before the gap is not a code
            try:
                data = self._port.read(max(1, self._port.in_waiting))
            except PORT_ERRORS as e:
                self._close()
                self._backoff.failed()
                self.health.report(False, f"port lost: {e}")
                continue
            for line in splitter.feed(data):
                try:
                    on_code(classify(line))
                except Exception:  # a consumer's bug must not deafen the scanner
                    log.exception("on_code failed")
        self._close()

    def _close(self) -> None:
        port, self._port = self._port, None
        if port is not None:
            with contextlib.suppress(PORT_ERRORS):
                port.close()
