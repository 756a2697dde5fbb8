"""Real pseudo-terminals for driver tests: the test plays the device on the master side.

``PtyPort`` links its slave at a path (a symlink it re-points, as ``kiosk sim`` does), so a
driver opens a stable path and an unplug/replug is: close the master, open a new pty, link it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
import threading
import time
import tty
from collections.abc import Callable
from pathlib import Path
from typing import Any


class PtyPort:
    def __init__(self, link: Path):
        self.link = link
        self.master = -1
        self._slave = -1
        self.plug()

    def plug(self) -> None:
        self.master, self._slave = os.openpty()
        tty.setraw(self._slave)  # raw before the driver opens it: no echo, no line editing
        tmp = self.link.with_name(self.link.name + ".new")
        os.symlink(os.ttyname(self._slave), tmp)
        os.replace(tmp, self.link)

    def unplug(self) -> None:
        for fd in (self.master, self._slave):
            if fd >= 0:
                os.close(fd)
        self.master = self._slave = -1

    @property
    def url(self) -> str:
        return str(self.link)


class FakeDevice:
    """A device on a PtyPort: parses what the driver sends, answers with ``respond``.

    ``respond(frame) -> bytes | None``. Faults: ``silent`` (answer nothing), ``corrupt_next``
    (flip a bit in the next N answers), ``garbage`` (bytes sent before each answer).
    ``delay_s`` holds each answer back; a request arriving meanwhile counts in ``overlaps``
    (two requests in flight on one line).
    """

    def __init__(self, port: PtyPort, parser_factory: Callable[[], Any], respond: Callable):
        self.port = port
        self.parser_factory = parser_factory
        self.respond = respond
        self.silent = False
        self.corrupt_next = 0
        self.garbage = b""
        self.delay_s = 0.0
        self.overlaps = 0
        self.received: list[Any] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        parser = self.parser_factory()
        master = -1
        while not self._stop.is_set():
            if self.port.master != master:  # replugged: a fresh line
                master, parser = self.port.master, self.parser_factory()
            if master < 0:
                time.sleep(0.01)
                continue
            try:
                ready, _, _ = select.select([master], [], [], 0.02)
                if not ready:
                    continue
                data = os.read(master, 1024)
            except OSError:
                time.sleep(0.01)
                continue
            parser.feed(data)
            frames = []
            while (frame := parser.next_frame()) is not None:
                frames.append(frame)
            if len(frames) > 1:
                self.overlaps += 1
            for frame in frames:
                self.received.append(frame)
                if self.delay_s and select.select([master], [], [], self.delay_s)[0]:
                    self.overlaps += 1
                answer = self.respond(frame)
                if answer is None or self.silent:
                    continue
                if self.corrupt_next:
                    self.corrupt_next -= 1
                    answer = answer[:-1] + bytes([answer[-1] ^ 0x01])
                with contextlib.suppress(OSError):
                    os.write(master, self.garbage + answer)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)


class PtyRelay:
    """Copies bytes both ways between two pty masters (the controller's and a server's).

    ``silent`` drops everything the server says; ``late_s`` holds each of its answers back
    that long (a transmitter answering after the master has given up on it).
    """

    def __init__(self, front: PtyPort, back: PtyPort):
        self.front, self.back = front, back
        self.silent = False
        self.late_s = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            front, back = self.front.master, self.back.master
            if front < 0:
                time.sleep(0.01)
                continue
            try:
                ready, _, _ = select.select([front, back], [], [], 0.02)
            except OSError:
                continue
            for fd in ready:
                try:
                    data = os.read(fd, 4096)
                except OSError:
                    continue
                if fd == back and self.silent:
                    continue
                if fd == back and self.late_s:
                    time.sleep(self.late_s)
                with contextlib.suppress(OSError):
                    os.write(back if fd == front else front, data)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)


class ServerThread:
    """A pymodbus ModbusSerialServer serving ``make_devices()`` on ``port_path``, in its
    own thread and event loop."""

    def __init__(self, make_devices: Callable[[], Any], port_path: str, baud: int):
        self._loop = asyncio.new_event_loop()
        self._server: Any = None
        self._ready = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(make_devices, port_path, baud), daemon=True
        )
        self._thread.start()
        if not self._ready.wait(5):
            raise RuntimeError("modbus server did not start")

    def _run(self, make_devices: Callable[[], Any], port_path: str, baud: int) -> None:
        from pymodbus.server import ModbusSerialServer

        asyncio.set_event_loop(self._loop)

        async def main() -> None:
            self._server = ModbusSerialServer(make_devices(), port=port_path, baudrate=baud)
            await self._server.serve_forever(background=True)
            self._ready.set()
            await self._server.serving

        self._loop.run_until_complete(main())

    def stop(self) -> None:
        if self._server is not None:
            asyncio.run_coroutine_threadsafe(self._server.shutdown(), self._loop).result(5)
        self._thread.join(timeout=5)
