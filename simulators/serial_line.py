"""A simulated device's end of a serial line: a pseudo-terminal, linked where the config says.

``PtyPort`` owns one pty (the simulator keeps the master and holds the slave open, so the
line survives the controller closing and reopening it); ``unplug`` closes both and removes
the link, ``plug`` makes a new pty at the same link. ``Pacer`` writes bytes no faster than
the baud rate allows (10 bits a byte). ``DeviceThread`` is the loop every device runs: one
thread that owns its fds, so unplugging never races a read.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import select
import threading
import time
import tty
from collections.abc import Callable
from pathlib import Path

from simulators.faults import LineFaults

READ_SIZE = 4096
log = logging.getLogger(__name__)


class PtyPort:
    def __init__(self, link: Path | None):
        self.link = link
        self.master: int | None = None
        self._slave: int | None = None
        self.pty_name = ""

    @property
    def url(self) -> str:
        return str(self.link) if self.link else self.pty_name

    def plug(self) -> None:
        master, slave = os.openpty()
        tty.setraw(slave)  # no echo, no line editing, before anyone opens it
        os.set_blocking(master, False)
        self.master, self._slave, self.pty_name = master, slave, os.ttyname(slave)
        if self.link:
            self.link.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.link.with_name(f".{self.link.name}.{os.getpid()}.tmp")
            tmp.unlink(missing_ok=True)
            tmp.symlink_to(self.pty_name)
            os.replace(tmp, self.link)  # replaces a stale link atomically

    def unplug(self) -> None:
        if self.link and self.link.is_symlink() and os.readlink(self.link) == self.pty_name:
            self.link.unlink()
        for fd in (self.master, self._slave):
            if fd is not None:
                os.close(fd)
        self.master = self._slave = None

    @property
    def plugged(self) -> bool:
        return self.master is not None


class Pacer:
    """Writes bytes at the baud rate: byte k leaves when its 10 bits have been on the wire."""

    def __init__(self, baud: int):
        self.byte_s = 10.0 / baud
        self.free_at = 0.0  # when the line's last scheduled byte has been sent

    def wire_s(self, n: int) -> float:
        return n * self.byte_s

    def send(self, fd: int, data: bytes, since: float | None = None) -> None:
        now = time.monotonic()
        start = max(now if since is None else since, self.free_at)
        sent = 0
        while sent < len(data):
            now = time.monotonic()
            due = min(len(data), int((now - start) / self.byte_s + 1e-9))
            if due > sent:
                with contextlib.suppress(BlockingIOError):  # nobody reads: bytes are lost
                    os.write(fd, data[sent:due])
                sent = due
            else:
                time.sleep(start + (sent + 1) * self.byte_s - now)
        self.free_at = start + len(data) * self.byte_s


class DeviceThread:
    """One device's loop: wait for bytes on its fds, hand them over, run queued calls."""

    def __init__(self, name: str, link: Path | None, baud: int, faults: LineFaults):
        self.name = name
        self.port = PtyPort(link)
        self.pacer = Pacer(baud)
        self.faults = faults
        self._calls: queue.Queue[tuple[Callable[[], object], threading.Event]] = queue.Queue()
        self._wake_r, self._wake_w = os.pipe()
        self._stop = False
        self._thread = threading.Thread(target=self._run, name=f"sim-{name}", daemon=True)

    # -- for subclasses ----------------------------------------------------------------------
    def extra_fds(self) -> list[int]:
        return []

    def on_data(self, fd: int, data: bytes, at: float) -> None:
        raise NotImplementedError

    def write(self, data: bytes, since: float | None = None) -> None:
        """Send bytes to the controller at the baud rate (nothing if unplugged)."""
        if data and self.port.master is not None:
            self.pacer.send(self.port.master, data, since)

    # -- life ------------------------------------------------------------------------------
    def start(self) -> None:
        self.port.plug()
        self._thread.start()

    def stop(self) -> None:
        self._stop = True
        os.write(self._wake_w, b"x")
        self._thread.join(timeout=5)
        if self.port.plugged:
            self.port.unplug()
        os.close(self._wake_r)
        os.close(self._wake_w)

    def call(self, fn: Callable[[], object]) -> None:
        """Run ``fn`` on the device's own thread and wait for it (it owns the fds)."""
        done = threading.Event()
        self._calls.put((fn, done))
        os.write(self._wake_w, b"x")
        if not done.wait(timeout=5):
            raise TimeoutError(f"{self.name} did not answer")

    def unplug(self) -> None:
        self.call(lambda: self.port.plugged and self.port.unplug())

    def plug(self) -> None:
        self.call(lambda: self.port.plugged or self.port.plug())

    def _run(self) -> None:
        while not self._stop:
            fds = [self._wake_r, *self.extra_fds()]
            if self.port.master is not None:
                fds.append(self.port.master)
            ready, _, _ = select.select(fds, [], [], 0.5)
            now = time.monotonic()
            for fd in ready:
                if fd == self._wake_r:
                    os.read(self._wake_r, 64)
                    continue
                try:
                    data = os.read(fd, READ_SIZE)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    continue  # EIO: no one has the slave open (cannot happen: we hold it)
                if data:
                    try:
                        self.on_data(fd, data, now)
                    except Exception:  # a device must outlive any one odd frame
                        log.exception("%s: cannot handle %r", self.name, data)
            while not self._calls.empty():
                fn, done = self._calls.get()
                try:
                    fn()
                except Exception:
                    log.exception("%s: call failed", self.name)
                finally:
                    done.set()
