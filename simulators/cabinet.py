"""The simulated cabinet: the physical model, every device simulator, the control port.

``SimulatedCabinet(config).start()`` brings it all up (in-process, for tests and the demo);
``urls()`` gives the first line ``kiosk sim`` prints; ``stop()`` removes every link.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from kiosk.config import Config, Door
from simulators.control import ControlServer
from simulators.devices import LockLineSim, ScannerSim
from simulators.faults import Fault
from simulators.model import CabinetModel, ModelError, load_unit_weights
from simulators.serial_line import DeviceThread
from simulators.transmitters import BUS, TransmitterBus

SCANNER = "scanner"


def _link(url: str) -> Path | None:
    """A config url that is a path gets the pty linked there; a scheme url gets none."""
    return None if "://" in url else Path(url)


class SimulatedCabinet:
    def __init__(self, config: Config):
        self.config = config
        seed = config.simulator.seed
        self.model = CabinetModel(config, load_unit_weights(config.simulator.catalog))
        by_url: dict[str, list[Door]] = {}
        for d in config.doors:
            by_url.setdefault(d.url, []).append(d)
        self.lock_lines = [
            LockLineSim(doors, self.model, _link(url), seed + i)
            for i, (url, doors) in enumerate(by_url.items())
        ]
        self._line_of = {d: line for line in self.lock_lines for d in line.door_ids}
        self.scales = TransmitterBus(config, self.model, _link(config.scales.url), seed + 100)
        self.scanner = ScannerSim(_link(config.scanner.url), config.scanner.baud, seed + 200)
        self.control = ControlServer(self, config.simulator.control_port)
        self._started: list[DeviceThread] = []

    @property
    def devices(self) -> list[DeviceThread]:
        return [*self.lock_lines, self.scales, self.scanner]

    def start(self) -> SimulatedCabinet:
        try:
            for dev in self.devices:
                dev.start()
                self._started.append(dev)
            self.control.start()
        except Exception:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        try:
            self.control.stop()
        except Exception:
            logging.getLogger(__name__).exception("control port did not stop")
        while self._started:
            self._started.pop().stop()

    def __enter__(self) -> SimulatedCabinet:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def control_address(self) -> str:
        return self.control.address

    def urls(self) -> dict[str, Any]:
        """``{"locks": {door: url}, "scales": url, "scanner": url, "control": "127.0.0.1:P"}``."""
        return {
            "locks": {d: line.port.url for d, line in self._line_of.items()},
            "scales": self.scales.port.url,
            "scanner": self.scanner.port.url,
            "control": self.control.address,
        }

    # -- what the control port calls ------------------------------------------------------
    def scan(self, code: str) -> None:
        if not code.isascii() or not code.isprintable():
            raise ValueError("CODE must be printable ASCII")
        self.scanner.scan(code)

    def unlocks_heard(self, door: str) -> int:
        """How many unlock requests reached the door's board (each pulses a real lock)."""
        return self._line_of[door].unlocks_heard[door]

    def _device(self, device: str) -> DeviceThread:
        if device in self._line_of:
            return self._line_of[device]
        if device == BUS or device in self.scales.shelf_ids:
            return self.scales
        if device == SCANNER:
            return self.scanner
        raise ModelError(f"no device {device} (a door, a shelf, {BUS} or {SCANNER})")

    def fault(self, device: str, fault: Fault) -> None:
        dev = self._device(device)
        if fault.kind == "stuck":
            if device in self._line_of:
                self.model.stick_sensor(device, True)
            elif device in self.scales.shelf_ids:
                self.model.freeze(device, True)
            else:
                raise ModelError(f"stuck needs a door or a shelf, not {device}")
        elif fault.kind == "silent-unlock" and device not in self._line_of:
            raise ModelError(f"silent-unlock needs a door, not {device}")
        elif fault.kind == "unplug" and device not in self.scales.shelf_ids:
            dev.unplug()  # a shelf's transmitter unplugged just stops answering
        dev.faults.set(device, fault)

    def clear(self, device: str) -> None:
        dev = self._device(device)
        dev.faults.clear(device)
        if device in self._line_of:
            self.model.stick_sensor(device, False)
        elif device in self.scales.shelf_ids:
            self.model.freeze(device, False)
        if not dev.faults.has("unplug", (*self._line_of, BUS, SCANNER)):
            dev.plug()
