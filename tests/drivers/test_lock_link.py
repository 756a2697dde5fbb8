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

    Field wiring: status 00 = open, 11 = closed, a query-all bit set = locked. A lock in
    ``inverted`` is wired the other way round: its switch level (the status byte, and its bit
    in a query-all mask) is the opposite. ``silent_unlock``: pulse, answer nothing.
    """

    def __init__(self, board: int = 1, inverted: frozenset[int] = frozenset()):
        self.board = board
        self.open: set[int] = set()
        self.inverted = inverted
        self.forced_status: int | None = None
        self.silent_unlock = False
        self.pulses: list[int] = []

    def level(self, lock: int) -> bool:
        """True where the switch reads 11 (locked on field wiring)."""
        return (lock in self.open) == (lock in self.inverted)

    def status(self, lock: int) -> int:
        if self.forced_status is not None:
            return self.forced_status
        return 0x11 if self.level(lock) else 0x00

    def respond(self, frame) -> bytes | None:
        if frame.board != self.board:
            return None  # another board on the line
        match frame:
            case a8.OpenLock(b, lock):
                self.open.add(lock)
                self.pulses.append(lock)
                if self.silent_unlock:
                    return None
                return a8.encode(a8.LockStatus(b, lock, self.status(lock), opened=True))
            case a8.QueryLock(b, lock):
                return a8.encode(a8.LockStatus(b, lock, self.status(lock)))
            case a8.QueryAll(b):
                mask = sum(1 << (lock - 1) for lock in range(1, 25) if self.level(lock))
                return a8.encode(a8.AllStatus(b, mask))
            case a8.OpenAll(b):
                self.open.update(range(1, 25))
                self.pulses.append(0)
                return None if self.silent_unlock else a8.encode(a8.LockStatus(b, 0, 0, True))
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


def test_unlock_to_a_silent_board_pulses_once_then_confirms(board8a80):
    state, device, lock_board, _ = board8a80
    state.silent_unlock = True
    assert lock_board.unlock(1, 6) is True  # the status query saw it open
    assert state.pulses == [6]
    assert device.received == [a8.OpenLock(1, 6), a8.QueryLock(1, 6)]


def test_unlock_to_a_dead_board_is_a_fault_after_one_pulse(board8a80):
    state, device, lock_board, health = board8a80
    device.silent = True
    with pytest.raises(LockBoardOffline, match="sent once"):
        lock_board.unlock(1, 6)
    assert state.pulses == [6]  # queries were retried, the unlock never
    assert device.received.count(a8.OpenLock(1, 6)) == 1
    assert health[-1].ok is False
    lock_board.unlock_all(1)  # no reply needed, sent once
    assert state.pulses == [6, 0]


def test_inverted_wiring_status_inverted(pty_port):
    state = Board8A80State(inverted=frozenset({4}))
    device = FakeDevice(pty_port, lambda: a8.Parser("requests"), state.respond)
    lock_board = drivers.open_lock_board("8a80", pty_port.url, 9600, inverted={(1, 4)})
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
    """A Kerong CU board. ``unlatched``: a bit per open lock; the hook bits it sends are 1 =
    locked (field wiring) or 1 = open where ``inverted``. ``silent_unlock``: pulse, no reply."""

    def __init__(self, board: int = 2, inverted: int = 0, silent_unlock: bool = False):
        self.board = board
        self.unlatched = 0
        self.inverted = inverted
        self.silent_unlock = silent_unlock
        self.pulses: list[int] = []

    @property
    def hooks(self) -> int:
        return ~(self.unlatched ^ self.inverted) & 0xFFFF

    def respond(self, frame) -> bytes | None:
        if frame.board != self.board:
            return None
        match frame:
            case cu.Unlock(_, lock):
                self.unlatched |= 1 << (lock - 1)
                self.pulses.append(lock)
                if self.silent_unlock:
                    return None
            case cu.UnlockAll(_):
                self.unlatched = 0xFFFF
                self.pulses.append(0)
                if self.silent_unlock:
                    return None
        return cu.encode(cu.BoardStatus(self.board, self.hooks, infrared=0x0003))


def test_kerong_unlock_status_and_lock_numbering(pty_port):
    state = KerongState()
    device = FakeDevice(pty_port, lambda: cu.Parser("requests"), state.respond)
    lock_board = drivers.open_lock_board("kerong_cu", pty_port.url, 19200)
    try:
        assert lock_board.is_open(2, 1) is False
        assert lock_board.unlock(2, 1) is True
        assert device.received[-1] == cu.Unlock(2, 1)
        assert state.hooks == 0xFFFE  # lock 1 is index 0, bit 0; 1 = locked
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


def test_kerong_unlock_without_reply_is_sent_once_and_confirmed(pty_port):
    """Several real CU boards never answer 0x31: one pulse, then a 0x30 status query."""
    state = KerongState(silent_unlock=True)
    device = FakeDevice(pty_port, lambda: cu.Parser("requests"), state.respond)
    lock_board = drivers.open_lock_board("kerong_cu", pty_port.url, 19200)
    try:
        assert lock_board.unlock(2, 3) is True
        assert device.received == [cu.Unlock(2, 3), cu.Status(2)]
        lock_board.unlock_all(2)
        assert state.pulses == [3, 0]
        device.silent = True
        with pytest.raises(LockBoardOffline, match="sent once"):
            lock_board.unlock(2, 4)
        assert state.pulses == [3, 0, 4]
        assert device.received.count(cu.Unlock(2, 4)) == 1
    finally:
        lock_board.close()
        device.stop()


def test_kerong_inverted_wiring(pty_port):
    state = KerongState(inverted=0b10)  # lock 2 wired the other way: hook bit 1 = open
    device = FakeDevice(pty_port, lambda: cu.Parser("requests"), state.respond)
    lock_board = drivers.open_lock_board("kerong_cu", pty_port.url, 19200, inverted={(2, 2)})
    try:
        assert lock_board.open_locks(2) == set()
        assert lock_board.unlock(2, 2) is True
        assert state.hooks & 0b10  # the inverted door's bit went to 1
        assert lock_board.open_locks(2) == {2}
        assert lock_board.is_open(2, 1) is False
    finally:
        lock_board.close()
        device.stop()


# -- both polarities, from golden reply bytes ----------------------------------------------
# (protocol, board, the board's reply, status_inverted, door open?) for lock 1
POLARITY = [
    ("8a80", 1, "80 01 01 00 80", False, True),  # field wiring: 00 = open
    ("8a80", 1, "80 01 01 11 91", False, False),  # 11 = closed
    ("8a80", 1, "80 01 01 00 80", True, False),  # wired the other way: 00 = closed
    ("8a80", 1, "80 01 01 11 91", True, True),
    ("kerong_cu", 0, "02 00 35 01 00 00 00 03 3B", False, False),  # hook bit 1 = locked
    ("kerong_cu", 0, "02 00 35 00 00 00 00 03 3A", False, True),
    ("kerong_cu", 0, "02 00 35 01 00 00 00 03 3B", True, True),  # inverted: 1 = open
    ("kerong_cu", 0, "02 00 35 00 00 00 00 03 3A", True, False),
]


@pytest.mark.parametrize(("protocol", "board", "reply", "inverted", "is_open"), POLARITY)
def test_status_polarity_golden_replies(pty_port, protocol, board, reply, inverted, is_open):
    codec = a8 if protocol == "8a80" else cu
    device = FakeDevice(pty_port, lambda: codec.Parser("requests"), lambda _f: bytes.fromhex(reply))
    lock_board = drivers.open_lock_board(
        protocol, pty_port.url, 9600, inverted={(board, 1)} if inverted else ()
    )
    try:
        assert lock_board.is_open(board, 1) is is_open
    finally:
        lock_board.close()
        device.stop()


@pytest.mark.parametrize(
    ("mask", "inverted", "open_locks"),
    [
        ("FF FF FE", (), {1}),  # field wiring: a clear bit is an open lock
        ("00 00 01", (), set(range(2, 25))),
        ("00 00 01", ((1, 1),), set(range(1, 25))),  # lock 1 inverted: its set bit = open
        ("FF FF FE", ((1, 1),), set()),
    ],
)
def test_8a80_query_all_polarity(pty_port, mask, inverted, open_locks):
    body = bytes.fromhex("80 01 " + mask + " 33")
    reply = body + bytes([a8.xor(body)])
    device = FakeDevice(pty_port, lambda: a8.Parser("requests"), lambda _f: reply)
    lock_board = drivers.open_lock_board("8a80", pty_port.url, 9600, inverted=inverted)
    try:
        assert lock_board.open_locks(1) == open_locks
    finally:
        lock_board.close()
        device.stop()
