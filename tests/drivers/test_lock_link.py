"""Lock boards through real ptys: the test plays a board that answers with real bytes."""

from __future__ import annotations

import threading
import time

import pytest
from drv_ptys import FakeDevice, PtyPort

import drivers
from drivers import lock_8a80 as a8
from drivers import lock_kerong as cu
from kiosk.hardware import DeviceHealth, LockBoardOffline, LockFault


class Board8A80State:
    """A tiny 8A/80 board. ``open`` holds the unlatched locks; an open request unlatches.

    A lock in ``inverted`` is wired the other way round: its switch level (the status byte,
    and its bit in a query-all mask) is the opposite of the standard wiring's.
    """

    def __init__(self, board: int = 1, inverted: frozenset[int] = frozenset()):
        self.board = board
        self.open: set[int] = set()
        self.inverted = inverted
        self.forced_status: int | None = None

    def level(self, lock: int) -> bool:
        return (lock in self.open) != (lock in self.inverted)

    def status(self, lock: int) -> int:
        if self.forced_status is not None:
            return self.forced_status
        return a8.STATUS_OPEN if self.level(lock) else a8.STATUS_LOCKED

    def respond(self, frame) -> bytes | None:
        if frame.board != self.board:
            return None  # another board on the line
        match frame:
            case a8.OpenLock(b, lock):
                self.open.add(lock)
                return a8.encode(a8.LockStatus(b, lock, self.status(lock), opened=True))
            case a8.QueryLock(b, lock):
                return a8.encode(a8.LockStatus(b, lock, self.status(lock)))
            case a8.QueryAll(b):
                mask = sum(1 << (lock - 1) for lock in range(1, 25) if self.level(lock))
                return a8.encode(a8.AllStatus(b, mask))
            case a8.OpenAll(b):
                self.open.update(range(1, 25))
                return None
        return None


@pytest.fixture
def board8a80(pty_port: PtyPort):
    state = Board8A80State()
    device = FakeDevice(pty_port, lambda: a8.Parser("requests"), state.respond)
    health: list[DeviceHealth] = []
    lock_board = drivers.open_lock_board("8a80", pty_port.url, 9600, health.append)
    yield state, device, lock_board, health
    lock_board.close()
    device.stop()


def test_unlock_and_see_the_door_unlatched(board8a80):
    state, device, lock_board, health = board8a80
    assert lock_board.is_open(1, 2) is False
    assert lock_board.unlock(1, 2) is True
    assert lock_board.is_open(1, 2) is True
    assert lock_board.open_locks(1) == {2}
    state.open.add(17)
    assert lock_board.open_locks(1) == {2, 17}
    assert device.received[:2] == [a8.QueryLock(1, 2), a8.OpenLock(1, 2)]
    assert health == [DeviceHealth("locks:" + device.port.url, True)]


def test_unlock_all_needs_no_reply(board8a80):
    _state, _device, lock_board, _ = board8a80
    lock_board.unlock_all(1)
    assert lock_board.open_locks(1) == set(range(1, 25))


def test_silent_board_is_offline_in_bounded_time_never_latched(board8a80):
    _, device, lock_board, health = board8a80
    device.silent = True
    t0 = time.monotonic()
    with pytest.raises(LockBoardOffline):
        lock_board.is_open(1, 1)
    elapsed = time.monotonic() - t0
    # 1 try + 3 retries of 100 ms + wire time each
    assert 0.3 < elapsed < 1.0
    assert len(device.received) == 4
    assert health[-1].ok is False
    device.silent = False
    assert lock_board.is_open(1, 1) is False
    assert health[-1].ok is True


def test_corrupted_reply_is_retried(board8a80):
    state, device, lock_board, _ = board8a80
    state.open.add(3)
    device.corrupt_next = 2
    assert lock_board.is_open(1, 3) is True
    assert device.received == [a8.QueryLock(1, 3)] * 3


def test_garbage_before_a_reply_is_skipped(board8a80):
    state, device, lock_board, _ = board8a80
    device.garbage = bytes.fromhex("00 8A FF 80 01")
    state.open.add(5)
    assert lock_board.open_locks(1) == {5}
    assert lock_board.is_open(1, 5) is True


def test_unknown_status_byte_is_a_fault(board8a80):
    state, _, lock_board, _ = board8a80
    state.forced_status = 0x55
    with pytest.raises(LockFault):
        lock_board.is_open(1, 1)


def test_one_request_in_flight_for_doors_sharing_a_line(board8a80):
    """Several doors polled from several threads: the board never sees two requests at once."""
    _, device, lock_board, _ = board8a80
    device.delay_s = 0.005
    errors: list[Exception] = []

    def poll(lock: int) -> None:
        try:
            for _ in range(8):
                assert lock_board.is_open(1, lock) is False
        except Exception as e:
            errors.append(e)

    threads = [threading.Thread(target=poll, args=(lock,)) for lock in (1, 2, 3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert device.overlaps == 0
    assert len(device.received) == 24


def test_unplug_and_replug_at_the_same_path(board8a80):
    state, device, lock_board, health = board8a80
    assert lock_board.is_open(1, 1) is False
    device.port.unplug()
    t0 = time.monotonic()
    with pytest.raises(LockBoardOffline):
        lock_board.is_open(1, 1)
    assert time.monotonic() - t0 < 1.0
    assert health[-1].ok is False
    device.port.plug()
    state.open.add(1)
    deadline = time.monotonic() + 5
    while True:
        try:
            assert lock_board.is_open(1, 1) is True
            break
        except LockBoardOffline:
            assert time.monotonic() < deadline, "no recovery after replug"
            time.sleep(0.05)
    assert health[-1].ok is True


def test_inverted_wiring_open_state(pty_port):
    state = Board8A80State(inverted=frozenset({4}))
    device = FakeDevice(pty_port, lambda: a8.Parser("requests"), state.respond)
    lock_board = drivers.open_lock_board("8a80", pty_port.url, 9600, open_states={(1, 4): "00"})
    try:
        assert lock_board.is_open(1, 4) is False
        assert lock_board.open_locks(1) == set()
        assert lock_board.unlock(1, 4) is True
        assert lock_board.is_open(1, 4) is True
        state.open.add(2)
        assert lock_board.open_locks(1) == {2, 4}
    finally:
        lock_board.close()
        device.stop()


# -- Kerong CU ---------------------------------------------------------------------------
class KerongState:
    def __init__(self, board: int = 2):
        self.board = board
        self.hooks = 0

    def respond(self, frame) -> bytes | None:
        if frame.board != self.board:
            return None
        match frame:
            case cu.Unlock(_, lock):
                self.hooks |= 1 << (lock - 1)
            case cu.UnlockAll(_):
                self.hooks = 0xFFFF
        return cu.encode(cu.BoardStatus(self.board, self.hooks, infrared=0x0003))


def test_kerong_unlock_status_and_lock_numbering(pty_port):
    state = KerongState()
    device = FakeDevice(pty_port, lambda: cu.Parser("requests"), state.respond)
    lock_board = drivers.open_lock_board("kerong_cu", pty_port.url, 19200)
    try:
        assert lock_board.is_open(2, 1) is False
        assert lock_board.unlock(2, 1) is True
        assert device.received[-1] == cu.Unlock(2, 1)
        assert state.hooks == 0b1  # lock 1 is index 0, bit 0
        assert lock_board.unlock(2, 16) is True
        assert lock_board.open_locks(2) == {1, 16}
        device.silent = True
        with pytest.raises(LockBoardOffline):
            lock_board.is_open(2, 1)
        device.silent = False
        lock_board.unlock_all(2)
        assert lock_board.open_locks(2) == set(range(1, 17))
    finally:
        lock_board.close()
        device.stop()
