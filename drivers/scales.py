"""The shelves' weighing transmitters on one Modbus RTU bus (pymodbus), polled round-robin.

One background thread owns the bus: it polls every shelf in turn with no sleeps (the wire
is the pace), runs zero/calibrate commands queued by other threads between two polls (one
request in flight, always), and reopens the port with backoff when it disappears.

Per reading it reads the weight (0x0050..0x0051, 17 bytes on the wire); the status register
(0x0008) is read only when it may have changed: while the last status said unstable or
overloaded, when the weight jumped, and at least every ``status_every_s`` otherwise. Reading
0x0008..0x0051 in one request would cost 74 registers a poll.
"""

from __future__ import annotations

import logging
import queue
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field

from pymodbus.client import ModbusSerialClient
from pymodbus.exceptions import ConnectionException, ModbusException

from drivers import scale_protocol as sp
from drivers.lock_link import Backoff, HealthReporter
from drivers.worker import Worker
from kiosk.hardware import DeviceHealth, Reading, ScaleFault

log = logging.getLogger(__name__)

MISSES_BEFORE_SILENT = 3  # consecutive misses before a shelf's health goes down
COMMAND_ATTEMPTS = 3


class QuickSerialClient(ModbusSerialClient):
    """pymodbus' serial client, receiving without its polling sleeps.

    The stock ``recv(None)`` polls ``in_waiting`` every 4 byte times until the count stops
    growing, which adds up to 2 polls (8 ms at 9600 baud) to every answer. Here a read
    blocks for the first byte and takes what has arrived; pymodbus' framer asks again until
    the frame is whole.
    """

    def recv(self, size: int | None) -> bytes:
        if not self.socket:
            raise ConnectionException(str(self))
        try:
            if size is not None:
                return self.socket.read(size)
            first = self.socket.read(1)
            if not first:
                return b""
            waiting = self.socket.in_waiting
            return first + self.socket.read(waiting) if waiting else first
        except (BlockingIOError, InterruptedError):
            raise
        except OSError:  # includes serial.SerialException: the device is gone
            self.close()
            raise ConnectionException(str(self)) from None


class _NoAnswer(Exception):
    """A transmitter did not answer, or answered with a Modbus exception."""

    def __init__(self, fault: str):
        self.fault = fault
        super().__init__(fault)


@dataclass
class _Shelf:
    id: str
    slave: int
    health: HealthReporter
    division: int | None = None
    status: sp.Status | None = None
    status_at: float = float("-inf")
    last_divisions: int | None = None
    misses: int = 0

    def forget(self) -> None:
        """After a reconnection or a calibration: read division and status afresh."""
        self.division, self.status, self.last_divisions = None, None, None
        self.status_at = float("-inf")


@dataclass
class _Command:
    shelf: str
    address: int
    values: list[int]
    done: Future[None] = field(default_factory=Future)


class ModbusScaleBus:
    """kiosk.hardware.ScaleBus over pymodbus' serial client."""

    def __init__(
        self,
        url: str,
        baud: int,
        shelves: dict[str, int],
        timeout_s: float = 0.1,
        on_health: Callable[[DeviceHealth], None] | None = None,
        *,
        status_every_s: float = 2.0,
        jump_divisions: int = 5,
        command_timeout_s: float = 3.0,
    ):
        self.url = url
        self.baud = baud
        self.timeout_s = timeout_s
        self.status_every_s = status_every_s
        self.jump_divisions = jump_divisions
        self.command_timeout_s = command_timeout_s
        self._on_health = on_health
        self.health = HealthReporter("scales", on_health)
        self._shelves = [
            _Shelf(sid, slave, HealthReporter(f"scale:{sid}", on_health))
            for sid, slave in shelves.items()
        ]
        self._by_id = {s.id: s for s in self._shelves}
        # retries=0: this bus decides what a miss means; pymodbus' own retries would stall
        # every other shelf for a silent one.
        self.client = QuickSerialClient(
            url, baudrate=baud, timeout=timeout_s, retries=0, reconnect_delay=0
        )
        self._commands: queue.Queue[_Command] = queue.Queue()
        self._worker = Worker("scale-bus")
        self._stop = self._worker.stopping
        self._backoff = Backoff(first=0.1, most=2.0)
        self._on_reading: Callable[[Reading], None] = lambda r: None
        # pymodbus logs every timeout as an error; the health reports say it once.
        logging.getLogger("pymodbus").setLevel(logging.CRITICAL)

    # -- ScaleBus --------------------------------------------------------------------------
    def start(self, on_reading: Callable[[Reading], None]) -> None:
        if self._worker.running:
            raise RuntimeError("scale bus already started")
        self._on_reading = on_reading
        self._worker.start(self._run)

    def stop(self) -> None:
        self._worker.stop()
        self.client.close()
        self._fail_commands("scale bus stopped")

    def zero(self, shelf: str) -> None:
        self._command(_Command(shelf, sp.ZERO, [1]))

    def calibrate(self, shelf: str, known_g: int) -> None:
        self._command(_Command(shelf, sp.CALIBRATE, sp.encode_u32(known_g)))

    # -- commands: run by the bus thread between two polls -----------------------------------
    def _command(self, cmd: _Command) -> None:
        if cmd.shelf not in self._by_id:
            raise ValueError(f"unknown shelf {cmd.shelf!r}")
        if not self._worker.running:  # not polling: nobody else uses the bus
            self._execute(cmd)
        else:
            self._commands.put(cmd)
        try:
            cmd.done.result(timeout=self.command_timeout_s)
        except TimeoutError:
            raise ScaleFault(f"scale:{cmd.shelf}", "command not done in time") from None

    def _execute(self, cmd: _Command) -> None:
        shelf = self._by_id[cmd.shelf]
        why = "no answer"
        for _ in range(COMMAND_ATTEMPTS):
            try:
                if len(cmd.values) == 1:
                    rr = self.client.write_register(
                        cmd.address, cmd.values[0], device_id=shelf.slave
                    )
                else:
                    rr = self.client.write_registers(cmd.address, cmd.values, device_id=shelf.slave)
            except ConnectionException as e:
                why = f"port lost: {e}"
                break
            except ModbusException:
                continue
            if rr.isError():
                why = f"refused (exception {getattr(rr, 'exception_code', '?')})"
                break
            shelf.forget()
            cmd.done.set_result(None)
            return
        cmd.done.set_exception(ScaleFault(f"scale:{shelf.id}", why))

    def _run_commands(self) -> None:
        while True:
            try:
                cmd = self._commands.get_nowait()
            except queue.Empty:
                return
            self._execute(cmd)

    def _fail_commands(self, why: str) -> None:
        while True:
            try:
                cmd = self._commands.get_nowait()
            except queue.Empty:
                return
            cmd.done.set_exception(ScaleFault(f"scale:{cmd.shelf}", why))

    # -- polling -----------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            if not self.client.connected and not self._connect():
                continue
            for shelf in self._shelves:
                if self._stop.is_set() or not self.client.connected:
                    break
                self._run_commands()
                self._emit(self._poll(shelf))

    def _connect(self) -> bool:
        if self.client.connect():
            self._backoff.succeeded()
            for shelf in self._shelves:
                shelf.forget()
            self.health.report(True)
            return True
        self._backoff.failed()
        self.health.report(False, f"cannot open {self.url}")
        self._fail_commands("scale bus offline")
        now = time.monotonic()
        for shelf in self._shelves:
            self._emit(Reading(shelf.id, now, None, fault="offline"))
        self._stop.wait(self._backoff.wait_s())
        return False

    def _emit(self, reading: Reading) -> None:
        try:
            self._on_reading(reading)
        except Exception:  # a consumer's bug must not stop the weighing of every shelf
            log.exception("on_reading failed")

    def _read(self, shelf: _Shelf, address: int, count: int) -> list[int]:
        rr = self.client.read_holding_registers(address, count=count, device_id=shelf.slave)
        if rr.isError():
            raise _NoAnswer(f"exception {getattr(rr, 'exception_code', '?')}")
        if len(rr.registers) != count:
            raise _NoAnswer("short answer")
        return rr.registers

    def _poll(self, shelf: _Shelf) -> Reading:
        try:
            reading = self._measure(shelf)
        except ConnectionException:
            self.client.close()
            self._backoff.failed()
            self.health.report(False, f"port lost: {self.url}")
            return Reading(shelf.id, time.monotonic(), None, fault="offline")
        except ModbusException:
            reading = Reading(shelf.id, time.monotonic(), None, fault="timeout")
        except (_NoAnswer, ValueError) as e:
            fault = e.fault if isinstance(e, _NoAnswer) else "bad value"
            reading = Reading(shelf.id, time.monotonic(), None, fault=fault)
        if reading.fault is not None and reading.fault != "overload":  # no usable answer
            shelf.misses += 1
            if shelf.misses >= MISSES_BEFORE_SILENT:
                shelf.health.report(False, reading.fault or "")
        else:
            shelf.misses = 0
            shelf.health.report(True)
        return reading

    def _measure(self, shelf: _Shelf) -> Reading:
        if shelf.division is None:
            shelf.division = sp.decode_division(self._read(shelf, sp.DIVISION, 1)[0])
        divisions = sp.decode_i32(self._read(shelf, sp.WEIGHT, 2))
        t = time.monotonic()
        jumped = (
            shelf.last_divisions is not None
            and abs(divisions - shelf.last_divisions) > self.jump_divisions
        )
        shelf.last_divisions = divisions
        status = shelf.status
        if (
            status is None
            or status.unstable
            or status.overload
            or jumped
            or t - shelf.status_at >= self.status_every_s
        ):
            status = shelf.status = sp.decode_status(self._read(shelf, sp.STATUS, 1)[0])
            shelf.status_at = time.monotonic()
        if status.overload:
            return Reading(shelf.id, t, None, fault="overload")
        return Reading(shelf.id, t, sp.grams(divisions, shelf.division), stable=status.stable)
