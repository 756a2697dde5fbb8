"""The real drivers against the simulated cabinet over real ptys: doors, shelves, scanner,
and every fault switched on and off while they run."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator

import pytest

import drivers
from kiosk.hardware import (
    Code,
    CodeKind,
    DeviceHealth,
    HardwareError,
    LockBoard,
    LockBoardOffline,
    Reading,
)
from simulators.control import ControlClient

pytestmark = pytest.mark.timeout(60)


def wait_for(cond: Callable[[], object], within: float, step: float = 0.02) -> object:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if result := cond():
            return result
        time.sleep(step)
    raise AssertionError(f"not within {within} s")


def answers(board: LockBoard, board_no: int, lock: int) -> bool | None:
    """The board's answer, or None when the driver raised its typed error."""
    try:
        return board.is_open(board_no, lock)
    except HardwareError:
        return None


class Health:
    def __init__(self) -> None:
        self.events: list[DeviceHealth] = []

    def __call__(self, h: DeviceHealth) -> None:
        self.events.append(h)

    def last(self, prefix: str) -> bool | None:
        mine = [e.ok for e in self.events if e.device.startswith(prefix)]
        return mine[-1] if mine else None


@pytest.fixture
def health() -> Health:
    return Health()


@pytest.fixture
def d1(sim_cabinet, health: Health) -> Iterator[LockBoard]:
    board = drivers.open_lock_board("8a80", sim_cabinet.urls()["locks"]["D1"], 9600, health)
    yield board
    board.close()


@pytest.fixture
def d2(sim_cabinet, health: Health) -> Iterator[LockBoard]:
    board = drivers.open_lock_board("kerong_cu", sim_cabinet.urls()["locks"]["D2"], 19200, health)
    yield board
    board.close()


class Readings:
    def __init__(self) -> None:
        self.all: list[Reading] = []
        self.lock = threading.Lock()

    def __call__(self, r: Reading) -> None:
        with self.lock:
            self.all.append(r)

    def since(self, t: float, shelf: str | None = None) -> list[Reading]:
        with self.lock:
            return [r for r in self.all if r.t >= t and (shelf is None or r.shelf == shelf)]


@pytest.fixture
def scales(sim_cabinet, health: Health) -> Iterator[Readings]:
    cfg = sim_cabinet.config
    bus = drivers.open_scale_bus(
        sim_cabinet.urls()["scales"],
        cfg.scales.baud,
        {s.id: s.slave for s in cfg.shelves},
        0.1,
        health,
    )
    readings = Readings()
    bus.start(readings)
    yield readings
    bus.stop()


# -- doors ---------------------------------------------------------------------------------------
def test_8a80_door_opens_after_unlock_and_pull_and_latches_when_pushed(
    d1: LockBoard, sim_control: ControlClient
) -> None:
    assert d1.is_open(1, 1) is False and d1.open_locks(1) == frozenset()
    assert d1.unlock(1, 1) is True
    assert sim_control.pull("D1")
    assert d1.is_open(1, 1) is True and d1.open_locks(1) == {1}
    assert sim_control.state()["doors"]["D1"] == {"latched": False, "open": True}
    sim_control.push("D1")
    assert d1.is_open(1, 1) is False


def test_kerong_door_opens_after_unlock_and_pull_and_latches_when_pushed(
    d2: LockBoard, sim_control: ControlClient
) -> None:
    assert d2.is_open(0, 1) is False
    assert not sim_control.pull("D2")  # not unlocked: the handle does nothing
    assert d2.unlock(0, 1) is True
    assert sim_control.pull("D2")
    assert d2.open_locks(0) == {1}
    sim_control.push("D2")
    assert d2.open_locks(0) == frozenset()


def test_inverted_wiring_is_honoured_per_door(tmp_path) -> None:
    """Boards wired the other way (``status_inverted = true``) on both protocols: the
    simulator answers with the opposite levels, the driver told so reads the same doors."""
    from kiosk import config
    from simulators.cabinet import SimulatedCabinet
    from tests.conftest import write_sim_config

    inverted = {"status_inverted = false": "status_inverted = true"}
    with SimulatedCabinet(config.load(write_sim_config(tmp_path, inverted))) as cab:
        urls = cab.urls()["locks"]
        boards = [
            (drivers.open_lock_board("8a80", urls["D1"], 9600, inverted={(1, 1)}), 1),
            (drivers.open_lock_board("kerong_cu", urls["D2"], 19200, inverted={(0, 1)}), 0),
        ]
        told_nothing = drivers.open_lock_board("8a80", urls["D1"], 9600)
        try:
            assert told_nothing.is_open(1, 1) is True  # the wrong polarity reads it backwards
            for board, no in boards:
                assert board.is_open(no, 1) is False and board.open_locks(no) == frozenset()
                assert board.unlock(no, 1) is True and board.open_locks(no) == {1}
        finally:
            told_nothing.close()
            for board, _ in boards:
                board.close()


@pytest.mark.parametrize(("door", "board_no"), [("D1", 1), ("D2", 0)])
def test_a_board_silent_on_unlocks_gets_one_pulse_and_the_door_opens(
    d1: LockBoard, d2: LockBoard, sim_cabinet, sim_control: ControlClient, door, board_no
) -> None:
    board = {"D1": d1, "D2": d2}[door]
    sim_control.silent_unlock(door)
    assert board.unlock(board_no, 1) is True  # confirmed by a status query
    assert sim_cabinet.unlocks_heard(door) == 1
    assert sim_control.pull(door)
    sim_control.push(door)
    sim_control.fault(door, "silent")  # a dead board: the unlock is still sent only once
    with pytest.raises(LockBoardOffline, match="sent once"):
        board.unlock(board_no, 1)
    assert sim_cabinet.unlocks_heard(door) == 2
    sim_control.clear(door)
    assert board.unlock(board_no, 1) is True
    assert sim_cabinet.unlocks_heard(door) == 3


def exchange(url: str, baud: int, request: str, n: int) -> bytes:
    """Raw bytes to the simulated board, and the ``n`` bytes of its reply (or fewer)."""
    import serial

    with serial.serial_for_url(url, baudrate=baud, timeout=2) as port:
        port.write(bytes.fromhex(request))
        return port.read(n)  # returns once n bytes came (the timeout only bounds a failure)


def test_the_boards_answer_open_all_and_board_wide_status_as_field_boards_do(
    sim_cabinet, sim_control: ControlClient
) -> None:
    urls = sim_cabinet.urls()["locks"]
    assert exchange(urls["D1"], 9600, "8A 01 00 11 9A", 5) == bytes.fromhex("8A 01 00 00 8B")
    assert sim_cabinet.unlocks_heard("D1") == 1
    # Kerong 0x32: the status frame; every hook bit 1 (locked), lock 1's shelves stocked
    reply = exchange(urls["D2"], 19200, "02 00 32 03 37", 9)
    assert reply == bytes.fromhex("02 00 35 FF FF 01 00 03 39")


# -- shelves and scanner ---------------------------------------------------------------------------
def test_taking_an_item_drops_that_shelf_by_its_weight(
    scales: Readings, sim_control: ControlClient
) -> None:
    def settled(shelf: str, since: float) -> float:
        rs = wait_for(lambda: [r for r in scales.since(since, shelf) if r.stable][-3:], 3)
        return rs[-1].grams  # type: ignore[index]

    before = settled("D1-S2", time.monotonic())
    sim_control.force("D1")
    (w,) = sim_control.take("D1-S2", "bo-coconut-oil")
    t = time.monotonic() + 2.5  # settling
    wait_for(lambda: scales.since(t, "D1-S2"), 4)
    after = settled("D1-S2", t)
    assert before - after == pytest.approx(w, abs=4)
    others = [r for r in scales.since(t) if r.shelf != "D1-S2"]
    assert {r.shelf for r in others} == {"D1-S1", "D1-S3", "D2-S1", "D2-S2", "D2-S3", "D2-S4"}


def test_scanned_codes_arrive_classified(sim_cabinet, sim_control: ControlClient) -> None:
    codes: list[Code] = []
    scanner = drivers.open_scanner(sim_cabinet.urls()["scanner"], 9600)
    scanner.start(codes.append)
    try:
        time.sleep(0.2)
        for code in ("134567890123456789", "281234567890123456", "04A1B2C3D4E5F6", "hello"):
            sim_control.scan(code)
        wait_for(lambda: len(codes) == 4, 2)
        assert [c.kind for c in codes] == [
            CodeKind.WECHAT,
            CodeKind.ALIPAY,
            CodeKind.STAFF_CARD,
            CodeKind.UNKNOWN,
        ]
        sim_control.fault("scanner", "unplug")
        sim_control.clear("scanner")
        time.sleep(2.5)  # the driver's backoff tops out at 2 s
        sim_control.scan("A1B2C3D4")
        wait_for(lambda: len(codes) == 5, 3)
        assert codes[-1].text == "A1B2C3D4"
    finally:
        scanner.stop()


# -- faults on the lock line ------------------------------------------------------------------
@pytest.mark.parametrize(
    "fault",
    [("drop", 1.0), ("corrupt", 1.0), ("delay", 1000), ("silent",)],
    ids=["drop", "corrupt", "delay", "silent"],
)
def test_lock_faults_give_a_typed_error_in_bounded_time_then_recover(
    d1: LockBoard, sim_control: ControlClient, health: Health, fault: tuple
) -> None:
    assert answers(d1, 1, 1) is False
    sim_control.fault("D1", *fault)
    t = time.monotonic()
    with pytest.raises(HardwareError):
        d1.is_open(1, 1)
    assert time.monotonic() - t < 1.5
    assert health.last("locks:") is False
    sim_control.clear("D1")
    time.sleep(0.5)  # a late reply from the delay fault is gone by now
    assert wait_for(lambda: answers(d1, 1, 1) is False, 2)
    assert health.last("locks:") is True


def test_an_open_door_is_never_reported_latched_on_a_bad_line(
    d1: LockBoard, d2: LockBoard, sim_control: ControlClient
) -> None:
    sim_control.force("D1")
    sim_control.force("D2")
    sim_control.fault("D1", "corrupt", 0.08)
    sim_control.fault("D1", "drop", 0.04)
    sim_control.fault("D2", "corrupt", 0.06)
    seen: list[object] = []
    for _ in range(12):
        seen.append(answers(d1, 1, 1))
        try:
            seen.append(1 in d2.open_locks(0))
        except HardwareError:
            seen.append(None)
    assert False not in seen
    assert True in seen


def test_a_stuck_sensor_shows_its_old_value_until_cleared(
    d1: LockBoard, sim_control: ControlClient
) -> None:
    sim_control.force("D1")
    sim_control.fault("D1", "stuck")
    sim_control.push("D1")
    assert d1.is_open(1, 1) is True  # stuck "open": the safe side
    sim_control.clear("D1")
    assert d1.is_open(1, 1) is False


def test_unplugged_lock_board_comes_back_on_a_new_pty(
    sim_cabinet, d1: LockBoard, sim_control: ControlClient, health: Health
) -> None:
    link = sim_cabinet.urls()["locks"]["D1"]
    old = os.readlink(link)
    assert d1.is_open(1, 1) is False
    sim_control.fault("D1", "unplug")
    assert not os.path.lexists(link)
    t = time.monotonic()
    with pytest.raises(HardwareError):
        d1.is_open(1, 1)
    assert time.monotonic() - t < 1.5 and health.last("locks:") is False
    sim_control.clear("D1")
    assert os.path.islink(link)
    assert wait_for(lambda: answers(d1, 1, 1) is False, 4, step=0.1)
    assert health.last("locks:") is True
    assert old == os.readlink(link) or True  # a new pty; its number may be reused


# -- faults on the scale bus -----------------------------------------------------------------------
def test_silent_transmitter_is_a_fault_reading_then_recovers(
    scales: Readings, sim_control: ControlClient, health: Health
) -> None:
    wait_for(lambda: scales.since(0, "D2-S3"), 2)
    sim_control.fault("D2-S3", "silent")
    t = time.monotonic()
    wait_for(lambda: [r for r in scales.since(t, "D2-S3") if r.grams is None and r.fault], 1.5)
    time.sleep(0.5)
    assert [r for r in scales.since(t, "D2-S2") if r.grams is not None]  # the others go on
    wait_for(lambda: health.last("scale:D2-S3") is False, 2)
    sim_control.clear("D2-S3")
    t = time.monotonic()
    wait_for(lambda: [r for r in scales.since(t, "D2-S3") if r.grams is not None], 2)
    wait_for(lambda: health.last("scale:D2-S3") is True, 2)


def test_garbled_bus_never_yields_a_wrong_weight(
    scales: Readings, sim_control: ControlClient
) -> None:
    truth = {k: v["load_g"] for k, v in sim_control.state()["shelves"].items()}
    sim_control.fault("scales", "corrupt", 0.05)
    t = time.monotonic()
    time.sleep(2)
    sim_control.clear("scales")
    got = scales.since(t)
    assert [r for r in got if r.grams is None]  # the garbling was noticed
    for r in got:
        if r.grams is not None:
            assert r.grams == pytest.approx(truth[r.shelf], abs=8)


def test_delayed_and_dropping_bus_recovers(scales: Readings, sim_control: ControlClient) -> None:
    sim_control.fault("scales", "delay", 300)
    t = time.monotonic()
    wait_for(lambda: [r for r in scales.since(t) if r.grams is None], 5)
    sim_control.clear("scales")
    sim_control.fault("scales", "drop", 1.0)
    t = time.monotonic()
    wait_for(lambda: len([r for r in scales.since(t) if r.grams is None]) >= 7, 8)
    sim_control.clear("scales")
    t = time.monotonic() + 0.5
    wait_for(
        lambda: (
            {r.shelf for r in scales.since(t) if r.grams is not None}
            == set(sim_control.state()["shelves"])
        ),
        8,
    )


def test_unplugged_scale_bus_reports_and_reconnects(
    sim_cabinet, scales: Readings, sim_control: ControlClient, health: Health
) -> None:
    wait_for(lambda: scales.since(0), 2)
    sim_control.fault("scales", "unplug")
    assert not os.path.lexists(sim_cabinet.urls()["scales"])
    wait_for(lambda: health.last("scales") is False, 3)
    sim_control.clear("scales")
    t = time.monotonic()
    wait_for(lambda: [r for r in scales.since(t) if r.grams is not None], 5, step=0.1)
    wait_for(lambda: health.last("scales") is True, 2)
