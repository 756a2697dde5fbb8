"""The WKLY lock board protocol: golden frames, and the driver on a real pty against a test
board that answers with real bytes (reports sent unprompted, a board silent on unlocks)."""

from __future__ import annotations

import os
import time

import pytest
from drv_ptys import FakeDevice, PtyPort
from hypothesis import given, settings
from hypothesis import strategies as st

import drivers
from drivers import lock_wkly as wk
from kiosk.hardware import LockBoardOffline, LockFault


def h(text: str) -> bytes:
    return bytes.fromhex(text)


# -- golden frames (the examples given for the board family, and built from its layout) -----
GOLDEN = [
    (wk.open_one(0, 1), "57 4B 4C 59 09 00 82 01 83"),  # open board 0 channel 1
    (wk.ChannelState(0, wk.OPEN_ONE, 1, wk.STATE_OPEN), "57 4B 4C 59 0B 00 82 00 01 00 81"),
    (wk.query_all(0), "57 4B 4C 59 08 00 84 85"),
    (wk.query_one(3, 48), "57 4B 4C 59 09 03 83 30 B0"),
    (wk.open_all(31), "57 4B 4C 59 08 1F 86 98"),
    (wk.open_several(0, (1, 2)), "57 4B 4C 59 0B 00 80 02 01 02 83"),
    (wk.ChannelState(0, wk.QUERY_ONE, 2, wk.STATE_CLOSED), "57 4B 4C 59 0B 00 83 00 02 01 82"),
    (wk.AllStates(0, (0x00, 0x01)), "57 4B 4C 59 0C 00 84 00 02 00 01 82"),
    (wk.ChannelState(1, wk.REPORT, 5, wk.STATE_OPEN), "57 4B 4C 59 0B 01 85 00 05 00 83"),
    (wk.Ack(0, wk.OPEN_ALL, wk.FAILURE), "57 4B 4C 59 09 00 86 FF 79"),
]


@pytest.mark.parametrize(("frame", "wire"), GOLDEN)
def test_golden_frames_both_ways(frame, wire):
    assert wk.encode(frame) == h(wire)
    parser = wk.Parser("requests" if isinstance(frame, wk.Command) else "replies")
    parser.feed(h(wire))
    assert parser.next_frame() == frame


def test_a_report_without_a_status_byte_is_read_too():
    parser = wk.Parser()
    body = h("57 4B 4C 59 0A 01 85 05 01")
    parser.feed(body + bytes([wk.xor(body)]))
    assert parser.next_frame() == wk.ChannelState(1, wk.REPORT, 5, wk.STATE_CLOSED)


def test_garbage_and_a_bad_xor_are_skipped_in_any_chunks():
    good = h("57 4B 4C 59 0B 00 82 00 01 00 81")
    bad = bytearray(good)
    bad[8] ^= 1
    wire = b"\x00WK" + bytes(bad) + b"\xff\x57" + good
    parser = wk.Parser()
    frames = []
    for i in range(0, len(wire), 3):
        parser.feed(wire[i : i + 3])
        while (f := parser.next_frame()) is not None:
            frames.append(f)
    assert frames == [wk.ChannelState(0, wk.OPEN_ONE, 1, wk.STATE_OPEN)]


def test_answers_tell_a_report_from_the_reply():
    q = wk.query_one(0, 1)
    assert wk.answers(q, wk.ChannelState(0, wk.QUERY_ONE, 1, 0))
    assert not wk.answers(q, wk.ChannelState(0, wk.REPORT, 1, 0))
    assert not wk.answers(q, wk.ChannelState(0, wk.QUERY_ONE, 2, 0))
    assert not wk.answers(q, wk.ChannelState(1, wk.QUERY_ONE, 1, 0))
    assert wk.answers(wk.query_all(2), wk.AllStates(2, (0,)))


byte = st.integers(0, 255)
board = st.integers(0, 31)
replies = st.one_of(
    st.builds(
        wk.ChannelState, board, st.sampled_from([wk.OPEN_ONE, wk.QUERY_ONE, wk.REPORT]), byte, byte
    ),
    st.builds(wk.AllStates, board, st.lists(byte, max_size=48).map(tuple), byte),
    st.builds(
        wk.Ack, board, st.sampled_from([0x80, 0x81, 0x86, 0x87, 0x88, 0x89]), byte, st.just(())
    ),
)
requests = st.builds(wk.Command, board, byte, st.lists(byte, max_size=49).map(tuple))
noise = st.binary(max_size=6).map(lambda b: b.replace(b"W", b""))  # no start code in noise


@settings(max_examples=150, deadline=None)
@given(
    st.one_of(
        st.tuples(st.just("replies"), st.lists(replies, min_size=1, max_size=4)),
        st.tuples(st.just("requests"), st.lists(requests, min_size=1, max_size=4)),
    ),
    noise,
    st.integers(1, 7),
)
def test_frames_round_trip_through_noise_in_any_chunks(kind_frames, junk, step):
    role, frames = kind_frames
    wire = b"".join(junk + wk.encode(f) for f in frames)
    parser = wk.Parser(role)
    out = []
    for i in range(0, len(wire), step):
        parser.feed(wire[i : i + step])
        while (f := parser.next_frame()) is not None:
            out.append(f)
    assert out == frames


# -- the driver on a pty -------------------------------------------------------------------
class WklyBoard:
    """A WKLY board: ``open`` holds the unlatched channels (00 = open on field wiring, the
    other way round for channels in ``inverted``). ``report_first``: send an 85 report for
    that channel before each reply. ``silent_unlock``: pulse, answer nothing."""

    def __init__(self, board: int = 0, inverted: frozenset[int] = frozenset()):
        self.board = board
        self.open: set[int] = set()
        self.inverted = inverted
        self.report_first: int | None = None
        self.silent_unlock = False
        self.pulses: list[int] = []

    def state(self, ch: int) -> int:
        return wk.STATE_OPEN if (ch in self.open) != (ch in self.inverted) else wk.STATE_CLOSED

    def report(self, ch: int) -> bytes:
        return wk.encode(wk.ChannelState(self.board, wk.REPORT, ch, self.state(ch)))

    def respond(self, frame: wk.Command) -> bytes | None:
        if frame.board != self.board:
            return None
        before = b""
        if self.report_first is not None:
            self.open.add(self.report_first)  # the door changed just as the request came
            before = self.report(self.report_first)
        if frame.cmd == wk.OPEN_ONE:
            self.open.add(frame.data[0])
            self.pulses.append(frame.data[0])
            if self.silent_unlock:
                return before or None
        if frame.cmd in (wk.OPEN_ONE, wk.QUERY_ONE):
            ch = frame.data[0]
            return before + wk.encode(wk.ChannelState(self.board, frame.cmd, ch, self.state(ch)))
        if frame.cmd == wk.QUERY_ALL:
            return before + wk.encode(
                wk.AllStates(self.board, tuple(map(self.state, range(1, 49))))
            )
        if frame.cmd == wk.OPEN_ALL:
            self.open.update(range(1, 49))
            self.pulses.append(0)
            return before + wk.encode(wk.Ack(self.board, frame.cmd))
        return None


def wait_for(cond, within: float = 2.0):
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if result := cond():
            return result
        time.sleep(0.01)
    raise AssertionError(f"not within {within} s")


@pytest.fixture
def wkly(pty_port: PtyPort):
    state = WklyBoard()
    device = FakeDevice(pty_port, lambda: wk.Parser("requests"), state.respond)
    changes: list[tuple[int, int, bool]] = []
    lock_board = drivers.open_lock_board(
        "wkly", pty_port.url, 9600, on_change=lambda *c: changes.append(c)
    )
    yield state, device, lock_board, changes
    lock_board.close()
    device.stop()


def test_open_query_and_query_all(wkly):
    state, device, lock_board, _ = wkly
    assert lock_board.is_open(0, 1) is False
    assert lock_board.unlock(0, 48) is True
    assert lock_board.is_open(0, 48) is True
    state.open.add(7)
    assert lock_board.open_locks(0) == {7, 48}
    assert device.received[:2] == [wk.query_one(0, 1), wk.open_one(0, 48)]
    lock_board.unlock_all(0)
    assert lock_board.open_locks(0) == set(range(1, 49))


def test_a_report_between_request_and_reply_is_kept_and_the_reply_still_read(wkly):
    state, device, lock_board, changes = wkly
    state.report_first = 9
    assert lock_board.is_open(0, 2) is False  # the reply behind the report answers
    assert changes == [(0, 9, True)]  # the report was not flushed away
    assert lock_board.reported(0, 9) is True
    assert device.received == [wk.query_one(0, 2)]  # read once, no retry


def test_a_report_between_requests_updates_the_door_at_once(wkly):
    state, device, lock_board, changes = wkly
    assert lock_board.is_open(0, 3) is False  # the port is open from here on
    assert lock_board.reported(0, 3) is False
    state.open.add(3)
    os.write(device.port.master, state.report(3))  # unprompted, no request pending
    assert wait_for(lambda: changes) == [(0, 3, True)]
    assert lock_board.reported(0, 3) is True
    assert len(device.received) == 1  # the driver learnt it without asking


def test_unlock_to_a_board_silent_on_unlocks_is_one_pulse_then_a_query(wkly):
    state, device, lock_board, _ = wkly
    state.silent_unlock = True
    assert lock_board.unlock(0, 4) is True
    assert state.pulses == [4]
    assert device.received == [wk.open_one(0, 4), wk.query_one(0, 4)]


def test_unlock_to_a_dead_board_is_a_fault_after_one_pulse(wkly):
    state, device, lock_board, _ = wkly
    device.silent = True
    with pytest.raises(LockBoardOffline, match="sent once"):
        lock_board.unlock(0, 5)
    assert state.pulses == [5]
    assert device.received.count(wk.open_one(0, 5)) == 1
    assert device.received.count(wk.query_one(0, 5)) == 4  # queries are retried


def test_an_error_state_is_a_fault(wkly):
    _state, device, lock_board, _ = wkly
    device.respond = lambda f: wk.encode(wk.ChannelState(0, f.cmd, f.data[0], wk.STATE_ERROR))
    with pytest.raises(LockFault):
        lock_board.is_open(0, 1)


@pytest.mark.parametrize(
    ("reply", "inverted", "is_open"),
    [
        ("57 4B 4C 59 0B 00 83 00 01 00 80", False, True),  # field wiring: 00 = open
        ("57 4B 4C 59 0B 00 83 00 01 01 81", False, False),  # 01 = closed
        ("57 4B 4C 59 0B 00 83 00 01 00 80", True, False),  # wired the other way
        ("57 4B 4C 59 0B 00 83 00 01 01 81", True, True),
    ],
)
def test_status_polarity_golden_replies(pty_port, reply, inverted, is_open):
    device = FakeDevice(pty_port, lambda: wk.Parser("requests"), lambda _f: h(reply))
    lock_board = drivers.open_lock_board(
        "wkly", pty_port.url, 9600, inverted={(0, 1)} if inverted else ()
    )
    try:
        assert lock_board.is_open(0, 1) is is_open
    finally:
        lock_board.close()
        device.stop()
