"""Modbus requests and answers through the simulator's real pymodbus server and relay."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from pymodbus.client import ModbusSerialClient
from pymodbus.exceptions import ModbusException

from simulators.control import ControlClient

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def client(sim_cabinet) -> Iterator[ModbusSerialClient]:
    c = ModbusSerialClient(sim_cabinet.urls()["scales"], baudrate=9600, timeout=0.3, retries=0)
    assert c.connect()
    yield c
    c.close()


def grams(c: ModbusSerialClient, slave: int) -> int:
    hi, lo = c.read_holding_registers(0x0050, count=2, device_id=slave).registers
    value = (hi << 16) | lo
    value -= (1 << 32) if value & 0x80000000 else 0
    division = c.read_holding_registers(0x0058, count=1, device_id=slave).registers[0]
    return value * division


def test_weight_status_and_division(client: ModbusSerialClient, sim_control: ControlClient) -> None:
    state = sim_control.state()["shelves"]
    assert grams(client, 2) == pytest.approx(state["D1-S2"]["load_g"], abs=4)
    assert grams(client, 1) == pytest.approx(state["D1-S1"]["load_g"], abs=6)
    assert client.read_holding_registers(0x0058, count=1, device_id=1).registers == [2]
    status = client.read_holding_registers(0x0008, count=1, device_id=2).registers[0]
    assert status & 0xE0 == 0  # stable, not overloaded, not at zero
    sim_control.lean("D1-S2", 2000, 1)
    time.sleep(0.1)
    assert client.read_holding_registers(0x0008, count=1, device_id=2).registers[0] & 0x20


def test_zero_and_gain_calibration_by_register_writes(
    client: ModbusSerialClient, sim_control: ControlClient
) -> None:
    assert not client.write_register(0x0026, 1, device_id=3).isError()
    assert abs(grams(client, 3)) <= 3
    statuses = [
        client.read_holding_registers(8, count=1, device_id=3).registers[0] for _ in range(10)
    ]
    assert any(s & 0x80 for s in statuses)  # at zero (noise moves it off now and then)
    sim_control.foreign("D1-S3", 1000)
    time.sleep(3)  # settle
    assert not client.write_registers(0x002A, [0, 1500], device_id=3).isError()
    assert grams(client, 3) == pytest.approx(1500, abs=4)


def test_read_only_registers_and_unknown_slaves(client: ModbusSerialClient) -> None:
    assert client.write_register(0x0050, 7, device_id=2).isError()  # exception 02
    with pytest.raises(ModbusException):
        client.read_holding_registers(0x0050, count=2, device_id=99)  # nobody answers


def test_a_silent_transmitter_and_its_return(
    client: ModbusSerialClient, sim_control: ControlClient
) -> None:
    sim_control.fault("D2-S1", "silent")
    with pytest.raises(ModbusException):
        client.read_holding_registers(0x0050, count=2, device_id=4)
    assert grams(client, 5) > 0  # the others still answer
    sim_control.clear("D2-S1")
    assert grams(client, 4) > 0
