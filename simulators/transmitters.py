"""The shelves' weighing transmitters: a pymodbus server on its own pty, and a relay in front.

The controller opens the relay's pty (linked at the ``[scales] url``); the relay passes bytes
to and from the server's pty at the baud rate and injects the faults: byte drop/corrupt and
delay on the whole bus or one shelf, a silent (or unplugged) transmitter, an unplugged bus.
The server holds one ``SimDevice`` per shelf whose ``action`` fills the registers from the
physical model at the moment of each request (hardware.md section 3).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import threading
import tty
from pathlib import Path

from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusSerialServer
from pymodbus.simulator import DataType, SimData, SimDevice

from kiosk.config import Config
from simulators.faults import LineFaults
from simulators.model import CabinetModel, ModelError
from simulators.serial_line import DeviceThread, Pacer

REG_STATUS = 0x0008
REG_ZERO = 0x0026
REG_GAIN = 0x002A
REG_WEIGHT = 0x0050
REG_DIVISION = 0x0058
BUS = "scales"

log = logging.getLogger(__name__)


async def _registers(
    model: CabinetModel,
    shelf: str,
    _function_code: int,
    start_address: int,
    address: int,
    count: int,
    registers: list[int],
    set_values: list[int] | list[bool] | None,
) -> ExcCodes | None:
    """SimDevice action: live values on reads; zero and gain calibration on writes."""
    if set_values is None:
        r = model.reading(shelf)
        weight = r.divisions & 0xFFFFFFFF  # two's complement, high word first
        live = {
            REG_STATUS: r.status,
            REG_WEIGHT: weight >> 16,
            REG_WEIGHT + 1: weight & 0xFFFF,
            REG_DIVISION: r.division,
        }
        for a in range(address, address + count):
            if a in live:
                registers[a - start_address] = live[a]
        return None
    values = [int(v) for v in set_values]
    try:
        if address == REG_ZERO and count == 1:
            if values[0] == 1:
                model.zero(shelf)
            return None
        if address == REG_GAIN and count == 2:
            model.calibrate(shelf, (values[0] << 16) | values[1])
            return None
    except ModelError:
        return ExcCodes.ILLEGAL_VALUE
    return ExcCodes.ILLEGAL_ADDRESS


def sim_device(model: CabinetModel, shelf: str, slave: int) -> SimDevice:
    regs = DataType.REGISTERS
    return SimDevice(
        id=slave,
        simdata=[
            SimData(REG_STATUS, datatype=regs, readonly=True),
            SimData(REG_ZERO, datatype=regs),
            SimData(REG_GAIN, count=2, datatype=regs),
            SimData(REG_WEIGHT, count=2, datatype=regs, readonly=True),
            SimData(REG_DIVISION, datatype=regs, readonly=True),
        ],
        action=functools.partial(_registers, model, shelf),
    )


def reply_length(buf: bytes) -> int | None:
    """Length of the Modbus RTU reply at the start of ``buf`` (the server's output is clean)."""
    if len(buf) < 3:
        return None
    fc = buf[1]
    if fc & 0x80:
        return 5
    if fc in (1, 2, 3, 4):
        return 5 + buf[2]
    if fc in (5, 6, 15, 16):
        return 8
    return len(buf)


class TransmitterBus(DeviceThread):
    """The relay between the controller's port and the Modbus server's port."""

    def __init__(self, config: Config, model: CabinetModel, link: Path | None, seed: int):
        super().__init__(BUS, link, config.scales.baud, LineFaults(seed))
        self._model = model
        self._by_slave = {s.slave: s.id for s in config.shelves}
        self.shelf_ids = tuple(self._by_slave.values())
        self._baud = config.scales.baud
        self._to_server = Pacer(config.scales.baud)
        self._server_master, self._server_slave = os.openpty()
        tty.setraw(self._server_slave)
        self._server_path = os.ttyname(self._server_slave)
        self._from_server = bytearray()
        self._devices = [sim_device(model, s.id, s.slave) for s in config.shelves]
        # Id 0 stands for every other slave id; the relay drops its answers (nobody there).
        self._devices.append(SimDevice(id=0, simdata=[SimData(0, datatype=DataType.REGISTERS)]))
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: ModbusSerialServer | None = None
        self._server_thread = threading.Thread(target=self._serve, name="sim-modbus", daemon=True)
        self._ready = threading.Event()

    # -- the Modbus server -------------------------------------------------------------------
    def _serve(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop

        async def main() -> None:
            self._server = ModbusSerialServer(
                self._devices, port=self._server_path, baudrate=self._baud, reconnect_delay=0.1
            )
            self._ready.set()
            await self._server.serve_forever()

        try:
            loop.run_until_complete(main())
        except Exception:
            log.exception("modbus server stopped")
        finally:
            self._ready.set()
            loop.close()

    def start(self) -> None:
        self._server_thread.start()
        self._ready.wait(timeout=5)
        super().start()

    def stop(self) -> None:
        if self._loop is not None and self._server is not None and not self._loop.is_closed():
            fut = asyncio.run_coroutine_threadsafe(self._server.shutdown(), self._loop)
            try:
                fut.result(timeout=5)
            except Exception:
                log.exception("modbus server did not shut down")
        self._server_thread.join(timeout=5)
        super().stop()
        os.close(self._server_master)
        os.close(self._server_slave)

    # -- the relay ---------------------------------------------------------------------------
    def extra_fds(self) -> list[int]:
        return [self._server_master]

    def on_data(self, fd: int, data: bytes, at: float) -> None:
        if fd != self._server_master:
            data = self.faults.mangle(data, (BUS,))
            self._to_server.send(self._server_master, data, since=at)
            return
        self._from_server += data
        while (n := reply_length(bytes(self._from_server))) is not None and n <= len(
            self._from_server
        ):
            frame = bytes(self._from_server[:n])
            del self._from_server[:n]
            self._reply(frame, at)

    def _reply(self, frame: bytes, at: float) -> None:
        shelf = self._by_slave.get(frame[0])
        if shelf is None:
            return  # no such transmitter on the bus: nobody answers
        devices = (BUS, shelf)
        if self.faults.has("silent", devices) or self.faults.has("unplug", (shelf,)):
            return
        frame = self.faults.mangle(frame, devices)
        # A transmitter knows a request has ended after 3.5 quiet characters (Modbus RTU).
        gap = 3.5 * self.pacer.byte_s
        self.write(frame, since=at + gap + self.faults.delay_s(devices))
