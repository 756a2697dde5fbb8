"""A WKLY lock board in the simulated cabinet, driven by the real driver over a real pty."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

import drivers
from kiosk import config
from kiosk.hardware import LockBoardOffline
from simulators.cabinet import SimulatedCabinet
from simulators.control import ControlClient
from tests.conftest import write_sim_config

pytestmark = pytest.mark.timeout(60)

WKLY_D2 = {'protocol = "kerong_cu"': 'protocol = "wkly"'}  # D2: board 0, lock 1, 19200 baud


def wkly_cabinet(tmp_path: Path, inverted: bool = False) -> SimulatedCabinet:
    replace = dict(WKLY_D2)
    if inverted:
        replace["status_inverted = false"] = "status_inverted = true"
    return SimulatedCabinet(config.load(write_sim_config(tmp_path, replace)))


@pytest.mark.parametrize("inverted", [False, True])
def test_wkly_door_opens_after_unlock_and_pull_and_latches_when_pushed(tmp_path, inverted):
    with wkly_cabinet(tmp_path, inverted) as cab, ControlClient(cab.control_address) as ctl:
        board = drivers.open_lock_board(
            "wkly", cab.urls()["locks"]["D2"], 19200, inverted={(0, 1)} if inverted else ()
        )
        try:
            assert board.is_open(0, 1) is False and board.open_locks(0) == frozenset()
            assert not ctl.pull("D2")  # not unlocked: the handle does nothing
            assert board.unlock(0, 1) is True
            assert ctl.pull("D2")
            assert board.open_locks(0) == {1}
            ctl.push("D2")
            assert board.is_open(0, 1) is False
        finally:
            board.close()


def test_wkly_board_silent_on_unlocks_gets_one_pulse(tmp_path):
    with wkly_cabinet(tmp_path) as cab, ControlClient(cab.control_address) as ctl:
        board = drivers.open_lock_board("wkly", cab.urls()["locks"]["D2"], 19200)
        try:
            ctl.silent_unlock("D2")
            assert board.unlock(0, 1) is True  # confirmed by an 83 query
            assert cab.unlocks_heard("D2") == 1
            ctl.fault("D2", "silent")  # a dead board: the unlock is still sent only once
            with pytest.raises(LockBoardOffline, match="sent once"):
                board.unlock(0, 1)
            assert cab.unlocks_heard("D2") == 2
        finally:
            board.close()


def test_wkly_board_answers_the_documented_example(tmp_path):
    import serial

    with wkly_cabinet(tmp_path) as cab:
        with serial.serial_for_url(cab.urls()["locks"]["D2"], baudrate=19200, timeout=2) as port:
            port.write(bytes.fromhex("57 4B 4C 59 09 00 82 01 83"))  # open board 0 channel 1
            assert port.read(11) == bytes.fromhex("57 4B 4C 59 0B 00 82 00 01 00 81")
        assert cab.unlocks_heard("D2") == 1


def wait_for(cond, within: float = 3.0) -> None:
    deadline = time.monotonic() + within
    while not cond():
        assert time.monotonic() < deadline, "not within the time allowed"
        time.sleep(0.01)


def test_wkly_board_reports_its_door_changes_without_being_asked(tmp_path):
    with wkly_cabinet(tmp_path) as cab, ControlClient(cab.control_address) as ctl:
        changes: list[tuple[int, int, bool]] = []
        board = drivers.open_lock_board(
            "wkly", cab.urls()["locks"]["D2"], 19200, on_change=lambda *c: changes.append(c)
        )
        try:
            assert board.unlock(0, 1) is True and ctl.pull("D2")
            wait_for(lambda: (0, 1, True) in changes)  # the board's 85 for the unlatching
            ctl.push("D2")  # no request from here on: only the board's 85 can tell the driver
            wait_for(lambda: board.reported(0, 1) is False)
            assert changes[-1] == (0, 1, False)
        finally:
            board.close()
